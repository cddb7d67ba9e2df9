//! SaaS V2 black-box tests: the real server over real HTTP, a fresh database per test, each test
//! on SQLite and on PostgreSQL.

use crate::common::{
    self, BASIC_KEY, Backend, GENERIC_KEY, Options, TestDb, TestServer, backend_tests,
};
use serde_json::json;

fn new_instance(order: &str, business: &str) -> String {
    format!(
        r#"{{"activity":"newInstance","businessId":"{business}","orderId":"{order}","orderLineId":"{order}-000001"}}"#
    )
}

/// Creates an instance and waits until it is provisioned; returns its id.
async fn provisioned(s: &TestServer, order: &str) -> String {
    let r = s.v2(&new_instance(order, &format!("biz-{order}"))).await;
    r.expect("000004");
    let id = r.json["instanceId"].as_str().unwrap().to_owned();
    assert_eq!(
        id,
        format!("biz-{order}"),
        "the first businessId is the instance id"
    );
    s.wait_state(&id, "active").await;
    id
}

backend_tests!(every_activity_happy_path);
async fn every_activity_happy_path(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(&db, Options::default()).await;
    let id = provisioned(&s, "CS-HAPPY").await;

    // Ready now: a resend answers 000000 with the same id, and the query returns appInfo.
    s.v2(&new_instance("CS-HAPPY", "another-business-id"))
        .await
        .expect("000000");
    let q = s
        .v2(&format!(
            r#"{{"activity":"queryInstance","instanceId":"{id}"}}"#
        ))
        .await;
    q.expect("000000");
    let app = &q.json["info"][0]["appInfo"];
    assert_eq!(q.json["info"][0]["instanceId"], id.as_str());
    assert_eq!(
        app["frontEndUrl"],
        format!("https://app.example.com/t/{id}").as_str()
    );
    assert_eq!(app["userName"], "admin");
    assert_eq!(app["password"].as_str().unwrap().len(), 20);

    let renew = format!(
        r#"{{"activity":"refreshInstance","expireTime":"20301124023618256","instanceId":"{id}","orderId":"CS-RENEW","orderLineId":"CS-RENEW-000001","scene":"RENEWAL"}}"#
    );
    s.v2(&renew).await.expect("000000");
    let expire = s
        .count(&format!(
            "SELECT expire_at FROM instances WHERE instance_id = '{id}'"
        ))
        .await;
    assert_eq!(
        expire,
        koogallery::time::epoch_millis(
            koogallery::time::parse_expire_time("20301124023618256").unwrap()
        )
    );
    // A renewal refund shortens the expiry to the absolute time given.
    let refund = renew
        .replace("CS-RENEW", "CS-REFUND")
        .replace("RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD")
        .replace("20301124023618256", "20291124023618");
    s.v2(&refund).await.expect("000000");
    let expire = s
        .count(&format!(
            "SELECT expire_at FROM instances WHERE instance_id = '{id}'"
        ))
        .await;
    assert_eq!(
        expire,
        koogallery::time::epoch_millis(
            koogallery::time::parse_expire_time("20291124023618").unwrap()
        )
    );

    for status in ["FREEZE", "FREEZE", "UNFREEZE", "UNFREEZE"] {
        s.v2(&format!(
            r#"{{"activity":"updateInstanceStatus","instanceId":"{id}","status":"{status}"}}"#
        ))
        .await
        .expect("000000");
    }
    s.v2(&format!(r#"{{"activity":"upgradeInstance","instanceId":"{id}","orderId":"CS-UP","orderLineId":"CS-UP-000001"}}"#)).await.expect("000000");
    s.v2(&format!(
        r#"{{"activity":"changeInstanceCheck","instanceId":"{id}","productInfo":{{"productId":"P2","skuCode":"S2","linearValue":20,"productName":"Pro"}}}}"#
    ))
    .await
    .expect("000000");
    s.v2_with(GENERIC_KEY, r#"{"activity":"orderNotify","orderId":"CS-HAPPY","orderLineId":"CS-HAPPY-000001","testFlag":"0"}"#)
        .await
        .assert_wellformed(GENERIC_KEY);
    let release = format!(
        r#"{{"activity":"releaseInstance","instanceId":"{id}","orderId":"CS-UNSUB","orderLineId":"CS-UNSUB-000001"}}"#
    );
    s.v2(&release).await.expect("000000");
    s.v2(&release).await.expect("000000");

    // The history: created, provisioned, two renewals, freeze, unfreeze, upgrade, release.
    let kinds: Vec<String> =
        koogate::store::instances::events(&mut s.db.pool.acquire().await.unwrap(), &id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "provisioned",
            "renewed",
            "renewed",
            "frozen",
            "unfrozen",
            "upgraded",
            "released"
        ],
        "{backend:?}"
    );
    // After release, renewals and upgrades are refused with 000003.
    s.v2(&renew.replace("CS-RENEW", "CS-RENEW2"))
        .await
        .expect("000003");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM audit_log").await,
        15,
        "every call is audited"
    );
    s.stop().await;
}

backend_tests!(renewals_and_upgrades_apply_once_per_order);
async fn renewals_and_upgrades_apply_once_per_order(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(&db, Options::default()).await;
    let id = provisioned(&s, "CS-ONCE").await;
    let renew = format!(
        r#"{{"activity":"refreshInstance","expireTime":"20301124023618","instanceId":"{id}","orderId":"CS-R1","orderLineId":"CS-R1-000001","scene":"RENEWAL"}}"#
    );
    let upgrade = format!(
        r#"{{"activity":"upgradeInstance","instanceId":"{id}","orderId":"CS-U1","orderLineId":"CS-U1-000001"}}"#
    );
    for _ in 0..3 {
        s.v2(&renew).await.expect("000000");
        s.v2(&upgrade).await.expect("000000");
    }
    let q = |kind: &str| {
        format!(
            "SELECT COUNT(*) FROM instance_events WHERE instance_id = '{id}' AND kind = '{kind}'"
        )
    };
    assert_eq!(s.count(&q("renewed")).await, 1, "{backend:?}");
    assert_eq!(s.count(&q("upgraded")).await, 1, "{backend:?}");
    s.stop().await;
}

backend_tests!(rejections_change_nothing);
async fn rejections_change_nothing(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            max_body_bytes: Some(4096),
            ..Options::default()
        },
    )
    .await;
    let id = provisioned(&s, "CS-REJ").await;
    let body = new_instance("CS-NEW", "biz-new");
    let count_everything = "SELECT (SELECT COUNT(*) FROM instances) + (SELECT COUNT(*) FROM instance_events) + (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM applied_orders)";
    let before = s.count(count_everything).await;
    let ts = common::now_ms().to_string();
    let sig = koogallery::sign::v2::sign(BASIC_KEY, "n1", &ts, body.as_bytes());

    // Signature: wrong key, tampered body, missing.
    let wrong = koogallery::sign::v2::sign("not-the-key", "n2", &ts, body.as_bytes());
    s.post(&format!("signature={wrong}&timestamp={ts}&nonce=n2"), &body)
        .await
        .expect("000001");
    s.post(
        &format!("signature={sig}&timestamp={ts}&nonce=n1"),
        &body.replace("CS-NEW", "CS-NEX"),
    )
    .await
    .expect("000001");
    s.post(&format!("timestamp={ts}&nonce=n3"), &body)
        .await
        .expect("000001");
    // Time window in both directions, and missing/garbage timestamps and nonces.
    for offset in [-61_000i64, 61_000] {
        let t = (common::now_ms() + offset).to_string();
        let sig = koogallery::sign::v2::sign(BASIC_KEY, "n4", &t, body.as_bytes());
        let r = s
            .post(&format!("signature={sig}&timestamp={t}&nonce=n4"), &body)
            .await;
        r.expect("000002");
        assert!(r.msg().contains("window"), "{}", r.msg());
    }
    s.post(&format!("signature={sig}&nonce=n1"), &body)
        .await
        .expect("000002");
    s.post(&format!("signature={sig}&timestamp=12.5&nonce=n1"), &body)
        .await
        .expect("000002");
    s.post(&format!("signature={sig}&timestamp={ts}"), &body)
        .await
        .expect("000002");
    assert_eq!(
        s.count(count_everything).await,
        before,
        "{backend:?}: nothing changed"
    );

    // A replayed nonce: the first call is applied, the replay refused and changes nothing.
    s.post(&format!("signature={sig}&timestamp={ts}&nonce=n1"), &body)
        .await
        .expect("000004");
    s.wait_state("biz-new", "active").await;
    let stable = s.count(count_everything).await;
    let replay = s
        .post(&format!("signature={sig}&timestamp={ts}&nonce=n1"), &body)
        .await;
    replay.expect("000002");
    assert!(replay.msg().contains("nonce"), "{}", replay.msg());
    assert_eq!(s.count(count_everything).await, stable);

    // Bad input, authenticated: 000002 naming the field, or 000003 for unknown instances.
    let cases: Vec<(String, &str, &str)> = vec![
        (r#"{"activity":"newInstance","businessId":"b","orderLineId":"x"}"#.into(), "000002", "orderId is required"),
        (format!(r#"{{"activity":"newInstance","businessId":"b","orderId":"{}","orderLineId":"x"}}"#, "O".repeat(65)), "000002", "orderId is longer than 64 characters"),
        (r#"{"activity":"deleteEverything"}"#.into(), "000002", "deleteEverything"),
        (r#"{"activity":"newInstance","orderId":"#.into(), "000002", "JSON"),
        (r#"{"activity":"updateInstanceStatus","instanceId":"x","status":"PAUSE"}"#.into(), "000002", "status must be one of"),
        (r#"{"activity":"newInstance","businessId":"b","orderId":"o","orderLineId":"l","testFlag":"7"}"#.into(), "000002", "testFlag"),
        (r#"{"activity":"refreshInstance","expireTime":"2030","instanceId":"x","orderId":"o","orderLineId":"l","scene":"RENEWAL"}"#.into(), "000002", "expireTime"),
        (r#"{"activity":"queryInstance","instanceId":"nope"}"#.into(), "000003", "nope"),
        (r#"{"activity":"refreshInstance","expireTime":"20301124023618","instanceId":"nope","orderId":"o","orderLineId":"l","scene":"RENEWAL"}"#.into(), "000003", "nope"),
        (r#"{"activity":"updateInstanceStatus","instanceId":"nope","status":"FREEZE"}"#.into(), "000003", "nope"),
        (r#"{"activity":"releaseInstance","instanceId":"nope"}"#.into(), "000003", "nope"),
        (r#"{"activity":"upgradeInstance","instanceId":"nope","orderId":"o","orderLineId":"l"}"#.into(), "000003", "nope"),
        (r#"{"activity":"changeInstanceCheck","instanceId":"nope","productInfo":"{\"productId\":\"p\",\"skuCode\":\"s\",\"productName\":\"n\"}"}"#.into(), "000003", "nope"),
    ];
    for (body, code, needle) in &cases {
        let r = s.v2(body).await;
        r.expect(code);
        assert!(r.msg().contains(needle), "{backend:?} {body}: {}", r.msg());
    }
    // An oversized body: 000002, HTTP 200, signed.
    let big = format!(
        r#"{{"activity":"newInstance","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let r = s.v2(&big).await;
    r.expect("000002");
    assert!(r.msg().contains("larger than 4096 bytes"), "{}", r.msg());
    assert_eq!(
        s.count(count_everything).await,
        stable,
        "{backend:?}: rejections changed nothing"
    );
    let _ = id;
    s.stop().await;
}

backend_tests!(concurrent_duplicates_create_exactly_one_instance);
async fn concurrent_duplicates_create_exactly_one_instance(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = std::sync::Arc::new(TestServer::start(&db, Options::default()).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let s = s.clone();
        // KooGallery's retries carry a new businessId and nonce every time.
        tasks.spawn(async move { s.v2(&new_instance("CS-DUP", &format!("biz-{i}"))).await });
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        assert!(matches!(r.code(), "000004" | "000000"), "{r:?}");
        r.assert_wellformed(BASIC_KEY);
        ids.insert(r.json["instanceId"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "{backend:?}: {ids:?}");
    assert_eq!(s.count("SELECT COUNT(*) FROM instances").await, 1);
    let id = ids.into_iter().next().unwrap();
    s.wait_state(&id, "active").await;
    assert_eq!(
        s.count("SELECT COUNT(*) FROM jobs").await,
        1,
        "one provisioning job"
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM instance_events WHERE kind = 'provisioned'")
            .await,
        1
    );
    std::sync::Arc::try_unwrap(s).ok().unwrap().stop().await;
}

backend_tests!(debug_calls_succeed_in_any_order_and_touch_nothing);
async fn debug_calls_succeed_in_any_order_and_touch_nothing(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(&db, Options::default()).await;
    let cases = [
        r#"{"activity":"releaseInstance","instanceId":"test-a","testFlag":"1"}"#,
        r#"{"activity":"queryInstance","instanceId":"test-a,test-b","testFlag":"1"}"#,
        r#"{"activity":"updateInstanceStatus","instanceId":"test-a","status":"FREEZE","testFlag":"1"}"#,
        r#"{"activity":"newInstance","businessId":"b1","orderId":"MOCKPERIODYEARNEW","orderLineId":"MOCKPERIODYEARNEW-000001","testFlag":"1"}"#,
        r#"{"activity":"refreshInstance","expireTime":"20301124023618","instanceId":"test-a","orderId":"o","orderLineId":"l","scene":"RENEWAL","testFlag":"1"}"#,
        r#"{"activity":"upgradeInstance","instanceId":"test-a","orderId":"o","orderLineId":"l","testFlag":"1"}"#,
        r#"{"activity":"changeInstanceCheck","instanceId":"test-a","productInfo":{"productId":"p","skuCode":"s","productName":"n"},"testFlag":"1"}"#,
    ];
    let mut first_id = None;
    // KooGallery replays saved debug cases twice a day, in any order: three shuffled rounds.
    for round in 0..3usize {
        let mut order: Vec<usize> = (0..cases.len()).collect();
        order.rotate_left(round * 3 % cases.len());
        if round == 1 {
            order.reverse();
        }
        for i in order {
            let r = s.v2(cases[i]).await;
            r.expect("000000");
            if cases[i].contains("newInstance") {
                let id = r.json["instanceId"].as_str().unwrap().to_owned();
                assert_eq!(
                    *first_id.get_or_insert(id.clone()),
                    id,
                    "the same debug order gets the same id"
                );
            }
            if cases[i].contains("queryInstance") {
                assert_eq!(r.json["info"].as_array().unwrap().len(), 2);
                assert!(r.json["info"][0]["appInfo"]["frontEndUrl"].is_string());
            }
        }
    }
    let touched = "SELECT (SELECT COUNT(*) FROM instances) + (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM applied_orders)";
    assert_eq!(s.count(touched).await, 0, "{backend:?}");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM audit_log WHERE test = 1")
            .await,
        21
    );
    s.stop().await;
}

#[tokio::test]
async fn body_sign_header_name_is_exact_on_the_wire() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::fresh(common::Backend::Sqlite).await;
    let s = TestServer::start(&db, Options::default()).await;
    let body = r#"{"activity":"queryInstance","instanceId":"nope"}"#;
    let ts = common::now_ms().to_string();
    let sig = koogallery::sign::v2::sign(BASIC_KEY, "raw1", &ts, body.as_bytes());
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /produce?signature={sig}&timestamp={ts}&nonce=raw1 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, payload) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let sign_line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("body-sign:"))
        .unwrap();
    assert!(
        sign_line.starts_with("Body-Sign: sign_type=\"HMAC-SHA256\", signature= \""),
        "{sign_line}"
    );
    assert!(
        head.lines().any(|l| l == "Content-Type: application/json"),
        "{head}"
    );
    let value = sign_line.trim_start_matches("Body-Sign: ");
    koogallery::sign::body_sign::verify(BASIC_KEY, payload.as_bytes(), Some(value)).unwrap();
    s.stop().await;
}

backend_tests!(database_unavailable_answers_000005_and_writes_nothing);
async fn database_unavailable_answers_000005_and_writes_nothing(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(&db, Options::default()).await;
    s.db.close().await;
    s.v2(&new_instance("CS-DOWN", "biz-down"))
        .await
        .expect("000005");
    let again = koogate::store::Db::open(&db.url).await.unwrap();
    let n: i64 = sqlx::Row::get(&sqlx::query("SELECT (SELECT COUNT(*) FROM instances) + (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM nonces)").fetch_one(&again.pool).await.unwrap(), 0);
    assert_eq!(n, 0, "{backend:?}: nothing half-written");
    s.stop().await;
}

backend_tests!(racing_commands_on_one_instance_form_one_chain);
/// Freezes, unfreezes, renewals and upgrades racing a release of the same instance: every
/// change is serialised by the instance's version, so the history is one chain (each entry
/// starts where the previous one ended, `seq` grows with each) and nothing is applied
/// after `released`. A renewal or upgrade that lost the race is refused with `000003`, never
/// `000005`.
async fn racing_commands_on_one_instance_form_one_chain(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(&db, Options::default()).await;
    let id = provisioned(&s, "CS-RACE").await;
    let mut calls = Vec::new();
    for i in 0..40 {
        let body = match i % 5 {
            0 => json!({"activity": "updateInstanceStatus", "instanceId": id, "status": "FREEZE"}),
            1 => {
                json!({"activity": "updateInstanceStatus", "instanceId": id, "status": "UNFREEZE"})
            }
            2 => json!({
                "activity": "refreshInstance",
                "expireTime": format!("2030112402{i:04}256"),
                "instanceId": id,
                "orderId": format!("CS-R{i}"),
                "orderLineId": format!("CS-R{i}-000001"),
                "scene": "RENEWAL",
            }),
            3 => json!({
                "activity": "upgradeInstance",
                "instanceId": id,
                "orderId": format!("CS-U{i}"),
                "orderLineId": format!("CS-U{i}-000001"),
            }),
            _ if i == 24 => json!({"activity": "releaseInstance", "instanceId": id}),
            _ => json!({"activity": "queryInstance", "instanceId": id}),
        }
        .to_string();
        let base = s.base.clone();
        calls.push(tokio::spawn(async move {
            let r = common::call_v2(&base, BASIC_KEY, &body).await;
            (body, r.code().to_owned())
        }));
    }
    for call in calls {
        let (body, code) = call.await.unwrap();
        assert!(
            matches!(code.as_str(), "000000" | "000003"),
            "{backend:?}: {body} answered {code}"
        );
    }
    let rows = sqlx::query(
        "SELECT kind, from_state, to_state, seq FROM instance_events WHERE instance_id = $1 ORDER BY seq",
    )
    .bind(&id)
    .fetch_all(&s.db.pool)
    .await
    .unwrap();
    use sqlx::Row;
    let mut prev_state: Option<String> = None;
    let mut prev_seq = 0i64;
    for row in &rows {
        let kind: String = row.get("kind");
        let from: Option<String> = row.get("from_state");
        let to: String = row.get("to_state");
        let seq: i64 = row.get("seq");
        // seq is the version the entry produced: it only grows (changes without an entry,
        // such as the access information, move it too).
        assert!(
            seq > prev_seq,
            "{backend:?}: {kind} has seq {seq} after {prev_seq}"
        );
        if prev_state.is_some() {
            assert_eq!(
                from, prev_state,
                "{backend:?}: {kind} does not start where the chain ended"
            );
        }
        assert_ne!(
            prev_state.as_deref(),
            Some("released"),
            "{backend:?}: {kind} applied after the release"
        );
        prev_state = Some(to);
        prev_seq = seq;
    }
    assert_eq!(prev_state.as_deref(), Some("released"), "{backend:?}");
    assert_eq!(
        s.count(&format!(
            "SELECT COUNT(*) FROM instances WHERE instance_id = '{id}' AND state = 'released'"
        ))
        .await,
        1
    );
    s.stop().await;
}

backend_tests!(a_captured_call_cannot_be_replayed_by_reformatting_it);
/// The signature covers `nonce + timestamp` concatenated, so a captured call whose nonce ends
/// in `0` could be sent again with that `0` moved to the front of the timestamp: the same
/// signature with a "new" nonce. The timestamp's strict form refuses that, and so does the
/// signature being remembered: a freeze captured once is applied once.
async fn a_captured_call_cannot_be_replayed_by_reformatting_it(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(&db, Options::default()).await;
    let id = provisioned(&s, "CS-REPLAY").await;
    let body = json!({"activity": "updateInstanceStatus", "instanceId": id, "status": "FREEZE"})
        .to_string();
    let ts = common::now_ms().to_string();
    let nonce = "5f2b9c7e0";
    let sig = koogallery::sign::v2::sign(BASIC_KEY, nonce, &ts, body.as_bytes());
    s.post(
        &format!("signature={sig}&timestamp={ts}&nonce={nonce}"),
        &body,
    )
    .await
    .expect("000000");
    let frozen = "SELECT COUNT(*) FROM instance_events WHERE kind = 'frozen'";
    assert_eq!(s.count(frozen).await, 1);

    // The nonce's last digit moved into the timestamp: the same signed bytes.
    let moved = format!("0{ts}");
    assert_eq!(
        koogallery::sign::v2::sign(BASIC_KEY, "5f2b9c7e", &moved, body.as_bytes()),
        sig
    );
    let r = s
        .post(
            &format!("signature={sig}&timestamp={moved}&nonce=5f2b9c7e"),
            &body,
        )
        .await;
    r.expect("000002");
    assert!(r.msg().contains("timestamp"), "{}", r.msg());
    // The same signature under an upper-case spelling and the original parts: still a replay.
    s.post(
        &format!(
            "signature={}&timestamp={ts}&nonce={nonce}",
            sig.to_ascii_uppercase()
        ),
        &body,
    )
    .await
    .expect("000002");
    // Unfrozen in between, the captured freeze still cannot be applied again.
    s.v2(
        &json!({"activity": "updateInstanceStatus", "instanceId": id, "status": "UNFREEZE"})
            .to_string(),
    )
    .await
    .expect("000000");
    s.post(
        &format!("signature={sig}&timestamp={ts}&nonce={nonce}"),
        &body,
    )
    .await
    .expect("000002");
    assert_eq!(
        s.count(frozen).await,
        1,
        "{backend:?}: the freeze was applied twice"
    );
    s.stop().await;
}

backend_tests!(a_forged_request_is_audited_with_a_bounded_excerpt);
/// Anyone can send a request that fails authentication: its audit row keeps the first 2 KiB
/// and the size, not the whole body.
async fn a_forged_request_is_audited_with_a_bounded_excerpt(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(&db, Options::default()).await;
    let filler = "x".repeat(30_000);
    let body = serde_json::json!({"activity": "newInstance", "orderId": filler}).to_string();
    let ts = common::now_ms().to_string();
    let sig = koogallery::sign::v2::sign("not-the-key", "n-forged", &ts, body.as_bytes());
    s.post(
        &format!("signature={sig}&timestamp={ts}&nonce=n-forged"),
        &body,
    )
    .await
    .expect("000001");
    let row = sqlx::query("SELECT request FROM audit_log WHERE verdict = 'unauthenticated'")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    let request: String = sqlx::Row::get(&row, 0);
    assert!(
        request.len() < 2200,
        "{backend:?}: {} bytes kept",
        request.len()
    );
    assert!(
        request.ends_with(&format!("({} bytes)", body.len())),
        "{backend:?}: {}",
        &request[request.len().saturating_sub(40)..]
    );
    s.stop().await;
}
