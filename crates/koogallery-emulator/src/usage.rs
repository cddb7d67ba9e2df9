//! KooGallery's usage-data API, emulated (openapi.md §3, §4): the merchant pushes on-demand usage;
//! the emulator checks the body signature, applies every documented rule and rates what it
//! accepts into bills.
//!
//! [`routes`] puts the gateway's APIG check (see [`crate::openapi`]) in front of [`UsageBook`],
//! which holds the rules and no I/O, so they are tested directly.
//!
//! Choices where openapi.md is silent (docs/emulator.md repeats them):
//! * KooGallery validates most records asynchronously and shows rejected ones in the seller
//!   console. The emulator validates at once: every rejected record is listed in
//!   `abnormal_usage_data` as `{metering_sn, instance_id, error_code, error_msg}` (the element
//!   fields are not published), and when *no* record of a call is accepted the call answers the
//!   first record's code with its documented HTTP status.
//! * A record repeating an earlier `metering_sn`, or the (`instance_id`, `begin_time`, `end_time`)
//!   of an accepted record, is a duplicate: answered as accepted, billed once (§3.4 #6, #7).
//! * The body signature's `ts` is not checked for freshness, nor the nonce for reuse: the
//!   documentation states neither rule.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;

use koogallery::model::openapi::{
    MAX_USAGE_RECORDS, OldUsagePushRequest, OldUsageRecord, UsagePushCode, UsagePushRequest,
    UsagePushResponse, UsageRecord,
};
use koogallery::model::{Validate, decode_json};
use koogallery::sign::usage;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use crate::openapi::{OpenApi, Received};

/// Path of the usage push (openapi.md §3).
pub const USAGE_PATH: &str = "/api/mkp-openapi-public/global/v1/isv/usage-data";
/// Path of the old usage push (openapi.md §4).
pub const OLD_USAGE_PATH: &str = "/rest/marketplace/v1/isv/usage-data";

/// `begin_time` must lie within this many days before the push (openapi.md §3.4 #9, `MKT.9004`).
pub const MAX_AGE_DAYS: i64 = 21;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What the emulator knows of an instance that may receive usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeteredInstance {
    pub product_id: String,
    /// Price of one unit of usage, in the order's currency.
    pub unit_price: Decimal,
    /// When the resource was opened (epoch ms): `begin_time` may not be earlier.
    pub opened_at_ms: i64,
    /// When the resource was closed, if it was: `end_time` may not be later.
    pub closed_at_ms: Option<i64>,
}

/// One accepted, rated usage record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillLine {
    pub instance_id: String,
    pub product_id: String,
    pub metering_sn: Option<String>,
    pub begin_time: String,
    pub end_time: String,
    pub usage_value: Decimal,
    pub unit_price: Decimal,
    /// `usage_value × unit_price`; zero when the usage was deducted from a package.
    pub amount: Decimal,
    /// The package instance deducted (`relate_pkg_instance`), if any.
    pub package: Option<String>,
    /// When the emulator accepted it (epoch ms).
    pub accepted_at_ms: i64,
}

/// The outcome of one push: the HTTP status and the body to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub status: u16,
    pub response: UsagePushResponse,
    /// Records billed by this call (duplicates excluded).
    pub billed: usize,
}

/// Usage received and billed, per merchant (basic key).
#[derive(Debug, Default)]
pub struct UsageBook {
    instances: HashMap<String, MeteredInstance>,
    /// `metering_sn`s seen, accepted or not: a resent record is recognised.
    serials: HashSet<String>,
    /// (instance, begin, end) of accepted records.
    windows: HashSet<(String, String, String)>,
    bills: Vec<BillLine>,
    /// Package instance → units used.
    package_use: BTreeMap<String, Decimal>,
}

/// A rejected record: its code and a message naming the rule.
struct Refusal(UsagePushCode, String);

impl UsageBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes an instance known (as the emulator does when a merchant's `newInstance` succeeds).
    pub fn register(&mut self, instance_id: &str, instance: MeteredInstance) {
        self.instances.insert(instance_id.to_owned(), instance);
    }

    /// Records that an instance was released: later usage must end by then.
    pub fn close(&mut self, instance_id: &str, at_ms: i64) {
        if let Some(i) = self.instances.get_mut(instance_id) {
            i.closed_at_ms = Some(at_ms);
        }
    }

    pub fn instance(&self, instance_id: &str) -> Option<&MeteredInstance> {
        self.instances.get(instance_id)
    }

    /// Every bill line, in the order accepted.
    pub fn bills(&self) -> &[BillLine] {
        &self.bills
    }

    /// Units deducted from each package instance.
    pub fn package_use(&self) -> &BTreeMap<String, Decimal> {
        &self.package_use
    }

    /// Handles a push to the new API (openapi.md §3): `headers` are the received headers
    /// (name lower-case), `body` the exact bytes received.
    pub fn push(
        &mut self,
        basic_key: &str,
        headers: &[(String, String)],
        body: &[u8],
        now_ms: i64,
    ) -> PushOutcome {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if let Some(refused) = content_type_refusal(header("content-type")) {
            return refused;
        }
        let (ts, nonce) = (
            header(usage::HEADER_TS).unwrap_or_default(),
            header(usage::HEADER_NONCE).unwrap_or_default(),
        );
        if ts.is_empty() || nonce.is_empty() {
            return failure(
                UsagePushCode::InvalidBodySign,
                "invalid body sign: the ts and nonce headers are required",
            );
        }
        if let Err(e) = usage::verify(basic_key, ts, nonce, body, header(usage::HEADER_SIGNATURE)) {
            return failure(
                UsagePushCode::InvalidBodySign,
                &format!("invalid body sign: {e}"),
            );
        }
        let request: UsagePushRequest = match decode_json(body) {
            Ok(Unvalidated(r)) => r,
            Err(e) => return failure(UsagePushCode::InvalidParameter, &e.to_string()),
        };
        if let Some(refused) = count_refusal(request.usage_records.len()) {
            return refused;
        }
        let records = request.usage_records.iter().map(|r| Incoming {
            record: r,
            serial: Some(&r.metering_sn),
            valid: r.validate().map_err(|e| e.to_string()),
        });
        self.apply(records, now_ms)
    }

    /// Handles a push to the old API (openapi.md §4): APIG only, no body signature, records
    /// carry `product_id` and no `metering_sn`.
    pub fn push_old(
        &mut self,
        headers: &[(String, String)],
        body: &[u8],
        now_ms: i64,
    ) -> PushOutcome {
        let content_type = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        if let Some(refused) = content_type_refusal(content_type) {
            return refused;
        }
        let request: OldUsagePushRequest = match decode_json(body) {
            Ok(Unvalidated(r)) => r,
            Err(e) => return failure(UsagePushCode::InvalidParameter, &e.to_string()),
        };
        if let Some(refused) = count_refusal(request.usage_records.len()) {
            return refused;
        }
        let converted: Vec<(UsageRecord, Result<(), String>)> = request
            .usage_records
            .iter()
            .map(|r| (as_new_record(r), r.validate().map_err(|e| e.to_string())))
            .collect();
        let records = converted.iter().map(|(record, valid)| Incoming {
            record,
            serial: None,
            valid: valid.clone(),
        });
        self.apply(records, now_ms)
    }

    fn apply<'a>(
        &mut self,
        records: impl Iterator<Item = Incoming<'a>>,
        now_ms: i64,
    ) -> PushOutcome {
        let mut abnormal = Vec::new();
        let mut first_refusal = None;
        let mut accepted = 0;
        let mut billed = 0;
        for incoming in records {
            let r = incoming.record;
            match self.check(&incoming, now_ms) {
                Ok(Check::Duplicate) => accepted += 1,
                Ok(Check::Bill { value, instance }) => {
                    accepted += 1;
                    billed += 1;
                    if let Some(serial) = incoming.serial {
                        self.serials.insert(serial.clone());
                    }
                    self.windows.insert(window(r));
                    let package = r.relate_pkg_instance.clone().filter(|p| !p.is_empty());
                    let amount = match &package {
                        Some(p) => {
                            *self.package_use.entry(p.clone()).or_default() += value;
                            Decimal::ZERO
                        }
                        None => value * instance.unit_price,
                    };
                    self.bills.push(BillLine {
                        instance_id: r.instance_id.clone(),
                        product_id: instance.product_id.clone(),
                        metering_sn: incoming.serial.cloned(),
                        begin_time: r.begin_time.clone(),
                        end_time: r.end_time.clone(),
                        usage_value: value,
                        unit_price: instance.unit_price,
                        amount,
                        package,
                        accepted_at_ms: now_ms,
                    });
                }
                Err(Refusal(code, message)) => {
                    abnormal.push(json!({
                        "metering_sn": r.metering_sn,
                        "instance_id": r.instance_id,
                        "error_code": code.code(),
                        "error_msg": message,
                    }));
                    first_refusal.get_or_insert(Refusal(code, message));
                }
            }
        }
        match first_refusal {
            Some(Refusal(code, message)) if accepted == 0 => {
                let mut outcome = failure(code, &message);
                outcome.response.abnormal_usage_data = Some(abnormal);
                outcome
            }
            _ => PushOutcome {
                status: 200,
                response: UsagePushResponse {
                    error_code: UsagePushCode::Success.code().to_owned(),
                    error_msg: Some("success".to_owned()),
                    abnormal_usage_data: (!abnormal.is_empty()).then_some(abnormal),
                },
                billed,
            },
        }
    }

    /// Applies the rules of openapi.md §3.4 to one record.
    fn check(&self, incoming: &Incoming<'_>, now_ms: i64) -> Result<Check, Refusal> {
        let r = incoming.record;
        if let Err(message) = &incoming.valid {
            return Err(Refusal(
                UsagePushCode::InvalidUsageEntities,
                message.clone(),
            ));
        }
        if incoming.serial.is_some_and(|s| self.serials.contains(s))
            || self.windows.contains(&window(r))
        {
            return Ok(Check::Duplicate);
        }
        let instance = self.instances.get(&r.instance_id).ok_or_else(|| {
            Refusal(
                UsagePushCode::InstanceNotFound,
                format!("instance_id {} not found", r.instance_id),
            )
        })?;
        if let Some(p) = r.relate_pkg_instance.as_deref().filter(|p| !p.is_empty())
            && !self.instances.contains_key(p)
        {
            return Err(Refusal(
                UsagePushCode::InstanceNotFound,
                format!("relate_pkg_instance {p} not found"),
            ));
        }
        let (begin, end) = (millis(&r.begin_time)?, millis(&r.end_time)?);
        if begin < now_ms - MAX_AGE_DAYS * DAY_MS {
            return Err(Refusal(
                UsagePushCode::BeginTimeTooOld,
                format!(
                    "begin_time {} is more than {MAX_AGE_DAYS} days ago",
                    r.begin_time
                ),
            ));
        }
        let invalid = |rule: &str| {
            Err(Refusal(
                UsagePushCode::InvalidUsageEntities,
                rule.to_owned(),
            ))
        };
        if begin < instance.opened_at_ms {
            return invalid("begin_time is earlier than the resource start time");
        }
        if end > now_ms {
            return invalid("end_time is later than the push time");
        }
        if instance.closed_at_ms.is_some_and(|closed| end > closed) {
            return invalid("end_time is later than the resource close time");
        }
        let value = Decimal::from_str(&r.usage_value).map_err(|e| {
            Refusal(
                UsagePushCode::InvalidUsageEntities,
                format!("usage_value: {e}"),
            )
        })?;
        Ok(Check::Bill {
            value,
            instance: instance.clone(),
        })
    }
}

/// A body decoded strictly but not yet validated: records are validated one by one, so that
/// one bad record does not refuse the others.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Unvalidated<T>(T);

impl<T> Validate for Unvalidated<T> {
    fn validate(&self) -> Result<(), koogallery::error::FieldError> {
        Ok(())
    }
}

struct Incoming<'a> {
    record: &'a UsageRecord,
    serial: Option<&'a String>,
    valid: Result<(), String>,
}

enum Check {
    Duplicate,
    Bill {
        value: Decimal,
        instance: MeteredInstance,
    },
}

fn window(r: &UsageRecord) -> (String, String, String) {
    (
        r.instance_id.clone(),
        r.begin_time.clone(),
        r.end_time.clone(),
    )
}

fn millis(t: &str) -> Result<i64, Refusal> {
    koogallery::time::parse_sdk_date(t)
        .map(koogallery::time::epoch_millis)
        .map_err(|e| Refusal(UsagePushCode::InvalidUsageEntities, e.to_string()))
}

fn as_new_record(r: &OldUsageRecord) -> UsageRecord {
    UsageRecord {
        begin_time: r.begin_time.clone(),
        end_time: r.end_time.clone(),
        instance_id: r.instance_id.clone(),
        metering_sn: String::new(),
        record_time: r.record_time.clone(),
        relate_pkg_instance: r.relate_pkg_instance.clone(),
        usage_value: r.usage_value.clone(),
    }
}

fn failure(code: UsagePushCode, message: &str) -> PushOutcome {
    PushOutcome {
        status: code.http_status(),
        response: UsagePushResponse {
            error_code: code.code().to_owned(),
            error_msg: Some(message.to_owned()),
            abnormal_usage_data: None,
        },
        billed: 0,
    }
}

fn content_type_refusal(content_type: Option<&str>) -> Option<PushOutcome> {
    let json = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    (!json).then(|| {
        failure(
            UsagePushCode::RequestParameterError,
            "request parameter error: Content-Type must be application/json",
        )
    })
}

fn count_refusal(n: usize) -> Option<PushOutcome> {
    match n {
        0 => Some(failure(
            UsagePushCode::InvalidParameter,
            "invalid parameter: usage_records must hold 1 to 1000 records",
        )),
        n if n > MAX_USAGE_RECORDS => Some(failure(
            UsagePushCode::TooManyRecords,
            &format!("too many records: {n} (at most {MAX_USAGE_RECORDS})"),
        )),
        _ => None,
    }
}

/// The usage routes, for the open API's router.
pub(crate) fn routes() -> Router<Arc<OpenApi>> {
    Router::new()
        .route(USAGE_PATH, post(usage_handler))
        .route(OLD_USAGE_PATH, post(old_usage_handler))
}

/// `POST` [`USAGE_PATH`]: the APIG check, then the body signature and the rules.
async fn usage_handler(
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
    let now = api.now_ms();
    let outcome = match api.usage_key() {
        Some(key) => api
            .usage()
            .push(key, &received.headers, &received.body, now),
        None => failure(
            UsagePushCode::InvalidBodySign,
            "invalid body sign: the emulator has no basic key to check it with (--basic-key)",
        ),
    };
    answer(&api, &received, access_key, outcome)
}

/// `POST` [`OLD_USAGE_PATH`]: the APIG check, then the rules (no body signature).
async fn old_usage_handler(
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
    let now = api.now_ms();
    let outcome = api.usage().push_old(&received.headers, &received.body, now);
    answer(&api, &received, access_key, outcome)
}

fn answer(
    api: &OpenApi,
    received: &Received,
    access_key: String,
    outcome: PushOutcome,
) -> Response {
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    api.answer_verified(received, access_key, status, &outcome.response)
}

/// `GET /control/bills`: every bill line and the units deducted from each package.
pub fn control_router(api: Arc<OpenApi>) -> Router {
    Router::new()
        .route("/control/bills", axum::routing::get(bills_handler))
        .with_state(api)
}

async fn bills_handler(State(api): State<Arc<OpenApi>>) -> axum::Json<serde_json::Value> {
    let book = api.usage();
    axum::Json(json!({"bills": book.bills(), "packages": book.package_use()}))
}
