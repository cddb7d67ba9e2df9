//! KooGallery's open API, emulated: the API gateway's AK/SK check (openapi.md §2, security.md
//! §12) in front of the order query (openapi.md §5), with the documented mock orders (openapi.md
//! §5, saas.md §11) and the orders the emulator itself placed.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use koogallery_emulator::openapi::{self, OpenApi};
//!
//! let api = Arc::new(OpenApi::new([("MY-AK", "MY-SK")]));
//! let (addr, _server) = openapi::spawn(api.clone()).await?;
//! // … point the client at http://{addr}, then inspect api.requests() …
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use koogallery::model::openapi::{
    ApigError as GatewayErrorBody, BuyerInfo, ExtendParam, GatewayErrorCode, ORDER_QUERY_SUCCESS,
    OrderInfo, OrderLine, OrderProduct, OrderQueryParams, OrderQueryResponse,
};
use koogallery::model::{Decimal, Validate};
use koogallery::sign::apig::{self, ApigError};

use crate::license::LicenseBook;
use crate::usage::UsageBook;

/// Path of the order query (openapi.md §5).
pub const ORDER_QUERY_PATH: &str = "/api/mkp-openapi-public/global/v1/order/query";

/// `resultCode` answered (with HTTP 200) for a correctly signed query of an order that does not
/// exist, or of a line the order does not have.
///
/// Spec gap: openapi.md §5 documents no error code for the order query, only `MKT.0000`. The
/// emulator borrows `MKT.0101` ("invalid parameter", HTTP 400 in the open-API code table of
/// openapi.md §3.3): a documented code that every client already treats as permanent.
pub const ORDER_NOT_FOUND: &str = "MKT.0101";
/// `resultMsg` that goes with [`ORDER_NOT_FOUND`].
pub const ORDER_NOT_FOUND_MSG: &str = "Invalid parameter: order not found";
/// `resultCode` answered with HTTP 400 when `orderId` is missing or too long, or `orderLineId`
/// too long (openapi.md §5 lengths; code and status from the table of openapi.md §3.3).
pub const INVALID_PARAMETER: &str = "MKT.0101";

/// The mock order IDs of openapi.md §5 / saas.md §11, always available.
pub const MOCK_ORDER_IDS: [&str; 9] = [
    "MOCKPERIODYEARNEW",
    "MOCKONETIMENEW",
    "MOCKONDEMAND",
    "MOCKONDEMANDPKG",
    "MOCKPERIODDAYTRIAL",
    "MOCKMONTYTRIALTOFORMAL",
    "MOCKMONTYUNSUBSCRIBE",
    "MOCKMONTYRENEW",
    "MOCKMONTYCHANGE",
];

/// The order line ID of a mock order: the order ID + `-000001` (openapi.md §5).
pub fn mock_line_id(order_id: &str) -> String {
    format!("{order_id}-000001")
}

/// The emulator's clock: Unix epoch milliseconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What the gateway decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The `SDK-HMAC-SHA256` signature verified for this access key.
    Verified { access_key: String },
    /// Refused by the gateway with this code; `reason` is for humans.
    Rejected {
        code: GatewayErrorCode,
        reason: String,
    },
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified { .. })
    }
}

/// One request as the emulator saw it, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The path as received (still percent-encoded).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub verdict: Verdict,
    /// The HTTP status answered.
    pub status: u16,
}

/// KooGallery's open-API side: credentials, orders, a clock and a request log.
pub struct OpenApi {
    /// AK → SK.
    credentials: HashMap<String, String>,
    /// The documented mock orders, by order ID.
    mocks: HashMap<String, OrderInfo>,
    /// Orders the emulator placed, by order ID; looked up before the mocks.
    orders: Mutex<HashMap<String, OrderInfo>>,
    clock: Clock,
    log: Mutex<Vec<LoggedRequest>>,
    /// The merchant's basic key, which signs usage-push bodies (openapi.md §3.1).
    usage_key: Option<String>,
    /// Usage received and billed (openapi.md §3, §4).
    usage: Mutex<UsageBook>,
    /// License codes and market events (openapi.md §6, §7).
    licenses: Mutex<LicenseBook>,
    next_request_id: AtomicU64,
}

impl fmt::Debug for OpenApi {
    /// Lists the access keys only: never a secret key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut aks: Vec<&str> = self.credentials.keys().map(String::as_str).collect();
        aks.sort_unstable();
        f.debug_struct("OpenApi")
            .field("access_keys", &aks)
            .field("orders", &lock(&self.orders).len())
            .field("requests", &lock(&self.log).len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn system_clock() -> i64 {
    koogallery::time::epoch_millis(time::OffsetDateTime::now_utc())
}

impl OpenApi {
    /// An open API accepting these account credentials (AK, SK), on the system clock, with the
    /// mock orders and no placed order.
    pub fn new<K, V>(credentials: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            credentials: credentials
                .into_iter()
                .map(|(ak, sk)| (ak.into(), sk.into()))
                .collect(),
            mocks: mock_orders()
                .into_iter()
                .map(|o| (o.order_id.clone(), o))
                .collect(),
            orders: Mutex::new(HashMap::new()),
            clock: Arc::new(system_clock),
            log: Mutex::new(Vec::new()),
            next_request_id: AtomicU64::new(1),
            usage_key: None,
            usage: Mutex::new(UsageBook::new()),
            licenses: Mutex::new(LicenseBook::new()),
        }
    }

    /// The merchant's basic key, which the usage push's body signature is checked with; without
    /// it every usage push is refused with `MKT.0102`.
    pub fn with_usage_key(mut self, basic_key: &str) -> Self {
        self.usage_key = Some(basic_key.to_owned());
        self
    }

    pub(crate) fn usage_key(&self) -> Option<&str> {
        self.usage_key.as_deref()
    }

    /// Usage received and billed: register on-demand instances here, read bills.
    pub fn usage(&self) -> std::sync::MutexGuard<'_, UsageBook> {
        lock(&self.usage)
    }

    /// License codes and market events: issue codes and expect events here.
    pub fn licenses(&self) -> std::sync::MutexGuard<'_, LicenseBook> {
        lock(&self.licenses)
    }

    /// Replaces the clock (Unix epoch milliseconds) the gateway checks `X-Sdk-Date` against.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The gateway's current time, Unix epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// Stores an order the emulator placed (replacing one with the same ID, mocks included).
    pub fn add_order(&self, order: OrderInfo) {
        lock(&self.orders).insert(order.order_id.clone(), order);
    }

    /// The order with this ID: a placed one first, else a mock.
    pub fn order(&self, order_id: &str) -> Option<OrderInfo> {
        lock(&self.orders)
            .get(order_id)
            .or_else(|| self.mocks.get(order_id))
            .cloned()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.log).clone()
    }

    /// Verifies a request's APIG signature exactly as the gateway does (security.md §12):
    /// `query` is the raw received query string, decoded into pairs here; `host` is the `Host`
    /// header. Returns the access key.
    pub fn authenticate(
        &self,
        method: &str,
        host: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<String, ApigError> {
        let pairs = koogallery::query::decode_query_with(query, &[]);
        let request = apig::Request {
            method,
            host,
            path,
            query: &pairs,
            headers,
            body,
        };
        apig::verify(&request, self.now_ms(), |ak| {
            self.credentials.get(ak).map(String::as_str)
        })
    }

    /// The order-query answer for valid parameters (openapi.md §5): the order, its lines
    /// filtered to `orderLineId` when given; [`ORDER_NOT_FOUND`] when there is no such order or
    /// line.
    pub fn query_order(&self, params: &OrderQueryParams) -> OrderQueryResponse {
        let Some(mut info) = self.order(&params.order_id) else {
            return not_found();
        };
        if let Some(line) = params.order_line_id.as_deref() {
            info.order_line.retain(|l| l.order_line_id == line);
            if info.order_line.is_empty() {
                return not_found();
            }
        }
        OrderQueryResponse {
            result_code: ORDER_QUERY_SUCCESS.to_owned(),
            result_msg: "Success".to_owned(),
            order_info: Some(info),
        }
    }

    fn request_id(&self) -> String {
        let n = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{n:016x}", self.now_ms())
    }

    fn record(&self, received: &Received, verdict: Verdict, status: StatusCode) {
        lock(&self.log).push(LoggedRequest {
            method: received.method.clone(),
            path: received.path.clone(),
            query: received.query.clone(),
            verdict,
            status: status.as_u16(),
        });
    }

    /// The gateway: the access key, or the logged error response.
    pub(crate) fn gate(&self, received: &Received) -> Result<String, Box<Response>> {
        let result = self.authenticate(
            &received.method,
            &received.host,
            &received.path,
            &received.query,
            &received.headers,
            &received.body,
        );
        match result {
            Ok(access_key) => Ok(access_key),
            Err(e) => {
                let code = gateway_code(&e);
                let response = self.gateway_error(code, gateway_message(&e));
                self.record(
                    received,
                    Verdict::Rejected {
                        code,
                        reason: e.to_string(),
                    },
                    response.status(),
                );
                Err(Box::new(response))
            }
        }
    }

    /// The answer of an API behind the gateway to a verified request: logged, then `body` as
    /// JSON with `status`.
    pub(crate) fn answer_verified<T: serde::Serialize>(
        &self,
        received: &Received,
        access_key: String,
        status: StatusCode,
        body: &T,
    ) -> Response {
        self.record(received, Verdict::Verified { access_key }, status);
        json_response(status, body, &self.request_id())
    }

    /// A gateway error response: the code's HTTP status and
    /// `{"error_code","error_msg","request_id"}` (openapi.md §2).
    fn gateway_error(&self, code: GatewayErrorCode, message: String) -> Response {
        let request_id = self.request_id();
        let body = GatewayErrorBody {
            error_code: code.code().to_owned(),
            error_msg: Some(message),
            request_id: Some(request_id.clone()),
        };
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &body, &request_id)
    }
}

/// The gateway code of a refusal: 400 `APIGW.0201` for a missing, malformed or stale
/// `X-Sdk-Date`, 401 `APIGW.0301` for everything else (openapi.md §2).
pub fn gateway_code(e: &ApigError) -> GatewayErrorCode {
    match e {
        ApigError::BadDate | ApigError::ClockSkew => GatewayErrorCode::BadRequest,
        ApigError::BadAuthorization
        | ApigError::UnknownAccessKey(_)
        | ApigError::MissingSignedHeader(_)
        | ApigError::Signature(_) => GatewayErrorCode::IamAuthFailed,
    }
}

/// The `error_msg` of a refusal. Never echoes the access key.
fn gateway_message(e: &ApigError) -> String {
    const IAM: &str = "Incorrect IAM authentication information";
    match e {
        ApigError::BadAuthorization => format!("{IAM}: Authorization header not found or invalid"),
        ApigError::BadDate => "Bad request: X-Sdk-Date is missing or malformed".to_owned(),
        ApigError::ClockSkew => {
            "Bad request: X-Sdk-Date is more than 15 minutes from the server time".to_owned()
        }
        ApigError::UnknownAccessKey(_) => format!("{IAM}: ak not found"),
        ApigError::MissingSignedHeader(h) => format!("{IAM}: signed header {h} not found"),
        ApigError::Signature(_) => format!("{IAM}: verify aksk signature fail"),
    }
}

fn not_found() -> OrderQueryResponse {
    OrderQueryResponse {
        result_code: ORDER_NOT_FOUND.to_owned(),
        result_msg: ORDER_NOT_FOUND_MSG.to_owned(),
        order_info: None,
    }
}

fn json_response<T: serde::Serialize>(status: StatusCode, body: &T, request_id: &str) -> Response {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

/// A received request in the form the signature check takes.
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Received {
    pub(crate) fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Self {
        let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        let host = headers
            .get(HOST)
            .map(text)
            .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        Self {
            method: method.as_str().to_owned(),
            host,
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), text(v)))
                .collect(),
            body,
        }
    }
}

/// The open API's routes: `GET` [`ORDER_QUERY_PATH`]; anything else is the gateway's 404
/// `APIGW.0101`.
pub fn router(api: Arc<OpenApi>) -> Router {
    Router::new()
        .route(
            ORDER_QUERY_PATH,
            get(order_query_handler).fallback(api_not_found),
        )
        .merge(crate::usage::routes())
        .merge(crate::license::routes())
        .fallback(api_not_found)
        .with_state(api)
}

/// Serves [`router`] on `127.0.0.1` at a free port, for tests. The server runs until the
/// returned task is aborted or the runtime ends.
pub async fn spawn(
    api: Arc<OpenApi>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let app = router(api);
    let handle = tokio::spawn(async move {
        // `serve` only returns on a fatal listener error; a test then sees connection failures.
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, handle))
}

async fn api_not_found(
    State(api): State<Arc<OpenApi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received::new(&method, &uri, &headers, body);
    let code = GatewayErrorCode::ApiNotFound;
    let response = api.gateway_error(code, "API not found".to_owned());
    api.record(
        &received,
        Verdict::Rejected {
            code,
            reason: format!("no API at {} {}", received.method, received.path),
        },
        response.status(),
    );
    response
}

/// `GET …/global/v1/order/query?orderId=…&orderLineId=…` (openapi.md §5).
async fn order_query_handler(
    State(api): State<Arc<OpenApi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received::new(&method, &uri, &headers, body);
    let access_key = match api.gate(&received) {
        Ok(ak) => ak,
        Err(response) => return *response,
    };
    let pairs = koogallery::query::decode_query_with(&received.query, &[]);
    let param = |name: &str| koogallery::query::param(&pairs, name).filter(|v| !v.is_empty());
    let params = OrderQueryParams {
        order_id: param("orderId").unwrap_or_default().to_owned(),
        order_line_id: param("orderLineId").map(str::to_owned),
    };
    let (status, answer) = match params.validate() {
        Ok(()) => (StatusCode::OK, api.query_order(&params)),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            OrderQueryResponse {
                result_code: INVALID_PARAMETER.to_owned(),
                result_msg: format!("Invalid parameter: {e}"),
                order_info: None,
            },
        ),
    };
    api.answer_verified(&received, access_key, status, &answer)
}

// ---------------------------------------------------------------------------------------------
// Mock orders (openapi.md §5, saas.md §11)
// ---------------------------------------------------------------------------------------------

/// The product every mock order is for (from the sample response of openapi.md §5).
const MOCK_PRODUCT_ID: &str = "OFFI846204237451911168";
/// The basic-edition SKU of the sample response.
const MOCK_SKU_BASIC: &str = "0a4d1578-5295-46a7-92d4-7c803dccc51d";
/// The SKU a `CHANGE` moves to (made up: the documentation shows only the basic one).
const MOCK_SKU_PRO: &str = "5c1b2e8f-3a7d-4e69-9f0a-6d2c4b8e1f37";

struct MockSpec {
    id: &'static str,
    order_type: &'static str,
    charging_mode: &'static str,
    period: Option<(&'static str, i64)>,
    expire_time: Option<&'static str>,
    sku: &'static str,
    /// Appended to the product name: edition and charging.
    name_suffix: &'static str,
    linear_value: i64,
    amount: &'static str,
    trial: bool,
}

/// The nine documented mock orders with canned data consistent with each scenario (saas.md
/// §11). `MOCKPERIODYEARNEW` is exactly the sample response of openapi.md §5 (its `null`s
/// omitted); the others vary it. All are placed at `20241121090846`, by the same buyer.
pub fn mock_orders() -> Vec<OrderInfo> {
    const YEAR_END: &str = "20251121235959";
    const MONTH_END: &str = "20241221235959";
    let specs = [
        MockSpec {
            id: "MOCKPERIODYEARNEW",
            order_type: "NEW",
            charging_mode: "PERIOD",
            period: Some(("year", 1)),
            expire_time: Some(YEAR_END),
            sku: MOCK_SKU_BASIC,
            name_suffix: "基础版,包周期",
            linear_value: 50,
            amount: "100",
            trial: false,
        },
        MockSpec {
            id: "MOCKONETIMENEW",
            order_type: "NEW",
            charging_mode: "ONE_TIME",
            period: None,
            expire_time: None,
            sku: MOCK_SKU_BASIC,
            name_suffix: "基础版,一次性",
            linear_value: 50,
            amount: "100",
            trial: false,
        },
        MockSpec {
            id: "MOCKONDEMAND",
            order_type: "NEW",
            charging_mode: "ON_DEMAND",
            period: None,
            expire_time: None,
            sku: MOCK_SKU_BASIC,
            name_suffix: "基础版,按需",
            linear_value: 1,
            amount: "0",
            trial: false,
        },
        MockSpec {
            id: "MOCKONDEMANDPKG",
            order_type: "NEW",
            charging_mode: "ON_DEMAND_PKG",
            period: Some(("year", 1)),
            expire_time: Some(YEAR_END),
            sku: MOCK_SKU_BASIC,
            name_suffix: "基础版,按需套餐包",
            linear_value: 1000,
            amount: "100",
            trial: false,
        },
        MockSpec {
            id: "MOCKPERIODDAYTRIAL",
            order_type: "TRIAL",
            charging_mode: "PERIOD",
            period: Some(("day", 7)),
            expire_time: Some("20241128235959"),
            sku: MOCK_SKU_BASIC,
            name_suffix: "基础版,试用",
            linear_value: 50,
            amount: "0",
            trial: true,
        },
        MockSpec {
            id: "MOCKMONTYTRIALTOFORMAL",
            order_type: "TRIAL_TO_FORMAL",
            charging_mode: "PERIOD",
            period: Some(("month", 1)),
            expire_time: Some(MONTH_END),
            sku: MOCK_SKU_BASIC,
            name_suffix: "基础版,包月",
            linear_value: 50,
            amount: "10",
            trial: false,
        },
        MockSpec {
            id: "MOCKMONTYUNSUBSCRIBE",
            order_type: "UNSUBSCRIBE",
            charging_mode: "PERIOD",
            period: Some(("month", 1)),
            expire_time: Some(MONTH_END),
            sku: MOCK_SKU_BASIC,
            name_suffix: "基础版,包月",
            linear_value: 50,
            amount: "10",
            trial: false,
        },
        MockSpec {
            id: "MOCKMONTYRENEW",
            order_type: "RENEW",
            charging_mode: "PERIOD",
            period: Some(("month", 1)),
            // One more month after the original period.
            expire_time: Some("20250121235959"),
            sku: MOCK_SKU_BASIC,
            name_suffix: "基础版,包月",
            linear_value: 50,
            amount: "10",
            trial: false,
        },
        MockSpec {
            id: "MOCKMONTYCHANGE",
            order_type: "CHANGE",
            charging_mode: "PERIOD",
            period: Some(("month", 1)),
            expire_time: Some(MONTH_END),
            sku: MOCK_SKU_PRO,
            name_suffix: "专业版,包月",
            linear_value: 100,
            amount: "20",
            trial: false,
        },
    ];
    specs.into_iter().map(mock_order).collect()
}

fn mock_order(spec: MockSpec) -> OrderInfo {
    let param = |name: &str, value: &str| ExtendParam {
        name: name.to_owned(),
        value: Some(value.to_owned()),
    };
    let line = OrderLine {
        order_line_id: mock_line_id(spec.id),
        charging_mode: spec.charging_mode.to_owned(),
        period_type: spec.period.map(|(t, _)| t.to_owned()),
        period_number: spec.period.map(|(_, n)| Decimal(n.to_string())),
        expire_time: spec.expire_time.map(str::to_owned),
        product_info: Some(vec![OrderProduct {
            product_id: Some(MOCK_PRODUCT_ID.to_owned()),
            sku_code: Some(spec.sku.to_owned()),
            linear_value: Some(Decimal(spec.linear_value.to_string())),
            product_name: Some(format!("MOCK测试商品,测试规格,{}", spec.name_suffix)),
        }]),
        extend_params: Some(vec![
            param("emailDomainName", "test.xxxx.com"),
            param("ip", "127.0.0.1"),
        ]),
        currency: Some(spec.amount.to_owned()),
        currency_after_discount: Some(spec.amount.to_owned()),
        trial_flag: spec.trial.then(|| "1".to_owned()),
        ..OrderLine::default()
    };
    OrderInfo {
        order_id: spec.id.to_owned(),
        order_type: spec.order_type.to_owned(),
        create_time: "20241121090846".to_owned(),
        order_line: vec![line],
        buyer_info: Some(BuyerInfo {
            mobile_phone: Some("18688888888".to_owned()),
            email: None,
            customer_id: Some("459bbbec25d24749b2eb83be37b602a8".to_owned()),
            customer_name: Some("mock_user_01".to_owned()),
            customer_real_name: Some("测试用户1".to_owned()),
            customer_type: Some(Decimal("0".to_owned())),
            user_id: None,
            user_name: None,
        }),
        extend_params: Some(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample response of openapi.md §5, verbatim.
    const SAMPLE: &str = r#"{"resultCode":"MKT.0000","resultMsg":"Success","orderInfo":{"orderId":"MOCKPERIODYEARNEW","orderType":"NEW","createTime":"20241121090846","orderLine":[{"orderLineId":"MOCKPERIODYEARNEW-000001","chargingMode":"PERIOD","periodType":"year","periodNumber":1,"expireTime":"20251121235959","productInfo":[{"productId":"OFFI846204237451911168","skuCode":"0a4d1578-5295-46a7-92d4-7c803dccc51d","linearValue":50,"productName":"MOCK测试商品,测试规格,基础版,包周期"}],"extendParams":[{"name":"emailDomainName","value":"test.xxxx.com"},{"name":"ip","value":"127.0.0.1"}],"currency":"100","currencyAfterDiscount":"100"}],"buyerInfo":{"mobilePhone":"18688888888","email":null,"customerId":"459bbbec25d24749b2eb83be37b602a8","customerName":"mock_user_01","customerRealName":"测试用户1","customerType":0,"userId":null,"userName":null},"extendParams":[]}}"#;

    #[test]
    fn year_new_mock_is_the_documented_sample() {
        let api = OpenApi::new([("AK", "SK")]);
        let sample: OrderQueryResponse = serde_json::from_str(SAMPLE).unwrap();
        let answer = api.query_order(&OrderQueryParams {
            order_id: "MOCKPERIODYEARNEW".to_owned(),
            order_line_id: None,
        });
        assert_eq!(answer, sample);
    }

    #[test]
    fn every_mock_validates_and_has_its_line() {
        let mocks = mock_orders();
        assert_eq!(mocks.len(), MOCK_ORDER_IDS.len());
        for (order, id) in mocks.iter().zip(MOCK_ORDER_IDS) {
            assert_eq!(order.order_id, id);
            order.validate().unwrap();
            assert_eq!(order.order_line.len(), 1);
            assert_eq!(order.order_line[0].order_line_id, mock_line_id(id));
        }
    }

    #[test]
    fn placed_orders_shadow_mocks_and_lines_filter() {
        let api = OpenApi::new([("AK", "SK")]);
        let mut placed = mock_orders().remove(0);
        placed.order_id = "CS0001".to_owned();
        placed.order_line[0].order_line_id = "CS0001-1".to_owned();
        let mut second = placed.order_line[0].clone();
        second.order_line_id = "CS0001-2".to_owned();
        placed.order_line.push(second);
        api.add_order(placed);
        let q = |order: &str, line: Option<&str>| {
            api.query_order(&OrderQueryParams {
                order_id: order.to_owned(),
                order_line_id: line.map(str::to_owned),
            })
        };
        let all = q("CS0001", None).order_info.unwrap();
        assert_eq!(all.order_line.len(), 2);
        let one = q("CS0001", Some("CS0001-2")).order_info.unwrap();
        assert_eq!(one.order_line.len(), 1);
        assert_eq!(one.order_line[0].order_line_id, "CS0001-2");
        assert_eq!(q("CS0001", Some("nope")).result_code, ORDER_NOT_FOUND);
        assert_eq!(q("nope", None).result_code, ORDER_NOT_FOUND);
    }

    #[test]
    fn gateway_codes() {
        assert_eq!(
            gateway_code(&ApigError::ClockSkew),
            GatewayErrorCode::BadRequest
        );
        assert_eq!(
            gateway_code(&ApigError::BadDate),
            GatewayErrorCode::BadRequest
        );
        assert_eq!(
            gateway_code(&ApigError::UnknownAccessKey("x".to_owned())),
            GatewayErrorCode::IamAuthFailed
        );
        assert!(
            !gateway_message(&ApigError::UnknownAccessKey("SECRET-AK".to_owned()))
                .contains("SECRET-AK")
        );
    }

    #[test]
    fn debug_shows_no_secret_key() {
        let api = OpenApi::new([("AK1", "VERY-SECRET")]).with_clock(|| 0);
        let text = format!("{api:?}");
        assert!(
            text.contains("AK1") && !text.contains("VERY-SECRET"),
            "{text}"
        );
        assert_eq!(api.now_ms(), 0);
    }
}
