//! The marketplace against a test merchant: every order kind dispatches the right signed calls,
//! answers are judged like KooGallery's checker, retries follow the schedules on the emulated
//! clock, and the lifecycle runs expiry → freeze → release.

use crate::merchant::{self, Merchant, marketplace};
use koogallery_emulator::clock::{DAY_MS, HOUR_MS, MINUTE_MS};
use koogallery_emulator::dispatch::console;
use koogallery_emulator::marketplace::{EmuError, GRACE_MS};
use koogallery_emulator::state::{InstanceStatus, JobState, OrderKind, OrderStatus};
use koogallery_emulator::{Marketplace, OrderRequest};

fn expire_ms(s: &str) -> i64 {
    koogallery::time::epoch_millis(koogallery::time::parse_expire_time(s).unwrap())
}

/// Buys `product` and runs the calls; returns the resource ID.
async fn buy(m: &Marketplace, kind: OrderKind, product: &str) -> String {
    let order = m
        .place_order(OrderRequest::new(kind).product(product))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    order.resource_id
}

async fn order(m: &Marketplace, kind: OrderKind, resource: &str) -> String {
    let order = m
        .place_order(OrderRequest::new(kind).resource(resource))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    order.order_id
}

#[tokio::test]
async fn v2_new_purchase_creates_polls_and_publishes_the_order() {
    let merchant = Merchant::start().await;
    let (m, api) = marketplace(&merchant);
    let placed = m
        .place_order(OrderRequest::new(OrderKind::New).product("V2-MONTH"))
        .await
        .unwrap();
    m.run_due().await.unwrap();

    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["newInstance", "queryInstance"]);
    assert!(calls.iter().all(|c| c.verified && c.method == "POST"));
    let new = &calls[0];
    assert_eq!(new.field("orderId"), Some(placed.order_id.as_str()));
    assert_eq!(
        new.field("orderLineId"),
        Some(placed.order_line_id.as_str())
    );
    assert!(!new.field("businessId").unwrap().is_empty());
    assert_eq!(new.fields.get("testFlag"), None);
    let instance_id = format!("inst-{}", placed.order_line_id);
    assert_eq!(calls[1].field("instanceId"), Some(instance_id.as_str()));

    let order = m.order(&placed.order_id).unwrap();
    assert_eq!(order.status, OrderStatus::Completed);
    let instance = m.instance(&placed.resource_id).unwrap();
    assert_eq!(instance.status, InstanceStatus::Active);
    assert_eq!(instance.instance_id.as_deref(), Some(instance_id.as_str()));
    let app = instance.app_info.unwrap();
    assert_eq!(app["password"], "<redacted>");
    assert!(
        !serde_json::to_string(&m.snapshot())
            .unwrap()
            .contains("S3cret!pw")
    );

    // The merchant can read exactly what it was sold.
    let info = api.order(&placed.order_id).unwrap();
    assert_eq!(info.order_type, "NEW");
    let line = &info.order_line[0];
    assert_eq!(line.order_line_id, placed.order_line_id);
    assert_eq!(line.charging_mode, "PERIOD");
    assert_eq!(line.period_type.as_deref(), Some("month"));
    assert_eq!(line.period_number.as_ref().unwrap().as_str(), "1");
    let expire = line.expire_time.clone().unwrap();
    assert_eq!(Some(expire_ms(&expire)), instance.expire_ms);
    let product = &line.product_info.as_ref().unwrap()[0];
    assert_eq!(product.product_id.as_deref(), Some("V2-MONTH"));
    assert_eq!(product.sku_code.as_deref(), Some("V2-SKU-BASIC"));
    assert_eq!(product.linear_value.as_ref().unwrap().as_str(), "10");
    let recorded = m.calls();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|c| c.verdict == "success"));
}

#[tokio::test]
async fn every_v2_order_kind_dispatches_its_calls() {
    let merchant = Merchant::start().await;
    let (m, api) = marketplace(&merchant);

    // Trial, then trial → formal.
    let trial = buy(&m, OrderKind::Trial, "V2-MONTH").await;
    let t = m.instance(&trial).unwrap();
    assert!(t.trial);
    let trial_order = api.order(&t.order_id).unwrap();
    assert_eq!(trial_order.order_type, "TRIAL");
    assert_eq!(trial_order.order_line[0].trial_flag.as_deref(), Some("1"));
    assert_eq!(
        trial_order.order_line[0].period_type.as_deref(),
        Some("day")
    );
    merchant.clear();
    let conversion = order(&m, OrderKind::TrialToFormal, &trial).await;
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["refreshInstance"]);
    assert_eq!(calls[0].field("scene"), Some("TRIAL_TO_FORMAL"));
    assert_eq!(calls[0].field("orderId"), Some(conversion.as_str()));
    assert_eq!(calls[0].field("instanceId"), t.instance_id.as_deref());
    let published = api.order(&conversion).unwrap();
    assert_eq!(published.order_type, "TRIAL_TO_FORMAL");
    assert_eq!(
        calls[0].field("expireTime"),
        published.order_line[0].expire_time.as_deref()
    );
    assert!(!m.instance(&trial).unwrap().trial);

    // Renewal: one more month from the current expiry.
    let before = m.instance(&trial).unwrap().expire_ms.unwrap();
    merchant.clear();
    let renewal = order(&m, OrderKind::Renew, &trial).await;
    let calls = merchant.calls();
    assert_eq!(calls[0].field("scene"), Some("RENEWAL"));
    assert_eq!(calls[0].field("orderId"), Some(renewal.as_str()));
    assert_eq!(calls[0].field("productId"), Some("V2-MONTH"));
    let after = m.instance(&trial).unwrap().expire_ms.unwrap();
    assert!(after > before + 27 * DAY_MS);
    assert_eq!(expire_ms(calls[0].field("expireTime").unwrap()), after);
    assert_eq!(api.order(&renewal).unwrap().order_type, "RENEW");

    // Refund of the renewed period: back to the previous expiry.
    merchant.clear();
    order(&m, OrderKind::UnsubscribeRenewal, &trial).await;
    let calls = merchant.calls();
    assert_eq!(calls[0].field("scene"), Some("UNSUBSCRIBE_RENEWAL_PERIOD"));
    assert_eq!(expire_ms(calls[0].field("expireTime").unwrap()), before);

    // Renewal change: check first, then refresh with the new product.
    merchant.clear();
    let change = order(&m, OrderKind::RenewalChange, &trial).await;
    assert_eq!(
        merchant.activities(),
        ["changeInstanceCheck", "refreshInstance"]
    );
    let calls = merchant.calls();
    let info = &calls[0].fields["productInfo"];
    assert_eq!(info["productId"], "V2-MONTH-PRO");
    assert_eq!(info["skuCode"], "V2-SKU-PRO");
    assert_eq!(info["linearValue"], 50);
    assert!(info["productName"].is_string());
    assert_eq!(calls[1].field("scene"), Some("RENEWAL_CHANGE"));
    assert_eq!(calls[1].field("productId"), Some("V2-MONTH-PRO"));
    let published = api.order(&change).unwrap();
    assert_eq!(
        published.order_line[0].product_info.as_ref().unwrap()[0]
            .sku_code
            .as_deref(),
        Some("V2-SKU-PRO")
    );
    assert_eq!(m.instance(&trial).unwrap().sku_code, "V2-SKU-PRO");
    assert_eq!(m.order(&change).unwrap().status, OrderStatus::Completed);

    // Upgrade of a yearly instance.
    let year = buy(&m, OrderKind::New, "V2-YEAR").await;
    merchant.clear();
    let upgrade = order(&m, OrderKind::Upgrade, &year).await;
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["upgradeInstance"]);
    assert_eq!(calls[0].field("orderId"), Some(upgrade.as_str()));
    assert_eq!(
        calls[0].field("orderLineId"),
        Some(format!("{upgrade}-000001").as_str())
    );
    let published = api.order(&upgrade).unwrap();
    assert_eq!(published.order_type, "CHANGE");
    assert_eq!(
        published.order_line[0].product_info.as_ref().unwrap()[0]
            .product_id
            .as_deref(),
        Some("V2-YEAR-PRO")
    );
    assert_eq!(m.instance(&year).unwrap().product_id, "V2-YEAR-PRO");

    // Unsubscription: release with the unsubscribe order.
    merchant.clear();
    let unsubscribe = order(&m, OrderKind::Unsubscribe, &year).await;
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["releaseInstance"]);
    assert_eq!(calls[0].field("orderId"), Some(unsubscribe.as_str()));
    assert_eq!(m.instance(&year).unwrap().status, InstanceStatus::Released);
    assert_eq!(api.order(&unsubscribe).unwrap().order_type, "UNSUBSCRIBE");

    // On-demand, one-time and package purchases.
    merchant.clear();
    let on_demand = buy(&m, OrderKind::OnDemand, "V2-ONDEMAND").await;
    let one_time = buy(&m, OrderKind::New, "V2-ONETIME").await;
    let package = buy(&m, OrderKind::New, "V2-PKG").await;
    assert_eq!(merchant.calls().len(), 6);
    for (resource, mode) in [
        (&on_demand, "ON_DEMAND"),
        (&one_time, "ONE_TIME"),
        (&package, "ON_DEMAND_PKG"),
    ] {
        let i = m.instance(resource).unwrap();
        assert_eq!(i.status, InstanceStatus::Active);
        let line = &api.order(&i.order_id).unwrap().order_line[0];
        assert_eq!(line.charging_mode, mode);
        assert_eq!(line.expire_time.is_some(), mode == "ON_DEMAND_PKG");
    }
    assert!(merchant.calls().iter().all(|c| c.verified));
    assert!(
        m.place_order(OrderRequest::new(OrderKind::OnDemand).product("V2-MONTH"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn v1_orders_are_get_requests_with_an_auth_token() {
    let merchant = Merchant::start().await;
    let (m, _api) = marketplace(&merchant);
    let resource = buy(&m, OrderKind::New, "V1-MONTH").await;
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["newInstance"]);
    let new = &calls[0];
    assert!(new.verified && new.method == "GET");
    let i = m.instance(&resource).unwrap();
    assert_eq!(new.field("orderId"), Some(i.order_id.as_str()));
    assert_eq!(new.field("productId"), Some("V1-MONTH"));
    assert_eq!(new.field("skuCode"), Some("V1-SKU-BASIC"));
    assert_eq!(new.field("chargingMode"), Some("1"));
    assert_eq!(new.field("periodType"), Some("month"));
    assert_eq!(new.field("periodNumber"), Some("1"));
    assert_eq!(new.field("customerId"), Some(i.customer_id.as_str()));
    assert_eq!(new.field("expireTime").map(expire_ms), i.expire_ms);
    assert!(new.field("businessId").is_some() && new.field("authToken").is_some());
    assert_eq!(i.status, InstanceStatus::Active);
    assert_eq!(
        i.app_info.unwrap()["frontEndUrl"],
        format!("https://app.example.com/inst-{}", i.order_id)
    );

    merchant.clear();
    let renewal = order(&m, OrderKind::Renew, &resource).await;
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["refreshInstance"]);
    assert_eq!(calls[0].field("orderId"), Some(renewal.as_str()));
    assert_eq!(calls[0].field("periodType"), Some("month"));
    merchant.clear();
    order(&m, OrderKind::Upgrade, &resource).await;
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["upgrade"]);
    assert_eq!(calls[0].field("skuCode"), Some("V1-SKU-PRO"));
    assert_eq!(calls[0].field("amount"), Some("50"));

    // Expiry: V1 expireInstance with the purchase order, then release after the grace period.
    merchant.clear();
    let expiry = m.instance(&resource).unwrap().expire_ms.unwrap();
    m.advance(expiry - m.now_ms()).await.unwrap();
    assert_eq!(merchant.activities(), ["expireInstance"]);
    assert_eq!(
        merchant.calls()[0].field("orderId"),
        Some(i.order_id.as_str())
    );
    m.advance(GRACE_MS).await.unwrap();
    assert_eq!(merchant.activities(), ["expireInstance", "releaseInstance"]);
    assert!(
        merchant
            .calls()
            .iter()
            .all(|c| c.verified && c.method == "GET")
    );
    assert!(matches!(
        m.place_order(OrderRequest::new(OrderKind::RenewalChange).resource(&resource))
            .await,
        Err(EmuError::Conflict(_) | EmuError::NotSupported(_))
    ));
}

/// The first failed call's console message after buying `product`.
async fn first_failure(
    merchant: &Merchant,
    product: &str,
    script: impl FnOnce(&mut merchant::Script),
) -> String {
    merchant.script(script);
    let (m, _) = marketplace(merchant);
    m.place_order(OrderRequest::new(OrderKind::New).product(product))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    let calls = m.calls();
    let failed = calls.iter().find(|c| c.verdict == "failed").unwrap();
    assert_eq!(m.messages().len(), 1);
    assert_eq!(m.messages()[0].state, "retrying");
    failed.message.clone().unwrap()
}

#[tokio::test]
async fn answers_are_judged_like_the_seller_console() {
    let merchant = Merchant::start().await;
    assert_eq!(
        first_failure(&merchant, "V2-MONTH", |s| s.content_type =
            Some("text/plain".to_owned()))
        .await,
        console::CONTENT_TYPE
    );
    assert_eq!(
        first_failure(&merchant, "V2-MONTH", |s| {
            *s = merchant::Script {
                omit_instance_id: true,
                ..Default::default()
            }
        })
        .await,
        console::missing("instanceId")
    );
    assert_eq!(
        first_failure(&merchant, "V2-MONTH", |s| {
            *s = merchant::Script {
                status: Some(500),
                ..Default::default()
            }
        })
        .await,
        console::http_code(500)
    );
    assert_eq!(
        first_failure(&merchant, "V2-MONTH", |s| {
            *s = merchant::Script {
                create_code: Some("000106".to_owned()),
                ..Default::default()
            }
        })
        .await,
        console::RESULT_CODE
    );
    assert_eq!(
        first_failure(&merchant, "V1-MONTH", |s| {
            *s = merchant::Script {
                bad_body_sign: true,
                ..Default::default()
            }
        })
        .await,
        console::BODY_SIGN_MISMATCH
    );
    // V2 does not require Body-Sign: a wrong one is only recorded.
    merchant.script(|s| {
        *s = merchant::Script {
            bad_body_sign: true,
            ..Default::default()
        }
    });
    let (m, _) = marketplace(&merchant);
    buy(&m, OrderKind::New, "V2-MONTH").await;
    assert!(m.calls().iter().all(|c| c.verdict == "success"));
}

#[tokio::test]
async fn merchant_down_is_retried_hourly_then_the_order_is_refunded() {
    let merchant = Merchant::start().await;
    merchant.down().await;
    let (m, _) = marketplace(&merchant);
    let placed = m
        .place_order(OrderRequest::new(OrderKind::New).product("V2-YEAR"))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    assert_eq!(m.calls().len(), 1);
    assert_eq!(m.calls()[0].message.as_deref(), Some(console::UNREACHABLE));
    let start = m.calls()[0].at_ms;
    // Three hours in one jump: the three hourly retries that fell in between are made.
    m.advance(3 * HOUR_MS).await.unwrap();
    let calls = m.calls();
    let times: Vec<i64> = calls.iter().map(|c| c.at_ms - start).collect();
    assert_eq!(times, [0, HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS]);
    let order = m.order(&placed.order_id).unwrap();
    assert_eq!(order.status, OrderStatus::Failed);
    assert!(order.refunded);
    assert_eq!(order.message.as_deref(), Some(console::UNREACHABLE));
    assert_eq!(
        m.instance(&placed.resource_id).unwrap().status,
        InstanceStatus::Failed
    );
    let messages = m.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].state, "failed");
    assert!(!messages[0].restartable);
    assert!(matches!(
        m.restart(messages[0].id).await,
        Err(EmuError::Conflict(_))
    ));
    m.advance(10 * HOUR_MS).await.unwrap();
    assert_eq!(m.calls().len(), 4);
}

#[tokio::test]
async fn merchant_back_within_the_window_gets_exactly_one_success() {
    let mut merchant = Merchant::start().await;
    merchant.down().await;
    let (m, _) = marketplace(&merchant);
    let placed = m
        .place_order(OrderRequest::new(OrderKind::New).product("V2-MONTH"))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    m.advance(HOUR_MS).await.unwrap();
    merchant.up().await;
    m.advance(HOUR_MS).await.unwrap();
    m.advance(5 * HOUR_MS).await.unwrap();
    assert_eq!(merchant.activities(), ["newInstance", "queryInstance"]);
    let verdicts: Vec<String> = m
        .calls()
        .iter()
        .filter(|c| c.activity == "newInstance")
        .map(|c| c.verdict.clone())
        .collect();
    assert_eq!(verdicts, ["failed", "failed", "success"]);
    assert_eq!(
        m.order(&placed.order_id).unwrap().status,
        OrderStatus::Completed
    );
    assert!(m.messages().is_empty());
}

#[tokio::test]
async fn a_failed_call_is_restarted_by_hand() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace(&merchant);
    let resource = buy(&m, OrderKind::New, "V2-MONTH").await;
    merchant.script(|s| s.fail_activity = Some(("updateInstanceStatus".to_owned(), 503)));
    let expiry = m.instance(&resource).unwrap().expire_ms.unwrap();
    m.advance(expiry - m.now_ms()).await.unwrap();
    m.advance(2 * HOUR_MS).await.unwrap();
    let messages = m.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.activity, "updateInstanceStatus");
    assert_eq!(message.state, "failed");
    assert_eq!(
        message.attempts, 2,
        "V2 status changes are retried for 1 hour"
    );
    assert_eq!(message.message, console::http_code(503));
    assert!(message.restartable);

    merchant.script(|s| s.fail_activity = None);
    merchant.clear();
    m.restart(message.id).await.unwrap();
    m.run_due().await.unwrap();
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["updateInstanceStatus"]);
    assert_eq!(calls[0].field("status"), Some("FREEZE"));
    assert!(m.messages().is_empty());
    let job = m.jobs().into_iter().find(|j| j.id == message.id).unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.restarts, 1);
}

#[tokio::test]
async fn expiry_freezes_and_the_grace_period_ends_in_release() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace(&merchant);
    let resource = buy(&m, OrderKind::New, "V2-MONTH").await;
    let i = m.instance(&resource).unwrap();
    let expiry = i.expire_ms.unwrap();
    merchant.clear();
    m.advance(expiry - m.now_ms() - 1).await.unwrap();
    assert!(merchant.calls().is_empty());
    m.advance(1).await.unwrap();
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["updateInstanceStatus"]);
    assert_eq!(calls[0].field("status"), Some("FREEZE"));
    assert_eq!(calls[0].field("instanceId"), i.instance_id.as_deref());
    assert_eq!(
        m.instance(&resource).unwrap().status,
        InstanceStatus::Frozen
    );

    m.advance(GRACE_MS - MINUTE_MS).await.unwrap();
    assert_eq!(merchant.calls().len(), 1);
    m.advance(MINUTE_MS).await.unwrap();
    let calls = merchant.calls();
    assert_eq!(
        merchant.activities(),
        ["updateInstanceStatus", "releaseInstance"]
    );
    assert_eq!(calls[1].field("instanceId"), i.instance_id.as_deref());
    assert_eq!(calls[1].field("orderId"), None);
    let released = m.instance(&resource).unwrap();
    assert_eq!(released.status, InstanceStatus::Released);
    let times: Vec<i64> = m.calls().iter().rev().take(2).map(|c| c.at_ms).collect();
    assert_eq!(times, [expiry + GRACE_MS, expiry]);
}

#[tokio::test]
async fn renewal_while_frozen_refreshes_then_unfreezes() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace(&merchant);
    let resource = buy(&m, OrderKind::New, "V2-MONTH").await;
    let expiry = m.instance(&resource).unwrap().expire_ms.unwrap();
    m.advance(expiry - m.now_ms() + 3 * DAY_MS).await.unwrap();
    assert_eq!(
        m.instance(&resource).unwrap().status,
        InstanceStatus::Frozen
    );
    merchant.clear();
    let renewal = order(&m, OrderKind::Renew, &resource).await;
    let calls = merchant.calls();
    assert_eq!(
        merchant.activities(),
        ["refreshInstance", "updateInstanceStatus"]
    );
    assert_eq!(calls[0].field("scene"), Some("RENEWAL"));
    assert_eq!(calls[1].field("status"), Some("UNFREEZE"));
    let i = m.instance(&resource).unwrap();
    assert_eq!(i.status, InstanceStatus::Active);
    assert!(i.expire_ms.unwrap() > expiry + 27 * DAY_MS);
    assert_eq!(m.order(&renewal).unwrap().status, OrderStatus::Completed);
    // No release at the end of the old grace period.
    m.advance(GRACE_MS).await.unwrap();
    assert_eq!(merchant.calls().len(), 2);
}

#[tokio::test]
async fn asynchronous_creation_is_polled_until_ready() {
    let merchant = Merchant::start().await;
    merchant.script(|s| {
        s.create_code = Some("000004".to_owned());
        s.query_pending = 3;
    });
    let (m, _) = marketplace(&merchant);
    let placed = m
        .place_order(OrderRequest::new(OrderKind::New).product("V2-MONTH"))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    assert_eq!(merchant.activities(), ["newInstance", "queryInstance"]);
    assert_eq!(
        m.instance(&placed.resource_id).unwrap().status,
        InstanceStatus::Creating
    );
    m.advance(10 * MINUTE_MS).await.unwrap();
    assert_eq!(
        merchant.activities(),
        [
            "newInstance",
            "queryInstance",
            "queryInstance",
            "queryInstance",
            "queryInstance"
        ]
    );
    let calls = m.calls();
    let polls: Vec<i64> = calls
        .iter()
        .filter(|c| c.activity == "queryInstance")
        .map(|c| c.at_ms - calls[0].at_ms)
        .collect();
    assert_eq!(polls, [0, MINUTE_MS, 2 * MINUTE_MS, 3 * MINUTE_MS]);
    assert_eq!(calls[0].verdict, "processing");
    let i = m.instance(&placed.resource_id).unwrap();
    assert_eq!(i.status, InstanceStatus::Active);
    assert!(i.app_info.is_some());
    assert_eq!(
        m.order(&placed.order_id).unwrap().status,
        OrderStatus::Completed
    );
    assert!(m.messages().is_empty());
}

#[tokio::test]
async fn refused_renewal_change_fails_and_refunds_the_order() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace(&merchant);
    let resource = buy(&m, OrderKind::New, "V2-MONTH").await;
    merchant.script(|s| s.refuse_change = true);
    merchant.clear();
    let change = order(&m, OrderKind::RenewalChange, &resource).await;
    assert_eq!(merchant.activities(), ["changeInstanceCheck"]);
    let o = m.order(&change).unwrap();
    assert_eq!(o.status, OrderStatus::Failed);
    assert!(o.refunded);
    assert_eq!(o.message.as_deref(), Some(console::RESULT_CODE));
    assert_eq!(m.instance(&resource).unwrap().sku_code, "V2-SKU-BASIC");
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emulator.db");
    let merchant = Merchant::start().await;
    merchant.down().await;
    let (order_id, resource, now) = {
        let (m, _) = marketplace(&merchant);
        let m = std::sync::Arc::into_inner(m).unwrap();
        let m = m
            .with_store(
                koogallery_emulator::state::Store::open(&path)
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
        let placed = m
            .place_order(OrderRequest::new(OrderKind::New).product("V2-MONTH"))
            .await
            .unwrap();
        m.run_due().await.unwrap();
        m.advance(HOUR_MS).await.unwrap();
        assert_eq!(m.calls().len(), 2);
        (placed.order_id, placed.resource_id, m.now_ms())
    };
    let mut merchant = merchant;
    merchant.up().await;
    let (m, api) = marketplace(&merchant);
    let m = std::sync::Arc::into_inner(m).unwrap();
    let m = m
        .with_store(
            koogallery_emulator::state::Store::open(&path)
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(m.now_ms() >= now);
    assert_eq!(m.calls().len(), 2);
    assert_eq!(m.messages().len(), 1);
    assert!(api.order(&order_id).is_some(), "orders are published again");
    m.advance(HOUR_MS).await.unwrap();
    assert_eq!(merchant.activities(), ["newInstance", "queryInstance"]);
    assert_eq!(m.order(&order_id).unwrap().status, OrderStatus::Completed);
    assert_eq!(
        m.instance(&resource).unwrap().status,
        InstanceStatus::Active
    );
}

#[tokio::test]
async fn license_families_follow_their_own_protocols() {
    let merchant = Merchant::start().await;
    let (m, api) = marketplace(&merchant);

    // License 1.0: V1 GET getLicense; the license comes back in the answer.
    let lic1 = buy(&m, OrderKind::New, "LIC1-YEAR").await;
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["getLicense"]);
    assert!(calls[0].verified && calls[0].method == "GET");
    let i = m.instance(&lic1).unwrap();
    assert_eq!(calls[0].field("orderId"), Some(i.order_id.as_str()));
    assert_eq!(calls[0].field("periodType"), Some("year"));
    assert_eq!(i.status, InstanceStatus::Active);
    assert_eq!(i.license, Some(format!("LICENSE-{}", i.order_id)));
    merchant.clear();
    order(&m, OrderKind::Renew, &lic1).await;
    assert_eq!(merchant.activities(), ["refreshLicense"]);
    let expiry = m.instance(&lic1).unwrap().expire_ms.unwrap();
    m.advance(expiry - m.now_ms() + GRACE_MS).await.unwrap();
    assert_eq!(
        merchant.activities(),
        ["refreshLicense", "expireLicense", "releaseLicense"]
    );
    assert!(merchant.calls().iter().all(|c| c.verified));

    // License code 2.0: nothing is called at purchase; later calls use the license-code key.
    merchant.clear();
    let code = buy(&m, OrderKind::New, "LCODE-YEAR").await;
    assert!(merchant.calls().is_empty());
    let i = m.instance(&code).unwrap();
    let license = i.license.clone().unwrap();
    assert!(license.starts_with("PL"));
    assert_eq!(m.order(&i.order_id).unwrap().status, OrderStatus::Completed);
    assert!(api.order(&i.order_id).is_some());
    let renewal = order(&m, OrderKind::Renew, &code).await;
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["refreshLicenseCode"]);
    assert_eq!(calls[0].key, "license");
    assert_eq!(calls[0].field("license"), Some(license.as_str()));
    assert_eq!(calls[0].field("scene"), Some("RENEWAL"));
    assert_eq!(calls[0].field("orderId"), Some(renewal.as_str()));
    let expiry = m.instance(&code).unwrap().expire_ms.unwrap();
    m.advance(expiry - m.now_ms() + 2 * DAY_MS).await.unwrap();
    merchant.clear();
    order(&m, OrderKind::Renew, &code).await;
    assert_eq!(
        merchant.activities(),
        ["refreshLicenseCode", "updateLicenseCodeStatus"]
    );
    assert_eq!(merchant.calls()[1].field("status"), Some("UNFREEZE"));
    merchant.clear();
    order(&m, OrderKind::Unsubscribe, &code).await;
    assert_eq!(merchant.activities(), ["releaseLicenseCode"]);
    assert!(merchant.calls().iter().all(|c| c.key == "license"));

    // Online License: the SaaS V2 instance activities; a synchronous create needs no polling.
    merchant.clear();
    let online = buy(&m, OrderKind::New, "OLIC-YEAR").await;
    assert_eq!(merchant.activities(), ["newInstance"]);
    assert_eq!(m.instance(&online).unwrap().status, InstanceStatus::Active);
    merchant.clear();
    let job = m
        .request_license(&online, Some("04:7C:16:5E:E3:5D|DISK||CPU".to_owned()))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["getLicenseAsync"]);
    assert_eq!(calls[0].fields["eventId"], job.body["eventId"]);
    assert!(calls[0].field("effectiveTime").unwrap().ends_with(" z"));
    assert_eq!(
        calls[0].field("deviceFingerprint"),
        Some("04:7C:16:5E:E3:5D|DISK||CPU")
    );
    assert!(m.request_license(&code, None).await.is_err());
    assert!(matches!(
        m.place_order(OrderRequest::new(OrderKind::Upgrade).resource(&online))
            .await,
        Err(EmuError::NotSupported(_))
    ));

    // Joint operation: as SaaS V2, then the kit sync calls with the kit key (the `jointop` module).
    merchant.clear();
    buy(&m, OrderKind::New, "JOINT-YEAR").await;
    assert_eq!(
        merchant.activities(),
        [
            "newInstance",
            "queryInstance",
            "tenantSync",
            "applicationSync",
            "allOrgSync",
            "authSync"
        ]
    );
    let keys: Vec<_> = merchant.calls().iter().map(|c| c.key).collect();
    assert_eq!(keys, ["basic", "basic", "kit", "kit", "kit", "kit"]);
}

#[tokio::test]
async fn order_notification_is_sent_with_the_generic_key() {
    let merchant = Merchant::start().await;
    let (m, _) = marketplace(&merchant);
    let mut product = m
        .products()
        .into_iter()
        .find(|p| p.product_id == "V1-MONTH")
        .unwrap();
    product.product_id = "V1-MONTH-NOTIFY".to_owned();
    product.keys = koogallery_emulator::catalog::MerchantKeys::default();
    product.order_notify = true;
    m.add_product(product).await.unwrap();
    let resource = buy(&m, OrderKind::New, "V1-MONTH-NOTIFY").await;
    let i = m.instance(&resource).unwrap();
    let calls = merchant.calls();
    assert_eq!(merchant.activities(), ["newInstance", "orderNotify"]);
    assert_eq!(calls[1].method, "POST");
    assert_eq!(calls[1].key, "generic");
    assert_eq!(calls[1].field("orderId"), Some(i.order_id.as_str()));
    assert_eq!(
        calls[1].field("orderLineId"),
        Some(i.order_line_id.as_str())
    );
    assert_eq!(calls[1].field("testFlag"), Some("0"));
    assert_eq!(m.order(&i.order_id).unwrap().status, OrderStatus::Completed);
    assert!(m.calls().iter().all(|c| c.verdict == "success"));
}

#[tokio::test]
async fn v1_contact_fields_are_encrypted_and_extend_params_encoded() {
    let merchant = Merchant::start().await;
    let (m, api) = marketplace(&merchant);
    let mut product = m
        .products()
        .into_iter()
        .find(|p| p.product_id == "V1-YEAR")
        .unwrap();
    product.product_id = "V1-YEAR-CONTACT".to_owned();
    product.keys = koogallery_emulator::catalog::MerchantKeys::default();
    product.send_mobile_phone = true;
    product.send_email = true;
    product.extend_params = vec![koogallery_emulator::catalog::ProductParam {
        name: "emailDomainName".to_owned(),
        value: "shop.example.com".to_owned(),
    }];
    m.add_product(product).await.unwrap();
    let resource = buy(&m, OrderKind::New, "V1-YEAR-CONTACT").await;
    let call = &merchant.calls()[0];
    assert!(call.verified);
    let cipher =
        koogallery::crypto::FieldCipher::new(merchant::KEY, koogallery::crypto::KeySize::Aes256);
    let settings = m.settings();
    assert_eq!(
        cipher.decrypt(call.field("mobilePhone").unwrap()).unwrap(),
        settings.mobile_phone
    );
    assert_eq!(
        cipher.decrypt(call.field("email").unwrap()).unwrap(),
        settings.email
    );
    let params = koogallery::model::saas_v1::decode_saas_extend_params(
        call.field("saasExtendParams").unwrap(),
    )
    .unwrap();
    assert_eq!(params[0].value, "shop.example.com");
    let info = api.order(&m.instance(&resource).unwrap().order_id).unwrap();
    let line_params = info.order_line[0].extend_params.clone().unwrap();
    assert_eq!(line_params[0].name, "emailDomainName");
    assert_eq!(
        info.buyer_info.unwrap().email.as_deref(),
        Some(settings.email.as_str())
    );
}

#[tokio::test]
async fn a_rule_violation_freezes_and_unfreezes_and_the_observer_sees_it() {
    let merchant = Merchant::start().await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (m, _) = marketplace(&merchant);
    let seen2 = seen.clone();
    let m = std::sync::Arc::into_inner(m)
        .unwrap()
        .with_observer(move |i| {
            seen2
                .lock()
                .unwrap()
                .push((i.resource_id.clone(), i.status))
        });
    let v2 = buy(&m, OrderKind::OnDemand, "V2-ONDEMAND").await;
    let v1 = buy(&m, OrderKind::OnDemand, "V1-ONDEMAND").await;
    merchant.clear();
    for resource in [&v2, &v1] {
        m.set_status(resource, true).await.unwrap();
        m.run_due().await.unwrap();
        assert_eq!(m.instance(resource).unwrap().status, InstanceStatus::Frozen);
        m.set_status(resource, false).await.unwrap();
        m.run_due().await.unwrap();
    }
    let calls = merchant.calls();
    assert_eq!(
        merchant.activities(),
        [
            "updateInstanceStatus",
            "updateInstanceStatus",
            "instanceStatus",
            "instanceStatus"
        ]
    );
    assert_eq!(calls[0].field("status"), Some("FREEZE"));
    assert_eq!(calls[1].field("status"), Some("UNFREEZE"));
    assert_eq!(calls[2].field("instanceStatus"), Some("FREEZE"));
    assert_eq!(calls[3].field("instanceStatus"), Some("NORMAL"));
    assert!(calls.iter().all(|c| c.verified));
    // A frozen-by-violation instance is not released after 15 days.
    m.set_status(&v2, true).await.unwrap();
    m.advance(GRACE_MS * 2).await.unwrap();
    assert_eq!(m.instance(&v2).unwrap().status, InstanceStatus::Frozen);
    assert!(m.set_status(&v2, true).await.is_err());
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&(v2.clone(), InstanceStatus::Active)));
    assert!(seen.contains(&(v1.clone(), InstanceStatus::Frozen)));
}
