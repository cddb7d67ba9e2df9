//! Order data read from KooGallery (the emulator's open API) in jobs, on both databases.

#![allow(clippy::unwrap_used)]

mod common;

use common::{BACKENDS, GENERIC_KEY, Options, TestDb, TestServer};

#[tokio::test]
async fn create_fetches_the_order_then_provisions() {
    for backend in BACKENDS {
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
}

#[tokio::test]
async fn an_order_that_does_not_exist_fails_the_instance_and_resends_say_so() {
    for backend in BACKENDS {
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
}
