//! The control API over HTTP, on the same listener as the open API.

use crate::merchant::{self, Merchant};
use koogallery_emulator::catalog::MerchantKeys;
use koogallery_emulator::server::{self, Config};
use serde_json::{Value, json};

async fn send(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let request = match method {
        "POST" => client.post(url).json(&body.unwrap_or_else(|| json!({}))),
        _ => client.get(url),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn drive_the_marketplace_over_http() {
    let mut merchant = Merchant::start().await;
    merchant.down().await;
    let running = server::start(Config {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ak: merchant::AK.to_owned(),
        sk: merchant::SK.to_owned(),
        keys: MerchantKeys {
            basic: Some(merchant::KEY.to_owned()),
            ..MerchantKeys::default()
        },
        time_scale: 0.0,
        state: None,
        merchant_url: Some(merchant.url()),
        kit_public_key: None,
    })
    .await
    .unwrap();
    let base = running.url();
    let url = |path: &str| format!("{base}{path}");

    let (status, products) = send("GET", &url("/control/products"), None).await;
    assert_eq!(status, 200);
    assert!(products.as_array().unwrap().len() >= 14);
    assert!(
        products
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["keys"] == json!({}))
    );

    // The merchant is down: the first attempt fails, and a message appears.
    let (status, placed) = send(
        "POST",
        &url("/control/orders"),
        Some(json!({"kind": "new", "productId": "V2-YEAR"})),
    )
    .await;
    assert_eq!(status, 200, "{placed}");
    assert_eq!(placed["order"]["status"], "processing");
    assert_eq!(placed["calls"][0]["verdict"], "failed");
    let (_, messages) = send("GET", &url("/control/messages"), None).await;
    assert_eq!(messages[0]["state"], "retrying");
    let id = messages[0]["id"].as_u64().unwrap();

    // Back up; a restart retries at once.
    merchant.up().await;
    let (status, restarted) = send(
        "POST",
        &url(&format!("/control/messages/{id}/restart")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{restarted}");
    assert_eq!(restarted["job"]["state"], "succeeded");
    let order_id = placed["order"]["orderId"].as_str().unwrap();
    let (_, order) = send("GET", &url(&format!("/control/orders/{order_id}")), None).await;
    assert_eq!(order["status"], "completed");
    let (_, calls) = send(
        "GET",
        &url(&format!(
            "/control/calls?orderId={order_id}&activity=queryInstance"
        )),
        None,
    )
    .await;
    assert_eq!(calls.as_array().unwrap().len(), 1);

    let (status, advanced) = send(
        "POST",
        &url("/control/clock/advance"),
        Some(json!({"by": "400d"})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(advanced["steps"].as_u64().unwrap() >= 2);
    let resource = placed["order"]["resourceId"].as_str().unwrap();
    let (_, instance) = send("GET", &url(&format!("/control/instances/{resource}")), None).await;
    assert_eq!(instance["status"], "released");

    // A License code 2.0 purchase calls nothing; License code has no upgrade.
    let (status, code) = send(
        "POST",
        &url("/control/orders"),
        Some(json!({"kind": "new", "productId": "LCODE-YEAR"})),
    )
    .await;
    assert_eq!(status, 200, "{code}");
    assert_eq!(code["order"]["status"], "completed");
    let code_resource = code["order"]["resourceId"].as_str().unwrap();

    // Refusals.
    for (method, path, body, expected) in [
        ("POST", "/control/orders", json!({"kind": "new"}), 400),
        (
            "POST",
            "/control/orders",
            json!({"kind": "new", "productId": "NOPE"}),
            404,
        ),
        (
            "POST",
            "/control/orders",
            json!({"kind": "renew", "resourceId": resource}),
            409,
        ),
        (
            "POST",
            "/control/orders",
            json!({"kind": "upgrade", "resourceId": code_resource}),
            501,
        ),
        ("POST", "/control/clock/advance", json!({"by": "soon"}), 400),
        ("POST", "/control/messages/12345/restart", json!({}), 404),
        ("GET", "/control/orders/NOPE", json!(null), 404),
    ] {
        let (status, answer) = send(method, &url(path), Some(body)).await;
        assert_eq!(status, expected, "{path}: {answer}");
        assert!(answer["error"].is_string());
    }
    let (status, schedules) = send("GET", &url("/control/schedules"), None).await;
    assert_eq!(status, 200);
    assert!(!schedules.as_array().unwrap().is_empty());

    // The open API still answers its own 404 for unknown paths.
    let (status, answer) = send("GET", &url("/nope"), None).await;
    assert_eq!(status, 404);
    assert_eq!(answer["error_code"], "APIGW.0101");
}
