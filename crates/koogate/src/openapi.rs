//! Client of KooGallery's open APIs, merchant → KooGallery (openapi.md §1, §2): every call is
//! signed with the Huawei Cloud account's AK/SK (APIG `SDK-HMAC-SHA256`, security.md §12).
//!
//! It reads orders (openapi.md §5) and pushes usage (§3, §4); the license-code calls (§6)
//! will reuse the same signed transport. Neither the AK, the SK nor the `Authorization` value
//! ever appears in an error or a log line.

use std::fmt;
use std::time::Duration;

use koogallery::model::Validate;
use koogallery::model::openapi::{
    ApigError as GatewayErrorBody, GatewayErrorCode, OrderInfo, OrderQueryParams,
    OrderQueryResponse, UsagePushCode, UsagePushResponse,
};
use koogallery::sign::apig;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};

/// Path of the order query (openapi.md §5).
pub const ORDER_QUERY_PATH: &str = "/api/mkp-openapi-public/global/v1/order/query";
/// Path of the usage push (openapi.md §3).
pub const USAGE_PUSH_PATH: &str = "/api/mkp-openapi-public/global/v1/isv/usage-data";
/// Path of the old usage push (openapi.md §4).
pub const OLD_USAGE_PUSH_PATH: &str = "/rest/marketplace/v1/isv/usage-data";
/// The main host (openapi.md §1); `mkt.myhuaweicloud.cn` is its fallback.
pub const DEFAULT_BASE_URL: &str = "https://mkt.myhuaweicloud.com";
/// Where to retry when the main host cannot be reached (openapi.md §1).
pub const FALLBACK_BASE_URL: &str = "https://mkt.myhuaweicloud.cn";
/// Connection-establishment timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of a whole request, response body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// `User-Agent` of every call.
pub const USER_AGENT: &str = concat!("koogate/", env!("CARGO_PKG_VERSION"));

/// At most this many characters of an unexpected body are kept in an error.
const EXCERPT_CHARS: usize = 200;
const JSON: &str = "application/json";

/// Why an open-API call failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// No HTTP answer: DNS, connect, TLS, timeout, or the connection broke.
    #[error("open API unreachable: {0}")]
    Transport(String),
    /// The API gateway refused the request (`APIGW.*`, openapi.md §2).
    #[error("API gateway refused the request: HTTP {status} {code}: {message}")]
    Gateway {
        status: u16,
        code: String,
        message: String,
    },
    /// An unexpected HTTP status without a recognisable body.
    #[error("open API answered HTTP {status}: {body_excerpt}")]
    Http { status: u16, body_excerpt: String },
    /// KooGallery answered with a non-success result code.
    #[error("open API answered {code}: {message}")]
    Business { code: String, message: String },
    /// The answer could not be parsed or does not satisfy the documented constraints.
    #[error("open API answer is malformed: {0}")]
    Decode(String),
    /// The client or the request is unusable as configured (base URL, credentials, parameters).
    #[error("invalid open-API configuration or request: {0}")]
    Config(String),
}

impl OpenApiError {
    /// Whether the same call may succeed later, with back-off.
    ///
    /// * transport failures, HTTP 5xx and 429: yes;
    /// * gateway authentication failures (`APIGW.0301`, `APIGW.0303`): **no** — after 5 in a row
    ///   the AK is locked for 5 minutes (openapi.md §2), so they must not be retried in a loop;
    ///   other gateway codes follow their HTTP status (`APIGW.0201` also comes with 502 / 504);
    /// * business codes: as classified by [`UsagePushCode::is_retryable`] (`MKT.0999` system
    ///   error and `MKT.0100`), every other code is permanent;
    /// * malformed answers and configuration errors: no.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Gateway { status, code, .. } => {
                let auth =
                    GatewayErrorCode::parse(code).is_some_and(GatewayErrorCode::is_auth_failure);
                !auth && retryable_status(*status)
            }
            Self::Http { status, .. } => retryable_status(*status),
            Self::Business { code, .. } => {
                UsagePushCode::parse(code).is_some_and(UsagePushCode::is_retryable)
            }
            Self::Decode(_) | Self::Config(_) => false,
        }
    }
}

fn retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// A parsed, validated base URL.
struct Base {
    /// `scheme://authority`.
    origin: String,
    /// Path prefix without a trailing slash (usually empty).
    prefix: String,
    /// The host as signed: with the port only when it is not the scheme's default.
    host: String,
    https: bool,
}

impl Base {
    fn parse(base_url: &str) -> Result<Base, OpenApiError> {
        let config = |m: &str| OpenApiError::Config(m.to_owned());
        let url = url::Url::parse(base_url)
            .map_err(|e| OpenApiError::Config(format!("base URL is invalid: {e}")))?;
        let host_name = url
            .host_str()
            .ok_or_else(|| config("base URL has no host"))?;
        let https = match url.scheme() {
            "https" => true,
            "http" if is_loopback(&url) => false,
            "http" => return Err(config("base URL must be https (http only for loopback)")),
            _ => return Err(config("base URL must be https")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(config("base URL must not hold credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(config("base URL must not have a query or fragment"));
        }
        let host = match url.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.to_owned(),
        };
        Ok(Base {
            origin: format!("{}://{host}", url.scheme()),
            prefix: url.path().trim_end_matches('/').to_owned(),
            host,
            https,
        })
    }
}

/// A failed send: the host could not be reached at all (worth trying the fallback), or anything else.
enum SendError {
    Unreachable(OpenApiError),
    Other(OpenApiError),
}

impl SendError {
    fn into_error(self) -> OpenApiError {
        match self {
            SendError::Unreachable(e) | SendError::Other(e) => e,
        }
    }
}

impl From<OpenApiError> for SendError {
    fn from(e: OpenApiError) -> Self {
        SendError::Other(e)
    }
}

/// A signed-request client for one KooGallery site and one account AK/SK.
pub struct OpenApiClient {
    http: reqwest::Client,
    /// `scheme://authority`, without a trailing slash.
    origin: String,
    /// Path prefix of the base URL, without a trailing slash (usually empty).
    prefix: String,
    /// The URL host as signed: with the port only when it is not the scheme's default.
    host: String,
    /// `(origin, host)` of the host to retry when the main one cannot be reached.
    fallback: Option<(String, String)>,
    ak: String,
    sk: String,
}

impl fmt::Debug for OpenApiClient {
    /// Never shows the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenApiClient")
            .field("base_url", &format_args!("{}{}", self.origin, self.prefix))
            .finish_non_exhaustive()
    }
}

impl OpenApiClient {
    /// A client for `base_url` (e.g. [`DEFAULT_BASE_URL`]) signing with the account's `ak`/`sk`.
    ///
    /// HTTPS with strict certificate and hostname verification (openapi.md §1); plain `http` is
    /// accepted only for a loopback host (tests, local emulator). Redirects are not followed.
    pub fn new(base_url: &str, ak: &str, sk: &str) -> Result<Self, OpenApiError> {
        let config = |m: &str| OpenApiError::Config(m.to_owned());
        let base = Base::parse(base_url)?;
        if !valid_access_key(ak) {
            return Err(config(
                "access key must be non-empty printable ASCII without spaces or commas",
            ));
        }
        if sk.is_empty() {
            return Err(config("secret key is empty"));
        }
        let https = base.https;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(https)
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .build()
            .map_err(|e| OpenApiError::Config(format!("HTTP client: {}", error_chain(&e))))?;
        // The main site's documented fallback host is used automatically.
        let fallback = (base_url.trim_end_matches('/') == DEFAULT_BASE_URL)
            .then(|| Base::parse(FALLBACK_BASE_URL))
            .transpose()?
            .map(|f| (f.origin, f.host));
        Ok(Self {
            http,
            origin: base.origin,
            prefix: base.prefix,
            host: base.host,
            fallback,
            ak: ak.to_owned(),
            sk: sk.to_owned(),
        })
    }

    /// Retries requests that cannot reach the main host on `base_url` (same path prefix). For
    /// the main site this is [`FALLBACK_BASE_URL`], set by [`OpenApiClient::new`].
    pub fn with_fallback(mut self, base_url: &str) -> Result<Self, OpenApiError> {
        let base = Base::parse(base_url)?;
        self.fallback = Some((base.origin, base.host));
        Ok(self)
    }

    /// Reads an order (openapi.md §5), its lines filtered to `order_line_id` when given.
    ///
    /// An unknown order comes back as [`OpenApiError::Business`] with KooGallery's code.
    pub async fn query_order(
        &self,
        order_id: &str,
        order_line_id: Option<&str>,
    ) -> Result<OrderInfo, OpenApiError> {
        let params = OrderQueryParams {
            order_id: order_id.to_owned(),
            order_line_id: order_line_id.map(str::to_owned),
        };
        params
            .validate()
            .map_err(|e| OpenApiError::Config(format!("order query: {e}")))?;
        let (status, body) = self
            .send_signed(Method::GET, ORDER_QUERY_PATH, &params.to_params(), b"", &[])
            .await?;
        let response: OrderQueryResponse = self.decode_answer(status, &body)?;
        if response.result_code.is_empty() {
            return Err(OpenApiError::Decode("resultCode is required".to_owned()));
        }
        if !response.is_success() {
            return Err(self.business(&response.result_code, &response.result_msg));
        }
        response
            .validate()
            .map_err(|e| OpenApiError::Decode(e.to_string()))?;
        let info = response
            .order_info
            .ok_or_else(|| OpenApiError::Decode("orderInfo is missing".to_owned()))?;
        if info.order_id != order_id {
            return Err(OpenApiError::Decode(
                "orderInfo is for another order".to_owned(),
            ));
        }
        if let Some(line) = order_line_id
            && info.order_line.iter().any(|l| l.order_line_id != line)
        {
            return Err(OpenApiError::Decode(
                "orderLine holds lines other than the one asked for".to_owned(),
            ));
        }
        Ok(info)
    }

    /// Pushes usage (openapi.md §3): `body` is sent exactly as given, with the body-signature
    /// headers (`signature`/`ts`/`nonce`, security.md §11, signed with `basic_key`) and the APIG
    /// signature. With `legacy`, to the old API (§4): APIG only, no body signature.
    ///
    /// Any answer that carries an `error_code` is returned, success or not, with its HTTP status
    /// (the caller judges it per record); gateway errors, answers without a code and transport
    /// failures are errors.
    pub async fn push_usage(
        &self,
        basic_key: &str,
        legacy: bool,
        body: &[u8],
    ) -> Result<UsagePushAnswer, OpenApiError> {
        let mut headers = Vec::new();
        let path = if legacy {
            OLD_USAGE_PUSH_PATH
        } else {
            let ts = koogallery::time::epoch_millis(time::OffsetDateTime::now_utc()).to_string();
            let nonce = uuid::Uuid::new_v4().to_string();
            let signature = koogallery::sign::usage::sign(basic_key, &ts, &nonce, body);
            headers.push((koogallery::sign::usage::HEADER_SIGNATURE, signature));
            headers.push((koogallery::sign::usage::HEADER_TS, ts));
            headers.push((koogallery::sign::usage::HEADER_NONCE, nonce));
            USAGE_PUSH_PATH
        };
        let (status, answer) = self
            .send_signed(Method::POST, path, &[], body, &headers)
            .await?;
        if let Some(e) = self.gateway_error(status, &answer) {
            return Err(e);
        }
        match serde_json::from_slice::<UsagePushResponse>(&answer) {
            Ok(mut response) if !response.error_code.is_empty() => {
                response.error_code = self.redact(&response.error_code);
                response.error_msg = response.error_msg.map(|m| self.redact(&m));
                Ok(UsagePushAnswer { status, response })
            }
            _ if (200..300).contains(&status) => Err(OpenApiError::Decode(format!(
                "usage push answer without error_code: {}",
                self.redact(&excerpt(&answer))
            ))),
            _ => Err(OpenApiError::Http {
                status,
                body_excerpt: self.redact(&excerpt(&answer)),
            }),
        }
    }

    /// Classifies an HTTP answer: a gateway error, an error status with a business body, an
    /// error status without one, or a 2xx body of type `T` (parsed tolerantly, openapi.md §1).
    fn decode_answer<T: serde::de::DeserializeOwned + ResultCoded>(
        &self,
        status: u16,
        body: &[u8],
    ) -> Result<T, OpenApiError> {
        if let Some(e) = self.gateway_error(status, body) {
            return Err(e);
        }
        let parsed = serde_json::from_slice::<T>(body);
        if !(200..300).contains(&status) {
            return Err(match parsed {
                Ok(answer) if !answer.result_code().is_empty() => {
                    self.business(answer.result_code(), answer.result_message())
                }
                _ => OpenApiError::Http {
                    status,
                    body_excerpt: self.redact(&excerpt(body)),
                },
            });
        }
        parsed.map_err(|e| OpenApiError::Decode(e.to_string()))
    }

    /// An `APIGW.*` gateway error body, whatever the status (openapi.md §2).
    fn gateway_error(&self, status: u16, body: &[u8]) -> Option<OpenApiError> {
        let error: GatewayErrorBody = serde_json::from_slice(body).ok()?;
        error.error_code.starts_with("APIGW.").then(|| {
            let mut message = error.error_msg.unwrap_or_default();
            if let Some(id) = error.request_id.filter(|id| !id.is_empty()) {
                message.push_str(&format!(" (request_id {id})"));
            }
            OpenApiError::Gateway {
                status,
                code: error.error_code,
                message: self.redact(&message),
            }
        })
    }

    fn business(&self, code: &str, message: &str) -> OpenApiError {
        OpenApiError::Business {
            code: self.redact(code),
            message: self.redact(message),
        }
    }

    /// Sends an APIG-signed request (security.md §12) and returns the status and body.
    ///
    /// `path` is the API path (the base URL's prefix is added), `query` the decoded parameters
    /// (sent in their canonical encoded form, so that the gateway sees what was signed), `body`
    /// JSON (`Content-Type: application/json`). `X-Sdk-Date` is the current UTC time.
    async fn send_signed(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
        extra_headers: &[(&'static str, String)],
    ) -> Result<(u16, Vec<u8>), OpenApiError> {
        match self
            .send_to(
                &self.origin,
                &self.host,
                method.clone(),
                path,
                query,
                body,
                extra_headers,
            )
            .await
        {
            Err(SendError::Unreachable(e)) => match &self.fallback {
                // Only a host that could not be reached is retried elsewhere: a request that
                // was sent may have been applied. It is signed again, for the other host.
                Some((origin, host)) => {
                    tracing::warn!(error = %e, fallback = %origin, "open API host unreachable; trying the fallback host");
                    self.send_to(origin, host, method, path, query, body, extra_headers)
                        .await
                        .map_err(SendError::into_error)
                }
                None => Err(e),
            },
            other => other.map_err(SendError::into_error),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_to(
        &self,
        origin: &str,
        host: &str,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
        extra_headers: &[(&'static str, String)],
    ) -> Result<(u16, Vec<u8>), SendError> {
        let path = format!("{}{path}", self.prefix);
        let headers = vec![(CONTENT_TYPE.as_str().to_owned(), JSON.to_owned())];
        let date = koogallery::time::format_sdk_date(time::OffsetDateTime::now_utc());
        let signed = apig::sign(
            &apig::Request {
                method: method.as_str(),
                host,
                path: &path,
                query,
                headers: &headers,
                body,
            },
            &self.ak,
            &self.sk,
            &date,
        );
        let query = apig::canonical_query(query);
        let url = if query.is_empty() {
            format!("{origin}{path}")
        } else {
            format!("{origin}{path}?{query}")
        };
        let mut authorization = HeaderValue::from_str(&signed.authorization).map_err(|_| {
            OpenApiError::Config("credentials are not valid header text".to_owned())
        })?;
        authorization.set_sensitive(true);
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(CONTENT_TYPE, JSON)
            .header(AUTHORIZATION, authorization);
        if !body.is_empty() {
            request = request.body(body.to_vec());
        }
        for (name, value) in &signed.added_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| OpenApiError::Config(format!("header name: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| OpenApiError::Config(format!("header value: {e}")))?;
            request = request.header(name, value);
        }
        // Not part of the APIG signature (the usage push's body-signature headers).
        for (name, value) in extra_headers {
            let value = HeaderValue::from_str(value)
                .map_err(|e| OpenApiError::Config(format!("header value: {e}")))?;
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| {
            let error = OpenApiError::Transport(self.redact(&error_chain(&e)));
            if e.is_connect() {
                SendError::Unreachable(error)
            } else {
                SendError::Other(error)
            }
        })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| {
            SendError::Other(OpenApiError::Transport(self.redact(&error_chain(&e))))
        })?;
        tracing::debug!(%method, path = %path, status, bytes = bytes.len(), "open API call");
        Ok((status, bytes.to_vec()))
    }

    /// Masks the credentials wherever they might appear in text from outside.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in [&self.sk, &self.ak] {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

/// A usage-push answer that carries an `error_code`, and its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePushAnswer {
    pub status: u16,
    pub response: UsagePushResponse,
}

/// Answers that carry a result code and message (`resultCode`/`resultMsg` or `error_code`…).
trait ResultCoded {
    fn result_code(&self) -> &str;
    fn result_message(&self) -> &str;
}

impl ResultCoded for OrderQueryResponse {
    fn result_code(&self) -> &str {
        &self.result_code
    }
    fn result_message(&self) -> &str {
        &self.result_msg
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The AK goes into `Authorization: … Access={AK}, …`: nothing that would break that syntax.
fn valid_access_key(ak: &str) -> bool {
    !ak.is_empty()
        && ak
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'=')
}

/// The first characters of a body, as text.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// An error and its sources, `: `-separated (reqwest's own message alone is vague).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability() {
        let gateway = |status: u16, code: &str| OpenApiError::Gateway {
            status,
            code: code.to_owned(),
            message: String::new(),
        };
        let http = |status: u16| OpenApiError::Http {
            status,
            body_excerpt: String::new(),
        };
        let business = |code: &str| OpenApiError::Business {
            code: code.to_owned(),
            message: String::new(),
        };
        assert!(OpenApiError::Transport("x".to_owned()).is_retryable());
        assert!(http(500).is_retryable() && http(503).is_retryable() && http(429).is_retryable());
        assert!(!http(400).is_retryable() && !http(404).is_retryable());
        assert!(!gateway(401, "APIGW.0301").is_retryable());
        assert!(!gateway(401, "APIGW.0303").is_retryable());
        assert!(!gateway(400, "APIGW.0201").is_retryable());
        assert!(!gateway(403, "APIGW.0302").is_retryable());
        assert!(gateway(504, "APIGW.0201").is_retryable());
        assert!(gateway(429, "APIGW.0308").is_retryable());
        assert!(business("MKT.0999").is_retryable());
        assert!(!business("MKT.0101").is_retryable() && !business("MKT.9001").is_retryable());
        assert!(!business("WHATEVER").is_retryable());
        assert!(!OpenApiError::Decode("x".to_owned()).is_retryable());
        assert!(!OpenApiError::Config("x".to_owned()).is_retryable());
    }

    #[test]
    fn base_url_rules() {
        let ok = |u: &str| OpenApiClient::new(u, "AK", "SK");
        let c = ok("https://mkt.myhuaweicloud.com").unwrap();
        assert_eq!(c.host, "mkt.myhuaweicloud.com");
        assert_eq!(c.prefix, "");
        let c = ok("https://mkt.example.com:8443/").unwrap();
        assert_eq!(c.host, "mkt.example.com:8443");
        assert_eq!(c.prefix, "");
        // The default port is not part of the signed host (security.md §12 step 2).
        assert_eq!(
            ok("https://mkt.example.com:443").unwrap().host,
            "mkt.example.com"
        );
        let c = ok("http://127.0.0.1:8080/gw/").unwrap();
        assert_eq!(
            (c.host.as_str(), c.prefix.as_str()),
            ("127.0.0.1:8080", "/gw")
        );
        assert!(ok("http://[::1]:1").is_ok() && ok("http://localhost:1").is_ok());
        for bad in [
            "not a url",
            "http://mkt.myhuaweicloud.com",
            "ftp://127.0.0.1",
            "https://user:pw@mkt.example.com",
            "https://mkt.example.com/?a=1",
        ] {
            assert!(matches!(ok(bad), Err(OpenApiError::Config(_))), "{bad}");
        }
        for (ak, sk) in [("", "SK"), ("A K", "SK"), ("A,K", "SK"), ("AK", "")] {
            assert!(matches!(
                OpenApiClient::new(DEFAULT_BASE_URL, ak, sk),
                Err(OpenApiError::Config(_))
            ));
        }
    }

    #[test]
    fn debug_and_redaction_hide_credentials() {
        let c = OpenApiClient::new(DEFAULT_BASE_URL, "MYAK123", "MYSECRET456").unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("MYAK123") && !debug.contains("MYSECRET456"),
            "{debug}"
        );
        assert_eq!(c.redact("ak MYAK123 sk MYSECRET456"), "ak *** sk ***");
    }

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt(b"short"), "short");
        let long = "中".repeat(EXCERPT_CHARS + 5);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), EXCERPT_CHARS + 1);
    }
}
