//! Event webhooks end to end: a real receiver verifying Standard Webhooks signatures, an outage
//! and recovery, per-endpoint filtering, order per instance, replay and the test event.

use std::collections::{BTreeMap, HashMap};

use crate::common::receiver::{Mode, Receiver};
use crate::common::{self, ADMIN_TOKEN, Backend, Options, TestDb, TestServer, backend_tests};

const SECRET_A: &str = "whsec_c2VjcmV0LWEtMDEyMzQ1Njc4OWFiY2RlZg==";
const SECRET_B: &str = "whsec_c2VjcmV0LWItMDEyMzQ1Njc4OWFiY2RlZg==";

fn new_instance(order: &str, biz: &str) -> String {
    format!(
        r#"{{"activity":"newInstance","businessId":"{biz}","orderId":"{order}","orderLineId":"{order}-000001"}}"#
    )
}

fn status(id: &str, status: &str) -> String {
    format!(r#"{{"activity":"updateInstanceStatus","instanceId":"{id}","status":"{status}"}}"#)
}

/// The event types each instance got at a receiver, in arrival order; and every webhook id.
fn by_instance(r: &Receiver) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut per = BTreeMap::<String, Vec<String>>::new();
    let mut ids = Vec::new();
    for e in r.received() {
        ids.push(e.webhook_id.clone());
        let instance = e.body["data"]["instance_id"]
            .as_str()
            .unwrap_or("-")
            .to_owned();
        per.entry(instance)
            .or_default()
            .push(e.body["type"].as_str().unwrap().to_owned());
    }
    (per, ids)
}

backend_tests!(every_event_reaches_every_endpoint_once_in_order_across_an_outage);
async fn every_event_reaches_every_endpoint_once_in_order_across_an_outage(backend: Backend) {
    let a = Receiver::start(SECRET_A, Mode::Up).await;
    let b = Receiver::start(SECRET_B, Mode::Down).await;
    let config = format!(
        r#"
[webhooks]
retry_first_ms = 20
retry_max_ms = 100

[[webhooks.endpoints]]
url = "{}"
secret = "{SECRET_A}"

[[webhooks.endpoints]]
url = "{}"
secret = "{SECRET_B}"
events = ["instance.ready", "instance.frozen", "instance.unfrozen", "instance.released"]
"#,
        a.url, b.url
    );
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            config_toml: Some(config),
            ..Options::default()
        },
    )
    .await;
    for i in 0..3 {
        s.v2(&new_instance(&format!("CS-WH-{i}"), &format!("wh-{i}")))
            .await
            .expect_code("000004");
    }
    for i in 0..3 {
        s.wait_state(&format!("wh-{i}"), "active").await;
    }
    s.v2(&status("wh-0", "FREEZE")).await.expect("000000");
    s.v2(&status("wh-0", "UNFREEZE")).await.expect("000000");
    s.v2(r#"{"activity":"releaseInstance","instanceId":"wh-0","orderId":"CS-WH-0"}"#)
        .await
        .expect("000000");
    s.v2(&status("wh-1", "FREEZE")).await.expect("000000");

    // A: everything (3 created + 3 ready + frozen, unfrozen, released + frozen).
    a.wait_until("10 events at A", |r| r.received().len() >= 10)
        .await;
    // B is down: its deliveries fail and are retried.
    b.wait_until("B refusing retries", |r| r.refused() >= 6)
        .await;
    assert!(b.received().is_empty());
    b.set_mode(Mode::Up);
    // B: only its types (3 ready + frozen, unfrozen, released + frozen).
    b.wait_until("7 events at B", |r| r.received().len() >= 7)
        .await;
    s.wait_count(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivered'",
        17,
    )
    .await;

    assert_eq!(
        (a.received().len(), b.received().len()),
        (10, 7),
        "{backend:?}"
    );
    for r in [&a, &b] {
        assert!(r.invalid().is_empty(), "{:?}", r.invalid());
        let (per, ids) = by_instance(r);
        let mut seen = HashMap::new();
        for id in &ids {
            *seen.entry(id.clone()).or_insert(0) += 1;
        }
        assert!(
            seen.values().all(|n| *n == 1),
            "{backend:?}: duplicates {seen:?}"
        );
        let expect_b = r.url == b.url;
        let full: &[&str] = if expect_b {
            &[
                "instance.ready",
                "instance.frozen",
                "instance.unfrozen",
                "instance.released",
            ]
        } else {
            &[
                "instance.created",
                "instance.ready",
                "instance.frozen",
                "instance.unfrozen",
                "instance.released",
            ]
        };
        assert_eq!(per["wh-0"], full, "{backend:?}");
        let frozen: &[&str] = if expect_b {
            &["instance.ready", "instance.frozen"]
        } else {
            &["instance.created", "instance.ready", "instance.frozen"]
        };
        assert_eq!(per["wh-1"], frozen, "{backend:?}");
    }
    // The payload: Standard Webhooks envelope with the instance's state.
    let ready = a
        .received()
        .into_iter()
        .find(|e| e.body["type"] == "instance.ready")
        .unwrap();
    assert_eq!(ready.body["data"]["state"], "active");
    assert_eq!(ready.body["data"]["from_state"], "provisioning");
    assert!(ready.body["timestamp"].as_str().unwrap().ends_with('Z'));
    s.stop().await;
}

backend_tests!(attempts_are_logged_and_a_delivery_can_be_replayed);
async fn attempts_are_logged_and_a_delivery_can_be_replayed(backend: Backend) {
    let a = Receiver::start(SECRET_A, Mode::Answer(500, "boom".to_owned())).await;
    let config = format!(
        r#"
[webhooks]
retry_first_ms = 10
retry_max_ms = 10
max_age_secs = 1

[[webhooks.endpoints]]
url = "{}"
secret = "{SECRET_A}"
events = ["instance.created"]
"#,
        a.url
    );
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            config_toml: Some(config),
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..Options::default()
        },
    )
    .await;
    s.v2(&new_instance("CS-RP", "rp-1"))
        .await
        .expect_code("000004");
    // Retried until the event is older than max_age_secs, then given up: visible, not silent.
    s.wait_count(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'failed'",
        1,
    )
    .await;
    let http = common::http();
    let list: serde_json::Value = http
        .get(format!(
            "{}/api/v1/webhook-deliveries?status=failed",
            s.base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let delivery = &list["items"][0];
    let id = delivery["id"].as_str().unwrap().to_owned();
    assert!(delivery["attempts"].as_i64().unwrap() >= 2, "{delivery}");
    assert_eq!(delivery["last_status"], 500);
    let one: serde_json::Value = http
        .get(format!("{}/api/v1/webhook-deliveries/{id}", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let log = one["attempt_log"].as_array().unwrap();
    assert_eq!(log.len() as i64, delivery["attempts"].as_i64().unwrap());
    assert_eq!(log[0]["status_code"], 500);
    assert_eq!(log[0]["response"], "boom");
    // The application is fixed; an operator replays the delivery.
    a.set_mode(Mode::Up);
    let replay = http
        .post(format!("{}/api/v1/webhook-deliveries/{id}/replay", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 202);
    s.wait_count(
        &format!(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE id = '{id}' AND status = 'delivered'"
        ),
        1,
    )
    .await;
    a.wait_until("the replayed event", |r| !r.received().is_empty())
        .await;
    assert_eq!(
        a.received()[0].webhook_id,
        one["event_id"].as_str().unwrap()
    );
    s.stop().await;
}

/// `koogate webhooks add|list|test|deliveries` against the configured database.
// The CLI runs as a blocking child process; the receiver needs a runtime thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_cli_adds_lists_and_tests_an_endpoint() {
    let db = TestDb::fresh(common::Backend::Sqlite).await;
    let data = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(SECRET_A, Mode::Up).await;
    let koogate = |args: &[&str]| common::koogate_cli(&db.url, data.path(), &[], args);
    let (code, out, err) = koogate(&[
        "webhooks",
        "add",
        &receiver.url,
        "--secret",
        SECRET_A,
        "--events",
        "instance.ready,webhook.test",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let endpoint: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = endpoint["id"].as_str().unwrap().to_owned();
    assert_eq!(endpoint["secret"], SECRET_A);
    assert_eq!(
        endpoint["events"],
        serde_json::json!(["instance.ready", "webhook.test"])
    );
    let (code, out, _) = koogate(&["webhooks", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&id) && !out.contains(SECRET_A), "{out}");
    let (code, out, err) = koogate(&["webhooks", "test", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("delivered: HTTP 204"), "{out}");
    assert_eq!(receiver.received()[0].body["type"], "webhook.test");
    let (code, out, _) = koogate(&["webhooks", "deliveries", "--json"]);
    assert_eq!(code, Some(0));
    let deliveries: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(deliveries[0]["status"], "delivered");
    // Bad input: a clear error, exit 1.
    let (code, _, err) = koogate(&["webhooks", "add", "ftp://x", "--json"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("url"), "{err}");
    let (code, _, err) = koogate(&[
        "webhooks",
        "add",
        &receiver.url,
        "--events",
        "instance.exploded",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown event type"), "{err}");
    let (code, _, err) = koogate(&["webhooks", "test", "ep_nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
}

backend_tests!(old_finished_deliveries_are_purged_and_pending_ones_kept);
/// The delivery log is kept for a while, then finished deliveries and their events go; pending
/// ones stay whatever their age.
async fn old_finished_deliveries_are_purged_and_pending_ones_kept(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let store = koogate::store::Db::open(&db.url).await.unwrap();
    let mut conn = store.pool.acquire().await.unwrap();
    use koogate::store::webhooks as wh;
    wh::put_endpoint(
        &mut conn,
        &wh::Endpoint {
            id: "ep".into(),
            url: "http://127.0.0.1:9/".into(),
            secret_sealed: "x".into(),
            event_types: vec!["*".into()],
            source: "runtime".into(),
            enabled: true,
            created_at: 0,
        },
    )
    .await
    .unwrap();
    for (at, status) in [
        (1_000, "delivered"),
        (2_000, "failed"),
        (3_000, "pending"),
        (50_000, "delivered"),
    ] {
        wh::emit(&mut conn, "webhook.test", Some("i"), "{}", None, at)
            .await
            .unwrap();
        sqlx::query("UPDATE webhook_deliveries SET status = $1 WHERE created_at = $2")
            .bind(status)
            .bind(at)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    drop(conn);
    let (deliveries, events) = wh::purge(&store, 10_000).await.unwrap();
    assert_eq!((deliveries, events), (2, 2), "{backend:?}");
    let left: Vec<String> =
        sqlx::query_scalar("SELECT status FROM webhook_deliveries ORDER BY created_at")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(left, ["pending", "delivered"]);
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(events, 2);
}
