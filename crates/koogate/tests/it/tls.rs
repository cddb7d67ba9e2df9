//! Native TLS: KooGallery only calls HTTPS, so `koogate serve` can terminate TLS itself.

use crate::common::{self, BASIC_KEY, Backend, TestDb};

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let db = TestDb::fresh(Backend::Sqlite).await;
    let mut args = common::config_args(&db.url, dir.path(), &common::Options::default());
    args.tls_cert = Some(cert_path);
    args.tls_key = Some(key_path);
    let mut config = koogate::config::Config::load(&args).unwrap();
    config.prepare_data_dir().unwrap();
    let store = koogate::store::Db::open(&config.database_url)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(koogate::cli::serve::run_server(
        config, store, listener, shutdown,
    ));

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let body = r#"{"activity":"queryInstance","instanceId":"nope"}"#;
    let ts = common::now_ms().to_string();
    let sig = koogallery::sign::v2::sign(BASIC_KEY, "tls1", &ts, body.as_bytes());
    let response = client
        .post(format!(
            "https://localhost:{port}/produce?signature={sig}&timestamp={ts}&nonce=tls1"
        ))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sign = response.headers()["body-sign"].to_str().unwrap().to_owned();
    let bytes = response.bytes().await.unwrap();
    koogallery::sign::body_sign::verify(BASIC_KEY, &bytes, Some(&sign)).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["resultCode"],
        "000003"
    );
    // Plain HTTP on the TLS port is refused.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err()
    );
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
}
