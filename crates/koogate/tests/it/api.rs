//! The merchant REST API (`/api/v1`): bearer token, problem details, pagination, instances with
//! history, credential rotation, orders, endpoints, and the generated OpenAPI document.

use crate::common::{self, ADMIN_TOKEN, Backend, Options, TestDb, TestServer, backend_tests};
use serde_json::Value;

fn new_instance(order: &str, biz: &str) -> String {
    format!(
        r#"{{"activity":"newInstance","businessId":"{biz}","orderId":"{order}","orderLineId":"{order}-000001"}}"#
    )
}

async fn get(s: &TestServer, path: &str) -> (u16, Option<String>, Value) {
    let r = common::http()
        .get(format!("{}{path}", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, ct, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn requests_need_the_bearer_token() {
    let db = TestDb::fresh(common::Backend::Sqlite).await;
    let s = TestServer::start(
        &db,
        Options {
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..Options::default()
        },
    )
    .await;
    let http = common::http();
    for auth in [None, Some("wrong-token-0123456789")] {
        let mut req = http.get(format!("{}/api/v1/instances", s.base));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["status"], 401);
        assert_eq!(p["title"], "Unauthorized");
    }
    s.stop().await;
    // Without a configured token the API is off, and says how to turn it on.
    let db = TestDb::fresh(common::Backend::Sqlite).await;
    let s = TestServer::start(&db, Options::default()).await;
    let r = common::http()
        .get(format!("{}/api/v1/instances", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let p: Value = r.json().await.unwrap();
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("KOOGATE_ADMIN_TOKEN")
    );
    s.stop().await;
}

backend_tests!(instances_are_listed_page_by_page_and_shown_with_history);
async fn instances_are_listed_page_by_page_and_shown_with_history(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..Options::default()
        },
    )
    .await;
    for i in 0..5 {
        s.v2(&new_instance(&format!("CS-API-{i}"), &format!("api-{i}")))
            .await
            .expect_code("000004");
    }
    for i in 0..5 {
        s.wait_state(&format!("api-{i}"), "active").await;
    }
    // Pages of 2: every instance exactly once, newest first.
    let mut seen = Vec::new();
    let mut path = "/api/v1/instances?limit=2".to_owned();
    loop {
        let (status, _, page) = get(&s, &path).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item["instance_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/instances?limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "{backend:?}: {seen:?}");
    // Filters.
    let (_, _, page) = get(&s, "/api/v1/instances?order_id=CS-API-3").await;
    assert_eq!(page["items"][0]["instance_id"], "api-3");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, _, page) = get(&s, "/api/v1/instances?state=provisioning").await;
    assert!(page["items"].as_array().unwrap().is_empty());
    // Bad parameters name themselves.
    for (bad, field) in [
        ("/api/v1/instances?state=melted", "state"),
        ("/api/v1/instances?limit=0", "limit"),
        ("/api/v1/instances?cursor=!!", "cursor"),
    ] {
        let (status, ct, p) = get(&s, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        assert!(p["detail"].as_str().unwrap().starts_with(field), "{p}");
    }
    // One instance, with its history.
    s.v2(r#"{"activity":"updateInstanceStatus","instanceId":"api-0","status":"FREEZE"}"#)
        .await
        .expect("000000");
    let (status, _, inst) = get(&s, "/api/v1/instances/api-0").await;
    assert_eq!(status, 200);
    assert_eq!(inst["state"], "frozen");
    let kinds: Vec<&str> = inst["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "provisioned", "frozen"]);
    let (status, _, p) = get(&s, "/api/v1/instances/nope").await;
    assert_eq!(status, 404);
    assert!(p["detail"].as_str().unwrap().contains("nope"));
    s.stop().await;
}

#[tokio::test]
async fn credentials_rotate_and_koogallery_sees_the_new_password() {
    let db = TestDb::fresh(common::Backend::Sqlite).await;
    let s = TestServer::start(
        &db,
        Options {
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..Options::default()
        },
    )
    .await;
    s.v2(&new_instance("CS-ROT", "rot-1"))
        .await
        .expect_code("000004");
    s.wait_state("rot-1", "active").await;
    let query = r#"{"activity":"queryInstance","instanceId":"rot-1"}"#;
    let before = s.v2(query).await.json["info"][0]["appInfo"]["password"].clone();
    let r = common::http()
        .post(format!(
            "{}/api/v1/instances/rot-1/rotate-credentials",
            s.base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let app: Value = r.json().await.unwrap();
    assert_ne!(app["password"], before);
    let after = s.v2(query).await.json["info"][0]["appInfo"]["password"].clone();
    assert_eq!(after, app["password"]);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM instance_events WHERE instance_id = 'rot-1' AND kind = 'credentials_rotated'")
            .await,
        1
    );
    // A provisioning or released instance has nothing to rotate.
    s.v2(r#"{"activity":"releaseInstance","instanceId":"rot-1"}"#)
        .await
        .expect("000000");
    let r = common::http()
        .post(format!(
            "{}/api/v1/instances/rot-1/rotate-credentials",
            s.base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    s.stop().await;
}

#[tokio::test]
async fn orders_endpoints_and_the_openapi_document() {
    let (url, _api) = common::openapi().await;
    let db = TestDb::fresh(common::Backend::Sqlite).await;
    let s = TestServer::start(
        &db,
        Options {
            openapi_url: Some(url),
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..Options::default()
        },
    )
    .await;
    s.v2(&new_instance("MOCKPERIODYEARNEW", "ord-1"))
        .await
        .expect_code("000004");
    s.wait_state("ord-1", "active").await;
    // Reading the order is an event of its own (no endpoint here: written, not delivered).
    assert_eq!(
        s.count("SELECT COUNT(*) FROM webhook_events WHERE event_type = 'order.fetched' AND instance_id = 'ord-1'")
            .await,
        1
    );
    let (status, _, orders) = get(&s, "/api/v1/orders").await;
    assert_eq!(status, 200);
    assert_eq!(orders["items"][0]["order_id"], "MOCKPERIODYEARNEW");
    assert_eq!(orders["items"][0]["order_type"], "NEW");

    let r = common::http()
        .post(format!("{}/api/v1/webhook-endpoints", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"url": "https://app.example.com/hooks", "events": ["instance.ready"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    let (_, _, list) = get(&s, "/api/v1/webhook-endpoints").await;
    assert_eq!(list[0]["id"], created["id"]);
    assert!(list[0].get("secret").is_none(), "the secret is shown once");
    let r = common::http()
        .post(format!("{}/api/v1/webhook-endpoints", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"url": "https://x", "secret": "not-a-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = common::http()
        .post(format!("{}/api/v1/webhook-endpoints", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // The OpenAPI 3.1 document, generated from the code, lists every route.
    let doc: Value = common::http()
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/instances",
        "/api/v1/instances/{id}",
        "/api/v1/instances/{id}/complete",
        "/api/v1/instances/{id}/fail",
        "/api/v1/instances/{id}/rotate-credentials",
        "/api/v1/orders",
        "/api/v1/webhook-endpoints",
        "/api/v1/webhook-deliveries",
        "/api/v1/webhook-deliveries/{id}",
        "/api/v1/webhook-deliveries/{id}/replay",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    s.stop().await;
}
