//! Provisioners chosen per product/SKU: `exec` (success, timeout, garbage output) and `webhook`
//! (synchronous, asynchronous completed through the REST API, refusal), and a KooGallery
//! `newInstance` that answers while the merchant's application is still busy.

use crate::common::receiver::{Mode, Receiver};
use crate::common::{self, ADMIN_TOKEN, Backend, Options, TestDb, TestServer, backend_tests};

const SECRET: &str = "whsec_cHJvdmlzaW9uLXNlY3JldC0wMTIzNDU2Nzg5";

fn new_instance(order: &str, biz: &str) -> String {
    format!(
        r#"{{"activity":"newInstance","businessId":"{biz}","orderId":"{order}","orderLineId":"{order}-000001"}}"#
    )
}

fn query(id: &str) -> String {
    format!(r#"{{"activity":"queryInstance","instanceId":"{id}"}}"#)
}

/// A shell script in `dir` with `body`; returns its path.
fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path.display().to_string()
}

async fn server(backend: common::Backend, provisioners: &str) -> (TestDb, TestServer) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            config_toml: Some(provisioners.to_owned()),
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..Options::default()
        },
    )
    .await;
    (db, s)
}

backend_tests!(exec_provisioner_success_timeout_and_garbage);
async fn exec_provisioner_success_timeout_and_garbage(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // The request arrives on stdin; the script echoes the instance id into the URL.
    let ok = script(
        dir.path(),
        "ok.sh",
        r#"id=$(sed -n 's/.*"instance_id":"\([^"]*\)".*/\1/p'); printf '{"appInfo":{"frontEndUrl":"https://app.example.com/%s","userName":"owner","password":"S3cret!pass"}}' "$id""#,
    );
    let slow = script(dir.path(), "slow.sh", "sleep 30");
    let garbage = script(
        dir.path(),
        "garbage.sh",
        "cat >/dev/null; echo 'provisioned!'",
    );
    // No order query here (no AK/SK), so rules cannot match on product: the first rule applies
    // to everything. One server per script.
    let (_db, s) = server(
        backend,
        &format!("[[provisioners]]\nkind = \"exec\"\ncommand = [\"{ok}\"]\n"),
    )
    .await;
    s.v2(&new_instance("CS-EX-1", "ex-1"))
        .await
        .expect_code("000004");
    s.wait_state("ex-1", "active").await;
    let r = s.v2(&query("ex-1")).await;
    r.expect("000000");
    assert_eq!(
        r.json["info"][0]["appInfo"]["frontEndUrl"],
        "https://app.example.com/ex-1"
    );
    assert_eq!(r.json["info"][0]["appInfo"]["userName"], "owner");
    s.stop().await;

    let (_db, s) = server(
        backend,
        &format!(
            "[[provisioners]]\nkind = \"exec\"\ncommand = [\"{slow}\"]\ntimeout_ms = 300\nmax_attempts = 1\n"
        ),
    )
    .await;
    s.v2(&new_instance("CS-EX-2", "ex-2"))
        .await
        .expect_code("000004");
    s.wait_state("ex-2", "failed").await;
    let r = s.v2(&new_instance("CS-EX-2", "ex-2b")).await;
    r.expect_code("000104");
    assert!(r.msg().contains("killed"), "{}", r.msg());
    s.stop().await;

    let (_db, s) = server(
        backend,
        &format!("[[provisioners]]\nkind = \"exec\"\ncommand = [\"{garbage}\"]\n"),
    )
    .await;
    s.v2(&new_instance("CS-EX-3", "ex-3"))
        .await
        .expect_code("000004");
    // Exit 0 with output that is not appInfo: permanent at once (no retry would help).
    s.wait_state("ex-3", "failed").await;
    let r = s.v2(&new_instance("CS-EX-3", "ex-3b")).await;
    r.expect_code("000104");
    assert!(r.msg().contains("not JSON"), "{}", r.msg());
    s.stop().await;
}

backend_tests!(webhook_provisioner_sync_async_and_refusal);
async fn webhook_provisioner_sync_async_and_refusal(backend: Backend) {
    let app = Receiver::start(
        SECRET,
        Mode::Answer(
            200,
            r#"{"appInfo":{"frontEndUrl":"https://app.example.com/sync","password":"pw-123456"}}"#
                .to_owned(),
        ),
    )
    .await;
    let (_db, s) = server(
        backend,
        &format!(
            "[[provisioners]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
            app.url
        ),
    )
    .await;
    // Synchronous: 200 with appInfo.
    s.v2(&new_instance("CS-WP-1", "wp-1"))
        .await
        .expect_code("000004");
    s.wait_state("wp-1", "active").await;
    let request = &app.received()[0];
    assert_eq!(request.webhook_id, "prov_wp-1");
    assert_eq!(request.body["type"], "provision.request");
    assert_eq!(request.body["instance_id"], "wp-1");
    assert_eq!(
        request.body["complete_path"],
        "/api/v1/instances/wp-1/complete"
    );
    let r = s.v2(&query("wp-1")).await;
    assert_eq!(
        r.json["info"][0]["appInfo"]["frontEndUrl"],
        "https://app.example.com/sync"
    );

    // Asynchronous: 202, then the application completes through the REST API.
    app.set_mode(Mode::Answer(202, String::new()));
    s.v2(&new_instance("CS-WP-2", "wp-2"))
        .await
        .expect_code("000004");
    app.wait_until("the second provisioning call", |r| r.received().len() >= 2)
        .await;
    s.wait_count(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'provision' AND status = 'done'",
        2,
    )
    .await;
    s.v2(&query("wp-2")).await.expect_code("000004");
    let http = common::http();
    let complete = |body: serde_json::Value| {
        http.post(format!("{}/api/v1/instances/wp-2/complete", s.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    // Invalid appInfo: 422 naming the field, nothing changes.
    let bad = complete(serde_json::json!({"appInfo": {"frontEndUrl": ""}}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(
        bad.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: serde_json::Value = bad.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("frontEndUrl"),
        "{problem}"
    );
    let good = complete(serde_json::json!({"appInfo": {"frontEndUrl": "https://app.example.com/async", "userName": "u"}}))
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    let view: serde_json::Value = good.json().await.unwrap();
    assert_eq!(view["state"], "active");
    let r = s.v2(&query("wp-2")).await;
    r.expect("000000");
    assert_eq!(
        r.json["info"][0]["appInfo"]["frontEndUrl"],
        "https://app.example.com/async"
    );
    // Completing twice is a conflict.
    let again = complete(serde_json::json!({"appInfo": {"frontEndUrl": "https://x"}}))
        .await
        .unwrap();
    assert_eq!(again.status(), 409);

    // Refusal (4xx): the instance fails and KooGallery's resend gets the failure code.
    app.set_mode(Mode::Answer(409, r#"{"error":"tenant exists"}"#.to_owned()));
    s.v2(&new_instance("CS-WP-3", "wp-3"))
        .await
        .expect_code("000004");
    s.wait_state("wp-3", "failed").await;
    let r = s.v2(&new_instance("CS-WP-3", "wp-3b")).await;
    r.expect_code("000104");
    assert!(r.msg().contains("409"), "{}", r.msg());
    assert!(app.invalid().is_empty());
    s.stop().await;
}

/// The application may also fail an accepted provisioning, with a creation code of its choice.
#[tokio::test]
async fn an_accepted_provisioning_can_be_failed_through_the_api() {
    let app = Receiver::start(SECRET, Mode::Answer(202, String::new())).await;
    let (_db, s) = server(
        common::Backend::Sqlite,
        &format!(
            "[[provisioners]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
            app.url
        ),
    )
    .await;
    s.v2(&new_instance("CS-WF", "wf-1"))
        .await
        .expect_code("000004");
    s.wait_count(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'provision' AND status = 'done'",
        1,
    )
    .await;
    let http = common::http();
    let fail = |body: serde_json::Value| {
        http.post(format!("{}/api/v1/instances/wf-1/fail", s.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let bad = fail(serde_json::json!({"code": "000001", "message": "x"}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let ok = fail(serde_json::json!({"code": "000106", "message": "sold out"}))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    s.wait_state("wf-1", "failed").await;
    s.v2(&new_instance("CS-WF", "wf-2"))
        .await
        .expect_code("000106");
    s.stop().await;
}

/// KooGallery's `newInstance` never waits for the merchant's application: it is answered while
/// the provisioning call is provably still open.
#[tokio::test]
async fn new_instance_answers_while_the_application_is_still_busy() {
    let app = Receiver::start(
        SECRET,
        Mode::Hold(
            200,
            r#"{"appInfo":{"frontEndUrl":"https://app.example.com/slow"}}"#.to_owned(),
        ),
    )
    .await;
    let (_db, s) = server(
        common::Backend::Sqlite,
        &format!(
            "[[provisioners]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_ms = 20000\n",
            app.url
        ),
    )
    .await;
    s.v2(&new_instance("CS-SLOW", "slow-1"))
        .await
        .expect_code("000004");
    app.wait_until("the provisioning call to be held", |r| {
        *r.held.lock().unwrap() == 1
    })
    .await;
    // The application holds the call; KooGallery's calls are answered all the same.
    let r = s.v2(&new_instance("CS-SLOW-2", "slow-2")).await;
    r.expect_code("000004");
    s.v2(&query("slow-1")).await.expect_code("000004");
    // Nothing was released yet, so the first call is still open (the second may be held too).
    assert!(
        *app.held.lock().unwrap() >= 1,
        "the first call is still open"
    );
    app.release();
    app.release();
    s.wait_state("slow-1", "active").await;
    s.wait_state("slow-2", "active").await;
    s.stop().await;
}

/// The merchant's application is down: KooGallery is answered at once, the instance waits in
/// provisioning, and the attempt is retried later (its error is recorded on the job).
#[tokio::test]
async fn new_instance_answers_while_the_application_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/provision", closed.local_addr().unwrap());
    drop(closed);
    let (_db, s) = server(
        common::Backend::Sqlite,
        &format!("[[provisioners]]\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n"),
    )
    .await;
    s.v2(&new_instance("CS-DOWN", "down-1"))
        .await
        .expect_code("000004");
    s.wait_count(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'provision' AND status = 'pending' AND last_error LIKE '%cannot be reached%'",
        1,
    )
    .await;
    s.v2(&query("down-1")).await.expect_code("000004");
    s.v2(&new_instance("CS-DOWN", "down-1b"))
        .await
        .expect_code("000004");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM instances WHERE state = 'provisioning'")
            .await,
        1
    );
    s.stop().await;
}

backend_tests!(v1_new_instance_is_provisioned_by_the_application);
/// V1 answers `newInstance` with the access information, so the merchant's application is
/// called while KooGallery waits: its `appInfo` is answered (credentials encrypted), a 202 is
/// answered `000004` until the application completes, an unreachable application `000005`,
/// a refusal `000104`; the audit row records what was answered.
async fn v1_new_instance_is_provisioned_by_the_application(backend: Backend) {
    use koogallery::crypto::{FieldCipher, KeySize};
    let cipher = FieldCipher::new(common::BASIC_KEY, KeySize::Aes256);
    let v1_new = |order: &'static str, biz: &'static str| {
        vec![
            ("activity", "newInstance"),
            ("businessId", biz),
            ("customerId", "68cbc86abc2018ab880d92f36422fa0e"),
            ("orderId", order),
            ("productId", "OFFI-V1-APP"),
            ("skuCode", "sku-basic"),
            ("chargingMode", "1"),
            ("expireTime", "20300727153156"),
        ]
    };
    let app = Receiver::start(
        SECRET,
        Mode::Answer(
            200,
            r#"{"appInfo":{"frontEndUrl":"https://app.example.com/v1","userName":"owner","password":"pw-123456"}}"#
                .to_owned(),
        ),
    )
    .await;
    let (_db, s) = server(
        backend,
        &format!(
            "[[provisioners]]\nproduct_id = \"OFFI-V1-APP\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
            app.url
        ),
    )
    .await;
    let r = s.v1(&v1_new("CS-V1A-1", "v1a-1")).await;
    r.expect("000000");
    assert_eq!(
        r.json["appInfo"]["frontEndUrl"],
        "https://app.example.com/v1"
    );
    let user = r.json["appInfo"]["userName"].as_str().unwrap();
    assert_eq!(cipher.decrypt(user).unwrap(), "owner");
    assert_eq!(app.received()[0].body["product_id"], "OFFI-V1-APP");

    // 202: processing until the application completes through the REST API.
    app.set_mode(Mode::Answer(202, String::new()));
    s.v1(&v1_new("CS-V1A-2", "v1a-2"))
        .await
        .expect_code("000004");
    let done = common::http()
        .post(format!("{}/api/v1/instances/v1a-2/complete", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"appInfo": {"frontEndUrl": "https://app.example.com/later"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let r = s.v1(&v1_new("CS-V1A-2", "v1a-2b")).await;
    r.expect("000000");
    assert_eq!(
        r.json["appInfo"]["frontEndUrl"],
        "https://app.example.com/later"
    );

    // Down: 000005 and nothing lost; refused: 000104 and the instance failed.
    app.set_mode(Mode::Down);
    s.v1(&v1_new("CS-V1A-3", "v1a-3"))
        .await
        .expect_code("000005");
    s.wait_state("v1a-3", "provisioning").await;
    app.set_mode(Mode::Answer(409, "exists".to_owned()));
    s.v1(&v1_new("CS-V1A-3", "v1a-3b"))
        .await
        .expect_code("000104");
    s.wait_state("v1a-3", "failed").await;
    let codes: Vec<String> = sqlx::query_scalar(
        "SELECT result_code FROM audit_log WHERE activity = 'newInstance' ORDER BY at, id",
    )
    .fetch_all(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(
        codes,
        ["000000", "000004", "000000", "000005", "000104"],
        "{backend:?}"
    );
    s.stop().await;
}
