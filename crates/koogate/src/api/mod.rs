//! The merchant REST API (`/api/v1`): instances, orders, webhook endpoints and deliveries, for the
//! merchant's application and operators. Bearer token (`KOOGATE_ADMIN_TOKEN`), JSON, errors as
//! RFC 9457 problem details, cursor pagination, and an OpenAPI 3.1 document generated from this
//! code at `/api/v1/openapi.json`.

pub mod usage;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use koogallery::model::saas_v2::AppInfo;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::app::Gateway;
use crate::ops::{self, OpsError};
use crate::store::instances::{self, Event, Instance};
use crate::store::webhooks::{self as store_webhooks, Attempt, Delivery, Endpoint};
use crate::store::{StoreError, orders};

/// The OpenAPI document of this API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "koogate merchant API",
        version = "1",
        description = "Instances, orders and webhooks of a koogate deployment (docs/integration.md)."
    ),
    paths(
        list_instances,
        get_instance,
        complete_instance,
        fail_instance,
        rotate_credentials,
        list_orders,
        list_endpoints,
        add_endpoint,
        list_deliveries,
        get_delivery,
        replay_delivery,
        usage::ingest_usage,
        usage::usage_report,
        usage::usage_windows,
        usage::push_now,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "instances", description = "Instances and their history"),
        (name = "orders", description = "Orders read from KooGallery"),
        (name = "webhooks", description = "Event webhooks to the merchant's application"),
        (name = "usage", description = "Usage metering and the usage push to KooGallery (docs/metering.md)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(Clone)]
struct ApiState {
    gateway: Arc<Gateway>,
    token: Option<Arc<SecretString>>,
}

/// The `/api/v1` routes.
pub fn router(gateway: Arc<Gateway>, token: Option<SecretString>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/instances", get(list_instances))
        .route("/api/v1/instances/{id}", get(get_instance))
        .route("/api/v1/instances/{id}/complete", post(complete_instance))
        .route("/api/v1/instances/{id}/fail", post(fail_instance))
        .route(
            "/api/v1/instances/{id}/rotate-credentials",
            post(rotate_credentials),
        )
        .route("/api/v1/orders", get(list_orders))
        .route(
            "/api/v1/webhook-endpoints",
            get(list_endpoints).post(add_endpoint),
        )
        .route("/api/v1/webhook-deliveries", get(list_deliveries))
        .route("/api/v1/webhook-deliveries/{id}", get(get_delivery))
        .route(
            "/api/v1/webhook-deliveries/{id}/replay",
            post(replay_delivery),
        )
        .merge(usage::routes())
        .with_state(ApiState {
            gateway,
            token: token.map(Arc::new),
        })
}

async fn openapi_json() -> Response {
    match ApiDoc::openapi().to_pretty_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => Problem::internal(&e.to_string()).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors: RFC 9457 problem details

/// An RFC 9457 problem (`application/problem+json`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status and title say what happened.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    /// Details stay in the log, not in the answer.
    fn internal(log: &str) -> Self {
        tracing::error!(error = %log, "REST API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "the request could not be completed; see the server log",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<OpsError> for Problem {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "Not Found", e.to_string()),
            OpsError::Conflict(_) => Self::new(StatusCode::CONFLICT, "Conflict", e.to_string()),
            OpsError::Invalid { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unprocessable Content",
                e.to_string(),
            ),
            OpsError::Store(inner) => Self::internal(&inner.to_string()),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Self::internal(&e.to_string())
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(&e.to_string())
    }
}

type ApiResult<T> = Result<T, Problem>;

/// A JSON body, with a problem naming what is wrong when it does not parse.
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(Problem::new(e.status(), "Bad Request", e.body_text())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// A request that carried the right bearer token.
struct Authorized;

impl FromRequestParts<ApiState> for Authorized {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Problem> {
        let unauthorized = |detail: &str| {
            Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail.to_owned())
        };
        let Some(token) = &state.token else {
            return Err(unauthorized(
                "the REST API is disabled: no admin token is configured (KOOGATE_ADMIN_TOKEN)",
            ));
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?;
        if constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes()) {
            Ok(Authorized)
        } else {
            Err(unauthorized("wrong bearer token"))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    // Comparing digests hides the length as well as the content.
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

// ---------------------------------------------------------------------------------------------
// Pagination

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

fn limit(requested: Option<i64>) -> ApiResult<i64> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Problem::bad_request(format!(
            "limit: must be between 1 and {MAX_LIMIT}, got {n}"
        ))),
    }
}

/// An opaque cursor: the (time, id) of the last item of a page.
fn encode_cursor(at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

fn decode_cursor(cursor: Option<&str>) -> ApiResult<Option<(i64, String)>> {
    let Some(c) = cursor else { return Ok(None) };
    let bad = || Problem::bad_request("cursor: not a cursor returned by this API");
    let text = URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some((at.parse().map_err(|_| bad())?, id.to_owned())))
}

/// The cursor of the next page: present when the page is full.
fn next_cursor<T>(items: &[T], limit: i64, key: impl Fn(&T) -> (i64, &str)) -> Option<String> {
    if i64::try_from(items.len()).ok()? < limit {
        return None;
    }
    items.last().map(|last| {
        let (at, id) = key(last);
        encode_cursor(at, id)
    })
}

// ---------------------------------------------------------------------------------------------
// Views

fn rfc3339(ms: i64) -> String {
    koogallery::time::from_epoch_millis(ms)
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// An instance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    pub instance_id: String,
    /// `provisioning`, `active`, `frozen`, `released` or `failed`.
    pub state: String,
    /// `saas_v2` or `saas_v1`.
    pub protocol: String,
    pub order_id: String,
    pub order_line_id: Option<String>,
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub charging_mode: Option<String>,
    pub quantity: Option<String>,
    pub customer_id: Option<String>,
    pub trial: bool,
    /// RFC 3339.
    pub expires_at: Option<String>,
    /// The result code KooGallery is answered with, for a failed creation.
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Oldest first; only when one instance is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<EventView>>,
}

impl InstanceView {
    pub fn from_instance(i: Instance, history: Option<Vec<Event>>) -> Self {
        Self {
            instance_id: i.instance_id,
            state: i.state.as_str().to_owned(),
            protocol: i.protocol,
            order_id: i.order_id,
            order_line_id: i.order_line_id,
            product_id: i.product_id,
            sku_code: i.sku_code,
            charging_mode: i.charging_mode,
            quantity: i.quantity,
            customer_id: i.customer_id,
            trial: i.trial,
            expires_at: i.expire_at.map(rfc3339),
            failure_code: i.failure_code,
            failure_message: i.failure_msg,
            created_at: rfc3339(i.created_at),
            updated_at: rfc3339(i.updated_at),
            history: history.map(|h| h.into_iter().map(EventView::from).collect()),
        }
    }
}

/// One entry of an instance's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub kind: String,
    pub from_state: Option<String>,
    pub state: String,
    pub order_id: Option<String>,
    pub detail: Option<String>,
    pub at: String,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            kind: e.kind,
            from_state: e.from_state,
            state: e.to_state,
            order_id: e.order_id,
            detail: e.detail,
            at: rfc3339(e.at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstancePage {
    pub items: Vec<InstanceView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Access information, as KooGallery shows it to the buyer (saas.md §5.2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInfoView {
    /// At most 512 characters.
    pub front_end_url: String,
    pub admin_url: Option<String>,
    pub user_name: Option<String>,
    pub password: Option<String>,
    pub memo: Option<String>,
}

impl From<AppInfoView> for AppInfo {
    fn from(v: AppInfoView) -> Self {
        AppInfo {
            front_end_url: v.front_end_url,
            admin_url: v.admin_url,
            user_name: v.user_name,
            password: v.password,
            memo: v.memo,
        }
    }
}

impl From<AppInfo> for AppInfoView {
    fn from(a: AppInfo) -> Self {
        Self {
            front_end_url: a.front_end_url,
            admin_url: a.admin_url,
            user_name: a.user_name,
            password: a.password,
            memo: a.memo,
        }
    }
}

/// Completes a provisioning.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteRequest {
    pub app_info: AppInfoView,
}

/// Fails a provisioning.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FailRequest {
    /// The result code KooGallery's calls are answered with: `000100`–`000107` (default
    /// `000104`, product internal service error).
    pub code: Option<String>,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub order_type: String,
    pub create_time: Option<String>,
    pub customer_id: Option<String>,
    /// When koogate read it from KooGallery.
    pub fetched_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderView>,
    pub next_cursor: Option<String>,
}

/// A webhook endpoint (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    /// Event types, or `["*"]`.
    pub events: Vec<String>,
    /// `config` or `runtime`.
    pub source: String,
    pub enabled: bool,
    pub created_at: String,
    /// Only in the answer that created the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointView {
    pub fn from_endpoint(e: Endpoint, secret: Option<String>) -> Self {
        Self {
            id: e.id,
            url: e.url,
            events: e.event_types,
            source: e.source,
            enabled: e.enabled,
            created_at: rfc3339(e.created_at),
            secret,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AddEndpointRequest {
    pub url: String,
    /// `whsec_…`; generated when absent (and returned once).
    pub secret: Option<String>,
    /// Event types to send; all when absent.
    pub events: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    /// The `webhook-id` header: the event's id, the same on every attempt.
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub instance_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Oldest first; only when one delivery is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptView>>,
}

impl DeliveryView {
    pub fn from_delivery(d: Delivery, attempts: Option<Vec<Attempt>>) -> Self {
        Self {
            next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            endpoint_id: d.endpoint_id,
            instance_id: d.instance_id,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            attempt_log: attempts.map(|a| a.into_iter().map(AttemptView::from).collect()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    pub at: String,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The start of the response body.
    pub response: Option<String>,
    pub error: Option<String>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            attempt: a.attempt,
            at: rfc3339(a.at),
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response: a.response,
            error: a.error,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Handlers

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstanceQuery {
    /// Only instances in this state.
    state: Option<String>,
    /// Only instances of this order.
    order_id: Option<String>,
    /// Page size, 1–500 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists instances, newest first.
#[utoipa::path(get, path = "/api/v1/instances", tag = "instances", params(InstanceQuery),
    responses((status = 200, body = InstancePage), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list_instances(
    _: Authorized,
    State(s): State<ApiState>,
    Query(q): Query<InstanceQuery>,
) -> ApiResult<Json<InstancePage>> {
    let state = match q.state.as_deref() {
        None => None,
        Some(name) => Some(crate::domain::instance::State::parse(name).ok_or_else(|| {
            Problem::bad_request(format!(
                "state: must be provisioning, active, frozen, released or failed, got {name:?}"
            ))
        })?),
    };
    let filter = instances::Filter {
        state,
        order_id: q.order_id,
        before: decode_cursor(q.cursor.as_deref())?,
        limit: limit(q.limit)?,
    };
    let mut conn = s.gateway.db.pool.acquire().await?;
    let items = instances::list(&mut conn, &filter).await?;
    let next_cursor = next_cursor(&items, filter.limit, |i| (i.created_at, &i.instance_id));
    Ok(Json(InstancePage {
        items: items
            .into_iter()
            .map(|i| InstanceView::from_instance(i, None))
            .collect(),
        next_cursor,
    }))
}

/// Reads an instance with its history.
#[utoipa::path(get, path = "/api/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "instance id")),
    responses((status = 200, body = InstanceView), (status = 404, body = Problem), (status = 401, body = Problem)))]
async fn get_instance(
    _: Authorized,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<InstanceView>> {
    let (inst, history) = ops::instance(&s.gateway, &id).await?;
    Ok(Json(InstanceView::from_instance(inst, Some(history))))
}

/// Completes a provisioning that the application accepted (answered 202): the instance becomes
/// active and KooGallery's `queryInstance` returns this access information.
#[utoipa::path(post, path = "/api/v1/instances/{id}/complete", tag = "instances",
    params(("id" = String, Path, description = "instance id")), request_body = CompleteRequest,
    responses((status = 200, body = InstanceView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 401, body = Problem)))]
async fn complete_instance(
    _: Authorized,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Body(req): Body<CompleteRequest>,
) -> ApiResult<Json<InstanceView>> {
    let inst = ops::complete(&s.gateway, &id, &AppInfo::from(req.app_info)).await?;
    Ok(Json(InstanceView::from_instance(inst, None)))
}

/// Fails a provisioning: KooGallery's calls for it are answered with the code, so the order
/// fails and is refunded.
#[utoipa::path(post, path = "/api/v1/instances/{id}/fail", tag = "instances",
    params(("id" = String, Path, description = "instance id")), request_body = FailRequest,
    responses((status = 200, body = InstanceView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 401, body = Problem)))]
async fn fail_instance(
    _: Authorized,
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Body(req): Body<FailRequest>,
) -> ApiResult<Json<InstanceView>> {
    let inst = ops::fail(&s.gateway, &id, req.code.as_deref(), &req.message).await?;
    Ok(Json(InstanceView::from_instance(inst, None)))
}

/// Gives the instance's administrator a new password; answers the new access information.
#[utoipa::path(post, path = "/api/v1/instances/{id}/rotate-credentials", tag = "instances",
    params(("id" = String, Path, description = "instance id")),
    responses((status = 200, body = AppInfoView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 401, body = Problem)))]
async fn rotate_credentials(
    _: Authorized,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AppInfoView>> {
    Ok(Json(ops::rotate_credentials(&s.gateway, &id).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–500 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists the orders read from KooGallery, most recent first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(PageQuery),
    responses((status = 200, body = OrderPage), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list_orders(
    _: Authorized,
    State(s): State<ApiState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<OrderPage>> {
    let limit = limit(q.limit)?;
    let mut conn = s.gateway.db.pool.acquire().await?;
    let items = orders::list(&mut conn, decode_cursor(q.cursor.as_deref())?, limit).await?;
    let next_cursor = next_cursor(&items, limit, |o| (o.fetched_at, &o.order_id));
    Ok(Json(OrderPage {
        items: items
            .into_iter()
            .map(|o| OrderView {
                order_id: o.order_id,
                order_type: o.order_type,
                create_time: o.create_time,
                customer_id: o.customer_id,
                fetched_at: rfc3339(o.fetched_at),
            })
            .collect(),
        next_cursor,
    }))
}

/// Lists webhook endpoints (from the config file and added at runtime).
#[utoipa::path(get, path = "/api/v1/webhook-endpoints", tag = "webhooks",
    responses((status = 200, body = [EndpointView]), (status = 401, body = Problem)))]
async fn list_endpoints(
    _: Authorized,
    State(s): State<ApiState>,
) -> ApiResult<Json<Vec<EndpointView>>> {
    let mut conn = s.gateway.db.pool.acquire().await?;
    let endpoints = store_webhooks::endpoints(&mut conn).await?;
    Ok(Json(
        endpoints
            .into_iter()
            .map(|e| EndpointView::from_endpoint(e, None))
            .collect(),
    ))
}

/// Adds a webhook endpoint; the answer carries its secret, the only time it is shown.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints", tag = "webhooks", request_body = AddEndpointRequest,
    responses((status = 201, body = EndpointView), (status = 422, body = Problem), (status = 401, body = Problem)))]
async fn add_endpoint(
    _: Authorized,
    State(s): State<ApiState>,
    Body(req): Body<AddEndpointRequest>,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    let (endpoint, secret) =
        ops::add_endpoint(&s.gateway, &req.url, req.secret.as_deref(), req.events).await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointView::from_endpoint(endpoint, Some(secret))),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    endpoint_id: Option<String>,
    instance_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// Page size, 1–500 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists webhook deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/webhook-deliveries", tag = "webhooks", params(DeliveryQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list_deliveries(
    _: Authorized,
    State(s): State<ApiState>,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    if let Some(status) = q.status.as_deref()
        && !matches!(status, "pending" | "delivered" | "failed")
    {
        return Err(Problem::bad_request(format!(
            "status: must be pending, delivered or failed, got {status:?}"
        )));
    }
    let filter = store_webhooks::DeliveryFilter {
        endpoint_id: q.endpoint_id,
        instance_id: q.instance_id,
        status: q.status,
        before: decode_cursor(q.cursor.as_deref())?,
        limit: limit(q.limit)?,
    };
    let mut conn = s.gateway.db.pool.acquire().await?;
    let items = store_webhooks::deliveries(&mut conn, &filter).await?;
    let next_cursor = next_cursor(&items, filter.limit, |d| (d.created_at, &d.id));
    Ok(Json(DeliveryPage {
        items: items
            .into_iter()
            .map(|d| DeliveryView::from_delivery(d, None))
            .collect(),
        next_cursor,
    }))
}

/// Reads a delivery with its attempt log.
#[utoipa::path(get, path = "/api/v1/webhook-deliveries/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "delivery id")),
    responses((status = 200, body = DeliveryView), (status = 404, body = Problem), (status = 401, body = Problem)))]
async fn get_delivery(
    _: Authorized,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryView>> {
    let mut conn = s.gateway.db.pool.acquire().await?;
    let delivery = store_webhooks::delivery(&mut conn, &id)
        .await?
        .ok_or_else(|| Problem::from(OpsError::NotFound(format!("delivery {id}"))))?;
    let attempts = store_webhooks::attempts(&mut conn, &id).await?;
    Ok(Json(DeliveryView::from_delivery(delivery, Some(attempts))))
}

/// Sends a delivery again, whatever its status.
#[utoipa::path(post, path = "/api/v1/webhook-deliveries/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "delivery id")),
    responses((status = 202, body = DeliveryView), (status = 404, body = Problem), (status = 401, body = Problem)))]
async fn replay_delivery(
    _: Authorized,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    ops::replay(&s.gateway, &id).await?;
    let mut conn = s.gateway.db.pool.acquire().await?;
    let delivery = store_webhooks::delivery(&mut conn, &id)
        .await?
        .ok_or_else(|| Problem::from(OpsError::NotFound(format!("delivery {id}"))))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeliveryView::from_delivery(delivery, None)),
    ))
}
