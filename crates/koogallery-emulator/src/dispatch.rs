//! Calls to the merchant's production interface, as KooGallery makes them, and the verdict on
//! each answer, as KooGallery's checker gives it.
//!
//! Every signature and body comes from the [`koogallery`] crate: the V2 URL signature over the
//! canonical body (security.md §8–§9), the kit `x-sign` over the canonical body (security.md
//! §10), the V1 `authToken` over the sorted query (security.md §6), the `Body-Sign` check
//! (security.md §7) and the typed response models with their length checks.

use std::time::Duration;

use koogallery::model::license::GetLicenseResponse;
use koogallery::model::saas_v2::{AppInfo, QueryInstanceResponse};
use koogallery::model::{ResultEnvelope, decode_json, saas_v1, saas_v2};
use koogallery::sign::{body_sign, kit, v1, v2};
use koogallery::{AuthError, Error as ProtocolError, ResultCode};
use serde::{Deserialize, Serialize};

/// How long KooGallery waits for an answer (saas.md §2.1: the debugging tool gives up after
/// 20 s).
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// Longest answer body read; the rest is ignored (KooGallery's answers are small).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Longest answer body kept in the call log.
pub const LOGGED_BODY_CHARS: usize = 4096;

/// The seller console's messages (saas.md §10), verbatim; `{…}` placeholders are filled and the
/// documented ellipses kept.
pub mod console {
    /// `resultCode` was not a success code.
    pub const RESULT_CODE: &str = "调用失败,生产接口resultCode返回错误.";
    /// The body is not the expected JSON.
    pub const PARSE: &str = "调测失败,解析响应体失败,响应格式参考{\"resultCode\":\"000000\",\"resultMsg\":\"success.\"}.";
    /// Wrong `Content-Type`.
    pub const CONTENT_TYPE: &str =
        "调测失败,响应content-type格式错误,…正确的格式为\"application/json\".";
    /// The production address cannot be reached.
    pub const UNREACHABLE: &str = "调测失败,生产地址不可达.";
    /// No answer within 20 s.
    pub const TIMEOUT: &str = "调测失败,调用接口超时20s.";
    /// V1: `Body-Sign` header missing.
    pub const BODY_SIGN_EMPTY: &str = "http header->bodySign is empty.";
    /// V1: `Body-Sign` format or quotes wrong.
    pub const BODY_SIGN_FORMAT: &str =
        "http header->sign_type is not equals HMAC-SHA256 or signature is empty.";
    /// V1: `Body-Sign` well-formed but not a MAC of the body. Not documented: the emulator's
    /// own wording, in the style of the two documented header messages.
    pub const BODY_SIGN_MISMATCH: &str = "http header->bodySign is not the signature of the body.";

    /// A mandatory response field is missing.
    pub fn missing(field: &str) -> String {
        format!("调测失败,接口响应缺少{field}.")
    }

    /// The HTTP status was not 200.
    pub fn http_code(status: u16) -> String {
        format!("调测失败,接口响应httpCode={status},…")
    }

    /// A response field breaks its documented limit. Not documented: the emulator's own
    /// wording, with the field and the problem in English.
    pub fn invalid_field(field: &str, problem: &str) -> String {
        format!("调测失败,接口响应字段{field} {problem}.")
    }
}

/// How a call travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// `POST url?signature&timestamp&nonce`, canonical JSON body (V2 families).
    V2Post,
    /// `GET url?params&timeStamp&authToken` (V1 families).
    V1Get,
    /// `POST url/produceAPI/v2/<name>`, canonical JSON body, with the
    /// `x-sign`/`x-timestamp`/`x-nonce` headers (the joint-operation kit, jointop.md §1–§2).
    KitPost,
}

/// A signed request, ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: &'static str,
    pub url: String,
    /// The body (V2, kit) or nothing (V1).
    pub body: Option<Vec<u8>>,
    /// Extra headers (the kit signature).
    pub headers: Vec<(&'static str, String)>,
}

/// Why a request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the request body is not a JSON object")]
    NotAnObject,
    #[error("cannot canonicalise the body: {0}")]
    Canonical(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Appends `query` to `url` with `?` or `&`.
fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// A fresh nonce: 64 upper-case hex characters, as in KooGallery's examples (security.md §4).
pub fn new_nonce() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
    .to_uppercase()
}

/// The canonical form of `body` (security.md §8.1): compact, top-level keys sorted by UTF-16
/// code unit, top-level `null`s dropped, nested members in their order, every value keeping its
/// JSON type, escaped as Jackson escapes — what Huawei's official samples re-serialise a body to
/// before checking its signature (`TreeMap` + `ObjectMapper`). Sending these bytes and signing
/// them makes the signature verify both over the raw body and over the canonical form, since
/// the canonical form of a canonical body is itself.
pub fn canonical_body(body: &serde_json::Value) -> Result<String, BuildError> {
    if !body.is_object() {
        return Err(BuildError::NotAnObject);
    }
    let raw = serde_json::to_vec(body).map_err(|e| BuildError::Canonical(e.to_string()))?;
    koogallery::canonical::canonicalize(&raw).map_err(|e| BuildError::Canonical(e.to_string()))
}

/// The V2 request for `body`: the canonical body (compact, top-level keys sorted, as every
/// published example is), signed with `key` at wall-clock `timestamp_ms` (security.md §9).
/// KooGallery sends the signature in upper-case hex.
pub fn prepare_v2(
    url: &str,
    key: &str,
    body: &serde_json::Value,
    timestamp_ms: i64,
    nonce: &str,
) -> Result<Prepared, BuildError> {
    let canonical = canonical_body(body)?;
    let timestamp = timestamp_ms.to_string();
    let signature = v2::sign(key, nonce, &timestamp, canonical.as_bytes()).to_uppercase();
    let query = koogallery::query::encode_query(&[
        ("signature", signature.as_str()),
        ("timestamp", timestamp.as_str()),
        ("nonce", nonce),
    ]);
    Ok(Prepared {
        method: "POST",
        url: with_query(url, &query),
        body: Some(canonical.into_bytes()),
        headers: Vec::new(),
    })
}

/// The parameters of a V1 request from the JSON form of a `koogallery` V1 model: every member
/// as text, `null` and empty members and `authToken` left out.
pub fn v1_params(body: &serde_json::Value) -> Result<Vec<(String, String)>, BuildError> {
    let map = body.as_object().ok_or(BuildError::NotAnObject)?;
    Ok(map
        .iter()
        .filter(|(k, _)| k.as_str() != "authToken" && k.as_str() != "timeStamp")
        .filter_map(|(k, v)| {
            let text = match v {
                serde_json::Value::Null => return None,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (!text.is_empty()).then(|| (k.clone(), text))
        })
        .collect())
}

/// The V1 request for `body`: its parameters plus `timeStamp` (wall clock, UTC
/// `yyyyMMddHHmmssSSS`) and the `authToken` over all of them (security.md §6), URL-encoded.
pub fn prepare_v1(
    url: &str,
    key: &str,
    body: &serde_json::Value,
    timestamp_ms: i64,
) -> Result<Prepared, BuildError> {
    let mut params = v1_params(body)?;
    let at = koogallery::time::from_epoch_millis(timestamp_ms)
        .ok_or(AuthError::MalformedTimestamp("timeStamp"))?;
    params.push((
        "timeStamp".to_owned(),
        koogallery::time::format_millis17(at),
    ));
    // A query already in the production URL reaches the merchant too, so it is signed with the
    // rest (the merchant signs every parameter it receives, security.md §6.1).
    let mut signed = url
        .split_once('?')
        .map(|(_, q)| koogallery::query::decode_query(q))
        .unwrap_or_default();
    signed.extend(params.iter().cloned());
    let token = v1::auth_token(key, &signed)?;
    params.push(("authToken".to_owned(), token));
    Ok(Prepared {
        method: "GET",
        url: with_query(url, &koogallery::query::encode_query(&params)),
        body: None,
        headers: Vec::new(),
    })
}

/// The kit request for `body` (jointop.md §2, security.md §10): `POST` to `url` (the production
/// URL with the kit path appended), the body in its [canonical form](canonical_body) (top-level
/// keys sorted, numbers as numbers, nested arrays and objects in the model's order), signed over
/// exactly those bytes with the kit key at wall-clock `timestamp_ms` in the `x-sign`
/// (upper-case hex, as KooGallery sends it), `x-timestamp` and `x-nonce` headers. The body
/// sent is the body signed, so a merchant that checks the raw bytes and one built on Huawei's
/// kit sample, which sorts the top-level keys before checking, both accept it.
pub fn prepare_kit(
    url: &str,
    key: &str,
    body: &serde_json::Value,
    timestamp_ms: i64,
    nonce: &str,
) -> Result<Prepared, BuildError> {
    let canonical = canonical_body(body)?;
    let timestamp = timestamp_ms.to_string();
    let signature = kit::sign(key, nonce, &timestamp, canonical.as_bytes()).to_uppercase();
    Ok(Prepared {
        method: "POST",
        url: url.to_owned(),
        body: Some(canonical.into_bytes()),
        headers: vec![
            (kit::HEADER_SIGN, signature),
            (kit::HEADER_TIMESTAMP, timestamp),
            (kit::HEADER_NONCE, nonce.to_owned()),
        ],
    })
}

/// The merchant's answer as received.
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body_sign: Option<String>,
    pub body: Vec<u8>,
}

/// Why no answer arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("production address unreachable: {0}")]
    Unreachable(String),
    #[error("no answer within {}s", TIMEOUT.as_secs())]
    Timeout,
}

impl TransportError {
    /// The seller console's message.
    pub fn console_message(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => console::UNREACHABLE,
            Self::Timeout => console::TIMEOUT,
        }
    }
}

/// The HTTP client KooGallery calls with: rustls, no redirects, the 20 s timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("koogallery-emulator")
        .build()
        .unwrap_or_default()
}

/// Sends a prepared request with KooGallery's headers (saas.md §2.1).
pub async fn send(
    client: &reqwest::Client,
    request: &Prepared,
) -> Result<RawResponse, TransportError> {
    let mut builder = match &request.body {
        Some(body) if request.headers.is_empty() => client
            .post(&request.url)
            .header("Content-Type", "application/json;charset=utf8")
            .body(body.clone()),
        // The kit (security.md §10): plain `application/json`.
        Some(body) => client
            .post(&request.url)
            .header("Content-Type", "application/json")
            .body(body.clone()),
        None => client.get(&request.url),
    };
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let map_err = |e: reqwest::Error| {
        if e.is_timeout() {
            TransportError::Timeout
        } else {
            TransportError::Unreachable(error_chain(&e))
        }
    };
    let mut response = builder
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(map_err)?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let status = response.status().as_u16();
    let content_type = header("content-type");
    let body_sign = header(body_sign::HEADER);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(map_err)? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(RawResponse {
        status,
        content_type,
        body_sign,
        body,
    })
}

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

/// What an answer must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// `newInstance`: `instanceId` (V2 may answer `000004`; V1 must also carry
    /// `appInfo.frontEndUrl`).
    Create,
    /// `queryInstance` polled for this instance: ready when `000000` with its `appInfo` (or,
    /// when `need_app_info` is false — online License — with `000000` alone).
    Query {
        instance_id: String,
        need_app_info: bool,
    },
    /// License 1.0 `getLicense`: `000000` with `resultMsg`, `instanceId` and `license`
    /// (license.md §3.1).
    License,
    /// Any other activity: `resultCode` `000000`.
    Plain,
    /// `getLicenseAsync`: `000000`, or `000004` (delivered later by upload), license.md §4.1.
    Async,
    /// A kit sync call: `000000` (jointop.md §3); the detail of a refusal names the code's
    /// documented meaning.
    Kit,
}

/// What KooGallery made of a `Body-Sign` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodySignCheck {
    Absent,
    Valid,
    Invalid,
}

/// The useful content of an accepted answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub result_code: String,
    pub instance_id: Option<String>,
    pub app_info: Option<AppInfo>,
    /// License 1.0: the license delivered.
    pub license: Option<String>,
}

/// KooGallery's verdict on an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Success: `000000` with everything required.
    Success(Answer),
    /// Accepted, not finished: `newInstance` `000004` (V2), or a `queryInstance` that has no
    /// access information yet. Not a failure: the next step is polling.
    Processing(Answer),
    /// A failed call, with the seller console's message and a detail for humans.
    Failed {
        message: String,
        detail: String,
        result_code: Option<String>,
    },
}

fn failed(message: impl Into<String>, detail: impl Into<String>) -> Verdict {
    Verdict::Failed {
        message: message.into(),
        detail: detail.into(),
        result_code: None,
    }
}

/// Whether a `Content-Type` value is `application/json` (parameters such as `charset` allowed).
pub fn is_json_content_type(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// Checks an answer in KooGallery's order: HTTP status, content type, `Body-Sign` (required for
/// the V1 families, only recorded for V2), JSON, `resultCode`, mandatory fields and lengths.
pub fn verify(
    transport: Transport,
    body_sign_required: bool,
    key: &str,
    expect: &Expect,
    response: &RawResponse,
) -> (Verdict, BodySignCheck) {
    let sign_check = match &response.body_sign {
        None => BodySignCheck::Absent,
        Some(h) => match body_sign::verify(key, &response.body, Some(h)) {
            Ok(()) => BodySignCheck::Valid,
            Err(_) => BodySignCheck::Invalid,
        },
    };
    (
        verdict(transport, body_sign_required, key, expect, response),
        sign_check,
    )
}

fn verdict(
    transport: Transport,
    body_sign_required: bool,
    key: &str,
    expect: &Expect,
    response: &RawResponse,
) -> Verdict {
    if response.status != 200 {
        return failed(
            console::http_code(response.status),
            format!("HTTP status {}, expected 200", response.status),
        );
    }
    if !is_json_content_type(response.content_type.as_deref()) {
        return failed(
            console::CONTENT_TYPE,
            format!(
                "Content-Type is {:?}, expected application/json",
                response.content_type.as_deref().unwrap_or("")
            ),
        );
    }
    if body_sign_required {
        match body_sign::verify(key, &response.body, response.body_sign.as_deref()) {
            Ok(()) => {}
            Err(AuthError::MissingSignature(_)) => {
                return failed(console::BODY_SIGN_EMPTY, "no Body-Sign header");
            }
            Err(AuthError::SignatureMismatch) => {
                return failed(
                    console::BODY_SIGN_MISMATCH,
                    "Body-Sign is not the HMAC of the body bytes with the basic key",
                );
            }
            Err(e) => return failed(console::BODY_SIGN_FORMAT, e.to_string()),
        }
    }
    // resultCode first, so a refusal without instanceId is a refusal, not a missing field.
    let value: serde_json::Value = match serde_json::from_slice(&response.body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => return failed(console::PARSE, "the body is not a JSON object"),
        Err(e) => return failed(console::PARSE, format!("the body is not JSON: {e}")),
    };
    let Some(code) = value.get("resultCode").and_then(|c| c.as_str()) else {
        return failed(
            console::missing("resultCode"),
            "resultCode is missing or not a string",
        );
    };
    let code = code.to_owned();
    let ok = code == ResultCode::Success.code();
    let processing = code == ResultCode::Processing.code();
    let refused = |detail: String| Verdict::Failed {
        message: console::RESULT_CODE.to_owned(),
        detail,
        result_code: Some(code.clone()),
    };
    match (expect, transport) {
        (Expect::Create, Transport::V2Post | Transport::KitPost) => {
            if !(ok || processing) {
                return refused(format!("newInstance answered resultCode {code}"));
            }
            match decode_json::<saas_v2::NewInstanceResponse>(&response.body) {
                Ok(r) => {
                    let answer = Answer {
                        result_code: code.clone(),
                        instance_id: Some(r.instance_id),
                        ..Answer::default()
                    };
                    if ok {
                        Verdict::Success(answer)
                    } else {
                        Verdict::Processing(answer)
                    }
                }
                Err(e) => decode_failure(&e),
            }
        }
        (Expect::Create, Transport::V1Get) => {
            if !ok {
                return refused(format!("newInstance answered resultCode {code}"));
            }
            match decode_json::<saas_v1::NewInstanceResponse>(&response.body) {
                Ok(r) => match r.app_info {
                    Some(app) => Verdict::Success(Answer {
                        result_code: code.clone(),
                        instance_id: Some(r.instance_id),
                        app_info: Some(app),
                        license: None,
                    }),
                    None => failed(
                        console::missing("frontEndUrl"),
                        "V1 newInstance must return appInfo.frontEndUrl",
                    ),
                },
                Err(e) => decode_failure(&e),
            }
        }
        (Expect::License, _) => {
            if !ok {
                return refused(format!("getLicense answered resultCode {code}"));
            }
            match decode_json::<GetLicenseResponse>(&response.body) {
                Ok(r) => Verdict::Success(Answer {
                    result_code: code.clone(),
                    instance_id: Some(r.instance_id),
                    app_info: None,
                    license: Some(r.license),
                }),
                Err(e) => decode_failure(&e),
            }
        }
        (
            Expect::Query {
                instance_id,
                need_app_info,
            },
            _,
        ) => {
            if processing {
                return Verdict::Processing(Answer {
                    result_code: code.clone(),
                    instance_id: Some(instance_id.clone()),
                    ..Answer::default()
                });
            }
            if ok && !need_app_info {
                return Verdict::Success(Answer {
                    result_code: code.clone(),
                    instance_id: Some(instance_id.clone()),
                    ..Answer::default()
                });
            }
            if !ok {
                return refused(format!("queryInstance answered resultCode {code}"));
            }
            match decode_json::<QueryInstanceResponse>(&response.body) {
                Ok(r) => {
                    let Some(info) = r.info.into_iter().find(|i| &i.instance_id == instance_id)
                    else {
                        return failed(
                            console::missing("instanceId"),
                            format!("info has no entry for instance {instance_id}"),
                        );
                    };
                    let answer = Answer {
                        result_code: code.clone(),
                        instance_id: Some(info.instance_id),
                        app_info: info.app_info,
                        license: None,
                    };
                    if answer.app_info.is_some() {
                        Verdict::Success(answer)
                    } else {
                        Verdict::Processing(answer)
                    }
                }
                Err(e) => decode_failure(&e),
            }
        }
        (Expect::Async, _) => {
            if !(ok || processing) {
                return refused(format!("answered resultCode {code}"));
            }
            match decode_json::<ResultEnvelope>(&response.body) {
                Ok(_) => Verdict::Success(Answer {
                    result_code: code.clone(),
                    ..Answer::default()
                }),
                Err(e) => decode_failure(&e),
            }
        }
        (Expect::Plain | Expect::Kit, _) => {
            if !ok {
                return refused(match expect {
                    Expect::Kit => {
                        format!("answered resultCode {code} ({})", kit_code_meaning(&code))
                    }
                    _ => format!("answered resultCode {code}"),
                });
            }
            match decode_json::<ResultEnvelope>(&response.body) {
                Ok(_) => Verdict::Success(Answer {
                    result_code: code.clone(),
                    ..Answer::default()
                }),
                Err(e) => decode_failure(&e),
            }
        }
    }
}

/// The meaning of a kit result code (jointop.md §3).
pub fn kit_code_meaning(code: &str) -> &'static str {
    match code {
        "000000" => "success",
        "000001" => "authentication / signature failure",
        "000002" => "invalid request parameter",
        "000003" => "instance does not exist",
        "000004" => "request is being processed",
        "000005" => "other internal error",
        _ => "not a kit result code",
    }
}

fn decode_failure(e: &ProtocolError) -> Verdict {
    match e {
        ProtocolError::Field(f) => match f.problem {
            koogallery::error::FieldProblem::Missing => {
                failed(console::missing(&f.field), f.to_string())
            }
            ref problem => failed(
                console::invalid_field(&f.field, &problem.to_string()),
                f.to_string(),
            ),
        },
        other => failed(console::PARSE, other.to_string()),
    }
}

/// An answer body for the call log: text, at most [`LOGGED_BODY_CHARS`] characters, every
/// `password` member of a JSON body replaced by `<redacted>`.
pub fn loggable_body(body: &[u8]) -> String {
    let redacted = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(has_password)
        .map(|mut v| {
            redact_passwords(&mut v);
            v.to_string()
        });
    let text = match &redacted {
        Some(r) => std::borrow::Cow::Borrowed(r.as_str()),
        None => String::from_utf8_lossy(body),
    };
    match text.char_indices().nth(LOGGED_BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

fn has_password(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.iter().any(|(k, v)| k == "password" || has_password(v)),
        serde_json::Value::Array(a) => a.iter().any(has_password),
        _ => false,
    }
}

fn redact_passwords(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if k == "password" {
                    *v = serde_json::Value::String("<redacted>".to_owned());
                } else {
                    redact_passwords(v);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_passwords),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok_response(body: &str) -> RawResponse {
        RawResponse {
            status: 200,
            content_type: Some("application/json;charset=UTF-8".to_owned()),
            body_sign: Some(body_sign::header_value("k", body.as_bytes())),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn v2_request_is_canonical_and_verifies() {
        let body = json!({"orderId":"O1","activity":"newInstance","businessId":"b","orderLineId":"O1-000001"});
        let p = prepare_v2("http://m/produce", "k", &body, 1_700_000_000_000, "N1").unwrap();
        let text = String::from_utf8(p.body.clone().unwrap()).unwrap();
        assert!(text.starts_with(r#"{"activity":"newInstance","businessId":"b""#));
        let query = p.url.split_once('?').unwrap().1;
        let params = koogallery::query::decode_query(query);
        let req = koogallery::sign::SignedRequest {
            signature: koogallery::query::param(&params, "signature"),
            timestamp: koogallery::query::param(&params, "timestamp"),
            nonce: koogallery::query::param(&params, "nonce"),
        };
        assert!(v2::verify("k", &req, text.as_bytes(), 1_700_000_000_000, 60_000).is_ok());
    }

    #[test]
    fn kit_request_is_canonical_and_verifies_both_ways() {
        // kit-sig-001 (security.md §10): a tenantSync body in documentation key order.
        let body: serde_json::Value = serde_json::from_str(
            r#"{"instanceId":"huaweitest123456","orderId":"CS1906666666ABCDE","tenantId":"68cbc86abc2018ab880d92f36422fa0e","tenantCode":"huaweitest","name":"huaweitest","domainName":"https://huaweitest.example.com","flag":1,"testFlag":1,"timeStamp":"20220413093539534"}"#,
        )
        .unwrap();
        let nonce = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA";
        let p = prepare_kit(
            "http://m/produce/produceAPI/v2/tenantSync",
            "kitKey-Example-0001",
            &body,
            1_680_508_066_618,
            nonce,
        )
        .unwrap();
        let sent = p.body.clone().unwrap();
        assert_eq!(
            String::from_utf8(sent.clone()).unwrap(),
            r#"{"domainName":"https://huaweitest.example.com","flag":1,"instanceId":"huaweitest123456","name":"huaweitest","orderId":"CS1906666666ABCDE","tenantCode":"huaweitest","tenantId":"68cbc86abc2018ab880d92f36422fa0e","testFlag":1,"timeStamp":"20220413093539534"}"#
        );
        let header = |n: &str| {
            p.headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            header(kit::HEADER_SIGN),
            Some("9651A71B04110DCA07846C2AD88F4EF9A56FAEECE0AD052DA9457DC302740FA4")
        );
        let req = koogallery::sign::SignedRequest {
            signature: header(kit::HEADER_SIGN),
            timestamp: header(kit::HEADER_TIMESTAMP),
            nonce: header(kit::HEADER_NONCE),
        };
        assert_eq!(
            kit::verify(
                "kitKey-Example-0001",
                &req,
                &sent,
                1_680_508_066_618,
                60_000
            ),
            Ok(koogallery::sign::SignedForm::Raw)
        );
        // The bytes are their own canonical form, so the sorted path (Huawei's kit sample)
        // computes the same MAC input.
        assert!(koogallery::canonical::is_canonical(&sent));
        assert_eq!(
            prepare_kit("u", "k", &json!([1]), 0, "N").unwrap_err(),
            BuildError::NotAnObject
        );
    }

    #[test]
    fn v1_request_verifies() {
        let body = json!({"activity":"expireInstance","instanceId":"i 1+","orderId":"O","testFlag":null,"timeStamp":"","authToken":""});
        let p = prepare_v1("http://m/produce?x=1", "k", &body, 1_700_000_000_000).unwrap();
        let query = p.url.split_once('?').unwrap().1;
        let params = koogallery::query::decode_query(query);
        assert_eq!(
            koogallery::query::param(&params, "instanceId"),
            Some("i 1+")
        );
        v1::verify_get("k", &params).unwrap();
    }

    #[test]
    fn verdicts() {
        let create =
            |r: &RawResponse, t| verify(t, t == Transport::V1Get, "k", &Expect::Create, r).0;
        let good = ok_response(r#"{"resultCode":"000004","resultMsg":"x","instanceId":"I1"}"#);
        assert!(matches!(
            create(&good, Transport::V2Post),
            Verdict::Processing(_)
        ));
        let missing = ok_response(r#"{"resultCode":"000000","resultMsg":"x"}"#);
        assert!(
            matches!(create(&missing, Transport::V2Post), Verdict::Failed { message, .. } if message == console::missing("instanceId"))
        );
        let refused = ok_response(r#"{"resultCode":"000100","resultMsg":"x"}"#);
        assert!(
            matches!(create(&refused, Transport::V2Post), Verdict::Failed { message, result_code: Some(c), .. } if message == console::RESULT_CODE && c == "000100")
        );
        let mut text = good.clone();
        text.content_type = Some("text/plain".to_owned());
        assert!(
            matches!(create(&text, Transport::V2Post), Verdict::Failed { message, .. } if message == console::CONTENT_TYPE)
        );
        let mut down = good.clone();
        down.status = 502;
        assert!(
            matches!(create(&down, Transport::V2Post), Verdict::Failed { message, .. } if message == console::http_code(502))
        );
        let mut unsigned = good.clone();
        unsigned.body_sign = None;
        assert!(
            matches!(create(&unsigned, Transport::V1Get), Verdict::Failed { message, .. } if message == console::BODY_SIGN_EMPTY)
        );
        let v1 = ok_response(
            r#"{"resultCode":"000000","resultMsg":"x","instanceId":"I1","appInfo":{"frontEndUrl":"https://a"}}"#,
        );
        assert!(matches!(create(&v1, Transport::V1Get), Verdict::Success(_)));
        let mut forged = v1.clone();
        forged.body_sign = Some(body_sign::header_value("other", &v1.body));
        assert!(
            matches!(create(&forged, Transport::V1Get), Verdict::Failed { message, .. } if message == console::BODY_SIGN_MISMATCH)
        );
        let garbage = ok_response("not json");
        assert!(
            matches!(create(&garbage, Transport::V2Post), Verdict::Failed { message, .. } if message == console::PARSE)
        );
        let long = format!(
            r#"{{"resultCode":"000000","info":[{{"instanceId":"I1","appInfo":{{"frontEndUrl":"{}"}}}}]}}"#,
            "a".repeat(513)
        );
        let q = Expect::Query {
            instance_id: "I1".to_owned(),
            need_app_info: true,
        };
        assert!(matches!(
            verify(Transport::V2Post, false, "k", &q, &ok_response(&long)).0,
            Verdict::Failed { .. }
        ));
        assert!(is_json_content_type(Some(
            "Application/JSON ; charset=utf-8"
        )));
        assert!(!is_json_content_type(Some("application/jsonx")));
        assert_eq!(
            loggable_body("é".repeat(5000).as_bytes()).chars().count(),
            4097
        );
        let logged = loggable_body(br#"{"info":[{"appInfo":{"password":"pw1"}}]}"#);
        assert!(
            !logged.contains("pw1") && logged.contains("<redacted>"),
            "{logged}"
        );
    }
}
