//! koogate against the KooGallery emulator, end to end: the marketplace places orders, calls
//! koogate's production interface with signed requests and judges the answers; koogate reads
//! the orders from the emulator's open API, provisions, and answers the polls.

use std::sync::Arc;

use crate::common::{AK, BASIC_KEY, Backend, GENERIC_KEY, KIT_KEY, LICENSE_KEY, SK, backend_tests};
use crate::common::{Options, TestDb, TestServer};
use koogallery_emulator::catalog::MerchantKeys;
use koogallery_emulator::clock::{DAY_MS, HOUR_MS, MINUTE_MS, wall_clock_ms};
use koogallery_emulator::marketplace::GRACE_MS;
use koogallery_emulator::state::{InstanceStatus, JobState, OrderKind, OrderStatus};
use koogallery_emulator::{EmuClock, Marketplace, OpenApi, OrderRequest, Settings};

/// The emulator's open API on a free port, and a marketplace that calls `merchant_url`.
struct Emulator {
    api: Arc<OpenApi>,
    url: String,
}

async fn open_api() -> Emulator {
    let api = Arc::new(OpenApi::new([(AK, SK)]).with_usage_key(BASIC_KEY));
    let (addr, _server) = koogallery_emulator::openapi::spawn(api.clone())
        .await
        .unwrap();
    Emulator {
        api,
        url: format!("http://{addr}"),
    }
}

fn marketplace(e: &Emulator, merchant_url: String) -> Marketplace {
    let settings = Settings {
        merchant_url: Some(merchant_url),
        keys: MerchantKeys {
            basic: Some(BASIC_KEY.to_owned()),
            kit: Some(KIT_KEY.to_owned()),
            license: Some(LICENSE_KEY.to_owned()),
            generic: Some(GENERIC_KEY.to_owned()),
        },
        ..Settings::default()
    };
    Marketplace::new(
        settings,
        Arc::new(EmuClock::manual(wall_clock_ms())),
        e.api.clone(),
    )
}

async fn koogate(db: &TestDb, e: &Emulator, listen: Option<std::net::SocketAddr>) -> TestServer {
    TestServer::start(
        db,
        Options {
            openapi_url: Some(e.url.clone()),
            listen,
            ..Options::default()
        },
    )
    .await
}

/// Runs the marketplace until nothing is pending: whenever koogate answered `000004`, waits
/// for koogate's jobs, then lets a minute of emulated time pass so KooGallery polls again.
async fn settle(m: &Marketplace, s: &TestServer) {
    for _ in 0..20 {
        m.run_due().await.unwrap();
        if m.jobs().iter().all(|j| j.state != JobState::Pending) {
            return;
        }
        s.wait_count("SELECT COUNT(*) FROM jobs WHERE status = 'pending'", 0)
            .await;
        m.advance(MINUTE_MS).await.unwrap();
    }
    panic!("the marketplace never settled: {:#?}", m.jobs());
}

async fn buy(m: &Marketplace, s: &TestServer, kind: OrderKind, product: &str) -> String {
    let order = m
        .place_order(OrderRequest::new(kind).product(product))
        .await
        .unwrap();
    settle(m, s).await;
    assert_eq!(
        m.order(&order.order_id).unwrap().status,
        OrderStatus::Completed,
        "{:#?}",
        m.calls()
    );
    order.resource_id
}

async fn act(m: &Marketplace, s: &TestServer, request: OrderRequest) {
    let order = m.place_order(request).await.unwrap();
    settle(m, s).await;
    assert_eq!(
        m.order(&order.order_id).unwrap().status,
        OrderStatus::Completed,
        "{:#?}",
        m.calls()
    );
}

/// Every call KooGallery made was accepted (`processing` is an answered `000004`).
fn all_accepted(m: &Marketplace) -> bool {
    m.calls()
        .iter()
        .all(|c| matches!(c.verdict.as_str(), "success" | "processing"))
}

/// koogate's view of the emulator's resource: its state and expiry.
async fn koogate_instance(
    s: &TestServer,
    m: &Marketplace,
    resource: &str,
) -> (String, Option<i64>) {
    let id = m.instance(resource).unwrap().instance_id.unwrap();
    let row = sqlx::query("SELECT state, expire_at FROM instances WHERE instance_id = $1")
        .bind(&id)
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    use sqlx::Row;
    (row.get("state"), row.get("expire_at"))
}

backend_tests!(a_period_subscription_lives_its_whole_life);
async fn a_period_subscription_lives_its_whole_life(backend: Backend) {
    for product in ["V2-MONTH", "V1-MONTH"] {
        let e = open_api().await;
        let db = TestDb::fresh(backend).await;
        let s = koogate(&db, &e, None).await;
        let m = marketplace(&e, s.produce_url());

        let r = buy(&m, &s, OrderKind::New, product).await;
        let inst = m.instance(&r).unwrap();
        assert_eq!(inst.status, InstanceStatus::Active);
        assert!(inst.app_info.unwrap()["frontEndUrl"].is_string());
        let (state, expire) = koogate_instance(&s, &m, &r).await;
        assert_eq!(state, "active", "{backend:?} {product}");
        assert_eq!(
            expire, inst.expire_ms,
            "{product}: koogate has the order's expiry"
        );

        // Renewal: koogate's expiry follows the emulator's.
        act(&m, &s, OrderRequest::new(OrderKind::Renew).resource(&r)).await;
        let renewed = m.instance(&r).unwrap().expire_ms;
        assert!(renewed > inst.expire_ms);
        assert_eq!(koogate_instance(&s, &m, &r).await.1, renewed, "{product}");

        // Expiry → freeze; renewal in the freeze → refresh + unfreeze.
        m.advance(renewed.unwrap() - m.now_ms() + HOUR_MS)
            .await
            .unwrap();
        settle(&m, &s).await;
        assert_eq!(m.instance(&r).unwrap().status, InstanceStatus::Frozen);
        assert_eq!(koogate_instance(&s, &m, &r).await.0, "frozen", "{product}");
        act(&m, &s, OrderRequest::new(OrderKind::Renew).resource(&r)).await;
        assert_eq!(m.instance(&r).unwrap().status, InstanceStatus::Active);
        assert_eq!(koogate_instance(&s, &m, &r).await.0, "active", "{product}");

        // Expiry, then the whole grace period → release.
        let expire = m.instance(&r).unwrap().expire_ms.unwrap();
        m.advance(expire - m.now_ms() + GRACE_MS + DAY_MS)
            .await
            .unwrap();
        settle(&m, &s).await;
        assert_eq!(m.instance(&r).unwrap().status, InstanceStatus::Released);
        assert_eq!(
            koogate_instance(&s, &m, &r).await.0,
            "released",
            "{product}"
        );
        assert!(all_accepted(&m), "{product}: {:#?}", m.calls());
        s.stop().await;
    }
}

backend_tests!(trial_upgrade_unsubscribe_one_time_and_on_demand);
async fn trial_upgrade_unsubscribe_one_time_and_on_demand(backend: Backend) {
    let e = open_api().await;
    let db = TestDb::fresh(backend).await;
    let s = koogate(&db, &e, None).await;
    let m = marketplace(&e, s.produce_url());

    // Trial → formal.
    let trial = buy(&m, &s, OrderKind::Trial, "V2-MONTH").await;
    let id = m.instance(&trial).unwrap().instance_id.unwrap();
    assert_eq!(
        s.count(&format!(
            "SELECT trial FROM instances WHERE instance_id = '{id}'"
        ))
        .await,
        1
    );
    act(
        &m,
        &s,
        OrderRequest::new(OrderKind::TrialToFormal).resource(&trial),
    )
    .await;
    assert_eq!(
        s.count(&format!(
            "SELECT trial FROM instances WHERE instance_id = '{id}'"
        ))
        .await,
        0
    );
    // Upgrade to the professional SKU: koogate reads the new specification.
    act(
        &m,
        &s,
        OrderRequest::new(OrderKind::Upgrade).resource(&trial),
    )
    .await;
    s.wait_count(
        &format!(
            "SELECT COUNT(*) FROM instances WHERE instance_id = '{id}' AND sku_code = 'V2-SKU-PRO'"
        ),
        1,
    )
    .await;
    // Unsubscribe → release.
    act(
        &m,
        &s,
        OrderRequest::new(OrderKind::Unsubscribe).resource(&trial),
    )
    .await;
    assert_eq!(koogate_instance(&s, &m, &trial).await.0, "released");

    // One-time and on-demand purchases.
    let once = buy(&m, &s, OrderKind::New, "V2-ONETIME").await;
    assert_eq!(koogate_instance(&s, &m, &once).await.0, "active");
    let od = buy(&m, &s, OrderKind::OnDemand, "V2-ONDEMAND").await;
    assert_eq!(koogate_instance(&s, &m, &od).await.0, "active");
    let od_id = m.instance(&od).unwrap().instance_id.unwrap();
    assert_eq!(
        s.count(&format!("SELECT COUNT(*) FROM instances WHERE instance_id = '{od_id}' AND charging_mode = 'ON_DEMAND'"))
            .await,
        1
    );
    // The on-demand instance is known to the usage API, at the product's unit price.
    assert!(e.api.usage().instance(&od_id).is_some());
    assert!(all_accepted(&m));
    s.stop().await;
}

backend_tests!(retries_after_an_outage_and_a_manual_restart);
/// The merchant is down for two emulated hours: KooGallery retries hourly; when it is back,
/// the create succeeds and exactly one instance exists. A renewal that failed for good is
/// restarted by hand from the production-interface messages.
async fn retries_after_an_outage_and_a_manual_restart(backend: Backend) {
    let e = open_api().await;
    let db = TestDb::fresh(backend).await;
    // Reserve a port for koogate, closed for now: the merchant is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let m = marketplace(&e, format!("http://{port}/produce"));
    let order = m
        .place_order(OrderRequest::new(OrderKind::New).product("V2-MONTH"))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    m.advance(HOUR_MS).await.unwrap();
    m.advance(HOUR_MS).await.unwrap();
    let creates = || {
        m.calls()
            .iter()
            .filter(|c| c.activity == "newInstance")
            .count()
    };
    assert_eq!(creates(), 3, "the first attempt and two hourly retries");
    assert!(m.messages().iter().any(|msg| msg.activity == "newInstance"));
    assert_eq!(
        m.order(&order.order_id).unwrap().status,
        OrderStatus::Processing
    );

    // The merchant comes back; the third hourly retry succeeds.
    let s = koogate(&db, &e, Some(port)).await;
    m.advance(HOUR_MS).await.unwrap();
    settle(&m, &s).await;
    assert_eq!(
        m.order(&order.order_id).unwrap().status,
        OrderStatus::Completed
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM instances").await, 1);
    assert_eq!(
        koogate_instance(&s, &m, &order.resource_id).await.0,
        "active"
    );

    // Down again during a renewal, past its whole schedule: a failed message.
    s.stop().await;
    let renewal = m
        .place_order(OrderRequest::new(OrderKind::Renew).resource(&order.resource_id))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    m.advance(4 * HOUR_MS).await.unwrap();
    let failed = m
        .messages()
        .into_iter()
        .find(|msg| msg.activity == "refreshInstance" && msg.state == "failed")
        .unwrap();
    // Back up; the seller restarts the call by hand.
    let s = koogate(&db, &e, Some(port)).await;
    m.restart(failed.id).await.unwrap();
    settle(&m, &s).await;
    assert_eq!(
        m.order(&renewal.order_id).unwrap().status,
        OrderStatus::Completed,
        "{:#?}",
        m.calls()
    );
    let expected = m.instance(&order.resource_id).unwrap().expire_ms;
    assert_eq!(
        koogate_instance(&s, &m, &order.resource_id).await.1,
        expected
    );
    s.stop().await;
}
