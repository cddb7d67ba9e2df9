//! Metering (docs/metering.md) against the emulator's usage API: ingestion rules, exact totals,
//! the push (batching, rejections, outage and catch-up, restart), usageInfo, the REST API.
//! Every test runs on SQLite and on PostgreSQL. The push is driven deterministically: a
//! gateway on a manual clock, and `push_due(now)` called directly, as the scheduler does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::common::{
    self, ADMIN_TOKEN, AK, BASIC_KEY, Backend, Options, SK, TestDb, TestServer, backend_tests,
};
use koogallery_emulator::OpenApi;
use koogallery_emulator::usage::MeteredInstance;
use koogate::clock::ManualClock;
use koogate::config::Config;
use koogate::metering::ingest::{self, IngestReport};
use koogate::metering::push::{self, PushSummary};
use koogate::metering::{HOUR_MS, MAX_AGE_MS};
use koogate::produce::Gateway;
use koogate::store::Db;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::Row;

const MIN: i64 = 60_000;

/// The start of the hour two days ago: manual times stay in the real past, where the emulator
/// (on the system clock, which also checks `X-Sdk-Date`) accepts them.
fn t0() -> i64 {
    let now = common::now_ms();
    now - now.rem_euclid(HOUR_MS) - 48 * HOUR_MS
}

struct Ctx {
    _db: TestDb,
    _data: tempfile::TempDir,
    db: Db,
    clock: ManualClock,
    gw: Arc<Gateway>,
    api: Arc<OpenApi>,
    config: Config,
}

/// A free local port nobody listens on: the open API "down".
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

impl Ctx {
    async fn new(backend: common::Backend, toml: Option<&str>) -> Ctx {
        let api = Arc::new(OpenApi::new([(AK, SK)]).with_usage_key(BASIC_KEY));
        let (addr, _task) = koogallery_emulator::openapi::spawn(api.clone())
            .await
            .unwrap();
        let db = TestDb::fresh(backend).await;
        let data = tempfile::tempdir().unwrap();
        let opts = Options {
            openapi_url: Some(format!("http://{addr}")),
            config_toml: toml.map(str::to_owned),
            ..Options::default()
        };
        let mut config = Config::load(&common::config_args(&db.url, data.path(), &opts)).unwrap();
        config.prepare_data_dir().unwrap();
        let store = Db::open(&config.database_url).await.unwrap();
        let clock = ManualClock::new(t0());
        let gw = Arc::new(
            Gateway::from_config(&config, store.clone(), Arc::new(clock.clone())).unwrap(),
        );
        Ctx {
            _db: db,
            _data: data,
            db: store,
            clock,
            gw,
            api,
            config,
        }
    }

    /// The same database and clock, with the open API at another URL (a restart with an
    /// outage, or after it).
    fn gateway_at(&self, url: &str) -> Arc<Gateway> {
        let mut config = self.config.clone();
        config.openapi_url = url.to_owned();
        Arc::new(
            Gateway::from_config(&config, self.db.clone(), Arc::new(self.clock.clone())).unwrap(),
        )
    }

    fn now(&self) -> i64 {
        koogate::clock::Clock::now_ms(&self.clock)
    }

    /// An active on-demand instance known to koogate, created at t0, and (when `billable`)
    /// registered with the emulator.
    async fn instance(&self, id: &str, billable: bool) {
        let mut conn = self.db.pool.acquire().await.unwrap();
        let new = koogate::store::instances::NewInstance {
            instance_id: id.to_owned(),
            create_key: format!("test|{id}"),
            protocol: "saas_v2",
            order_id: format!("ORD-{id}"),
            product_id: Some("OFFI-METERED".to_owned()),
            charging_mode: Some("ON_DEMAND".to_owned()),
            ..Default::default()
        };
        koogate::store::instances::create_if_absent(&mut conn, &new, t0())
            .await
            .unwrap();
        sqlx::query("UPDATE instances SET state = 'active' WHERE instance_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await
            .unwrap();
        if billable {
            self.api.usage().register(
                id,
                MeteredInstance {
                    product_id: "OFFI-METERED".to_owned(),
                    unit_price: Decimal::ONE,
                    opened_at_ms: t0() - HOUR_MS,
                    closed_at_ms: None,
                },
            );
        }
    }

    async fn ingest(&self, events: Value) -> IngestReport {
        let body = serde_json::to_vec(&events).unwrap();
        let parsed = ingest::parse_batch(&body).unwrap();
        ingest::ingest(&self.db, &self.gw.metering, parsed, self.now())
            .await
            .unwrap()
    }

    async fn push(&self) -> PushSummary {
        push::push_due(&self.gw, self.now(), &|_| {}).await.unwrap()
    }

    async fn push_with(&self, gw: &Gateway) -> PushSummary {
        push::push_due(gw, self.now(), &|_| {}).await.unwrap()
    }

    /// (instance, begin, end) → value of every bill line, and the number of lines.
    fn bills(&self) -> (BTreeMap<(String, String, String), Decimal>, usize) {
        let book = self.api.usage();
        let mut out = BTreeMap::new();
        for b in book.bills() {
            *out.entry((
                b.instance_id.clone(),
                b.begin_time.clone(),
                b.end_time.clone(),
            ))
            .or_insert(Decimal::ZERO) += b.usage_value;
        }
        (out, book.bills().len())
    }

    fn total_billed(&self, instance: &str) -> Decimal {
        self.api
            .usage()
            .bills()
            .iter()
            .filter(|b| b.instance_id == instance)
            .map(|b| b.usage_value)
            .sum()
    }

    /// HTTP statuses of the usage pushes the emulator received, in order.
    fn usage_calls(&self) -> Vec<u16> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/isv/usage-data"))
            .map(|r| r.status)
            .collect()
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sql)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
            .get::<i64, _>(0)
    }
}

/// The `koogate` binary with the keys and the open API of these tests.
fn cli(
    db_url: &str,
    data: &std::path::Path,
    openapi: &str,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let env = [
        ("KOOGATE_BASIC_KEY", BASIC_KEY),
        ("KOOGATE_AK", AK),
        ("KOOGATE_SK", SK),
        ("KOOGATE_OPENAPI_URL", openapi),
    ];
    common::koogate_cli(db_url, data, &env, args)
}

fn event(instance: &str, quantity: &str, at: i64, key: &str) -> Value {
    json!({"instance_id": instance, "quantity": quantity, "occurred_at": at, "idempotency_key": key})
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

backend_tests!(ingest_aggregate_push_billed_exactly_once);
async fn ingest_aggregate_push_billed_exactly_once(backend: Backend) {
    let c = Ctx::new(backend, None).await;
    c.instance("od-1", true).await;
    c.instance("od-2", true).await;
    let t = t0();
    // Three minutes after the first hour: within the grace period, its window is open.
    c.clock.set(t + HOUR_MS + 3 * MIN);
    let r = c
        .ingest(json!([
            event("od-1", "1.5", t + 10 * MIN, "k1"),
            event("od-1", "2.25", t + 50 * MIN, "k2"),
            event("od-1", "0.0001", t + HOUR_MS + MIN, "k3"),
            event("od-1", "1.5", t + 10 * MIN, "k1"),
        ]))
        .await;
    // k1 twice in the batch: once.
    assert_eq!(
        (r.accepted, r.duplicates, r.rejected.len(), r.late),
        (3, 1, 0, 0),
        "{r:?}"
    );
    // A resend is a duplicate.
    let again = c
        .ingest(json!([event("od-1", "1.5", t + 10 * MIN, "k1")]))
        .await;
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    c.clock.set(t + 2 * HOUR_MS + 30 * MIN);
    c.ingest(json!([event("od-2", "7", t + 2 * HOUR_MS + 5 * MIN, "k4")]))
        .await;

    // Windows 0 and 1 ended more than the grace ago, window 2 not yet.
    let s = c.push().await;
    assert_eq!((s.calls, s.accepted, s.rejected), (1, 2, 0), "{s:?}");
    c.clock.set(t + 3 * HOUR_MS + 6 * MIN);
    let s = c.push().await;
    assert_eq!((s.calls, s.accepted), (1, 1), "{s:?}");
    // Nothing left: a further pass sends nothing.
    assert_eq!(c.push().await.calls, 0);

    let (bills, lines) = c.bills();
    assert_eq!(lines, 3);
    let begin = |h: i64| koogate::metering::sdk_time(t + h * HOUR_MS);
    assert_eq!(bills[&("od-1".into(), begin(0), begin(1))], dec("3.75"));
    assert_eq!(bills[&("od-1".into(), begin(1), begin(2))], dec("0.0001"));
    assert_eq!(bills[&("od-2".into(), begin(2), begin(3))], dec("7"));
    // Both signatures were accepted, and every record carried its window's serial.
    assert_eq!(c.usage_calls(), vec![200, 200]);
    for b in c.api.usage().bills() {
        let sn = b.metering_sn.clone().unwrap();
        let expected = koogate::metering::metering_sn(
            &b.instance_id,
            "",
            koogallery::time::epoch_millis(
                koogallery::time::parse_sdk_date(&b.begin_time).unwrap(),
            ),
            koogallery::time::epoch_millis(koogallery::time::parse_sdk_date(&b.end_time).unwrap()),
        );
        assert_eq!(sn, expected);
    }
    assert_eq!(
        c.count("SELECT COUNT(*) FROM usage_buckets WHERE status = 'accepted'")
            .await,
        3
    );
}

backend_tests!(ingestion_rejects_per_event_with_a_reason);
async fn ingestion_rejects_per_event_with_a_reason(backend: Backend) {
    let c = Ctx::new(backend, None).await;
    c.instance("od-ok", true).await;
    c.instance("od-gone", true).await;
    sqlx::query("UPDATE instances SET state = 'released' WHERE instance_id = 'od-gone'")
        .execute(&c.db.pool)
        .await
        .unwrap();
    let t = t0();
    c.clock.set(t + 22 * 24 * HOUR_MS);
    let now = c.now();
    let r = c
        .ingest(json!([
            event("od-ok", "1", now - MIN, "ok-1"),
            event("nobody", "1", now - MIN, "bad-unknown"),
            event("od-gone", "1", now - MIN, "bad-released"),
            event("od-ok", "-1", now - MIN, "bad-negative"),
            event("od-ok", "0", now - MIN, "bad-zero"),
            event("od-ok", "NaN", now - MIN, "bad-nan"),
            event("od-ok", "1.00001", now - MIN, "bad-decimals"),
            event("od-ok", "1", now + 10 * MIN, "bad-future"),
            event("od-ok", "1", now - MAX_AGE_MS - 1, "bad-old"),
            event("od-ok", "1", now - MAX_AGE_MS, "ok-boundary"),
            json!({"instance_id": "od-ok", "quantity": "1", "occurred_at": now}),
            json!("not an event"),
            json!({"instance_id": "od-ok", "quantity": 2.5, "occurred_at": now, "idempotency_key": "ok-number"}),
        ]))
        .await;
    assert_eq!(r.received, 13);
    assert_eq!(r.accepted, 3, "{r:?}");
    let reasons: HashMap<usize, &str> = r
        .rejected
        .iter()
        .map(|x| (x.index, x.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 10, "{r:?}");
    assert!(reasons[&1].contains("unknown instance"));
    assert!(reasons[&2].contains("released"));
    assert!(reasons[&3].contains("greater than 0"));
    assert!(reasons[&4].contains("greater than 0"));
    assert!(reasons[&5].contains("not a decimal"));
    assert!(reasons[&6].contains("4 decimals"));
    assert!(reasons[&7].contains("future"));
    assert!(reasons[&8].contains("21 days"));
    assert!(reasons[&10].contains("idempotency_key"));
    assert!(reasons[&11].contains("not an event"));
    // The 21-day boundary event is accepted, as a late event (its window is long sealed).
    assert_eq!(r.late, 1);
    let total: i64 = sqlx::query("SELECT CAST(SUM(quantity) AS BIGINT) FROM usage_buckets")
        .fetch_one(&c.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 45_000);
}

backend_tests!(late_events_go_to_the_open_window_and_are_billed_once);
async fn late_events_go_to_the_open_window_and_are_billed_once(backend: Backend) {
    let c = Ctx::new(backend, None).await;
    c.instance("od-l", true).await;
    let t = t0();
    c.clock.set(t + 30 * MIN);
    c.ingest(json!([event("od-l", "1", t + 5 * MIN, "a")]))
        .await;
    c.clock.set(t + HOUR_MS + 10 * MIN);
    assert_eq!(c.push().await.accepted, 1);
    // An event of the first hour arrives after that window was sealed and pushed.
    let r = c
        .ingest(json!([event("od-l", "2", t + 20 * MIN, "late")]))
        .await;
    assert_eq!((r.accepted, r.late), (1, 1));
    c.clock.set(t + 2 * HOUR_MS + 10 * MIN);
    assert_eq!(c.push().await.accepted, 1);
    let (bills, lines) = c.bills();
    assert_eq!(lines, 2);
    let w = |h: i64| koogate::metering::sdk_time(t + h * HOUR_MS);
    assert_eq!(bills[&("od-l".into(), w(0), w(1))], dec("1"));
    assert_eq!(bills[&("od-l".into(), w(1), w(2))], dec("2"));
}

backend_tests!(outage_of_six_hours_then_every_window_billed_once_in_order);
async fn outage_of_six_hours_then_every_window_billed_once_in_order(backend: Backend) {
    let c = Ctx::new(backend, None).await;
    c.instance("od-o", true).await;
    let down = c.gateway_at(&dead_url().await);
    let t = t0();
    let mut expected = Decimal::ZERO;
    // Eight hours of usage; the open API is unreachable for hours 1 to 6.
    for h in 0..8 {
        c.clock.set(t + h * HOUR_MS + 30 * MIN);
        let q = format!("{}.5", h + 1);
        expected += dec(&q);
        c.ingest(json!([event(
            "od-o",
            &q,
            t + h * HOUR_MS + 20 * MIN,
            &format!("h{h}")
        )]))
        .await;
        c.clock.set(t + (h + 1) * HOUR_MS + 6 * MIN);
        let s = if (1..=6).contains(&h) {
            c.push_with(&down).await
        } else {
            c.push().await
        };
        if (1..=6).contains(&h) {
            assert_eq!(s.accepted, 0);
            assert!(s.retrying >= 1 && s.last_error.is_some(), "{s:?}");
        }
        // The scheduler ticks during the outage too: more failed attempts, nothing lost.
        if (1..=6).contains(&h) {
            c.clock.advance(30 * MIN);
            let s = c.push_with(&down).await;
            assert_eq!(s.accepted, 0);
        }
    }
    assert_eq!(c.total_billed("od-o"), expected);
    let bills = c.api.usage().bills().to_vec();
    assert_eq!(bills.len(), 8, "every window exactly once");
    let begins: Vec<&str> = bills.iter().map(|b| b.begin_time.as_str()).collect();
    let mut sorted = begins.clone();
    sorted.sort_unstable();
    assert_eq!(begins, sorted, "oldest first");
    assert_eq!(
        c.count("SELECT COUNT(*) FROM usage_buckets WHERE status = 'accepted'")
            .await,
        8
    );
    let attempts = c
        .count("SELECT CAST(MAX(attempts) AS BIGINT) FROM usage_buckets")
        .await;
    assert!(
        attempts >= 3,
        "the first outage window was retried: {attempts}"
    );
}

backend_tests!(restart_mid_push_does_not_bill_twice);
async fn restart_mid_push_does_not_bill_twice(backend: Backend) {
    let c = Ctx::new(backend, None).await;
    c.instance("od-r", true).await;
    let t = t0();
    c.clock.set(t + 30 * MIN);
    c.ingest(json!([event("od-r", "4", t + MIN, "r1")])).await;
    c.clock.set(t + HOUR_MS + 10 * MIN);
    assert_eq!(c.push().await.accepted, 1);
    // The process died after KooGallery accepted but before the outcome was committed: the
    // window is still sealed (and its lease lapses).
    sqlx::query(
        "UPDATE usage_buckets SET status = 'sealed', locked_until = NULL, settled_at = NULL",
    )
    .execute(&c.db.pool)
    .await
    .unwrap();
    let s = c.push().await;
    assert_eq!((s.calls, s.accepted), (1, 1));
    let (_, lines) = c.bills();
    assert_eq!(lines, 1, "the resend carried the same metering_sn");
    assert_eq!(c.usage_calls(), vec![200, 200]);
    let sn: String = sqlx::query("SELECT metering_sn FROM usage_buckets")
        .fetch_one(&c.db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        c.api.usage().bills()[0].metering_sn.as_deref(),
        Some(sn.as_str())
    );
    // A claimed batch whose lease has not lapsed is not pushed by another pass.
    c.clock.advance(HOUR_MS);
    c.ingest(json!([event("od-r", "1", c.now() - MIN, "r2")]))
        .await;
    c.clock.advance(HOUR_MS);
    koogate::store::usage::seal_due(&c.db, c.now(), 0)
        .await
        .unwrap();
    let claimed = koogate::store::usage::claim_due(&c.db, c.now(), 10, push::LEASE_MS)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(c.push().await.calls, 0);
    c.clock.advance(push::LEASE_MS + 1);
    assert_eq!(c.push().await.accepted, 1);
    assert_eq!(c.bills().1, 2);
}

backend_tests!(rejections_are_kept_and_announced);
async fn rejections_are_kept_and_announced(backend: Backend) {
    let c = Ctx::new(backend, None).await;
    c.instance("od-good", true).await;
    // Known to koogate, unknown to KooGallery: MKT.9001.
    c.instance("od-stranger", false).await;
    c.instance("od-stranger2", false).await;
    let t = t0();
    c.clock.set(t + 30 * MIN);
    c.ingest(json!([
        event("od-good", "1", t + MIN, "g"),
        event("od-stranger", "2", t + MIN, "s"),
    ]))
    .await;
    c.clock.set(t + HOUR_MS + 10 * MIN);
    let s = c.push().await;
    assert_eq!((s.calls, s.accepted, s.rejected), (1, 1, 1), "{s:?}");
    let row = sqlx::query(
        "SELECT status, error_code, last_error FROM usage_buckets WHERE instance_id = 'od-stranger'",
    )
    .fetch_one(&c.db.pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("status"), "rejected");
    assert_eq!(row.get::<String, _>("error_code"), "MKT.9001");
    assert!(row.get::<String, _>("last_error").contains("not found"));
    // A call where every record is refused (HTTP 500 MKT.9001): each is rejected.
    c.clock.set(t + HOUR_MS + 30 * MIN);
    c.ingest(json!([
        event("od-stranger", "1", c.now() - MIN, "s2"),
        event("od-stranger2", "1", c.now() - MIN, "s3"),
    ]))
    .await;
    c.clock.set(t + 2 * HOUR_MS + 10 * MIN);
    let s = c.push().await;
    assert_eq!((s.accepted, s.rejected), (0, 2), "{s:?}");
    // Announced as usage.rejected in the outbox, with the reason.
    let payloads: Vec<String> = sqlx::query(
        "SELECT payload FROM webhook_events WHERE event_type = 'usage.rejected' ORDER BY created_at",
    )
    .fetch_all(&c.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("payload"))
    .collect();
    assert_eq!(payloads.len(), 3);
    let first: Value = serde_json::from_str(&payloads[0]).unwrap();
    assert_eq!(first["data"]["instance_id"], "od-stranger");
    assert_eq!(first["data"]["error_code"], "MKT.9001");
    assert_eq!(first["data"]["usage_value"], "2");
    assert_eq!(c.total_billed("od-good"), dec("1"));
    // Rejected usage is not retried.
    c.clock.advance(HOUR_MS);
    assert_eq!(c.push().await.calls, 0);
}

backend_tests!(windows_older_than_21_days_expire_unsent);
async fn windows_older_than_21_days_expire_unsent(backend: Backend) {
    let c = Ctx::new(backend, None).await;
    c.instance("od-x", true).await;
    let t = t0();
    c.clock.set(t + 30 * MIN);
    c.ingest(json!([event("od-x", "1", t + MIN, "x")])).await;
    // Not pushed for 21 days and an hour (no open API at all).
    let none = {
        let mut config = c.config.clone();
        config.ak = None;
        config.sk = None;
        Arc::new(Gateway::from_config(&config, c.db.clone(), Arc::new(c.clock.clone())).unwrap())
    };
    c.clock.set(t + HOUR_MS + 10 * MIN);
    let s = c.push_with(&none).await;
    assert!(s.no_client && s.sealed == 1);
    c.clock.set(t + MAX_AGE_MS);
    assert_eq!(c.push_with(&none).await.expired, 0, "still within 21 days");
    c.clock.set(t + MAX_AGE_MS + 1);
    let s = c.push().await;
    assert_eq!((s.expired, s.calls), (1, 0));
    assert_eq!(
        c.count("SELECT COUNT(*) FROM webhook_events WHERE event_type = 'usage.rejected'")
            .await,
        1
    );
}

backend_tests!(batches_hold_at_most_batch_size_records);
async fn batches_hold_at_most_batch_size_records(backend: Backend) {
    let c = Ctx::new(backend, Some("[metering]\nbatch_size = 1000\n")).await;
    let t = t0();
    for i in 0..300 {
        c.instance(&format!("od-b{i}"), true).await;
    }
    // 1500 windows: 300 instances × 5 hours, each hour ingested while open.
    for h in 0..5 {
        c.clock.set(t + h * HOUR_MS + 30 * MIN);
        let events: Vec<Value> = (0..300)
            .map(|i| {
                event(
                    &format!("od-b{i}"),
                    "1",
                    t + h * HOUR_MS + MIN,
                    &format!("{i}-{h}"),
                )
            })
            .collect();
        assert_eq!(c.ingest(Value::Array(events)).await.accepted, 300);
    }
    c.clock.set(t + 5 * HOUR_MS + 10 * MIN);
    let s = c.push().await;
    assert_eq!((s.calls, s.accepted), (2, 1500), "{s:?}");
    // Two calls for 1500 records, both accepted: the emulator refuses more than 1000
    // records in a call (MKT.9003), so they held 1000 and 500.
    assert_eq!(c.usage_calls(), vec![200, 200]);
    assert_eq!(c.bills().1, 1500);
    // The default is 100 per call, and more than 1000 is refused by the configuration.
    let data = tempfile::tempdir().unwrap();
    let bad = Options {
        config_toml: Some("[metering]\nbatch_size = 1001\n".to_owned()),
        ..Options::default()
    };
    let err = Config::load(&common::config_args("sqlite://x.db", data.path(), &bad))
        .err()
        .unwrap();
    assert!(err.to_string().contains("batch_size"), "{err:#}");
}

backend_tests!(daily_products_aggregate_per_day);
async fn daily_products_aggregate_per_day(backend: Backend) {
    let c = Ctx::new(
        backend,
        Some("[metering]\ndaily_products = [\"OFFI-METERED\"]\n"),
    )
    .await;
    c.instance("od-d", true).await;
    let t = t0();
    let day = t - t.rem_euclid(24 * HOUR_MS);
    c.clock.set(day + 24 * HOUR_MS - MIN);
    c.ingest(json!([
        event("od-d", "1", day + HOUR_MS.max(t - day) + MIN, "d1"),
        event("od-d", "2", day + 23 * HOUR_MS, "d2"),
    ]))
    .await;
    c.clock.set(day + 24 * HOUR_MS + 10 * MIN);
    let s = c.push().await;
    assert_eq!(s.accepted, 1, "{s:?}");
    let bill = c.api.usage().bills()[0].clone();
    assert_eq!(bill.usage_value, dec("3"));
    assert_eq!(
        bill.end_time,
        koogate::metering::sdk_time(day + 24 * HOUR_MS)
    );
}

backend_tests!(fn exact_totals_under_random_interleavings);
/// Random interleavings of events (duplicates, late ones) and push passes: every instance is
/// billed exactly the sum of its distinct events, each window once.
fn exact_totals_under_random_interleavings(backend: Backend) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as PtConfig, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    // (instance, minute offset within 6 hours, quantity in 1e-4 units, key) and whether a push
    // pass and a clock step follow.
    let op = (
        0usize..3,
        0i64..360,
        1i64..2_000_000,
        0usize..40,
        any::<bool>(),
    );
    let strategy = proptest::collection::vec(op, 1..60);
    let cases = if backend == common::Backend::Sqlite {
        12
    } else {
        4
    };
    let mut runner = TestRunner::new(PtConfig {
        cases,
        failure_persistence: None,
        ..PtConfig::default()
    });
    runner
        .run(&strategy, |ops| {
            rt.block_on(check_interleaving(backend, ops));
            Ok(())
        })
        .unwrap();
}

async fn check_interleaving(backend: common::Backend, ops: Vec<(usize, i64, i64, usize, bool)>) {
    let c = Ctx::new(backend, None).await;
    for i in 0..3 {
        c.instance(&format!("p{i}"), true).await;
    }
    let t = t0();
    let mut first_by_key: HashMap<String, (usize, i64)> = HashMap::new();
    let mut now = t;
    for (inst, minute, q, key, push_after) in ops {
        let at = t + minute * MIN;
        // Time moves forward; an event may be far older than "now" (late) but never future.
        now = now.max(at);
        c.clock.set(now);
        let key = format!("key-{key}");
        let quantity = koogate::metering::format_quantity(q);
        let r = c
            .ingest(json!([event(&format!("p{inst}"), &quantity, at, &key)]))
            .await;
        assert!(r.rejected.is_empty(), "{r:?}");
        first_by_key.entry(key).or_insert((inst, q));
        if push_after {
            now += 37 * MIN;
            c.clock.set(now);
            c.push().await;
        }
    }
    c.clock.set(now + 2 * HOUR_MS);
    c.push().await;
    let mut expected = [0i64; 3];
    for (inst, q) in first_by_key.values() {
        expected[*inst] += q;
    }
    let (bills, lines) = c.bills();
    assert_eq!(lines, bills.len(), "a window billed twice");
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(
            c.total_billed(&format!("p{i}")),
            Decimal::new(*want, 4),
            "instance p{i}"
        );
    }
    assert_eq!(
        c.count("SELECT COUNT(*) FROM usage_buckets WHERE status <> 'accepted'")
            .await,
        0
    );
}

backend_tests!(rest_api_ingestion_report_and_usage_info);
async fn rest_api_ingestion_report_and_usage_info(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..Options::default()
        },
    )
    .await;
    let r = s
        .v2(r#"{"activity":"newInstance","businessId":"od-api","orderId":"CS-API","orderLineId":"CS-API-000001"}"#)
        .await;
    r.expect("000004");
    s.wait_state("od-api", "active").await;
    let http = common::http();
    let url = format!("{}/api/v1/usage", s.base);
    let now = common::now_ms();
    // No token: refused.
    let r = http.post(&url).body("[]").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A JSON array.
    let body = json!([
        event("od-api", "1.25", now, "a1"),
        event("nobody", "1", now, "a2")
    ]);
    let r = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["accepted"], 1);
    assert_eq!(report["rejected"][0]["index"], 1);
    // NDJSON, with a duplicate.
    let ndjson = format!(
        "{}\n{}\n",
        event("od-api", "1.25", now, "a1"),
        event("od-api", "0.5", now, "a3")
    );
    let r: Value = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    // Not JSON at all: a problem.
    let r = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .body("   ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // queryInstance carries the cumulative usage (saas.md §5.2), V2 and V1.
    let q = s
        .v2(r#"{"activity":"queryInstance","instanceId":"od-api"}"#)
        .await;
    q.expect("000000");
    let usage = &q.json["info"][0]["usageInfo"][0];
    assert_eq!(usage["usageValue"], "1.75", "{}", q.json);
    assert_eq!(usage["statisticalTime"].as_str().unwrap().len(), 17);
    let q1 = s
        .v1(&[("activity", "queryInstance"), ("instanceId", "od-api")])
        .await;
    q1.expect("000000");
    assert_eq!(
        q1.json["info"][0]["usageInfo"][0]["usageValue"], "1.75",
        "{}",
        q1.json
    );

    let report: Value = http
        .get(format!("{}/api/v1/usage/report?instance_id=od-api", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report[0]["recorded"], "1.75");
    assert_eq!(report[0]["pending"], "1.75");
    let windows: Value = http
        .get(format!("{}/api/v1/usage/windows?status=open", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(windows[0]["usage_value"], "1.75");
    // No AK/SK: a push sends nothing and says why.
    let push: Value = http
        .post(format!("{}/api/v1/usage/push", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(push["no_client"], true);
    let doc: Value = http
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/usage"]["post"].is_object());
    assert!(doc["components"]["schemas"]["IngestReport"].is_object());
    s.stop().await;
}

/// `koogate usage record|report|windows|push` on the configured database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_records_reports_and_pushes() {
    let c = Ctx::new(common::Backend::Sqlite, None).await;
    c.instance("od-cli", true).await;
    let data = c._data.path().to_path_buf();
    let url = c.config.database_url.clone();
    let openapi = c.config.openapi_url.clone();
    let koogate = move |args: &[&str]| cli(&url, &data, &openapi, args);
    let (code, out, err) = koogate(&[
        "usage",
        "record",
        "--instance",
        "od-cli",
        "--quantity",
        "2.5",
        "--key",
        "c1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("accepted 1"), "{out}");
    let (code, out, _) = koogate(&[
        "usage",
        "record",
        "--instance",
        "od-cli",
        "--quantity",
        "2.5",
        "--key",
        "c1",
    ]);
    assert_eq!(code, Some(0));
    assert!(out.contains("duplicates 1"), "{out}");
    let (code, _, err) = koogate(&["usage", "record", "--instance", "nobody", "--quantity", "1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown instance"), "{err}");
    let (code, _, _) = koogate(&["usage", "record", "--quantity", "1"]);
    assert_eq!(code, Some(2), "usage error: --instance is required");

    let (code, out, err) = koogate(&["usage", "report", "--instance", "od-cli", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report[0]["recorded"], "2.5");
    let (code, out, _) = koogate(&["usage", "report"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("WINDOW"), "{out}");
    let (code, out, _) = koogate(&["usage", "windows", "--status", "open", "--json"]);
    assert_eq!(code, Some(0));
    let windows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(windows[0]["instance_id"], "od-cli");
    // The window is still open: nothing to push yet.
    let (code, out, err) = koogate(&["usage", "push", "--now"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("calls 0"), "{out}");
    let (code, _, _) = koogate(&["usage", "push"]);
    assert_eq!(code, Some(2), "--now is required");
}

backend_tests!(packages_are_deducted_and_reported);
async fn packages_are_deducted_and_reported(backend: Backend) {
    let c = Ctx::new(backend, None).await;
    c.instance("od-p", true).await;
    c.instance("pkg-1", true).await;
    sqlx::query("UPDATE instances SET charging_mode = 'ON_DEMAND_PKG' WHERE instance_id = 'pkg-1'")
        .execute(&c.db.pool)
        .await
        .unwrap();
    let t = t0();
    c.clock.set(t + 30 * MIN);
    let mut with_pkg = event("od-p", "5", t + MIN, "p1");
    with_pkg["relate_pkg_instance"] = json!("pkg-1");
    let mut unknown_pkg = event("od-p", "1", t + MIN, "p2");
    unknown_pkg["relate_pkg_instance"] = json!("pkg-nobody");
    let r = c.ingest(json!([with_pkg, unknown_pkg])).await;
    assert_eq!(r.accepted, 1, "{r:?}");
    assert!(r.rejected[0].reason.contains("unknown package"));
    // Usage not deducted from the package goes in another window: KooGallery treats two
    // records of one instance with the same period as duplicates (openapi.md §3.4 #6).
    c.clock.set(t + HOUR_MS + 30 * MIN);
    c.ingest(json!([event("od-p", "2", t + HOUR_MS + MIN, "p3")]))
        .await;
    c.clock.set(t + 2 * HOUR_MS + 10 * MIN);
    assert_eq!(c.push().await.accepted, 2);
    assert_eq!(c.api.usage().package_use()["pkg-1"], dec("5"));
    // queryInstance's usageInfo: the package's use, per on-demand instance.
    let mut conn = c.db.pool.acquire().await.unwrap();
    let pkg = koogate::store::instances::get(&mut conn, "pkg-1")
        .await
        .unwrap()
        .unwrap();
    let info = koogate::metering::usage_info(&c.gw, &mut conn, &pkg)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].related_instance_id.as_deref(), Some("od-p"));
    assert_eq!(info[0].usage_value, "5");
    let od = koogate::store::instances::get(&mut conn, "od-p")
        .await
        .unwrap()
        .unwrap();
    let info = koogate::metering::usage_info(&c.gw, &mut conn, &od)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info[0].usage_value, "7", "cumulative, packages included");
}

backend_tests!(the_old_usage_api_by_configuration);
async fn the_old_usage_api_by_configuration(backend: Backend) {
    let c = Ctx::new(backend, Some("[metering]\nlegacy_api = true\n")).await;
    c.instance("od-v1", true).await;
    let t = t0();
    c.clock.set(t + 30 * MIN);
    c.ingest(json!([event("od-v1", "3.5", t + MIN, "v1")]))
        .await;
    c.clock.set(t + HOUR_MS + 10 * MIN);
    let s = c.push().await;
    assert_eq!((s.calls, s.accepted), (1, 1), "{s:?}");
    let bills = c.api.usage().bills().to_vec();
    assert_eq!(bills.len(), 1);
    assert_eq!(bills[0].metering_sn, None, "the old API has no serial");
    assert_eq!(bills[0].usage_value, dec("3.5"));
    assert!(
        c.api
            .requests()
            .iter()
            .any(|r| r.path == "/rest/marketplace/v1/isv/usage-data")
    );
}

/// `koogate usage backfill` re-sends accepted windows with their serials: a KooGallery that
/// lost a record gets it, one that has it ignores it (billed once either way).
// The CLI runs as a blocking child process; the emulators need runtime threads of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_resends_accepted_windows_billed_once() {
    let c = Ctx::new(common::Backend::Sqlite, None).await;
    c.instance("od-bf", true).await;
    c.clock.set(t0() + 20 * MIN);
    let report = c
        .ingest(json!([event("od-bf", "3.5", t0() + 10 * MIN, "bf-1")]))
        .await;
    assert_eq!(report.accepted, 1, "{report:?}");
    c.clock.set(t0() + 2 * HOUR_MS);
    let first = c.push().await;
    assert_eq!(c.total_billed("od-bf"), dec("3.5"), "{first:?}");

    // A KooGallery that has no record of it (its book is empty).
    let fresh = Arc::new(OpenApi::new([(AK, SK)]).with_usage_key(BASIC_KEY));
    fresh.usage().register(
        "od-bf",
        MeteredInstance {
            product_id: "OFFI-METERED".to_owned(),
            unit_price: Decimal::ONE,
            opened_at_ms: t0() - HOUR_MS,
            closed_at_ms: None,
        },
    );
    let (addr, _task) = koogallery_emulator::openapi::spawn(fresh.clone())
        .await
        .unwrap();
    let data = c._data.path().to_path_buf();
    let url = c.config.database_url.clone();
    let backfill = |openapi: String| {
        let (code, out, err) = cli(&url, &data, &openapi, &["usage", "backfill", "--json"]);
        assert_eq!(code, Some(0), "{err}");
        out
    };
    backfill(format!("http://{addr}"));
    let lost: Decimal = fresh.usage().bills().iter().map(|b| b.usage_value).sum();
    assert_eq!(lost, dec("3.5"), "the missing record is delivered");
    // Again, and to the KooGallery that had it all along: nothing is billed twice.
    backfill(format!("http://{addr}"));
    assert_eq!(fresh.usage().bills().len(), 1);
    backfill(c.config.openapi_url.clone());
    assert_eq!(c.total_billed("od-bf"), dec("3.5"));
    assert_eq!(c.api.usage().bills().len(), 1);
}

backend_tests!(system_errors_are_retried_then_billed_once);
/// KooGallery answers `MKT.0999` (HTTP 500): a transient error, retried
/// after a back-off, nothing rejected; once it recovers, billed once.
async fn system_errors_are_retried_then_billed_once(backend: Backend) {
    let c = Ctx::new(backend, None).await;
    c.instance("od-e", true).await;
    // A usage API that fails every call with KooGallery's system error.
    let failing = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"error_code":"MKT.0999","error_msg":"system internal error"}"#,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, failing).await });
    let broken = c.gateway_at(&url);
    let t = t0();
    c.clock.set(t + 30 * MIN);
    c.ingest(json!([event("od-e", "4.25", t + 10 * MIN, "e1")]))
        .await;
    c.clock.set(t + HOUR_MS + 6 * MIN);
    let s = c.push_with(&broken).await;
    assert_eq!((s.accepted, s.rejected), (0, 0), "{s:?}");
    assert!(s.retrying >= 1, "{s:?}");
    assert!(
        s.last_error.as_deref().unwrap_or("").contains("MKT.0999"),
        "{s:?}"
    );
    assert_eq!(
        c.count("SELECT COUNT(*) FROM usage_buckets WHERE status = 'rejected'")
            .await,
        0
    );
    // Before the back-off has passed nothing is sent again, even to a working API.
    assert_eq!(c.push().await.calls, 0);
    c.clock.advance(HOUR_MS);
    let s = c.push().await;
    assert_eq!(s.accepted, 1, "{s:?}");
    assert_eq!(c.total_billed("od-e"), dec("4.25"));
    assert_eq!(c.api.usage().bills().len(), 1);
}
