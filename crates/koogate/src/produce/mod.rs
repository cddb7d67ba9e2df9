//! The production interface: what KooGallery calls. Each request is verified, decoded, applied
//! in one database transaction (nonce, idempotent business change, audit row, jobs), answered
//! with a signed JSON body. Slow work (order queries, provisioning) is left to jobs.

pub mod redact;
mod v1;
mod v2;

use std::time::Instant;

use koogallery::ResultCode;
use koogallery::canonical::to_ascii_json;
use koogallery::crypto::FieldCipher;
use koogallery::model::ResultEnvelope;
use koogallery::model::saas_v2::{AppInfo, InstanceInfo};
use koogallery::sign::body_sign;
use serde::Serialize;
use sqlx::AnyConnection;

pub use crate::app::{Gateway, Keys};
use crate::error::AppError;
use crate::jobs::JOB_MAX_ATTEMPTS;
pub use crate::jobs::JobPayload;
use crate::store::audit::Entry;
use crate::store::instances::Instance;
use crate::store::uow::{CommitError, UnitOfWork};
use crate::store::{audit, jobs, nonces};

/// A response ready for the wire: the exact body bytes and their `Body-Sign` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub body: Vec<u8>,
    pub body_sign: String,
}

impl Gateway {
    /// Serialises `value` (non-ASCII escaped) and signs exactly those bytes with `key`.
    pub fn answer<T: Serialize>(key: &str, value: &T) -> Answer {
        let body = to_ascii_json(value).unwrap_or_else(|_| {
            br#"{"resultCode":"000005","resultMsg":"other inner error"}"#.to_vec()
        });
        let body_sign = body_sign::header_value(key, &body);
        Answer { body, body_sign }
    }

    /// The answer for an error: the envelope with its code and message.
    pub fn error_answer(key: &str, e: &AppError) -> Answer {
        Self::answer(
            key,
            &ResultEnvelope::with_msg(e.result_code(), e.result_msg()),
        )
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Writes the audit row of a rejected call, with the nonce if it was authenticated, as a
    /// unit of its own. Returns false, having written nothing, when the nonce was remembered
    /// already (a replay); any other failure is logged: the caller's answer stands.
    async fn record_rejection(&self, audit: &Entry, nonce: Option<(&str, &str, i64)>) -> bool {
        let mut unit = UnitOfWork::new();
        if let Some((scope, nonce, expires_at)) = nonce {
            nonces::remember_in(&mut unit, scope, nonce, audit.at, expires_at);
        }
        audit::insert_in(&mut unit, audit);
        match self.db.commit(unit).await {
            Err(CommitError::Conflict("nonce")) => false,
            Err(e) => {
                tracing::error!(error = %e, activity = audit.activity.as_deref().unwrap_or("-"), "cannot write the audit row of a rejected call");
                true
            }
            Ok(()) => true,
        }
    }

    /// The answer to an authenticated call that failed: its nonce is remembered with its audit
    /// row, unless the nonce was remembered already — then the call is a replay, and is
    /// answered and audited as one, whatever it asked for.
    async fn reject_authenticated(
        &self,
        audit: &mut Entry,
        e: AppError,
        nonce: (&str, &str, i64),
        started: Instant,
    ) -> AppError {
        let e = if matches!(e, AppError::Replayed) {
            e
        } else {
            fail_audit(audit, &e, started);
            if self.record_rejection(audit, Some(nonce)).await {
                return e;
            }
            AppError::Replayed
        };
        fail_audit(audit, &e, started);
        self.record_rejection(audit, None).await;
        e
    }

    /// Enqueues a job as a step of a unit of work; workers are woken after its commit.
    fn enqueue_in(
        &self,
        unit: &mut UnitOfWork,
        kind: &str,
        payload: &JobPayload,
        dedupe: Option<&str>,
        now: i64,
    ) -> Result<(), AppError> {
        let payload = serde_json::to_string(payload)
            .map_err(|e| AppError::Store(crate::store::StoreError::Corrupt(e.to_string())))?;
        jobs::enqueue_in(unit, kind, &payload, dedupe, now, JOB_MAX_ATTEMPTS, now);
        Ok(())
    }

    /// The access information of an instance, credentials encrypted with `cipher` if given.
    fn instance_info(
        &self,
        inst: &Instance,
        cipher: Option<&FieldCipher>,
    ) -> Result<InstanceInfo, AppError> {
        let app_info = match &inst.app_info {
            Some(sealed) => {
                let json = self.sealer.open(sealed).map_err(|e| {
                    AppError::Store(crate::store::StoreError::Corrupt(e.to_string()))
                })?;
                let mut app: AppInfo = serde_json::from_str(&json).map_err(|e| {
                    AppError::Store(crate::store::StoreError::Corrupt(e.to_string()))
                })?;
                if let Some(c) = cipher {
                    encrypt_credentials(&mut app, c);
                }
                Some(app)
            }
            None => None,
        };
        Ok(InstanceInfo {
            instance_id: inst.instance_id.clone(),
            app_info,
            usage_info: None,
        })
    }

    /// The pipeline every KooGallery call goes through once it is authenticated and decoded:
    /// `decide` reads what it needs through a pooled connection and plans its changes into a
    /// unit of work; the unit is committed with the nonce and the audit row
    /// ([`Gateway::commit_call`]). A unit whose reads went stale (a compare-and-set conflict)
    /// is decided again on fresh reads, told which conflict it met.
    pub(super) async fn decide_and_commit<R: Decide>(
        &self,
        request: &R,
        replay: (&str, &str, i64),
        signature: Option<&str>,
        now: i64,
        audit: &mut Entry,
        started: Instant,
    ) -> Result<Reply<R::New>, AppError> {
        let mut retry = None;
        for _ in 0..MAX_DECISIONS {
            let mut unit = UnitOfWork::new();
            let reply = {
                let mut conn = self.db.pool.acquire().await?;
                request
                    .decide(self, &mut conn, &mut unit, retry, now, audit)
                    .await?
            };
            match self
                .commit_call(replay, signature, unit, audit, reply.code(), started)
                .await
            {
                Ok(()) => return Ok(reply),
                Err(CommitError::Conflict("nonce")) => return Err(AppError::Replayed),
                Err(CommitError::Conflict(label)) => retry = Some(label),
                Err(CommitError::Store(e)) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }

    /// Commits a call's unit of work with its nonce (first: a replay writes nothing) and its
    /// audit row, then wakes the job workers. Nothing is answered before this returns.
    ///
    /// The signature is remembered as well as the nonce: whatever reformatting of the signed
    /// parts an attacker finds, a replay carries the same signature (lower-case hex, as
    /// verified), and is refused like a repeated nonce.
    pub(super) async fn commit_call(
        &self,
        nonce: (&str, &str, i64),
        signature: Option<&str>,
        unit: UnitOfWork,
        audit: &mut Entry,
        code: ResultCode,
        started: Instant,
    ) -> Result<(), CommitError> {
        let now = audit.at;
        let mut all = UnitOfWork::new();
        nonces::remember_in(&mut all, nonce.0, nonce.1, now, nonce.2);
        if let Some(signature) = signature {
            let signature = signature.to_ascii_lowercase();
            nonces::remember_in(&mut all, "signature", &signature, now, nonce.2);
        }
        all.extend(unit);
        finish_audit(audit, code, started);
        audit::insert_in(&mut all, audit);
        let wakes = all.enqueues_jobs;
        self.db.commit(all).await?;
        if wakes {
            self.jobs_ready.notify_waiters();
        }
        Ok(())
    }

    /// The answer code of an instance that exists: ready, still provisioning, or failed.
    fn creation_status(inst: &Instance) -> Result<ResultCode, AppError> {
        use crate::domain::instance::State;
        match inst.state {
            State::Provisioning => Ok(ResultCode::Processing),
            State::Failed => Err(AppError::ProvisionFailed(
                inst.failure_code
                    .as_deref()
                    .and_then(ResultCode::from_code)
                    .unwrap_or(ResultCode::ServiceError),
                inst.failure_msg
                    .clone()
                    .unwrap_or_else(|| "provisioning failed".to_owned()),
            )),
            State::Active | State::Frozen | State::Released => Ok(ResultCode::Success),
        }
    }

    /// Finishes a successful call: audit row, commit, wake workers.
    async fn commit(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        audit: &mut Entry,
        code: ResultCode,
        started: Instant,
    ) -> Result<(), AppError> {
        finish_audit(audit, code, started);
        audit::insert(&mut tx, audit).await?;
        tx.commit().await?;
        self.jobs_ready.notify_waiters();
        Ok(())
    }
}

impl Gateway {
    /// A V2 body over the size limit: `000002`, audited, nothing else done.
    pub async fn reject_oversized(&self, max_body_bytes: usize) -> Answer {
        let started = Instant::now();
        let mut audit = Entry::new("saas_v2", self.now());
        audit.request = "<body over the size limit>".to_owned();
        let e = AppError::Protocol(koogallery::Error::from(
            koogallery::error::FieldError::invalid(
                "body",
                format!("is larger than {max_body_bytes} bytes"),
            ),
        ));
        fail_audit(&mut audit, &e, started);
        self.record_rejection(&audit, None).await;
        Gateway::error_answer(&self.keys.basic, &e)
    }
}

/// A decoded request of one protocol family, decided by [`Gateway::decide_and_commit`].
pub(super) trait Decide: Sync {
    /// The family's `newInstance` answer.
    type New: NewAnswer + Send;

    /// Reads what the request needs and plans its changes into `unit`; `retry` names the
    /// conflict that made the previous decision fail.
    fn decide<'a>(
        &'a self,
        gw: &'a Gateway,
        conn: &'a mut AnyConnection,
        unit: &'a mut UnitOfWork,
        retry: Option<&'static str>,
        now: i64,
        audit: &'a mut Entry,
    ) -> impl std::future::Future<Output = Result<Reply<Self::New>, AppError>> + Send + 'a;
}

/// How often a call is decided again after its unit of work lost a race (a compare-and-set
/// conflict) before it answers `000005`; each retry re-reads what changed. Every round commits
/// at least one of the contenders for an instance, so this bounds the contenders one call can
/// lose to, far above what KooGallery sends for one instance.
const MAX_DECISIONS: usize = 64;

/// Every answer shape of one protocol generation; `N` is its `newInstance` answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum Reply<N> {
    New(N),
    Query(koogallery::model::saas_v2::QueryInstanceResponse),
    Plain(ResultEnvelope),
}

/// The `resultCode` of a `newInstance` answer (V1 and V2 shapes differ otherwise).
pub(super) trait NewAnswer {
    fn result_code(&self) -> &str;
}

impl NewAnswer for koogallery::model::saas_v1::NewInstanceResponse {
    fn result_code(&self) -> &str {
        &self.result_code
    }
}

impl NewAnswer for koogallery::model::saas_v2::NewInstanceResponse {
    fn result_code(&self) -> &str {
        &self.result_code
    }
}

impl<N: NewAnswer> Reply<N> {
    pub(super) fn ok() -> Self {
        Reply::Plain(ResultEnvelope::new(ResultCode::Success))
    }

    pub(super) fn code(&self) -> ResultCode {
        let code = match self {
            Reply::New(r) => r.result_code(),
            Reply::Query(r) => &r.result_code,
            Reply::Plain(r) => &r.result_code,
        };
        ResultCode::from_code(code).unwrap_or(ResultCode::InternalError)
    }
}

pub(super) use crate::service::instances::Renewal;

/// Encrypts the credentials of access information with a field cipher (V1 always; V2 when
/// configured, security.md §13).
pub(super) fn encrypt_credentials(app: &mut AppInfo, cipher: &FieldCipher) {
    app.user_name = app.user_name.as_deref().map(|u| cipher.encrypt(u));
    app.password = app.password.as_deref().map(|p| cipher.encrypt(p));
}

/// Fills the audit fields of a successful call.
fn finish_audit(audit: &mut Entry, code: ResultCode, started: Instant) {
    audit.verdict = "ok".to_owned();
    audit.result_code = code.code().to_owned();
    audit.result_msg = Some(code.message().to_owned());
    audit.latency_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
}

/// Fills the audit fields of a failed call.
fn fail_audit(audit: &mut Entry, e: &AppError, started: Instant) {
    audit.verdict = e.verdict().to_owned();
    audit.result_code = e.result_code().code().to_owned();
    audit.result_msg = Some(e.result_msg());
    audit.latency_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
}
