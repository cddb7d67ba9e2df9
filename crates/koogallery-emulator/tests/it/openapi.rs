//! The emulated open API over HTTP: APIG signature check (security.md §12, openapi.md §2) and
//! the order query with its mock orders (openapi.md §5).

use std::net::SocketAddr;
use std::sync::Arc;

use koogallery::model::Validate;
use koogallery::model::openapi::{
    ApigError as GatewayErrorBody, GatewayErrorCode, OrderQueryResponse,
};
use koogallery::sign::apig;
use koogallery_emulator::openapi::{
    self, MOCK_ORDER_IDS, ORDER_NOT_FOUND, ORDER_QUERY_PATH, OpenApi, Verdict, mock_line_id,
};

const AK: &str = "TESTAK0000000000";
const SK: &str = "TESTSK0000000000000000000000000000000000";
const DATE: &str = "20241121T090846Z";

fn date_ms(date: &str) -> i64 {
    koogallery::time::epoch_millis(koogallery::time::parse_sdk_date(date).unwrap())
}

/// An emulator whose clock stands at [`DATE`] + `offset_ms`.
async fn start(offset_ms: i64) -> (Arc<OpenApi>, SocketAddr) {
    let now = date_ms(DATE) + offset_ms;
    let api = Arc::new(
        OpenApi::new([
            (AK, SK),
            (
                "EXAMPLEAK0000000000",
                "EXAMPLESK0000000000000000000000000000000",
            ),
        ])
        .with_clock(move || now),
    );
    let (addr, _server) = openapi::spawn(api.clone()).await.unwrap();
    (api, addr)
}

struct Call<'a> {
    host: String,
    path: &'a str,
    signed_query: Vec<(String, String)>,
    /// The query sent, when it differs from the signed one.
    sent_query: Option<Vec<(String, String)>>,
    ak: &'a str,
    sk: &'a str,
    date: &'a str,
    authorize: bool,
}

impl<'a> Call<'a> {
    fn new(addr: SocketAddr, query: &[(&str, &str)]) -> Self {
        Self {
            host: addr.to_string(),
            path: ORDER_QUERY_PATH,
            signed_query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            sent_query: None,
            ak: AK,
            sk: SK,
            date: DATE,
            authorize: true,
        }
    }

    /// Signs as the merchant does and sends to `addr`; returns the status and the body.
    async fn send(&self, addr: SocketAddr) -> (u16, Vec<u8>) {
        let headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let signed = apig::sign(
            &apig::Request {
                method: "GET",
                host: &self.host,
                path: self.path,
                query: &self.signed_query,
                headers: &headers,
                body: b"",
            },
            self.ak,
            self.sk,
            self.date,
        );
        let query = apig::canonical_query(self.sent_query.as_ref().unwrap_or(&self.signed_query));
        let mut url = format!("http://{addr}{}", self.path);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut request = reqwest::Client::new()
            .get(url)
            .header("Content-Type", "application/json");
        for (k, v) in &signed.added_headers {
            request = request.header(k, v);
        }
        if self.authorize {
            request = request.header("Authorization", &signed.authorization);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }
}

fn order_answer(body: &[u8]) -> OrderQueryResponse {
    let answer: OrderQueryResponse = koogallery::model::decode_json(body).unwrap();
    answer.validate().unwrap();
    answer
}

fn gateway_answer(body: &[u8]) -> GatewayErrorBody {
    let answer: GatewayErrorBody = serde_json::from_slice(body).unwrap();
    assert!(
        answer
            .request_id
            .as_deref()
            .is_some_and(|id| !id.is_empty())
    );
    assert!(answer.error_msg.as_deref().is_some_and(|m| !m.is_empty()));
    answer
}

#[tokio::test]
async fn every_mock_order_is_served_to_a_signed_request() {
    let (api, addr) = start(0).await;
    for id in MOCK_ORDER_IDS {
        let (status, body) = Call::new(addr, &[("orderId", id)]).send(addr).await;
        assert_eq!(status, 200, "{id}");
        let answer = order_answer(&body);
        assert!(answer.is_success(), "{id}: {answer:?}");
        assert_eq!(answer.result_msg, "Success");
        let info = answer.order_info.unwrap();
        assert_eq!(info.order_id, id);
        assert_eq!(info.order_line[0].order_line_id, mock_line_id(id));
    }
    let log = api.requests();
    assert_eq!(log.len(), MOCK_ORDER_IDS.len());
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
}

#[tokio::test]
async fn mock_scenarios_have_their_types() {
    let (_api, addr) = start(0).await;
    let expected = [
        ("MOCKPERIODYEARNEW", "NEW", "PERIOD", Some("year")),
        ("MOCKONETIMENEW", "NEW", "ONE_TIME", None),
        ("MOCKONDEMAND", "NEW", "ON_DEMAND", None),
        ("MOCKONDEMANDPKG", "NEW", "ON_DEMAND_PKG", Some("year")),
        ("MOCKPERIODDAYTRIAL", "TRIAL", "PERIOD", Some("day")),
        (
            "MOCKMONTYTRIALTOFORMAL",
            "TRIAL_TO_FORMAL",
            "PERIOD",
            Some("month"),
        ),
        (
            "MOCKMONTYUNSUBSCRIBE",
            "UNSUBSCRIBE",
            "PERIOD",
            Some("month"),
        ),
        ("MOCKMONTYRENEW", "RENEW", "PERIOD", Some("month")),
        ("MOCKMONTYCHANGE", "CHANGE", "PERIOD", Some("month")),
    ];
    for (id, order_type, mode, period) in expected {
        let (_, body) = Call::new(addr, &[("orderId", id)]).send(addr).await;
        let info = order_answer(&body).order_info.unwrap();
        assert_eq!(info.order_type, order_type, "{id}");
        assert_eq!(info.order_line[0].charging_mode, mode, "{id}");
        assert_eq!(info.order_line[0].period_type.as_deref(), period, "{id}");
    }
}

#[tokio::test]
async fn the_published_apig_002_request_verifies() {
    // Vector apig-002 (security.md §12): the exact request signed for mkt.myhuaweicloud.com,
    // replayed with that Host header.
    let (api, addr) = start(0).await;
    let mut call = Call::new(
        addr,
        &[
            ("orderId", "MOCKPERIODYEARNEW"),
            ("orderLineId", "MOCKPERIODYEARNEW-000001"),
        ],
    );
    call.host = "mkt.myhuaweicloud.com".to_owned();
    call.ak = "EXAMPLEAK0000000000";
    call.sk = "EXAMPLESK0000000000000000000000000000000";
    let (status, body) = call.send(addr).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(order_answer(&body).is_success());
    assert!(api.requests()[0].verdict.is_verified());
}

#[tokio::test]
async fn order_line_filter() {
    let (_api, addr) = start(0).await;
    let id = "MOCKMONTYRENEW";
    let line = mock_line_id(id);
    let (status, body) = Call::new(addr, &[("orderId", id), ("orderLineId", &line)])
        .send(addr)
        .await;
    assert_eq!(status, 200);
    let info = order_answer(&body).order_info.unwrap();
    assert_eq!(info.order_line.len(), 1);
    assert_eq!(info.order_line[0].order_line_id, line);

    let (status, body) = Call::new(addr, &[("orderId", id), ("orderLineId", "OTHER-000002")])
        .send(addr)
        .await;
    assert_eq!(status, 200);
    let answer = order_answer(&body);
    assert_eq!(answer.result_code, ORDER_NOT_FOUND);
    assert!(answer.order_info.is_none());
}

#[tokio::test]
async fn placed_orders_are_served() {
    let (api, addr) = start(0).await;
    let mut order = openapi::mock_orders().remove(1);
    order.order_id = "CS1234567890".to_owned();
    order.order_line[0].order_line_id = "CS1234567890-000001".to_owned();
    api.add_order(order.clone());
    let (status, body) = Call::new(addr, &[("orderId", "CS1234567890")])
        .send(addr)
        .await;
    assert_eq!(status, 200);
    assert_eq!(order_answer(&body).order_info, Some(order));
}

#[tokio::test]
async fn unknown_order_is_not_found() {
    let (api, addr) = start(0).await;
    let (status, body) = Call::new(addr, &[("orderId", "NOSUCHORDER")])
        .send(addr)
        .await;
    assert_eq!(status, 200);
    let answer = order_answer(&body);
    assert_eq!(answer.result_code, ORDER_NOT_FOUND);
    assert!(!answer.is_success());
    assert!(answer.order_info.is_none());
    assert!(api.requests()[0].verdict.is_verified());
}

#[tokio::test]
async fn missing_order_id_is_a_bad_parameter() {
    let (_api, addr) = start(0).await;
    let (status, body) = Call::new(addr, &[]).send(addr).await;
    assert_eq!(status, 400);
    let answer = order_answer(&body);
    assert_eq!(answer.result_code, "MKT.0101");
    assert!(
        answer.result_msg.contains("orderId"),
        "{}",
        answer.result_msg
    );
}

#[tokio::test]
async fn wrong_secret_key_is_401_apigw_0301() {
    let (api, addr) = start(0).await;
    let mut call = Call::new(addr, &[("orderId", "MOCKONDEMAND")]);
    call.sk = "WRONGSK";
    let (status, body) = call.send(addr).await;
    assert_eq!(status, 401);
    let answer = gateway_answer(&body);
    assert_eq!(answer.code(), Some(GatewayErrorCode::IamAuthFailed));
    assert_eq!(answer.error_code, "APIGW.0301");
    let log = api.requests();
    assert_eq!(log[0].status, 401);
    assert!(matches!(
        log[0].verdict,
        Verdict::Rejected {
            code: GatewayErrorCode::IamAuthFailed,
            ..
        }
    ));
}

#[tokio::test]
async fn unknown_access_key_is_401_and_not_echoed() {
    let (_api, addr) = start(0).await;
    let mut call = Call::new(addr, &[("orderId", "MOCKONDEMAND")]);
    call.ak = "UNKNOWNAK1234";
    let (status, body) = call.send(addr).await;
    assert_eq!(status, 401);
    assert_eq!(gateway_answer(&body).error_code, "APIGW.0301");
    assert!(!String::from_utf8_lossy(&body).contains("UNKNOWNAK1234"));
}

#[tokio::test]
async fn missing_authorization_is_401() {
    let (_api, addr) = start(0).await;
    let mut call = Call::new(addr, &[("orderId", "MOCKONDEMAND")]);
    call.authorize = false;
    let (status, body) = call.send(addr).await;
    assert_eq!(status, 401);
    assert_eq!(gateway_answer(&body).error_code, "APIGW.0301");
}

#[tokio::test]
async fn a_query_other_than_the_signed_one_is_401() {
    let (_api, addr) = start(0).await;
    let mut call = Call::new(addr, &[("orderId", "MOCKONDEMAND")]);
    call.sent_query = Some(vec![("orderId".to_owned(), "MOCKONETIMENEW".to_owned())]);
    let (status, body) = call.send(addr).await;
    assert_eq!(status, 401);
    assert_eq!(gateway_answer(&body).error_code, "APIGW.0301");
}

#[tokio::test]
async fn stale_or_future_date_is_400_apigw_0201() {
    let sixteen_minutes = 16 * 60 * 1000;
    for offset in [sixteen_minutes, -sixteen_minutes] {
        let (api, addr) = start(offset).await;
        let (status, body) = Call::new(addr, &[("orderId", "MOCKONDEMAND")])
            .send(addr)
            .await;
        assert_eq!(status, 400, "offset {offset}");
        let answer = gateway_answer(&body);
        assert_eq!(answer.code(), Some(GatewayErrorCode::BadRequest));
        assert!(!api.requests()[0].verdict.is_verified());
    }
    // Within the 15-minute window both ways.
    for offset in [14 * 60 * 1000, -14 * 60 * 1000] {
        let (_api, addr) = start(offset).await;
        let (status, _) = Call::new(addr, &[("orderId", "MOCKONDEMAND")])
            .send(addr)
            .await;
        assert_eq!(status, 200, "offset {offset}");
    }
}

#[tokio::test]
async fn malformed_date_is_400() {
    let (_api, addr) = start(0).await;
    let mut call = Call::new(addr, &[("orderId", "MOCKONDEMAND")]);
    call.date = "2024-11-21T09:08:46Z";
    let (status, body) = call.send(addr).await;
    assert_eq!(status, 400);
    assert_eq!(gateway_answer(&body).error_code, "APIGW.0201");
}

#[tokio::test]
async fn unknown_api_is_404_apigw_0101() {
    let (api, addr) = start(0).await;
    let mut call = Call::new(addr, &[("orderId", "MOCKONDEMAND")]);
    call.path = "/api/mkp-openapi-public/global/v1/nothing";
    let (status, body) = call.send(addr).await;
    assert_eq!(status, 404);
    assert_eq!(
        gateway_answer(&body).code(),
        Some(GatewayErrorCode::ApiNotFound)
    );
    assert!(matches!(
        api.requests()[0].verdict,
        Verdict::Rejected {
            code: GatewayErrorCode::ApiNotFound,
            ..
        }
    ));
}
