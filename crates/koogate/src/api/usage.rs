//! `/api/v1/usage`: usage ingestion, the per-window report, windows and an immediate push
//! (docs/metering.md).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiResult, ApiState, Authorized, Problem};
use crate::metering::ingest::{self, IngestReport};
use crate::metering::{format_quantity, parse_time, rfc3339};
use crate::store::usage::{self, Bucket, Filter, ReportRow};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/usage", post(ingest_usage))
        .route("/api/v1/usage/report", get(usage_report))
        .route("/api/v1/usage/windows", get(usage_windows))
        .route("/api/v1/usage/push", post(push_now))
}

/// One usage event (the body is a JSON array of these, or NDJSON: one per line).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageEventDoc {
    /// The on-demand instance.
    pub instance_id: String,
    /// Decimal text (or a JSON number), > 0, at most 4 decimals.
    pub quantity: String,
    /// RFC 3339, or Unix epoch milliseconds; within the last 21 days, not in the future.
    pub occurred_at: String,
    /// At most 128 characters; an event repeating a stored key is counted once.
    pub idempotency_key: String,
    /// The use-until-exhausted package instance deducted, if any.
    pub relate_pkg_instance: Option<String>,
}

/// Records usage events: each is validated alone (the answer lists the refused ones and why),
/// the accepted ones are durable when the call answers.
#[utoipa::path(post, path = "/api/v1/usage", tag = "usage",
    request_body(content = [UsageEventDoc], description = "a JSON array of events, or NDJSON (application/x-ndjson)"),
    responses((status = 200, body = IngestReport), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn ingest_usage(
    _: Authorized,
    State(s): State<ApiState>,
    body: Bytes,
) -> ApiResult<Json<IngestReport>> {
    let events = ingest::parse_batch(&body).map_err(Problem::bad_request)?;
    let now = s.gateway.clock.now_ms();
    let report = ingest::ingest(&s.gateway.db, &s.gateway.metering, events, now).await?;
    Ok(Json(report))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only this instance.
    instance_id: Option<String>,
    /// Windows starting at or after this (RFC 3339 or epoch ms).
    from: Option<String>,
    /// Windows starting before this (RFC 3339 or epoch ms).
    to: Option<String>,
    /// Only windows in this status (`open`, `sealed`, `accepted`, `rejected`, `expired`; windows list only).
    status: Option<String>,
    /// At most this many lines, 1–10000 (default 1000).
    limit: Option<i64>,
}

impl ReportQuery {
    fn filter(self) -> ApiResult<Filter> {
        let time = |name: &str, v: Option<String>| {
            v.map(|t| parse_time(&t).map_err(|e| Problem::bad_request(format!("{name}: {e}"))))
                .transpose()
        };
        if let Some(st) = self.status.as_deref()
            && !matches!(st, "open" | "sealed" | "accepted" | "rejected" | "expired")
        {
            return Err(Problem::bad_request(format!(
                "status: must be open, sealed, accepted, rejected or expired, got {st:?}"
            )));
        }
        let limit = match self.limit {
            None => 1000,
            Some(n) if (1..=10_000).contains(&n) => n,
            Some(n) => {
                return Err(Problem::bad_request(format!(
                    "limit: must be between 1 and 10000, got {n}"
                )));
            }
        };
        Ok(Filter {
            instance_id: self.instance_id,
            status: self.status,
            from: time("from", self.from)?,
            to: time("to", self.to)?,
            limit,
        })
    }
}

/// Usage of the windows starting at one time (decimal text).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportLine {
    /// RFC 3339.
    pub window_start: String,
    /// Windows (instance × package) starting then.
    pub windows: i64,
    pub events: i64,
    pub recorded: String,
    /// Sent to KooGallery at least once.
    pub pushed: String,
    pub accepted: String,
    /// Refused by KooGallery or too old to push.
    pub rejected: String,
    /// Open or sealed, not settled yet.
    pub pending: String,
}

impl From<ReportRow> for ReportLine {
    fn from(r: ReportRow) -> Self {
        Self {
            window_start: rfc3339(r.window_start),
            windows: r.windows,
            events: r.events,
            recorded: format_quantity(r.recorded),
            pushed: format_quantity(r.pushed),
            accepted: format_quantity(r.accepted),
            rejected: format_quantity(r.rejected),
            pending: format_quantity(r.pending),
        }
    }
}

/// One usage window of one instance: the record pushed to KooGallery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WindowView {
    pub metering_sn: String,
    pub instance_id: String,
    pub relate_pkg_instance: Option<String>,
    pub window_start: String,
    pub window_end: String,
    pub usage_value: String,
    pub events: i64,
    /// `open`, `sealed`, `accepted`, `rejected` or `expired`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    /// KooGallery's code of a rejection.
    pub error_code: Option<String>,
    /// Why it was rejected, or why the last attempt failed.
    pub error: Option<String>,
    pub pushed_at: Option<String>,
    pub settled_at: Option<String>,
}

impl From<Bucket> for WindowView {
    fn from(b: Bucket) -> Self {
        Self {
            next_attempt_at: (b.status == "sealed").then(|| rfc3339(b.next_attempt_at)),
            relate_pkg_instance: (!b.pkg_instance.is_empty()).then_some(b.pkg_instance),
            metering_sn: b.metering_sn,
            instance_id: b.instance_id,
            window_start: rfc3339(b.window_start),
            window_end: rfc3339(b.window_end),
            usage_value: format_quantity(b.quantity),
            events: b.events,
            status: b.status,
            attempts: b.attempts,
            error_code: b.error_code,
            error: b.last_error,
            pushed_at: b.pushed_at.map(rfc3339),
            settled_at: b.settled_at.map(rfc3339),
        }
    }
}

/// Recorded, pushed, accepted and rejected usage per window start, oldest first.
#[utoipa::path(get, path = "/api/v1/usage/report", tag = "usage", params(ReportQuery),
    responses((status = 200, body = [ReportLine]), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn usage_report(
    _: Authorized,
    State(s): State<ApiState>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<Vec<ReportLine>>> {
    let filter = q.filter()?;
    let mut conn = s.gateway.db.pool.acquire().await?;
    let rows = usage::report(&mut conn, &filter).await?;
    Ok(Json(rows.into_iter().map(ReportLine::from).collect()))
}

/// Usage windows, oldest first: filter by `status=rejected` to see what KooGallery refused.
#[utoipa::path(get, path = "/api/v1/usage/windows", tag = "usage", params(ReportQuery),
    responses((status = 200, body = [WindowView]), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn usage_windows(
    _: Authorized,
    State(s): State<ApiState>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<Vec<WindowView>>> {
    let filter = q.filter()?;
    let mut conn = s.gateway.db.pool.acquire().await?;
    let rows = usage::buckets(&mut conn, &filter).await?;
    Ok(Json(rows.into_iter().map(WindowView::from).collect()))
}

/// What a push pass did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PushView {
    pub sealed: u64,
    pub expired: usize,
    pub calls: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub retrying: usize,
    /// No account AK/SK is configured: nothing can be pushed.
    pub no_client: bool,
    pub last_error: Option<String>,
}

/// Pushes every sealed window now, ignoring retry delays (windows still open are not sealed
/// early).
#[utoipa::path(post, path = "/api/v1/usage/push", tag = "usage",
    responses((status = 200, body = PushView), (status = 401, body = Problem)))]
async fn push_now(_: Authorized, State(s): State<ApiState>) -> ApiResult<Json<PushView>> {
    let now = s.gateway.clock.now_ms();
    usage::make_due(&s.gateway.db, now).await?;
    let r = crate::metering::push::push_due(&s.gateway, now, &|_| {}).await?;
    Ok(Json(PushView {
        sealed: r.sealed,
        expired: r.expired,
        calls: r.calls,
        accepted: r.accepted,
        rejected: r.rejected,
        retrying: r.retrying,
        no_client: r.no_client,
        last_error: r.last_error,
    }))
}
