//! The open-API client against the emulated KooGallery open API (openapi.md §2, §5): signing,
//! order decoding, and error classification.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use koogallery_emulator::openapi::{
    self, MOCK_ORDER_IDS, ORDER_NOT_FOUND, ORDER_QUERY_PATH, OpenApi, Verdict, mock_line_id,
};
use koogate::openapi::{OpenApiClient, OpenApiError};

const AK: &str = "CLIENTTESTAK000000";
const SK: &str = "CLIENTTESTSK0000000000000000000000000000";

/// The emulator's open API on the system clock, and a client for it.
async fn start() -> (Arc<OpenApi>, OpenApiClient) {
    let (api, addr) = start_emulator().await;
    let client = OpenApiClient::new(&format!("http://{addr}"), AK, SK).unwrap();
    (api, client)
}

async fn start_emulator() -> (Arc<OpenApi>, SocketAddr) {
    let api = Arc::new(OpenApi::new([(AK, SK)]));
    let (addr, _server) = openapi::spawn(api.clone()).await.unwrap();
    (api, addr)
}

fn assert_no_credentials(e: &OpenApiError) {
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(AK) && !text.contains(SK), "{text}");
        assert!(!text.contains("SDK-HMAC-SHA256 Access"), "{text}");
    }
}

#[tokio::test]
async fn every_mock_order_is_fetched_and_typed() {
    let (api, client) = start().await;
    for id in MOCK_ORDER_IDS {
        let info = client.query_order(id, None).await.unwrap();
        assert_eq!(info.order_id, id);
        assert_eq!(info.create_time, "20241121090846");
        assert_eq!(info.order_line.len(), 1);
        let line = &info.order_line[0];
        assert_eq!(line.order_line_id, mock_line_id(id));
        let product = &line.product_info.as_ref().unwrap()[0];
        assert!(product.sku_code.is_some() && product.product_id.is_some());
        assert!(product.linear_value.as_ref().unwrap().as_i64().unwrap() > 0);
        let buyer = info.buyer_info.as_ref().unwrap();
        assert_eq!(
            buyer.customer_id.as_deref(),
            Some("459bbbec25d24749b2eb83be37b602a8")
        );
        assert_eq!(buyer.email, None);
        // The whole order, as the emulator holds it.
        assert_eq!(Some(info), api.order(id));
    }

    let year = client.query_order("MOCKPERIODYEARNEW", None).await.unwrap();
    let line = &year.order_line[0];
    assert_eq!(year.order_type, "NEW");
    assert_eq!(line.charging_mode, "PERIOD");
    assert_eq!(line.period_type.as_deref(), Some("year"));
    assert_eq!(line.period_number.as_ref().unwrap().as_i64(), Some(1));
    assert_eq!(line.expire_time.as_deref(), Some("20251121235959"));
    assert_eq!(line.currency.as_deref(), Some("100"));
    assert_eq!(
        line.product_info.as_ref().unwrap()[0]
            .linear_value
            .as_ref()
            .unwrap()
            .as_i64(),
        Some(50)
    );

    let expected = [
        ("MOCKONETIMENEW", "NEW", "ONE_TIME"),
        ("MOCKONDEMAND", "NEW", "ON_DEMAND"),
        ("MOCKONDEMANDPKG", "NEW", "ON_DEMAND_PKG"),
        ("MOCKPERIODDAYTRIAL", "TRIAL", "PERIOD"),
        ("MOCKMONTYTRIALTOFORMAL", "TRIAL_TO_FORMAL", "PERIOD"),
        ("MOCKMONTYUNSUBSCRIBE", "UNSUBSCRIBE", "PERIOD"),
        ("MOCKMONTYRENEW", "RENEW", "PERIOD"),
        ("MOCKMONTYCHANGE", "CHANGE", "PERIOD"),
    ];
    for (id, order_type, mode) in expected {
        let info = client.query_order(id, None).await.unwrap();
        assert_eq!(info.order_type, order_type, "{id}");
        assert_eq!(info.order_line[0].charging_mode, mode, "{id}");
    }
    let trial = client
        .query_order("MOCKPERIODDAYTRIAL", None)
        .await
        .unwrap();
    assert_eq!(trial.order_line[0].period_type.as_deref(), Some("day"));
    let on_demand = client.query_order("MOCKONDEMAND", None).await.unwrap();
    assert_eq!(on_demand.order_line[0].expire_time, None);
}

#[tokio::test]
async fn order_line_filter() {
    let (api, client) = start().await;
    let mut order = api.order("MOCKMONTYCHANGE").unwrap();
    order.order_id = "CS0001".to_owned();
    order.order_line[0].order_line_id = "CS0001-000001".to_owned();
    let mut second = order.order_line[0].clone();
    second.order_line_id = "CS0001-000002".to_owned();
    order.order_line.push(second);
    api.add_order(order);

    let all = client.query_order("CS0001", None).await.unwrap();
    assert_eq!(all.order_line.len(), 2);
    let one = client
        .query_order("CS0001", Some("CS0001-000002"))
        .await
        .unwrap();
    assert_eq!(one.order_line.len(), 1);
    assert_eq!(one.order_line[0].order_line_id, "CS0001-000002");

    let line = mock_line_id("MOCKMONTYRENEW");
    let mock = client
        .query_order("MOCKMONTYRENEW", Some(&line))
        .await
        .unwrap();
    assert_eq!(mock.order_line[0].order_line_id, line);

    let e = client
        .query_order("CS0001", Some("CS0001-000009"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OpenApiError::Business { code, .. } if code == ORDER_NOT_FOUND),
        "{e:?}"
    );
}

#[tokio::test]
async fn wrong_secret_key_is_a_gateway_error_not_retried() {
    let (api, addr) = start_emulator().await;
    let wrong = OpenApiClient::new(&format!("http://{addr}"), AK, "WRONG-SECRET-KEY").unwrap();
    let e = wrong.query_order("MOCKONDEMAND", None).await.unwrap_err();
    match &e {
        OpenApiError::Gateway { status, code, .. } => {
            assert_eq!((*status, code.as_str()), (401, "APIGW.0301"));
        }
        other => panic!("expected a gateway error, got {other:?}"),
    }
    assert!(!e.is_retryable());
    assert_no_credentials(&e);
    assert!(!e.to_string().contains("WRONG-SECRET-KEY"));
    let log = api.requests();
    assert!(matches!(
        log.last().unwrap().verdict,
        Verdict::Rejected { .. }
    ));
}

#[tokio::test]
async fn unknown_access_key_is_a_gateway_error() {
    let (_api, addr) = start_emulator().await;
    let stranger = OpenApiClient::new(&format!("http://{addr}"), "OTHERAK", SK).unwrap();
    let e = stranger
        .query_order("MOCKONDEMAND", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OpenApiError::Gateway { status: 401, code, .. } if code == "APIGW.0301"),
        "{e:?}"
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn unknown_order_is_a_business_error_not_retried() {
    let (_api, client) = start().await;
    let e = client.query_order("NOSUCHORDER", None).await.unwrap_err();
    assert!(
        matches!(&e, OpenApiError::Business { code, .. } if code == ORDER_NOT_FOUND),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert_no_credentials(&e);
}

#[tokio::test]
async fn invalid_parameters_are_refused_before_sending() {
    let (api, client) = start().await;
    for (order, line) in [
        ("", None),
        (&"X".repeat(65)[..], None),
        ("A", Some(&"L".repeat(65)[..])),
    ] {
        let e = client.query_order(order, line).await.unwrap_err();
        assert!(matches!(e, OpenApiError::Config(_)), "{e:?}");
        assert!(!e.is_retryable());
    }
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn closed_port_is_a_retryable_transport_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = OpenApiClient::new(&format!("http://{addr}"), AK, SK).unwrap();
    let e = client.query_order("MOCKONDEMAND", None).await.unwrap_err();
    assert!(matches!(e, OpenApiError::Transport(_)), "{e:?}");
    assert!(e.is_retryable());
    assert_no_credentials(&e);
}

#[tokio::test]
async fn an_unreachable_host_is_retried_on_the_fallback_host() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let (api, fallback) = start_emulator().await;
    let client = OpenApiClient::new(&format!("http://{closed}"), AK, SK)
        .unwrap()
        .with_fallback(&format!("http://{fallback}"))
        .unwrap();
    let order = client.query_order("MOCKONDEMAND", None).await.unwrap();
    assert_eq!(order.order_id, "MOCKONDEMAND");
    // Signed for the fallback host: the emulator verified it.
    let log = api.requests();
    assert_eq!(log.len(), 1);
    assert!(log[0].verdict.is_verified(), "{log:?}");
    // A host that answers, even with an error, is not retried elsewhere.
    let (_, reachable) = start_emulator().await;
    let client = OpenApiClient::new(&format!("http://{reachable}"), AK, "wrong-secret")
        .unwrap()
        .with_fallback(&format!("http://{fallback}"))
        .unwrap();
    assert!(matches!(
        client.query_order("MOCKONDEMAND", None).await,
        Err(OpenApiError::Gateway { .. })
    ));
    assert_eq!(
        api.requests().len(),
        1,
        "the fallback host saw nothing more"
    );
}

#[tokio::test]
async fn the_emulator_log_shows_the_signature_verified() {
    let (api, client) = start().await;
    client.query_order("MOCKPERIODYEARNEW", None).await.unwrap();
    client
        .query_order("MOCKPERIODYEARNEW", Some("MOCKPERIODYEARNEW-000001"))
        .await
        .unwrap();
    // Characters that need encoding: the query is sent exactly as signed.
    let e = client.query_order("A B/中+", None).await.unwrap_err();
    assert!(matches!(e, OpenApiError::Business { .. }), "{e:?}");

    let log = api.requests();
    assert_eq!(log.len(), 3);
    for entry in &log {
        assert_eq!(entry.method, "GET");
        assert_eq!(entry.path, ORDER_QUERY_PATH);
        assert_eq!(entry.status, 200);
        assert_eq!(
            entry.verdict,
            Verdict::Verified {
                access_key: AK.to_owned()
            }
        );
    }
    assert_eq!(log[0].query, "orderId=MOCKPERIODYEARNEW");
    assert_eq!(
        log[1].query,
        "orderId=MOCKPERIODYEARNEW&orderLineId=MOCKPERIODYEARNEW-000001"
    );
    assert_eq!(log[2].query, "orderId=A%20B%2F%E4%B8%AD%2B");
}

/// A stand-in for KooGallery answering canned bodies, chosen by `orderId`, for the answers the
/// emulator never gives.
async fn canned() -> SocketAddr {
    use axum::extract::RawQuery;
    use axum::response::IntoResponse;

    async fn answer(RawQuery(query): RawQuery) -> axum::response::Response {
        let query = query.unwrap_or_default();
        let order = query
            .split('&')
            .find_map(|p| p.strip_prefix("orderId="))
            .unwrap_or_default()
            .to_owned();
        let json = |status: StatusCode, body: &'static str| {
            (status, [("content-type", "application/json")], body).into_response()
        };
        match order.as_str() {
            "HTML503" => (StatusCode::SERVICE_UNAVAILABLE, "<html>busy</html>").into_response(),
            "THROTTLED" => (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
            "SYSERR" => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"resultCode":"MKT.0999","resultMsg":"system error"}"#,
            ),
            "GW504" => json(
                StatusCode::GATEWAY_TIMEOUT,
                r#"{"error_code":"APIGW.0201","error_msg":"upstream timeout","request_id":"r1"}"#,
            ),
            "NOTJSON" => (StatusCode::OK, "hello").into_response(),
            "NOINFO" => json(
                StatusCode::OK,
                r#"{"resultCode":"MKT.0000","resultMsg":"Success"}"#,
            ),
            "OTHER" => json(
                StatusCode::OK,
                r#"{"resultCode":"MKT.0000","resultMsg":"Success","orderInfo":{"orderId":"ELSE","orderType":"NEW","createTime":"20241121090846","orderLine":[{"orderLineId":"L","chargingMode":"PERIOD"}]}}"#,
            ),
            "BADTYPE" => json(
                StatusCode::OK,
                r#"{"resultCode":"MKT.0000","resultMsg":"Success","orderInfo":{"orderId":"BADTYPE","orderType":"GIFT","createTime":"20241121090846","orderLine":[{"orderLineId":"L","chargingMode":"PERIOD"}]}}"#,
            ),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }

    let app = axum::Router::new().route(ORDER_QUERY_PATH, axum::routing::get(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

#[tokio::test]
async fn unexpected_answers_are_classified() {
    let addr = canned().await;
    let client = OpenApiClient::new(&format!("http://{addr}"), AK, SK).unwrap();
    let e = |id: &'static str| {
        let client = &client;
        async move { client.query_order(id, None).await.unwrap_err() }
    };

    let err = e("HTML503").await;
    assert!(
        matches!(&err, OpenApiError::Http { status: 503, body_excerpt } if body_excerpt.contains("busy")),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let err = e("THROTTLED").await;
    assert!(
        matches!(err, OpenApiError::Http { status: 429, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let err = e("UNKNOWN").await;
    assert!(
        matches!(err, OpenApiError::Http { status: 404, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    let err = e("SYSERR").await;
    assert!(
        matches!(&err, OpenApiError::Business { code, .. } if code == "MKT.0999"),
        "{err:?}"
    );
    assert!(err.is_retryable());

    let err = e("GW504").await;
    assert!(
        matches!(&err, OpenApiError::Gateway { status: 504, message, .. } if message.contains("r1")),
        "{err:?}"
    );
    assert!(err.is_retryable());

    for id in ["NOTJSON", "NOINFO", "OTHER", "BADTYPE"] {
        let err = e(id).await;
        assert!(matches!(err, OpenApiError::Decode(_)), "{id}: {err:?}");
        assert!(!err.is_retryable());
    }
}
