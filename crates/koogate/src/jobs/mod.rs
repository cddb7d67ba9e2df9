//! Job workers: claim a due job, run it without holding a database connection, then commit its
//! effects together with its completion. A worker killed mid-job leaves a lease that expires;
//! the job then runs again, and its effects are idempotent.

use std::sync::Arc;
use std::time::Duration;

use koogallery::ResultCode;
use koogallery::model::openapi::OrderInfo;
use tokio::sync::watch;

use crate::app::Gateway;
pub use crate::config::JOB_MAX_ATTEMPTS;
use crate::domain::instance::State;
use crate::provision::{Outcome, ProvisionError};
use crate::store::instances::{Instance, OrderData};
use crate::store::jobs::{self, Job};
use crate::store::uow::{CommitError, UnitOfWork};
use crate::store::{StoreError, instances, orders};

/// How often an idle worker looks for due jobs enqueued by other nodes or scheduled for later.
pub const POLL: Duration = Duration::from_secs(1);
/// Jobs one worker claims at once (in one unit of work) and runs together.
const CLAIM_BATCH: i64 = 16;

/// Why a job attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying later (network, 5xx, database busy).
    #[error("{0}")]
    Transient(String),
    /// Will never succeed; `code` is what `newInstance` retries are then answered with.
    #[error("{message}")]
    Permanent { code: ResultCode, message: String },
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Transient(e.to_string())
    }
}

/// Job kinds.
pub const JOB_FETCH_ORDER: &str = "fetch_order";
pub const JOB_PROVISION: &str = "provision";

/// What a job carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_line_id: Option<String>,
    /// Why the order is fetched: `create`, `upgrade`, `change`, `notify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Transient(e.to_string())
    }
}

/// The delay before attempt `n + 1`: 5 s doubling to a ceiling of 30 min (about 3 hours over
/// [`JOB_MAX_ATTEMPTS`] attempts, KooGallery's own retry horizon).
pub fn backoff_ms(attempts: i64) -> i64 {
    JOB_BACKOFF.delay_ms(attempts.saturating_add(1))
}

const JOB_BACKOFF: crate::backoff::Backoff = crate::backoff::Backoff {
    first_ms: 5_000,
    max_ms: 30 * 60 * 1000,
};

/// Runs jobs until `shutdown` turns true.
pub struct Runner {
    pub gateway: Arc<Gateway>,
    pub worker_id: String,
    /// How long a claimed job is reserved for this worker; a job is cut off at half of it, so
    /// a live worker never outlasts its lease.
    pub lease_ms: i64,
}

impl Runner {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::debug!(worker = %self.worker_id, "job worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = self.gateway.clock.now_ms();
            // Interest in a wake-up is registered before looking for work, so a job enqueued
            // between the look and the wait is not missed.
            let notified = self.gateway.jobs_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match jobs::claim_batch(
                &self.gateway.db,
                &self.worker_id,
                now,
                self.lease_ms,
                CLAIM_BATCH,
            )
            .await
            {
                Ok(batch) if !batch.is_empty() => {
                    // Together: each is cut off at half the lease from now, so none outlives it.
                    futures_util::future::join_all(batch.into_iter().map(|job| self.execute(job)))
                        .await;
                }
                Ok(_) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim a job; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
        tracing::debug!(worker = %self.worker_id, "job worker stopped");
    }

    /// Runs one claimed job to an outcome: done, retried later, or given up.
    pub async fn execute(&self, job: Job) {
        let payload: JobPayload = match serde_json::from_str(&job.payload) {
            Ok(p) => p,
            Err(e) => {
                self.give_up(
                    &job,
                    &JobPayload::default(),
                    ResultCode::InternalError,
                    &format!("unreadable payload: {e}"),
                )
                .await;
                return;
            }
        };
        let run = async {
            match job.kind.as_str() {
                JOB_FETCH_ORDER => self.fetch_order(&job, &payload).await,
                JOB_PROVISION => self.provision(&job, &payload).await,
                other => Err(JobError::Permanent {
                    code: ResultCode::InternalError,
                    message: format!("unknown job kind {other:?}"),
                }),
            }
        };
        let limit = Duration::from_millis(u64::try_from(self.lease_ms / 2).unwrap_or(1));
        let outcome = tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
            Err(JobError::Transient(format!(
                "timed out after {} ms",
                limit.as_millis()
            )))
        });
        match outcome {
            Ok(()) => tracing::info!(job = %job.id, kind = %job.kind, "job done"),
            Err(JobError::Permanent { code, message }) => {
                self.give_up(&job, &payload, code, &message).await
            }
            Err(JobError::Transient(message)) if job.attempts >= job.max_attempts => {
                self.give_up(
                    &job,
                    &payload,
                    ResultCode::ServiceError,
                    &format!("gave up after {} attempts: {message}", job.attempts),
                )
                .await;
            }
            Err(JobError::Transient(message)) => {
                let now = self.gateway.clock.now_ms();
                let run_at = now + backoff_ms(job.attempts);
                tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %message, "job failed; will retry");
                if let Err(e) = jobs::retry_at(
                    &self.gateway.db,
                    &job.id,
                    &self.worker_id,
                    run_at,
                    &message,
                    now,
                )
                .await
                {
                    tracing::error!(job = %job.id, error = %e, "cannot reschedule job; its lease will expire and it will run again");
                }
            }
        }
    }

    /// Marks the job dead and, for a creation, the instance failed with `code`, in one transaction.
    async fn give_up(&self, job: &Job, payload: &JobPayload, code: ResultCode, message: &str) {
        tracing::error!(job = %job.id, kind = %job.kind, code = %code, error = %message, "job failed permanently");
        let result: Result<(), JobError> = async {
            let now = self.gateway.clock.now_ms();
            let mut tx = self.gateway.db.begin().await?;
            if !jobs::give_up(&mut tx, &job.id, &self.worker_id, message, now).await? {
                return Ok(());
            }
            let creating = matches!(payload.purpose.as_deref(), Some("create"));
            if let (true, Some(id)) = (creating, payload.instance_id.as_deref()) {
                crate::service::instances::fail_provisioning(&mut tx, id, code, message, now)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(job = %job.id, error = %e, "cannot record the job's failure; it will be retried");
        }
    }

    /// Reads an order from KooGallery and applies it: stores it, completes the instance's data,
    /// and continues with provisioning (creation) or the new specification (upgrade, change).
    async fn fetch_order(&self, job: &Job, payload: &JobPayload) -> Result<(), JobError> {
        let client = self.gateway.openapi.as_ref().ok_or_else(|| JobError::Permanent {
            code: ResultCode::InternalError,
            message: "account AK/SK are not configured, so orders cannot be read (KOOGATE_AK, KOOGATE_SK)".to_owned(),
        })?;
        let order_id = payload
            .order_id
            .as_deref()
            .ok_or_else(|| JobError::Permanent {
                code: ResultCode::InternalError,
                message: "job has no order id".to_owned(),
            })?;
        let order = client
            .query_order(order_id, payload.order_line_id.as_deref())
            .await
            .map_err(|e| {
                if e.is_retryable() {
                    JobError::Transient(e.to_string())
                } else {
                    JobError::Permanent {
                        code: ResultCode::ServiceError,
                        message: format!("order {order_id} cannot be read: {e}"),
                    }
                }
            })?;
        let gw = &self.gateway;
        let now = gw.clock.now_ms();
        let mut tx = gw.db.begin().await?;
        let buyer = order
            .buyer_info
            .as_ref()
            .and_then(|b| serde_json::to_string(b).ok())
            .map(|json| gw.sealer.seal(&json));
        orders::save(&mut tx, &order, buyer.as_deref(), now).await?;
        let event = crate::webhooks::envelope(
            "order.fetched",
            now,
            serde_json::json!({
                "order_id": order.order_id,
                "order_type": order.order_type,
                "order_line_id": payload.order_line_id,
                "instance_id": payload.instance_id,
                "purpose": payload.purpose,
            }),
        );
        crate::store::webhooks::emit(
            &mut tx,
            "order.fetched",
            payload.instance_id.as_deref(),
            &event,
            None,
            now,
        )
        .await?;
        if let Some(instance_id) = payload.instance_id.as_deref() {
            let data = order_data(&order, payload.order_line_id.as_deref());
            instances::set_order_data(&mut tx, instance_id, &data, now).await?;
            match payload.purpose.as_deref() {
                Some("create") => {
                    let next = JobPayload {
                        purpose: Some("create".to_owned()),
                        ..payload.clone()
                    };
                    let json = serde_json::to_string(&next)
                        .map_err(|e| JobError::Transient(e.to_string()))?;
                    jobs::enqueue(
                        &mut tx,
                        JOB_PROVISION,
                        &json,
                        Some(&format!("provision|{instance_id}")),
                        now,
                        JOB_MAX_ATTEMPTS,
                        now,
                    )
                    .await?;
                }
                Some(purpose @ ("upgrade" | "change")) => {
                    let detail = serde_json::json!({"purpose": purpose, "productId": data.product_id, "skuCode": data.sku_code, "quantity": data.quantity}).to_string();
                    if let Some(inst) = instances::get(&mut tx, instance_id).await? {
                        crate::service::instances::record_event(
                            &mut tx,
                            instance_id,
                            "specification_changed",
                            Some(inst.state),
                            inst.state,
                            Some(order_id),
                            Some(&detail),
                            now,
                        )
                        .await?;
                    }
                }
                _ => {}
            }
        }
        if !jobs::complete(&mut tx, &job.id, &self.worker_id, now).await? {
            return Err(JobError::Transient(
                "lease lost to another worker".to_owned(),
            ));
        }
        tx.commit().await?;
        gw.jobs_ready.notify_waiters();
        Ok(())
    }

    /// Provisions an instance with the provisioner of its product/SKU (built-in when none is
    /// configured) and, when it answers with access information, makes the instance active.
    /// The external call is made holding no database connection.
    async fn provision(&self, job: &Job, payload: &JobPayload) -> Result<(), JobError> {
        let gw = &self.gateway;
        let instance_id = payload
            .instance_id
            .as_deref()
            .ok_or_else(|| JobError::Permanent {
                code: ResultCode::InternalError,
                message: "job has no instance id".to_owned(),
            })?;
        let inst = {
            let mut conn = gw.db.pool.acquire().await?;
            instances::get(&mut conn, instance_id).await?
        }
        .ok_or_else(|| JobError::Permanent {
            code: ResultCode::InternalError,
            message: format!("instance {instance_id} does not exist"),
        })?;
        // Any other state: released while waiting, or already provisioned by an earlier
        // attempt that lost its lease. Nothing to do but finish the job.
        let outcome = if inst.state == State::Provisioning {
            Some(self.run_provisioner(job, &inst).await?)
        } else {
            None
        };
        if let Some(Outcome::Accepted) = outcome {
            tracing::info!(
                instance = %instance_id,
                "provisioning accepted by the application; waiting for it to complete"
            );
        }
        let sealed = match &outcome {
            Some(Outcome::Ready(app)) => {
                Some(crate::service::instances::seal_app(&gw.sealer, app)?)
            }
            _ => None,
        };
        // The effects and the job's completion in one unit, conditional on the lease and on
        // the instance's version; a version conflict (the instance changed meanwhile, e.g.
        // released) is decided again on a fresh read, without provisioning again.
        let mut inst = inst;
        for _ in 0..8 {
            let now = gw.clock.now_ms();
            let mut unit = UnitOfWork::new();
            if let Some(sealed) = &sealed {
                crate::service::instances::provisioned_in(&mut unit, &inst, sealed.clone(), now);
            }
            jobs::complete_in(&mut unit, &job.id, &self.worker_id, now);
            match gw.db.commit(unit).await {
                Ok(()) => {
                    gw.jobs_ready.notify_waiters();
                    return Ok(());
                }
                Err(CommitError::Conflict("lease")) => {
                    return Err(JobError::Transient(
                        "lease lost to another worker".to_owned(),
                    ));
                }
                Err(CommitError::Conflict(_)) => {
                    let mut conn = gw.db.pool.acquire().await?;
                    inst = instances::get(&mut conn, instance_id)
                        .await?
                        .ok_or_else(|| JobError::Permanent {
                            code: ResultCode::InternalError,
                            message: format!("instance {instance_id} does not exist"),
                        })?;
                }
                Err(CommitError::Store(e)) => return Err(JobError::Transient(e.to_string())),
            }
        }
        Err(JobError::Transient(
            "the instance kept changing while its provisioning was recorded".to_owned(),
        ))
    }

    /// Runs the provisioner of an instance's product/SKU.
    async fn run_provisioner(&self, job: &Job, inst: &Instance) -> Result<Outcome, JobError> {
        let gw = &self.gateway;
        let Some(rule) =
            gw.external_provisioner(inst.product_id.as_deref(), inst.sku_code.as_deref())
        else {
            let vars = crate::provision::Vars {
                instance_id: &inst.instance_id,
                order_id: &inst.order_id,
                customer_id: inst.customer_id.as_deref().unwrap_or_default(),
            };
            return Ok(Outcome::Ready(crate::provision::provision(
                &gw.templates,
                vars,
            )));
        };
        let result = crate::provision::call(rule, &gw.http, inst, gw.clock.now_ms()).await;
        result.map_err(|e| match e {
            ProvisionError::Transient(m) if job.attempts < rule.max_attempts => {
                JobError::Transient(m)
            }
            ProvisionError::Transient(m) => JobError::Permanent {
                code: ResultCode::ServiceError,
                message: format!("gave up after {} attempts: {m}", job.attempts),
            },
            ProvisionError::Permanent(m) => JobError::Permanent {
                code: ResultCode::ServiceError,
                message: m,
            },
        })
    }
}

/// What an order says about the instance of one of its lines.
fn order_data(order: &OrderInfo, order_line_id: Option<&str>) -> OrderData {
    let line = order
        .order_line
        .iter()
        .find(|l| Some(l.order_line_id.as_str()) == order_line_id)
        .or_else(|| order.order_line.first());
    let product = line
        .and_then(|l| l.product_info.as_ref())
        .and_then(|p| p.first());
    OrderData {
        product_id: product.and_then(|p| p.product_id.clone()),
        sku_code: product.and_then(|p| p.sku_code.clone()),
        charging_mode: line.map(|l| l.charging_mode.clone()),
        quantity: product
            .and_then(|p| p.linear_value.as_ref())
            .map(|v| v.as_str().to_owned()),
        customer_id: order
            .buyer_info
            .as_ref()
            .and_then(|b| b.customer_id.clone()),
        trial: Some(order.order_type == "TRIAL"),
        expire_at: line
            .and_then(|l| l.expire_time.as_deref())
            .and_then(|t| koogallery::time::parse_expire_time(t).ok())
            .map(koogallery::time::epoch_millis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_ceiling_over_about_three_hours() {
        assert_eq!(backoff_ms(0), 5_000);
        assert_eq!(backoff_ms(1), 10_000);
        assert_eq!(backoff_ms(30), 30 * 60 * 1000);
        let total: i64 = (1..JOB_MAX_ATTEMPTS).map(backoff_ms).sum();
        assert!((2 * 3_600_000..=5 * 3_600_000).contains(&total), "{total}");
    }
}
