//! Order data read from KooGallery (the emulator's open API) in jobs, on both databases.

use crate::common::{self, Backend, GENERIC_KEY, Options, TestDb, TestServer, backend_tests};

backend_tests!(create_fetches_the_order_then_provisions);
async fn create_fetches_the_order_then_provisions(backend: Backend) {
    let (url, api) = common::openapi().await;
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            openapi_url: Some(url),
            ..Options::default()
        },
    )
    .await;
    let r = s.v2(r#"{"activity":"newInstance","businessId":"biz-mock","orderId":"MOCKPERIODYEARNEW","orderLineId":"MOCKPERIODYEARNEW-000001"}"#).await;
    r.expect("000004");
    s.wait_state("biz-mock", "active").await;
    // The instance carries what the order says; order, line and product are stored.
    let row = sqlx::query("SELECT product_id, sku_code, charging_mode, quantity, customer_id, expire_at FROM instances WHERE instance_id = 'biz-mock'")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    use sqlx::Row;
    assert_eq!(
        row.get::<Option<String>, _>("product_id").as_deref(),
        Some("OFFI846204237451911168")
    );
    assert_eq!(
        row.get::<Option<String>, _>("sku_code").as_deref(),
        Some("0a4d1578-5295-46a7-92d4-7c803dccc51d")
    );
    assert_eq!(
        row.get::<Option<String>, _>("charging_mode").as_deref(),
        Some("PERIOD")
    );
    assert_eq!(
        row.get::<Option<String>, _>("quantity").as_deref(),
        Some("50")
    );
    assert_eq!(
        row.get::<Option<String>, _>("customer_id").as_deref(),
        Some("459bbbec25d24749b2eb83be37b602a8")
    );
    assert_eq!(
        row.get::<Option<i64>, _>("expire_at"),
        Some(koogallery::time::epoch_millis(
            koogallery::time::parse_expire_time("20251121235959").unwrap()
        ))
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM order_line_products WHERE order_line_id = 'MOCKPERIODYEARNEW-000001'").await, 1);
    let buyer: String = sqlx::Row::get(
        &sqlx::query("SELECT buyer_sealed FROM orders WHERE order_id = 'MOCKPERIODYEARNEW'")
            .fetch_one(&s.db.pool)
            .await
            .unwrap(),
        0,
    );
    assert!(
        !buyer.contains("18688888888"),
        "the buyer's phone is sealed at rest"
    );
    // The emulator saw exactly one signed, verified order query.
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{backend:?}: {requests:?}");
    assert!(requests[0].verdict.is_verified());

    // An upgrade reads the new specification from its order.
    s.v2(r#"{"activity":"upgradeInstance","instanceId":"biz-mock","orderId":"MOCKMONTYCHANGE","orderLineId":"MOCKMONTYCHANGE-000001"}"#).await.expect("000000");
    s.wait_count("SELECT COUNT(*) FROM instance_events WHERE instance_id = 'biz-mock' AND kind = 'specification_changed'", 1).await;
    // orderNotify (generic key) stores the order.
    s.v2_with(GENERIC_KEY, r#"{"activity":"orderNotify","orderId":"MOCKONETIMENEW","orderLineId":"MOCKONETIMENEW-000001","testFlag":"0"}"#).await.assert_wellformed(GENERIC_KEY);
    s.wait_count(
        "SELECT COUNT(*) FROM orders WHERE order_id = 'MOCKONETIMENEW'",
        1,
    )
    .await;
    s.stop().await;
}

backend_tests!(an_order_that_does_not_exist_fails_the_instance_and_resends_say_so);
async fn an_order_that_does_not_exist_fails_the_instance_and_resends_say_so(backend: Backend) {
    let (url, _api) = common::openapi().await;
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            openapi_url: Some(url),
            ..Options::default()
        },
    )
    .await;
    let body = r#"{"activity":"newInstance","businessId":"biz-ghost","orderId":"CS-GHOST","orderLineId":"CS-GHOST-000001"}"#;
    s.v2(body).await.expect("000004");
    s.wait_state("biz-ghost", "failed").await;
    // KooGallery's hourly retries now get the failure, so the order fails and is refunded.
    let r = s.v2(&body.replace("biz-ghost", "biz-ghost-2")).await;
    r.expect("000104");
    assert!(r.msg().contains("CS-GHOST"), "{}", r.msg());
    s.v2(r#"{"activity":"queryInstance","instanceId":"biz-ghost"}"#)
        .await
        .expect("000104");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM jobs WHERE status = 'dead'")
            .await,
        1,
        "{backend:?}"
    );
    s.stop().await;
}

/// An order of several on-demand and period lines, placed in the emulator: lines 1 and 2 are
/// on-demand for the same product, line 3 on-demand for another product, line 4 period.
fn multi_line_order(order_id: &str) -> koogallery::model::openapi::OrderInfo {
    let mut order = koogallery_emulator::openapi::mock_orders()
        .into_iter()
        .find(|o| o.order_id == "MOCKONDEMAND")
        .unwrap();
    order.order_id = order_id.to_owned();
    let template = order.order_line[0].clone();
    let line = |n: u32, mode: &str, product: &str| {
        let mut l = template.clone();
        l.order_line_id = format!("{order_id}-00000{n}");
        l.charging_mode = mode.to_owned();
        l.product_info.as_mut().unwrap()[0].product_id = Some(product.to_owned());
        l
    };
    order.order_line = vec![
        line(1, "ON_DEMAND", "PROD-P"),
        line(2, "ON_DEMAND", "PROD-P"),
        line(3, "ON_DEMAND", "PROD-Q"),
        line(4, "PERIOD", "PROD-P"),
    ];
    order
}

fn new_instance(order_id: &str, line: u32, business_id: &str) -> String {
    format!(
        r#"{{"activity":"newInstance","businessId":"{business_id}","orderId":"{order_id}","orderLineId":"{order_id}-00000{line}"}}"#
    )
}

backend_tests!(on_demand_lines_of_one_product_share_one_instance);
/// saas.md §5.1, §7: on-demand lines are keyed by (orderId, productId); the request carries no
/// productId, so a second line of an order is resolved by reading the order inline.
async fn on_demand_lines_of_one_product_share_one_instance(backend: Backend) {
    let (url, api) = common::openapi().await;
    api.add_order(multi_line_order("ODMULTI1"));
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            openapi_url: Some(url),
            ..Options::default()
        },
    )
    .await;
    let first = s.v2(&new_instance("ODMULTI1", 1, "biz-1")).await;
    assert_eq!(first.json["instanceId"], "biz-1");
    // Line 2: same order, same on-demand product → the same instance, not a second one.
    let second = s.v2(&new_instance("ODMULTI1", 2, "biz-2")).await;
    assert_eq!(second.json["instanceId"], "biz-1", "{backend:?}");
    // A resend of line 2 (new businessId) still leads there.
    let resend = s.v2(&new_instance("ODMULTI1", 2, "biz-2b")).await;
    assert_eq!(resend.json["instanceId"], "biz-1", "{backend:?}");
    // Another on-demand product, and a period line of the same product: their own instances.
    let other = s.v2(&new_instance("ODMULTI1", 3, "biz-3")).await;
    assert_eq!(other.json["instanceId"], "biz-3", "{backend:?}");
    let period = s.v2(&new_instance("ODMULTI1", 4, "biz-4")).await;
    assert_eq!(period.json["instanceId"], "biz-4", "{backend:?}");
    for reply in [&first, &second, &resend, &other, &period] {
        reply.assert_wellformed(common::BASIC_KEY);
        assert!(matches!(reply.code(), "000000" | "000004"), "{reply:?}");
    }
    assert_eq!(
        s.count("SELECT COUNT(*) FROM instances WHERE order_id = 'ODMULTI1'")
            .await,
        3,
        "{backend:?}"
    );
    s.wait_state("biz-1", "active").await;
    s.wait_state("biz-3", "active").await;
    s.wait_state("biz-4", "active").await;
    // Once provisioned, line 2 answers with the ready instance.
    s.v2(&new_instance("ODMULTI1", 2, "biz-2c"))
        .await
        .expect("000000");
    s.stop().await;
}

backend_tests!(concurrent_on_demand_lines_create_one_instance);
/// Concurrent first calls of two on-demand lines of one product, spread over many duplicates:
/// exactly one instance, and every answer names it.
async fn concurrent_on_demand_lines_create_one_instance(backend: Backend) {
    let (url, api) = common::openapi().await;
    api.add_order(multi_line_order("ODMULTI2"));
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            openapi_url: Some(url),
            ..Options::default()
        },
    )
    .await;
    let s = std::sync::Arc::new(s);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let s = s.clone();
        let body = new_instance("ODMULTI2", 1 + i % 2, &format!("biz-c{i}"));
        tasks.spawn(async move { s.v2(&body).await });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        assert!(matches!(r.code(), "000000" | "000004"), "{r:?}");
        ids.insert(r.json["instanceId"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "{backend:?}: {ids:?}");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM instances WHERE order_id = 'ODMULTI2'")
            .await,
        1,
        "{backend:?}"
    );
}

backend_tests!(second_line_with_the_open_api_down_changes_nothing);
/// The order of a second line cannot be read: `000005`, and nothing of that line is written.
async fn second_line_with_the_open_api_down_changes_nothing(backend: Backend) {
    // Nothing listens there: every order read fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let db = TestDb::fresh(backend).await;
    let s = TestServer::start(
        &db,
        Options {
            openapi_url: Some(url),
            ..Options::default()
        },
    )
    .await;
    s.v2(&new_instance("ODMULTI3", 1, "biz-1"))
        .await
        .expect("000004");
    let r = s.v2(&new_instance("ODMULTI3", 2, "biz-2")).await;
    r.expect("000005");
    assert!(r.msg().contains("ODMULTI3"), "{r:?}");
    assert_eq!(s.count("SELECT COUNT(*) FROM instances").await, 1);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM instance_keys WHERE key_text <> 'v2first|ODMULTI3'")
            .await,
        0
    );
    s.stop().await;
}
