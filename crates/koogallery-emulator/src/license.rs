//! KooGallery's license open APIs, emulated: License code 2.0 activate and query/heartbeat
//! (openapi.md §6) and the market-event upload that delivers an online License (openapi.md §7).
//!
//! [`routes`] puts the gateway's APIG check (see [`crate::openapi`]) in front of [`LicenseBook`],
//! which holds the rules and no I/O, so they are tested directly.
//!
//! Choices where openapi.md is silent (docs/emulator.md repeats them): the v1 and v2 paths take
//! the same single-code body (the batch shape is not published, §8 #7); an upload for an event the
//! emulator never issued answers `92020002`; a second upload for a delivered event answers
//! `92020003` (illegal state), like a second activation.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;

use koogallery::model::openapi::{
    LicenseActivateData, LicenseActivateRequest, LicenseActivateResponse, LicenseApiCode,
    LicenseCodeInfo, LicenseHeartbeatRequest, LicenseHeartbeatResponse, LicenseInfo, UPLOAD_TYPES,
    check_event_id,
};
use koogallery::model::{Decimal, JsonOrString, Validate, decode_json};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::openapi::{OpenApi, Received};

/// Paths of the License code APIs (openapi.md §6): `{v}` is `v1` or `v2`.
pub const ACTIVATE_PATH: &str = "/api/mkp-openapi-public/global/{v}/license/activate";
pub const HEARTBEAT_PATH: &str = "/api/mkp-openapi-public/global/{v}/license/heartbeat";
/// Path of the market-event upload (openapi.md §7).
pub const UPLOAD_PATH: &str = "/api/mkp-openapi-public/global/v1/market-event/{event_id}/file";

/// A license code the emulator issued for a License code 2.0 order (license.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenseCode {
    pub code: String,
    pub order_id: String,
    pub product_id: String,
    pub amount: i64,
    /// Epoch ms.
    pub expire_at_ms: i64,
    /// Whether the buyer has received the code (activation is refused before, `92020004`).
    pub received: bool,
    pub activated_at_ms: Option<i64>,
    /// `ALIVE`, `EXPIRED` or `RELEASED`.
    pub status: String,
    /// `thirdPartyAccount`s seen by heartbeats, with the last time.
    pub heartbeats: BTreeMap<String, i64>,
}

/// A `getLicenseAsync` event waiting for the merchant's upload (license.md §4.1, openapi.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketEvent {
    pub event_id: String,
    pub instance_id: String,
    pub delivery: Option<Delivery>,
}

/// What the merchant uploaded for an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `CHARACTERS` or `FILE`.
    pub kind: String,
    pub file_name: Option<String>,
    /// SHA-256 of the received file, lower-case hex.
    pub sha256: Option<String>,
    pub characters: Option<String>,
    pub size: usize,
    pub at_ms: i64,
}

/// The JSON part `isvUpdateFileReq` of an upload (openapi.md §7).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UploadRequest {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub characters: Option<String>,
}

impl Validate for UploadRequest {
    fn validate(&self) -> Result<(), koogallery::error::FieldError> {
        use koogallery::model::{one_of, optional, required};
        required("type", &self.kind, 10)?;
        one_of("type", &self.kind, UPLOAD_TYPES)?;
        optional("file_name", self.file_name.as_deref(), 1024)?;
        optional("sha256", self.sha256.as_deref(), 1024)?;
        optional("characters", self.characters.as_deref(), 1024)
    }
}

/// The answer of a license API: HTTP status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseAnswer<T> {
    pub status: u16,
    pub body: T,
}

/// The common response of the upload: `error_code`, `error_msg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeAndMessage {
    pub error_code: String,
    pub error_msg: String,
}

/// License codes and market events.
#[derive(Debug, Default)]
pub struct LicenseBook {
    codes: BTreeMap<String, LicenseCode>,
    events: BTreeMap<String, MarketEvent>,
}

impl LicenseBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn issue_code(&mut self, code: LicenseCode) {
        self.codes.insert(code.code.clone(), code);
    }

    pub fn code(&self, code: &str) -> Option<&LicenseCode> {
        self.codes.get(code)
    }

    pub fn codes(&self) -> impl Iterator<Item = &LicenseCode> {
        self.codes.values()
    }

    /// Sets a code's status (`EXPIRED` after expiry, `RELEASED` after unsubscription).
    pub fn set_status(&mut self, code: &str, status: &str) {
        if let Some(c) = self.codes.get_mut(code) {
            c.status = status.to_owned();
        }
    }

    /// Marks a code received by the buyer, so that it may be activated.
    pub fn receive(&mut self, code: &str) {
        if let Some(c) = self.codes.get_mut(code) {
            c.received = true;
        }
    }

    pub fn expect_event(&mut self, event_id: &str, instance_id: &str) {
        self.events.insert(
            event_id.to_owned(),
            MarketEvent {
                event_id: event_id.to_owned(),
                instance_id: instance_id.to_owned(),
                delivery: None,
            },
        );
    }

    pub fn event(&self, event_id: &str) -> Option<&MarketEvent> {
        self.events.get(event_id)
    }

    pub fn events(&self) -> impl Iterator<Item = &MarketEvent> {
        self.events.values()
    }

    /// `POST …/license/activate` (openapi.md §6.1).
    pub fn activate(
        &mut self,
        content_type: Option<&str>,
        body: &[u8],
        now_ms: i64,
    ) -> LicenseAnswer<LicenseActivateResponse> {
        let request: LicenseActivateRequest = match decode(content_type, body) {
            Ok(r) => r,
            Err((code, message)) => return activate_answer(code, message, None),
        };
        let Some(code) = self.codes.get_mut(&request.license) else {
            return activate_answer(LicenseApiCode::LicenseCodeNotExist, None, None);
        };
        if !code.received {
            return activate_answer(LicenseApiCode::NotReceived, None, None);
        }
        if code.activated_at_ms.is_some() || code.status != "ALIVE" {
            return activate_answer(LicenseApiCode::IllegalState, None, None);
        }
        code.activated_at_ms = Some(now_ms);
        let info = LicenseCodeInfo {
            status: Some(code.status.clone()),
            expire_time: format_time(code.expire_at_ms),
            product_id: Some(code.product_id.clone()),
            amount: Some(Decimal(code.amount.to_string())),
            order_id: Some(code.order_id.clone()),
        };
        let data = LicenseActivateData {
            license_code_info: Some(JsonOrString {
                value: info,
                was_string: true,
            }),
        };
        activate_answer(LicenseApiCode::Success, None, Some(data))
    }

    /// `POST …/license/heartbeat` (openapi.md §6.2): the code's state; records the account.
    pub fn heartbeat(
        &mut self,
        content_type: Option<&str>,
        body: &[u8],
        now_ms: i64,
    ) -> LicenseAnswer<LicenseHeartbeatResponse> {
        let request: LicenseHeartbeatRequest = match decode(content_type, body) {
            Ok(r) => r,
            Err((code, message)) => return heartbeat_answer(code, message, None),
        };
        let Some(code) = self.codes.get_mut(&request.license) else {
            return heartbeat_answer(LicenseApiCode::LicenseCodeNotExist, None, None);
        };
        let Some(activated) = code.activated_at_ms else {
            return heartbeat_answer(LicenseApiCode::NotActivated, None, None);
        };
        if let Some(info) = &request.heartbeat_info {
            code.heartbeats
                .insert(info.third_party_account.clone(), now_ms);
        }
        let info = LicenseInfo {
            license_code: code.code.clone(),
            status: code.status.clone(),
            activate_time: format_time(activated).unwrap_or_default(),
            expire_time: format_time(code.expire_at_ms),
        };
        heartbeat_answer(LicenseApiCode::Success, None, Some(info))
    }

    /// `POST …/market-event/{event_id}/file` (openapi.md §7), with the multipart parts already
    /// read: `request` is the `isvUpdateFileReq` JSON, `file` the `file` part.
    pub fn upload(
        &mut self,
        event_id: &str,
        request: Option<&[u8]>,
        file: Option<&[u8]>,
        now_ms: i64,
    ) -> LicenseAnswer<CodeAndMessage> {
        if let Err(e) = check_event_id(event_id) {
            return plain(LicenseApiCode::ReqParamInvalid, Some(e.to_string()));
        }
        let Some(request) = request else {
            return plain(
                LicenseApiCode::ReqParamInvalid,
                Some("the part isvUpdateFileReq is required".to_owned()),
            );
        };
        let request: UploadRequest = match decode(Some("application/json"), request) {
            Ok(r) => r,
            Err((code, message)) => return plain(code, message),
        };
        let delivery = match request.kind.as_str() {
            "FILE" => {
                let (Some(file), Some(file_name), Some(claimed)) = (
                    file,
                    request.file_name.as_deref(),
                    request.sha256.as_deref(),
                ) else {
                    return plain(
                        LicenseApiCode::ReqParamInvalid,
                        Some("type FILE needs the file part, file_name and sha256".to_owned()),
                    );
                };
                let actual = hex::encode(Sha256::digest(file));
                if !actual.eq_ignore_ascii_case(claimed) {
                    return plain(
                        LicenseApiCode::InvalidParam,
                        Some(format!(
                            "sha256 {claimed} does not match the file ({actual})"
                        )),
                    );
                }
                Delivery {
                    kind: request.kind.clone(),
                    file_name: Some(file_name.to_owned()),
                    sha256: Some(actual),
                    characters: None,
                    size: file.len(),
                    at_ms: now_ms,
                }
            }
            _ => {
                let Some(characters) = request.characters.filter(|c| !c.is_empty()) else {
                    return plain(
                        LicenseApiCode::ReqParamInvalid,
                        Some("type CHARACTERS needs characters".to_owned()),
                    );
                };
                Delivery {
                    kind: request.kind.clone(),
                    file_name: None,
                    sha256: None,
                    size: characters.len(),
                    characters: Some(characters),
                    at_ms: now_ms,
                }
            }
        };
        let Some(event) = self.events.get_mut(event_id) else {
            return plain(
                LicenseApiCode::InvalidParam,
                Some(format!("event {event_id} does not exist")),
            );
        };
        if event.delivery.is_some() {
            return plain(LicenseApiCode::IllegalState, None);
        }
        event.delivery = Some(delivery);
        plain(LicenseApiCode::Success, None)
    }
}

/// Decodes a JSON body the way the license APIs refuse bad ones (openapi.md §6.3).
fn decode<T: serde::de::DeserializeOwned + Validate>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, (LicenseApiCode, Option<String>)> {
    let json = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err((LicenseApiCode::ContentTypeNotSupported, None));
    }
    decode_json(body).map_err(|e| match e {
        koogallery::Error::Json(_) => (LicenseApiCode::MessageNotReadable, None),
        other => (LicenseApiCode::ReqParamInvalid, Some(other.to_string())),
    })
}

fn format_time(ms: i64) -> Option<String> {
    koogallery::time::from_epoch_millis(ms).map(koogallery::time::format_expire_time)
}

fn message(code: LicenseApiCode, detail: Option<String>) -> String {
    match detail {
        Some(d) => format!("{}: {d}", code.message()),
        None => code.message().to_owned(),
    }
}

fn activate_answer(
    code: LicenseApiCode,
    detail: Option<String>,
    data: Option<LicenseActivateData>,
) -> LicenseAnswer<LicenseActivateResponse> {
    LicenseAnswer {
        status: code.http_status(),
        body: LicenseActivateResponse {
            error_code: code.code().to_owned(),
            error_msg: message(code, detail),
            data,
        },
    }
}

fn heartbeat_answer(
    code: LicenseApiCode,
    detail: Option<String>,
    data: Option<LicenseInfo>,
) -> LicenseAnswer<LicenseHeartbeatResponse> {
    LicenseAnswer {
        status: code.http_status(),
        body: LicenseHeartbeatResponse {
            error_code: code.code().to_owned(),
            error_msg: message(code, detail),
            data,
        },
    }
}

fn plain(code: LicenseApiCode, detail: Option<String>) -> LicenseAnswer<CodeAndMessage> {
    LicenseAnswer {
        status: code.http_status(),
        body: CodeAndMessage {
            error_code: code.code().to_owned(),
            error_msg: message(code, detail),
        },
    }
}

/// The license routes, for the open API's router.
pub(crate) fn routes() -> Router<Arc<OpenApi>> {
    Router::new()
        .route(ACTIVATE_PATH, post(activate_handler))
        .route(HEARTBEAT_PATH, post(heartbeat_handler))
        .route(UPLOAD_PATH, post(upload_handler))
}

/// Whether `v` is an API version the license paths have.
fn known_version(v: &str) -> bool {
    matches!(v, "v1" | "v2")
}

async fn activate_handler(
    State(api): State<Arc<OpenApi>>,
    Path(v): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received::new(&method, &uri, &headers, body);
    json_api(&api, &v, received, LicenseBook::activate)
}

async fn heartbeat_handler(
    State(api): State<Arc<OpenApi>>,
    Path(v): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received::new(&method, &uri, &headers, body);
    json_api(&api, &v, received, LicenseBook::heartbeat)
}

/// The APIG check, then one of the JSON license APIs.
fn json_api<T: Serialize>(
    api: &OpenApi,
    version: &str,
    received: Received,
    handle: fn(&mut LicenseBook, Option<&str>, &[u8], i64) -> LicenseAnswer<T>,
) -> Response {
    let access_key = match api.gate(&received) {
        Ok(ak) => ak,
        Err(response) => return *response,
    };
    if !known_version(version) {
        let refusal = plain(
            LicenseApiCode::ReqParamInvalid,
            Some(format!("unknown API version {version}")),
        );
        return finish(api, &received, access_key, refusal);
    }
    let content_type = received
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    let now = api.now_ms();
    let answer = handle(
        &mut api.licenses(),
        content_type.as_deref(),
        &received.body,
        now,
    );
    finish(api, &received, access_key, answer)
}

fn finish<T: Serialize>(
    api: &OpenApi,
    received: &Received,
    access_key: String,
    answer: LicenseAnswer<T>,
) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    api.answer_verified(received, access_key, status, &answer.body)
}

/// `POST` [`UPLOAD_PATH`] (multipart; APIG-signed with `UNSIGNED-PAYLOAD`).
async fn upload_handler(
    State(api): State<Arc<OpenApi>>,
    Path(event_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received::new(&method, &uri, &headers, body.clone());
    let access_key = match api.gate(&received) {
        Ok(ak) => ak,
        Err(response) => return *response,
    };
    let multipart = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !multipart {
        return finish(
            &api,
            &received,
            access_key,
            plain(
                LicenseApiCode::ContentTypeNotSupported,
                Some("Content-Type must be multipart/form-data".to_owned()),
            ),
        );
    }
    let parts = match read_parts(headers, body).await {
        Ok(parts) => parts,
        Err(message) => {
            return finish(
                &api,
                &received,
                access_key,
                plain(LicenseApiCode::MessageNotReadable, Some(message)),
            );
        }
    };
    let now = api.now_ms();
    let answer = api.licenses().upload(
        &event_id,
        parts.request.as_deref(),
        parts.file.as_deref(),
        now,
    );
    finish(&api, &received, access_key, answer)
}

#[derive(Default)]
struct Parts {
    request: Option<Vec<u8>>,
    file: Option<Vec<u8>>,
}

/// The `isvUpdateFileReq` and `file` parts of a multipart body; other parts are ignored.
async fn read_parts(headers: HeaderMap, body: Bytes) -> Result<Parts, String> {
    let mut request = Request::new(axum::body::Body::from(body));
    *request.headers_mut() = headers;
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| e.body_text())?;
    let mut parts = Parts::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        let name = field.name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|e| e.body_text())?.to_vec();
        match name.as_deref() {
            Some("isvUpdateFileReq") => parts.request = Some(bytes),
            Some("file") => parts.file = Some(bytes),
            _ => {}
        }
    }
    Ok(parts)
}
