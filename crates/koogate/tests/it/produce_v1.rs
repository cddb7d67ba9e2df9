//! SaaS V1 (GET) black-box tests on SQLite and PostgreSQL.

use crate::common::{BASIC_KEY, Backend, Options, TestDb, TestServer, backend_tests};
use koogallery::crypto::{FieldCipher, KeySize};

fn cipher() -> FieldCipher {
    FieldCipher::new(BASIC_KEY, KeySize::Aes256)
}

backend_tests!(v1_lifecycle_with_encrypted_fields);
async fn v1_lifecycle_with_encrypted_fields(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(&db, Options::default()).await;
    let phone = cipher().encrypt("15905222222");
    let email = cipher().encrypt("buyer@example.com");
    let extend = koogallery::model::saas_v1::encode_saas_extend_params(&[
        koogallery::model::saas_v1::ExtendParam {
            name: "identificationCode".into(),
            value: "ABC".into(),
        },
    ]);
    let new = [
        ("activity", "newInstance"),
        ("businessId", "v1-biz-1"),
        ("customerId", "68cbc86abc2018ab880d92f36422fa0e"),
        ("customerName", "John Smith"),
        ("orderId", "CS-V1"),
        ("productId", "00301-666666-0--0"),
        ("skuCode", "sku-basic"),
        ("chargingMode", "1"),
        ("expireTime", "20300727153156"),
        ("mobilePhone", phone.as_str()),
        ("email", email.as_str()),
        ("saasExtendParams", extend.as_str()),
    ];
    let r = s.v1(&new).await;
    r.expect("000000");
    assert_eq!(r.json["instanceId"], "v1-biz-1");
    assert_eq!(r.json["encryptType"], "1");
    let app = &r.json["appInfo"];
    assert_eq!(app["frontEndUrl"], "https://app.example.com/t/v1-biz-1");
    assert_eq!(
        cipher().decrypt(app["userName"].as_str().unwrap()).unwrap(),
        "admin"
    );
    let password = cipher().decrypt(app["password"].as_str().unwrap()).unwrap();
    assert_eq!(password.len(), 20);
    // Personal data is sealed at rest and redacted in the audit log.
    let audit: String = sqlx::Row::get(
        &sqlx::query("SELECT request FROM audit_log WHERE activity = 'newInstance'")
            .fetch_one(&s.db.pool)
            .await
            .unwrap(),
        0,
    );
    assert!(
        !audit.contains(&phone) && !audit.contains("John Smith"),
        "{audit}"
    );
    let buyer: String = sqlx::Row::get(
        &sqlx::query("SELECT buyer_sealed FROM orders WHERE order_id = 'CS-V1'")
            .fetch_one(&s.db.pool)
            .await
            .unwrap(),
        0,
    );
    assert!(buyer.starts_with("v1:") && !buyer.contains("15905222222"));

    // A resend (new businessId) returns the same instance and the same credentials.
    let mut again = new;
    again[1] = ("businessId", "v1-biz-2");
    let r2 = s.v1(&again).await;
    r2.expect("000000");
    assert_eq!(r2.json["instanceId"], "v1-biz-1");
    assert_eq!(
        cipher()
            .decrypt(r2.json["appInfo"]["password"].as_str().unwrap())
            .unwrap(),
        password
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM instances").await, 1);

    let id = "v1-biz-1";
    let q = s
        .v1(&[("activity", "queryInstance"), ("instanceId", id)])
        .await;
    q.expect("000000");
    assert_eq!(q.json["encryptType"], "1");
    assert_eq!(
        cipher()
            .decrypt(q.json["info"][0]["appInfo"]["password"].as_str().unwrap())
            .unwrap(),
        password
    );
    s.v1(&[
        ("activity", "refreshInstance"),
        ("orderId", "CS-V1-R"),
        ("instanceId", id),
        ("expireTime", "20310727153156"),
        ("trialToFormal", "1"),
    ])
    .await
    .expect("000000");
    s.v1(&[
        ("activity", "expireInstance"),
        ("orderId", "CS-V1"),
        ("instanceId", id),
    ])
    .await
    .expect("000000");
    s.wait_state(id, "frozen").await;
    s.v1(&[
        ("activity", "instanceStatus"),
        ("instanceId", id),
        ("instanceStatus", "NORMAL"),
    ])
    .await
    .expect("000000");
    s.wait_state(id, "active").await;
    s.v1(&[
        ("activity", "upgrade"),
        ("orderId", "CS-V1-U"),
        ("instanceId", id),
        ("skuCode", "sku-pro"),
        ("productId", "00301-666666-0--1"),
        ("amount", "50"),
    ])
    .await
    .expect("000000");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM instances WHERE sku_code = 'sku-pro' AND quantity = '50'")
            .await,
        1
    );
    s.v1(&[
        ("activity", "releaseInstance"),
        ("orderId", "CS-V1"),
        ("instanceId", id),
    ])
    .await
    .expect("000000");
    s.v1(&[
        ("activity", "releaseInstance"),
        ("orderId", "CS-V1"),
        ("instanceId", id),
    ])
    .await
    .expect("000000");
    s.wait_state(id, "released").await;
    s.v1(&[
        ("activity", "expireInstance"),
        ("orderId", "CS-V1"),
        ("instanceId", "nope"),
    ])
    .await
    .expect("000003");
    s.stop().await;
}

backend_tests!(v1_rejections);
async fn v1_rejections(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(&db, Options::default()).await;
    let ts = koogallery::time::format_millis17(time::OffsetDateTime::now_utc());
    let base = vec![
        ("activity".to_owned(), "queryInstance".to_owned()),
        ("instanceId".to_owned(), "x".to_owned()),
        ("timeStamp".to_owned(), ts.clone()),
    ];
    // Wrong key, missing token, missing timeStamp, stale timeStamp.
    let mut wrong = base.clone();
    wrong.push((
        "authToken".into(),
        koogallery::sign::v1::auth_token("other-key", &base).unwrap(),
    ));
    s.get(&koogallery::query::encode_query(&wrong))
        .await
        .expect("000001");
    s.get(&koogallery::query::encode_query(&base))
        .await
        .expect("000001");
    s.get("activity=queryInstance&instanceId=x&authToken=abc")
        .await
        .expect("000002");
    let old = vec![
        ("activity".to_owned(), "queryInstance".to_owned()),
        ("instanceId".to_owned(), "x".to_owned()),
        ("timeStamp".to_owned(), "20200727073711903".to_owned()),
    ];
    let mut stale = old.clone();
    stale.push((
        "authToken".into(),
        koogallery::sign::v1::auth_token(BASIC_KEY, &old).unwrap(),
    ));
    s.get(&koogallery::query::encode_query(&stale))
        .await
        .expect("000002");
    // A replayed token: applied once, then refused.
    let mut ok = base.clone();
    ok.push((
        "authToken".into(),
        koogallery::sign::v1::auth_token(BASIC_KEY, &base).unwrap(),
    ));
    let query = koogallery::query::encode_query(&ok);
    s.get(&query).await.expect("000003");
    let replay = s.get(&query).await;
    replay.expect("000002");
    assert!(replay.msg().contains("nonce"), "{}", replay.msg());
    // A value that does not decrypt is a bad parameter naming the field, and creates nothing.
    let r = s
        .v1(&[
            ("activity", "newInstance"),
            ("businessId", "b"),
            ("customerId", "c"),
            ("orderId", "o"),
            ("productId", "p"),
            ("mobilePhone", "abcdEFGH12345678AAAAAAAAAAAAAAAAAAAAAA=="),
        ])
        .await;
    r.expect("000002");
    assert!(r.msg().contains("mobilePhone"), "{}", r.msg());
    let r = s
        .v1(&[
            ("activity", "newInstance"),
            ("businessId", "b"),
            ("orderId", "o"),
            ("productId", "p"),
        ])
        .await;
    r.expect("000002");
    assert!(r.msg().contains("customerId is required"), "{}", r.msg());
    s.v1(&[
        ("activity", "instanceStatus"),
        ("instanceId", "x"),
        ("instanceStatus", "PAUSED"),
    ])
    .await
    .expect("000002");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM instances").await,
        0,
        "{backend:?}"
    );
    // Debug calls succeed without touching anything.
    let t = s
        .v1(&[
            ("activity", "newInstance"),
            ("businessId", "b"),
            ("customerId", "c"),
            ("orderId", "MOCK"),
            ("productId", "p"),
            ("testFlag", "1"),
        ])
        .await;
    t.expect("000000");
    assert!(t.json["appInfo"]["frontEndUrl"].is_string());
    s.v1(&[
        ("activity", "releaseInstance"),
        ("orderId", "o"),
        ("instanceId", "never"),
        ("testFlag", "1"),
    ])
    .await
    .expect("000000");
    assert_eq!(s.count("SELECT COUNT(*) FROM instances").await, 0);
    s.stop().await;
}
