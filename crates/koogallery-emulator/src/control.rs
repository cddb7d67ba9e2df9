//! The control API: an HTTP/JSON interface to drive the emulated marketplace (place orders,
//! move the clock, read calls and messages, restart a call). It is the emulator's own
//! interface, not KooGallery's, and has no authentication: bind it to a trusted address.
//!
//! Every mutating endpoint performs the work it made due before answering, so a client sees
//! the calls it caused in the answer and in `GET /control/calls` right after.
//!
//! | method | path | body / query | answer |
//! |---|---|---|---|
//! | GET | `/control/products` | | `[Product]` (keys redacted) |
//! | POST | `/control/products` | `Product` | the product |
//! | GET | `/control/orders` | | `[Order]` |
//! | POST | `/control/orders` | `OrderRequest` | `{order, calls}` |
//! | GET | `/control/orders/{orderId}` | | `Order` |
//! | GET | `/control/instances` | | `[Instance]` |
//! | GET | `/control/instances/{resourceId}` | | `Instance` |
//! | POST | `/control/instances/{resourceId}/license` | `{"deviceFingerprint"?}` | `{job, calls}` (online License `getLicenseAsync`) |
//! | POST | `/control/instances/{resourceId}/status` | `{"status":"FREEZE"\|"UNFREEZE"}` | `{job, calls}` (rule violation) |
//! | POST | `/control/instances/{resourceId}/sync` | `SyncRequest` (`{"kind":"auth"\|"org"\|"all-org", …}`) | `{job, calls}` (joint-operation kit) |
//! | GET | `/control/calls` | `?orderId=&resourceId=&activity=` | `[CallRecord]` |
//! | GET | `/control/jobs` | | `[Job]` |
//! | GET | `/control/messages` | | `[Message]` |
//! | POST | `/control/messages/{id}/restart` | | `{job, calls}` |
//! | GET | `/control/clock` | | `Clock` |
//! | POST | `/control/clock/advance` | `{"by":"3h"}` or `{"ms":…}` | `{clock, steps}` |
//! | POST | `/control/clock/scale` | `{"scale":3600}` | `Clock` |
//! | POST | `/control/run` | | `{steps}` |
//! | GET | `/control/schedules` | | the retry schedules |
//!
//! Errors answer `{"error": "…"}` with 400, 404, 409, 501 or 500.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::catalog::Product;
use crate::clock::parse_duration;
use crate::marketplace::{EmuError, Marketplace, OrderRequest};
use crate::state::{CallRecord, Job, Order};

/// Prefix of every control route.
pub const PREFIX: &str = "/control";

/// The control routes. More lists (the lead's `bills`, usage, licenses) are merged in next to
/// these by [`crate::server::compose`].
pub fn router(marketplace: Arc<Marketplace>) -> Router {
    Router::new()
        .route("/control/products", get(products).post(add_product))
        .route("/control/orders", get(orders).post(place_order))
        .route("/control/orders/{id}", get(order))
        .route("/control/instances", get(instances))
        .route("/control/instances/{id}", get(instance))
        .route("/control/instances/{id}/license", post(request_license))
        .route("/control/instances/{id}/status", post(set_status))
        .route("/control/instances/{id}/sync", post(sync_directory))
        .route("/control/calls", get(calls))
        .route("/control/jobs", get(jobs))
        .route("/control/messages", get(messages))
        .route("/control/messages/{id}/restart", post(restart))
        .route("/control/clock", get(clock))
        .route("/control/clock/advance", post(advance))
        .route("/control/clock/scale", post(scale))
        .route("/control/run", post(run))
        .route("/control/schedules", get(schedules))
        // `GET /control/bills` is served by `crate::usage::control_router` (rated usage).
        .with_state(marketplace)
}

/// A control-API error answer.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl From<EmuError> for ApiError {
    fn from(e: EmuError) -> Self {
        let status = match &e {
            EmuError::NotFound(_) => StatusCode::NOT_FOUND,
            EmuError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EmuError::Conflict(_) => StatusCode::CONFLICT,
            EmuError::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            EmuError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

type M = State<Arc<Marketplace>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no {what} {id}"))
}

/// A JSON body, with serde's message as a 400 answer.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

async fn products(State(m): M) -> Json<Vec<Product>> {
    Json(m.products())
}

async fn add_product(State(m): M, body: axum::body::Bytes) -> ApiResult<Product> {
    let product: Product = parse(&body)?;
    Ok(Json(m.add_product(product).await?))
}

async fn orders(State(m): M) -> Json<Vec<Order>> {
    Json(m.orders())
}

async fn order(State(m): M, Path(id): Path<String>) -> ApiResult<Order> {
    m.order(&id)
        .map(Json)
        .ok_or_else(|| not_found("order", &id))
}

/// An order and the calls made for it so far.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    pub order: Order,
    pub calls: Vec<CallRecord>,
}

async fn place_order(State(m): M, body: axum::body::Bytes) -> ApiResult<Placed> {
    let request: OrderRequest = parse(&body)?;
    let order = m.place_order(request).await?;
    m.run_due().await?;
    let order = m.order(&order.order_id).unwrap_or(order);
    let calls = m
        .calls()
        .into_iter()
        .filter(|c| c.order_id.as_deref() == Some(order.order_id.as_str()))
        .collect();
    Ok(Json(Placed { order, calls }))
}

async fn instances(State(m): M) -> Json<Vec<crate::state::Instance>> {
    Json(m.instances())
}

async fn instance(State(m): M, Path(id): Path<String>) -> ApiResult<crate::state::Instance> {
    m.instance(&id)
        .map(Json)
        .ok_or_else(|| not_found("resource", &id))
}

/// Body of `POST /control/instances/{resourceId}/license`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseRequest {
    pub device_fingerprint: Option<String>,
}

async fn request_license(
    State(m): M,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Restarted> {
    let request: LicenseRequest = if body.is_empty() {
        LicenseRequest::default()
    } else {
        parse(&body)?
    };
    let job = m.request_license(&id, request.device_fingerprint).await?;
    m.run_due().await?;
    let job = m.jobs().into_iter().find(|j| j.id == job.id).unwrap_or(job);
    let calls = m
        .calls()
        .into_iter()
        .filter(|c| c.job_id == job.id)
        .collect();
    Ok(Json(Restarted { job, calls }))
}

/// Body of `POST /control/instances/{resourceId}/status`.
#[derive(Debug, Deserialize)]
pub struct StatusRequest {
    /// `FREEZE` or `UNFREEZE`.
    pub status: String,
}

async fn set_status(
    State(m): M,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Restarted> {
    let request: StatusRequest = parse(&body)?;
    let freeze = match request.status.as_str() {
        "FREEZE" => true,
        "UNFREEZE" => false,
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("status must be FREEZE or UNFREEZE, not {other:?}"),
            ));
        }
    };
    let job = m.set_status(&id, freeze).await?;
    m.run_due().await?;
    let job = m.jobs().into_iter().find(|j| j.id == job.id).unwrap_or(job);
    let calls = m
        .calls()
        .into_iter()
        .filter(|c| c.job_id == job.id)
        .collect();
    Ok(Json(Restarted { job, calls }))
}

async fn sync_directory(
    State(m): M,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Restarted> {
    let request: crate::kit::SyncRequest = parse(&body)?;
    let job = m.sync_directory(&id, &request).await?;
    m.run_due().await?;
    let job = m.jobs().into_iter().find(|j| j.id == job.id).unwrap_or(job);
    let calls = m
        .calls()
        .into_iter()
        .filter(|c| c.job_id == job.id)
        .collect();
    Ok(Json(Restarted { job, calls }))
}

/// Filters of `GET /control/calls`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallFilter {
    pub order_id: Option<String>,
    pub resource_id: Option<String>,
    pub activity: Option<String>,
}

async fn calls(State(m): M, Query(f): Query<CallFilter>) -> Json<Vec<CallRecord>> {
    let keep = |c: &CallRecord| {
        f.order_id
            .as_ref()
            .is_none_or(|o| c.order_id.as_ref() == Some(o))
            && f.resource_id.as_ref().is_none_or(|r| &c.resource_id == r)
            && f.activity.as_ref().is_none_or(|a| &c.activity == a)
    };
    Json(m.calls().into_iter().filter(keep).collect())
}

async fn jobs(State(m): M) -> Json<Vec<Job>> {
    Json(m.jobs())
}

async fn messages(State(m): M) -> Json<Vec<crate::marketplace::Message>> {
    Json(m.messages())
}

/// A (re)started call and its attempts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restarted {
    pub job: Job,
    pub calls: Vec<CallRecord>,
}

async fn restart(State(m): M, Path(id): Path<String>) -> ApiResult<Restarted> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("invalid call id {id:?}")))?;
    m.restart(id).await?;
    m.run_due().await?;
    let job = m
        .jobs()
        .into_iter()
        .find(|j| j.id == id)
        .ok_or_else(|| not_found("call", &id.to_string()))?;
    let calls = m.calls().into_iter().filter(|c| c.job_id == id).collect();
    Ok(Json(Restarted { job, calls }))
}

/// The emulated clock.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockView {
    pub now_ms: i64,
    /// `yyyyMMddHHmmss`, UTC.
    pub now: String,
    /// Emulated seconds per real second (0: moves only when advanced).
    pub scale: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due_ms: Option<i64>,
}

fn clock_view(m: &Marketplace) -> ClockView {
    let now_ms = m.now_ms();
    ClockView {
        now_ms,
        now: koogallery::time::from_epoch_millis(now_ms)
            .map(koogallery::time::format_expire_time)
            .unwrap_or_default(),
        scale: m.clock().scale(),
        next_due_ms: m.next_due_ms(),
    }
}

async fn clock(State(m): M) -> Json<ClockView> {
    Json(clock_view(&m))
}

/// Body of `POST /control/clock/advance`: a duration (`90s`, `15m`, `3h`, `16d`) or
/// milliseconds.
#[derive(Debug, Default, Deserialize)]
pub struct AdvanceRequest {
    pub by: Option<String>,
    pub ms: Option<i64>,
}

/// The clock after an advance and the steps performed.
#[derive(Debug, Serialize)]
pub struct Advanced {
    pub clock: ClockView,
    pub steps: usize,
}

async fn advance(State(m): M, body: axum::body::Bytes) -> ApiResult<Advanced> {
    let request: AdvanceRequest = parse(&body)?;
    let ms = match (request.by, request.ms) {
        (Some(by), None) => {
            parse_duration(&by).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?
        }
        (None, Some(ms)) if ms >= 0 => ms,
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "give either \"by\" (e.g. \"3h\") or a non-negative \"ms\"".to_owned(),
            ));
        }
    };
    let steps = m.advance(ms).await?;
    Ok(Json(Advanced {
        clock: clock_view(&m),
        steps,
    }))
}

/// Body of `POST /control/clock/scale`.
#[derive(Debug, Deserialize)]
pub struct ScaleRequest {
    pub scale: f64,
}

async fn scale(State(m): M, body: axum::body::Bytes) -> ApiResult<ClockView> {
    let request: ScaleRequest = parse(&body)?;
    if !request.scale.is_finite() || request.scale < 0.0 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "scale must be a non-negative number".to_owned(),
        ));
    }
    m.clock().set_scale(request.scale);
    m.wake();
    Ok(Json(clock_view(&m)))
}

/// Steps performed by `POST /control/run`.
#[derive(Debug, Serialize)]
pub struct Ran {
    pub steps: usize,
}

async fn run(State(m): M) -> ApiResult<Ran> {
    Ok(Json(Ran {
        steps: m.run_due().await?,
    }))
}

/// One row of the retry-schedule table.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRow {
    pub family: crate::catalog::Family,
    pub activity: &'static str,
    pub schedule: crate::schedule::Schedule,
}

async fn schedules() -> Json<Vec<ScheduleRow>> {
    Json(
        crate::schedule::table()
            .into_iter()
            .map(|(family, activity, schedule)| ScheduleRow {
                family,
                activity,
                schedule,
            })
            .collect(),
    )
}
