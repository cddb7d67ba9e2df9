//! The usage push (openapi.md §3): sealed windows are sent to KooGallery oldest first, at most
//! `batch_size` records per call, each record with the `metering_sn` of its window so that a
//! resend is recognised, and settled by the answer:
//!
//! * `MKT.0000`: accepted, except the records listed in `abnormal_usage_data`, which are rejected;
//! * `MKT.9001`/`9002`/`9004`/`0101`/`0199`/`0150` (the records are wrong): the records listed as
//!   abnormal are rejected; without such a list the batch is split until each record is judged
//!   alone; `MKT.9003` (too many records) splits the batch;
//! * `MKT.0999`/`MKT.0100`, HTTP 5xx, network errors, a malformed answer: the whole batch is
//!   retried with back-off (same serials), and the run stops: the API is down;
//! * a wrong body signature, gateway authentication errors and other configuration problems:
//!   retried with back-off as well (nothing is lost while the operator fixes the configuration).
//!
//! A rejected window is kept with its reason (`koogate usage report`, `/api/v1/usage/windows`)
//! and announced as a `usage.rejected` webhook event. Windows older than 21 days are never sent
//! (KooGallery refuses them, `MKT.9004`): they are marked `expired` and announced the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use koogallery::model::openapi::{
    OldUsagePushRequest, OldUsageRecord, UsagePushCode, UsagePushRequest, UsageRecord,
};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::AnyConnection;
use tokio::sync::watch;

use super::{MAX_AGE_MS, format_quantity, sdk_time};
use crate::app::Gateway;
use crate::openapi::{OpenApiError, UsagePushAnswer};
use crate::store::usage::{self, Bucket, InstanceFacts};
use crate::store::{StoreError, webhooks as store_webhooks};

/// How long a claimed batch is reserved for the node pushing it.
pub const LEASE_MS: i64 = 5 * 60_000;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PushSummary {
    /// Windows sealed by this pass.
    pub sealed: u64,
    /// Windows too old to push, marked expired.
    pub expired: usize,
    /// Usage-push calls made.
    pub calls: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// Windows left for a later attempt after a failed call.
    pub retrying: usize,
    /// No open-API client (account AK/SK) is configured: nothing was sent.
    pub no_client: bool,
    /// The last failed call's error, if any.
    pub last_error: Option<String>,
}

/// How an answer settles a batch.
enum Verdict {
    /// Accepted, except these serials (code, message).
    Accepted(HashMap<String, (String, String)>),
    /// The records are wrong: those listed are rejected; the rest must be judged in smaller
    /// batches (or alone: rejected with this code).
    Refused {
        listed: HashMap<String, (String, String)>,
        code: String,
        message: String,
    },
    /// Try the whole batch again later.
    Retry(String),
}

/// Seals due windows, expires those too old, and pushes every due sealed window, oldest first.
/// `progress` is called with the number of windows settled after each call. Call it from the
/// scheduler (each tick) or directly (tests, `koogate usage push --now`).
pub async fn push_due(
    gateway: &Gateway,
    now: i64,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<PushSummary, StoreError> {
    let settings = &gateway.metering;
    let mut summary = PushSummary {
        sealed: usage::seal_due(&gateway.db, now, settings.grace_ms).await?,
        ..PushSummary::default()
    };
    summary.expired = expire_old(gateway, now).await?;
    let Some(client) = gateway.openapi.clone() else {
        summary.no_client = true;
        return Ok(summary);
    };
    let batch_size = settings
        .batch_size
        .clamp(1, koogallery::model::openapi::MAX_USAGE_RECORDS);
    loop {
        let batch = usage::claim_due(&gateway.db, now, batch_size, LEASE_MS).await?;
        if batch.is_empty() {
            break;
        }
        let stop = push_batch(gateway, &client, batch, now, &mut summary, progress).await?;
        if stop {
            break;
        }
    }
    Ok(summary)
}

/// Pushes one claimed batch, splitting it when KooGallery refuses records without naming them.
/// Returns true when the API failed and the run should stop.
async fn push_batch(
    gateway: &Gateway,
    client: &crate::openapi::OpenApiClient,
    batch: Vec<Bucket>,
    now: i64,
    summary: &mut PushSummary,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<bool, StoreError> {
    let ids: Vec<&str> = batch.iter().map(|b| b.instance_id.as_str()).collect();
    let facts = {
        let mut conn = gateway.db.pool.acquire().await?;
        usage::instance_facts(&mut conn, &ids).await?
    };
    let mut queue: VecDeque<Vec<Bucket>> = VecDeque::from([batch]);
    while let Some(batch) = queue.pop_front() {
        let body = match body(gateway, &batch, &facts, now) {
            Ok(body) => body,
            Err((sn, reason)) => {
                // Cannot be expressed as a record: reject that window, push the others.
                let (bad, rest): (Vec<Bucket>, Vec<Bucket>) =
                    batch.into_iter().partition(|b| b.metering_sn == sn);
                settle(
                    gateway,
                    &bad,
                    &HashMap::new(),
                    Some(("local", &reason)),
                    false,
                    now,
                    summary,
                )
                .await?;
                if !rest.is_empty() {
                    queue.push_front(rest);
                }
                continue;
            }
        };
        summary.calls += 1;
        let answer = client
            .push_usage(&gateway.keys.basic, gateway.metering.legacy_api, &body)
            .await;
        match judge(answer) {
            Verdict::Accepted(abnormal) => {
                settle(gateway, &batch, &abnormal, None, true, now, summary).await?;
                progress(batch.len());
            }
            Verdict::Refused {
                listed,
                code,
                message,
            } => {
                let (named, unnamed): (Vec<Bucket>, Vec<Bucket>) = batch
                    .into_iter()
                    .partition(|b| listed.contains_key(&b.metering_sn));
                settle(gateway, &named, &listed, None, true, now, summary).await?;
                progress(named.len());
                match unnamed.len() {
                    0 => {}
                    1 if named.is_empty() => {
                        settle(
                            gateway,
                            &unnamed,
                            &HashMap::new(),
                            Some((&code, &message)),
                            true,
                            now,
                            summary,
                        )
                        .await?;
                        progress(1);
                    }
                    n => {
                        let mut unnamed = unnamed;
                        let second = unnamed.split_off(n.div_ceil(2).min(n));
                        if !second.is_empty() {
                            queue.push_front(second);
                        }
                        queue.push_front(unnamed);
                    }
                }
            }
            Verdict::Retry(error) => {
                tracing::warn!(error = %error, windows = batch.len() + queue.iter().map(Vec::len).sum::<usize>(), "usage push failed; retrying later");
                let mut tx = gateway.db.begin().await?;
                for b in batch.iter().chain(queue.iter().flatten()) {
                    let next = now.saturating_add(gateway.metering.backoff_ms(b.attempts + 1));
                    usage::retry_later(&mut tx, &b.metering_sn, next, &error, now).await?;
                    summary.retrying += 1;
                }
                tx.commit().await?;
                summary.last_error = Some(error);
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The exact body of a push: compact JSON with every object's members sorted (the models
/// declare them in order), as signed (security.md §11). Err names a window that cannot be sent.
fn body(
    gateway: &Gateway,
    batch: &[Bucket],
    facts: &HashMap<String, InstanceFacts>,
    now: i64,
) -> Result<Vec<u8>, (String, String)> {
    let record_time = sdk_time(now);
    let mut records = Vec::with_capacity(batch.len());
    let mut old = Vec::new();
    for b in batch {
        let f = facts.get(&b.instance_id);
        // KooGallery: begin_time ≥ the resource's start, end_time ≤ its close (openapi.md §3.4 #4).
        let begin = f.map_or(b.window_start, |f| b.window_start.max(f.created_at));
        let mut end = b.window_end;
        if let Some(released) = f.and_then(|f| f.released_at) {
            end = end.min(released);
        }
        let end = end.max(begin);
        let pkg = (!b.pkg_instance.is_empty()).then(|| b.pkg_instance.clone());
        if gateway.metering.legacy_api {
            let Some(product_id) = f.and_then(|f| f.product_id.clone()) else {
                return Err((
                    b.metering_sn.clone(),
                    "the old usage API needs the product id, which is unknown for this instance"
                        .to_owned(),
                ));
            };
            old.push(OldUsageRecord {
                begin_time: sdk_time(begin),
                end_time: sdk_time(end),
                instance_id: b.instance_id.clone(),
                product_id,
                record_time: record_time.clone(),
                relate_pkg_instance: pkg,
                usage_value: format_quantity(b.quantity),
            });
        } else {
            records.push(UsageRecord {
                begin_time: sdk_time(begin),
                end_time: sdk_time(end),
                instance_id: b.instance_id.clone(),
                metering_sn: b.metering_sn.clone(),
                record_time: record_time.clone(),
                relate_pkg_instance: pkg,
                usage_value: format_quantity(b.quantity),
            });
        }
    }
    let json = if gateway.metering.legacy_api {
        serde_json::to_vec(&OldUsagePushRequest { usage_records: old })
    } else {
        serde_json::to_vec(&UsagePushRequest {
            usage_records: records,
        })
    };
    json.map_err(|e| {
        (
            batch
                .first()
                .map(|b| b.metering_sn.clone())
                .unwrap_or_default(),
            e.to_string(),
        )
    })
}

/// The serials KooGallery lists as abnormal, with their code and message. The element fields
/// are not published (openapi.md §3.3); `metering_sn`, `error_code`, `error_msg` are read when
/// present, and the list is logged.
fn abnormal(list: Option<&Vec<Value>>) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    for item in list.into_iter().flatten() {
        let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
        match text("metering_sn") {
            Some(sn) => {
                out.insert(
                    sn,
                    (
                        text("error_code").unwrap_or_else(|| "abnormal".to_owned()),
                        text("error_msg").unwrap_or_else(|| item.to_string()),
                    ),
                );
            }
            None => {
                tracing::warn!(record = %item, "usage push: abnormal record without metering_sn")
            }
        }
    }
    out
}

fn judge(answer: Result<UsagePushAnswer, OpenApiError>) -> Verdict {
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return Verdict::Retry(e.to_string()),
    };
    let r = &answer.response;
    let listed = abnormal(r.abnormal_usage_data.as_ref());
    let message = r.error_msg.clone().unwrap_or_default();
    match UsagePushCode::parse(&r.error_code) {
        Some(UsagePushCode::Success) if (200..300).contains(&answer.status) => {
            Verdict::Accepted(listed)
        }
        Some(code) if code.is_retryable() => Verdict::Retry(format!("{}: {message}", r.error_code)),
        Some(
            UsagePushCode::InstanceNotFound
            | UsagePushCode::InvalidUsageEntities
            | UsagePushCode::BeginTimeTooOld
            | UsagePushCode::InvalidParameter
            | UsagePushCode::RequestParameterError
            | UsagePushCode::IllegalOperation
            | UsagePushCode::TooManyRecords,
        ) => Verdict::Refused {
            listed,
            code: r.error_code.clone(),
            message,
        },
        // A wrong key, token or authority, an unknown code: the configuration (or KooGallery)
        // must change; keep the windows and try again later.
        _ => Verdict::Retry(format!(
            "HTTP {} {}: {message}",
            answer.status, r.error_code
        )),
    }
}

/// Settles windows: each listed in `abnormal` is rejected with its code, the others get
/// `error` (rejected) or, without one, are accepted. Rejections are announced by webhook.
async fn settle(
    gateway: &Gateway,
    batch: &[Bucket],
    abnormal: &HashMap<String, (String, String)>,
    error: Option<(&str, &str)>,
    pushed: bool,
    now: i64,
    summary: &mut PushSummary,
) -> Result<(), StoreError> {
    let mut tx = gateway.db.begin().await?;
    for b in batch {
        let refusal = abnormal
            .get(&b.metering_sn)
            .map(|(c, m)| (c.as_str(), m.as_str()))
            .or(error);
        match refusal {
            None => {
                if usage::settle(&mut tx, &b.metering_sn, "accepted", None, pushed, now).await? {
                    summary.accepted += 1;
                }
            }
            Some((code, message)) => {
                if usage::settle(
                    &mut tx,
                    &b.metering_sn,
                    "rejected",
                    Some((code, message)),
                    pushed,
                    now,
                )
                .await?
                {
                    summary.rejected += 1;
                    tracing::warn!(instance = %b.instance_id, window = %sdk_time(b.window_start), code, "usage window rejected");
                    emit_rejected(&mut tx, b, "rejected", code, message, now).await?;
                }
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Marks sealed windows older than 21 days `expired` (never sent: `MKT.9004`).
async fn expire_old(gateway: &Gateway, now: i64) -> Result<usize, StoreError> {
    let mut tx = gateway.db.begin().await?;
    let old = usage::sealed_before(&mut tx, now.saturating_sub(MAX_AGE_MS)).await?;
    let mut n = 0;
    let reason = "the window began more than 21 days ago: KooGallery refuses it (MKT.9004)";
    for b in &old {
        if usage::settle(
            &mut tx,
            &b.metering_sn,
            "expired",
            Some(("MKT.9004", reason)),
            false,
            now,
        )
        .await?
        {
            n += 1;
            emit_rejected(&mut tx, b, "expired", "MKT.9004", reason, now).await?;
        }
    }
    tx.commit().await?;
    if n > 0 {
        tracing::warn!(
            windows = n,
            "usage windows expired before they could be pushed"
        );
    }
    Ok(n)
}

/// The `usage.rejected` webhook event of a window.
async fn emit_rejected(
    conn: &mut AnyConnection,
    b: &Bucket,
    status: &str,
    code: &str,
    message: &str,
    now: i64,
) -> Result<(), StoreError> {
    let data = json!({
        "instance_id": b.instance_id,
        "relate_pkg_instance": (!b.pkg_instance.is_empty()).then_some(&b.pkg_instance),
        "metering_sn": b.metering_sn,
        "window_start": super::rfc3339(b.window_start),
        "window_end": super::rfc3339(b.window_end),
        "usage_value": format_quantity(b.quantity),
        "status": status,
        "error_code": code,
        "reason": message,
    });
    store_webhooks::emit(
        conn,
        "usage.rejected",
        Some(&b.instance_id),
        &crate::webhooks::envelope("usage.rejected", now, data),
        None,
        now,
    )
    .await?;
    Ok(())
}

/// Runs [`push_due`] every `tick_ms` until `shutdown` turns true.
pub struct Scheduler {
    pub gateway: Arc<Gateway>,
}

impl Scheduler {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let tick = Duration::from_millis(self.gateway.metering.tick_ms.max(100));
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = self.gateway.clock.now_ms();
            match push_due(&self.gateway, now, &|_| {}).await {
                Ok(s) if s.calls > 0 || s.expired > 0 => tracing::info!(
                    calls = s.calls,
                    accepted = s.accepted,
                    rejected = s.rejected,
                    retrying = s.retrying,
                    expired = s.expired,
                    "usage push"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "usage push pass failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
