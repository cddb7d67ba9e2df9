//! The real `koogate serve` binary as operators run it: killed with SIGKILL in the middle of a
//! job and restarted, and two nodes sharing one PostgreSQL database.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{
    self, AK, BASIC_KEY, Backend, GENERIC_KEY, KIT_KEY, LICENSE_KEY, SK, TestDb, backend_tests,
    call_v2,
};
use koogate::store::Db;
use sqlx::Row;

const DATA_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A `koogate serve` process.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn start(db_url: &str, data_dir: &std::path::Path, openapi_url: Option<&str>) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_koogate"));
        cmd.arg("serve")
            .env("KOOGATE_LISTEN", "127.0.0.1:0")
            .env("KOOGATE_DATA_DIR", data_dir)
            .env("KOOGATE_DATABASE_URL", db_url)
            .env("KOOGATE_BASIC_KEY", BASIC_KEY)
            .env("KOOGATE_KIT_KEY", KIT_KEY)
            .env("KOOGATE_LICENSE_KEY", LICENSE_KEY)
            .env("KOOGATE_GENERIC_KEY", GENERIC_KEY)
            .env("KOOGATE_DATA_KEY", DATA_KEY)
            .env("KOOGATE_JOB_LEASE_SECS", "5")
            .env("KOOGATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(url) = openapi_url {
            cmd.env("KOOGATE_OPENAPI_URL", url)
                .env("KOOGATE_AK", AK)
                .env("KOOGATE_SK", SK);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let base = first
            .split("listening on ")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected banner: {first}"))
            .trim()
            .to_owned();
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Node { child, base }
    }

    /// SIGKILL: no shutdown, no cleanup.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An open API that accepts connections and never answers: a job calling it stays in flight.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    (url, accepted)
}

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get::<i64, _>(0)
}

backend_tests!(killed_in_the_middle_of_a_job_it_resumes_after_restart);
async fn killed_in_the_middle_of_a_job_it_resumes_after_restart(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let data = tempfile::tempdir().unwrap();
    let (hole, accepted) = black_hole().await;
    let node = Node::start(&db.url, data.path(), Some(&hole));
    let body = r#"{"activity":"newInstance","businessId":"biz-crash","orderId":"MOCKPERIODYEARNEW","orderLineId":"MOCKPERIODYEARNEW-000001"}"#;
    call_v2(&node.base, BASIC_KEY, body)
        .await
        .expect_code("000004");
    // The order-fetch job is now waiting on KooGallery: kill the node right there.
    wait_until("the job to call the open API", async || {
        accepted.load(Ordering::SeqCst) > 0
    })
    .await;
    node.kill();

    let (url, api) = common::openapi().await;
    let node = Node::start(&db.url, data.path(), Some(&url));
    let store = Db::connect(&db.url).await.unwrap();
    wait_until("the instance to be provisioned", async || {
        count(
            &store,
            "SELECT COUNT(*) FROM instances WHERE instance_id = 'biz-crash' AND state = 'active'",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM instances").await,
        1,
        "{backend:?}"
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM instance_events WHERE kind = 'provisioned'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM jobs WHERE status = 'done'").await,
        2,
        "fetch_order and provision, once each"
    );
    assert_eq!(api.requests().len(), 1);
    // KooGallery's next poll now gets the access information.
    let q = call_v2(
        &node.base,
        BASIC_KEY,
        r#"{"activity":"queryInstance","instanceId":"biz-crash"}"#,
    )
    .await;
    q.expect_code("000000");
    assert!(q.json["info"][0]["appInfo"]["password"].is_string());
    drop(node);
}

#[tokio::test]
async fn two_nodes_on_one_postgresql_create_once_and_run_every_job_once() {
    if !common::postgres_available() {
        return;
    }
    let db = TestDb::fresh(Backend::Postgres).await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let nodes = [
        Node::start(&db.url, a_dir.path(), None),
        Node::start(&db.url, b_dir.path(), None),
    ];
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    // 50 concurrent duplicates of one order line, spread over both nodes.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let base = bases[i % 2].clone();
        tasks.spawn(async move {
            let body = format!(r#"{{"activity":"newInstance","businessId":"dup-{i}","orderId":"CS-MN","orderLineId":"CS-MN-000001"}}"#);
            call_v2(&base, BASIC_KEY, &body).await
        });
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        r.assert_wellformed(BASIC_KEY);
        ids.insert(r.json["instanceId"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");

    // 40 distinct orders spread over both nodes: every provisioning job runs exactly once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let base = bases[i % 2].clone();
        tasks.spawn(async move {
            let body = format!(r#"{{"activity":"newInstance","businessId":"mn-{i}","orderId":"CS-MN-{i}","orderLineId":"CS-MN-{i}-000001"}}"#);
            call_v2(&base, BASIC_KEY, &body).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().expect_code("000004");
    }
    let store = Db::connect(&db.url).await.unwrap();
    wait_until("all 41 instances to be provisioned", async || {
        count(
            &store,
            "SELECT COUNT(*) FROM instances WHERE state = 'active'",
        )
        .await
            == 41
    })
    .await;
    assert_eq!(count(&store, "SELECT COUNT(*) FROM instances").await, 41);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM instance_events WHERE kind = 'provisioned'"
        )
        .await,
        41,
        "each job ran once"
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM jobs WHERE status = 'done' AND attempts = 1"
        )
        .await,
        41
    );
    drop(nodes);
}

#[tokio::test]
async fn audit_lists_calls_with_filters_and_json() {
    let db = TestDb::fresh(Backend::Sqlite).await;
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(&db.url, data.path(), None);
    call_v2(&node.base, BASIC_KEY, r#"{"activity":"newInstance","businessId":"biz-a","orderId":"CS-A","orderLineId":"CS-A-000001"}"#).await.expect_code("000004");
    call_v2(
        &node.base,
        "wrong-key",
        r#"{"activity":"queryInstance","instanceId":"biz-a"}"#,
    )
    .await
    .expect_code("000001");
    let audit = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_koogate"))
            .arg("audit")
            .args(args)
            .env("KOOGATE_DATABASE_URL", &db.url)
            .env("KOOGATE_DATA_DIR", data.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json = audit(&["--json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!(rows[0]["verdict"], "unauthenticated", "newest first");
    assert_eq!(rows[1]["activity"], "newInstance");
    assert_eq!(rows[1]["order_id"], "CS-A");
    let only_failures = audit(&["--json", "--result-code", "000001"]);
    assert_eq!(only_failures.lines().count(), 1);
    assert!(audit(&["--order-id", "CS-A"]).contains("1 call(s)"));
    assert!(audit(&["--since", "2999-01-01T00:00:00Z"]).contains("0 call(s)"));
    let bad = Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args(["audit", "--since", "yesterday"])
        .env("KOOGATE_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
    drop(node);
}
