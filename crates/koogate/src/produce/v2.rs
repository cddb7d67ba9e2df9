//! SaaS V2 (saas.md §5): `POST <produce path>?signature=…&timestamp=…&nonce=…` with a JSON body.

use std::time::Instant;

use koogallery::ResultCode;
use koogallery::error::FieldError;
use koogallery::model::openapi::OrderInfo;
use koogallery::model::peek_activity;
use koogallery::model::saas_v2::{self, QueryInstanceResponse, SaasV2Request, Scene, StatusChange};
use koogallery::query::{decode_query, param};
use koogallery::sign::{SignedRequest, v2};
use sqlx::AnyConnection;

use super::{Answer, Gateway, JobPayload, Renewal, fail_audit, redact};
use crate::domain::instance::{self, Command, State};
use crate::error::AppError;
use crate::jobs::{JOB_FETCH_ORDER, JOB_PROVISION};
use crate::service::instances as service;
use crate::store::audit::Entry;
use crate::store::instances::NewEvent;
use crate::store::instances::{self as store_instances, Instance, NewInstance};
use crate::store::nonces;
use crate::store::uow::UnitOfWork;

/// This generation's answers.
type Reply = super::Reply<saas_v2::NewInstanceResponse>;

/// Activities authenticated with the license-code key (license.md §5.2); not served yet.
const LICENSE_CODE_ACTIVITIES: [&str; 3] = [
    "refreshLicenseCode",
    "updateLicenseCodeStatus",
    "releaseLicenseCode",
];

impl Gateway {
    /// The key a V2 request is verified with, chosen by its (not yet authenticated) activity:
    /// `orderNotify` uses the generic key, the License code 2.0 activities the license-code key,
    /// everything else the basic key. Returns the key and the nonce scope.
    fn v2_key(&self, activity: Option<&str>) -> (&str, &'static str) {
        match activity {
            Some("orderNotify") => (&self.keys.generic, "generic"),
            Some(a) if LICENSE_CODE_ACTIVITIES.contains(&a) => (&self.keys.license, "license"),
            _ => (&self.keys.basic, "basic"),
        }
    }

    /// Handles one V2 call; `query` is the raw URL query string.
    pub async fn handle_v2(&self, query: &str, body: &[u8]) -> Answer {
        let started = Instant::now();
        let now = self.now();
        let params = decode_query(query);
        let activity = peek_activity(body).ok();
        let (key, scope) = self.v2_key(activity.as_deref());
        let mut audit = Entry::new("saas_v2", now);
        audit.activity = activity.clone();
        audit.request = redact::json_body(body);

        let req = SignedRequest {
            signature: param(&params, "signature"),
            timestamp: param(&params, "timestamp"),
            nonce: param(&params, "nonce"),
        };
        if let Err(e) = v2::verify(key, &req, body, now, self.window_ms) {
            if v2::matches_plain_sha256_variant(key, &req, body) {
                tracing::warn!(
                    "V2 signature made with a plain SHA-256 inner hash; KooGallery uses HMAC, refusing"
                );
            }
            let e = AppError::Protocol(e.into());
            tracing::info!(
                check = e.verdict(),
                activity = activity.as_deref().unwrap_or("-"),
                "V2 request refused"
            );
            fail_audit(&mut audit, &e, started);
            audit.request = redact::excerpt(&audit.request, body.len());
            self.record_rejection(&audit, None).await;
            return Gateway::error_answer(key, &e);
        }
        // Verified: the nonce is remembered for twice the window (security.md §4).
        let nonce = req.nonce.unwrap_or_default();
        let expires_at =
            now.saturating_add(i64::try_from(self.window_ms.saturating_mul(2)).unwrap_or(i64::MAX));
        let signature = req.signature.unwrap_or_default();
        let mut applied = self
            .v2_apply(
                (scope, nonce, expires_at),
                signature,
                body,
                None,
                now,
                started,
                &mut audit,
            )
            .await;
        if let Err(AppError::OrderUnread) = applied {
            // Rolled back; read the order (not holding any transaction) and apply again.
            applied = match self.read_order_inline(body).await {
                Ok(order) => {
                    self.v2_apply(
                        (scope, nonce, expires_at),
                        signature,
                        body,
                        Some(&order),
                        now,
                        started,
                        &mut audit,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
        }
        match applied {
            Ok(reply) => Gateway::answer(key, &reply),
            Err(e) => {
                let e = self
                    .reject_authenticated(&mut audit, e, (scope, nonce, expires_at), started)
                    .await;
                if let AppError::Store(inner) = &e {
                    tracing::error!(error = %inner, "V2 request failed on the database");
                }
                Gateway::error_answer(key, &e)
            }
        }
    }

    /// Decides a call on what it reads and commits the decision as one unit of work with its
    /// nonce and audit row. A unit whose reads went stale in the meantime (a compare-and-set
    /// conflict) is decided again on fresh reads; a second order line, which needs the order,
    /// is applied in a transaction of its own.
    #[allow(clippy::too_many_arguments)]
    async fn v2_apply(
        &self,
        (scope, nonce, expires_at): (&str, &str, i64),
        signature: &str,
        body: &[u8],
        order: Option<&OrderInfo>,
        now: i64,
        started: Instant,
        audit: &mut Entry,
    ) -> Result<Reply, AppError> {
        let request = SaasV2Request::decode(body)?;
        audit.test = request.test_flag();
        if let (Some(order), SaasV2Request::NewInstance(r)) = (order, &request) {
            return self
                .v2_second_line(
                    (scope, nonce, expires_at),
                    signature,
                    r,
                    order,
                    now,
                    started,
                    audit,
                )
                .await;
        }
        self.decide_and_commit(
            &request,
            (scope, nonce, expires_at),
            Some(signature),
            now,
            audit,
            started,
        )
        .await
    }

    /// A `newInstance` of a later line of an order, with the order read: in a transaction of
    /// its own, since joining an on-demand instance reads and claims several keys.
    #[allow(clippy::too_many_arguments)]
    async fn v2_second_line(
        &self,
        (scope, nonce, expires_at): (&str, &str, i64),
        signature: &str,
        r: &saas_v2::NewInstance,
        order: &OrderInfo,
        now: i64,
        started: Instant,
        audit: &mut Entry,
    ) -> Result<Reply, AppError> {
        let mut tx = self.db.begin().await?;
        let signature = signature.to_ascii_lowercase();
        if !nonces::remember(&mut tx, scope, nonce, now, expires_at).await?
            || !nonces::remember(&mut tx, "signature", &signature, now, expires_at).await?
        {
            return Err(AppError::Replayed);
        }
        audit.order_id = Some(r.order_id.clone());
        let line = line_key(&r.order_id, &r.order_line_id);
        let (inst, created) = match store_instances::keyed(&mut tx, &line).await? {
            Some(id) => (service::load(&mut tx, &id).await?, false),
            None => match on_demand_product(order, &r.order_line_id) {
                Some(product_id) => {
                    self.join_on_demand(&mut tx, r, order, product_id, now)
                        .await?
                }
                None => self.create_line(&mut tx, r, &r.business_id, now).await?,
            },
        };
        audit.instance_id = Some(inst.instance_id.clone());
        if created {
            let mut unit = UnitOfWork::new();
            self.created_in(
                &mut unit,
                &inst.instance_id,
                r,
                inst.order_line_id.clone(),
                now,
            );
            service::run_in(&mut tx, &unit).await?;
        }
        let reply = Reply::New(saas_v2::NewInstanceResponse::new(
            Gateway::creation_status(&inst)?,
            inst.instance_id,
        ));
        self.commit(tx, audit, reply.code(), started).await?;
        Ok(reply)
    }

    /// Reads what the request needs and plans its changes into `unit`. `retry` names the
    /// conflict that made the previous decision fail.
    async fn v2_decide(
        &self,
        conn: &mut AnyConnection,
        unit: &mut UnitOfWork,
        request: &SaasV2Request,
        retry: Option<&'static str>,
        now: i64,
        audit: &mut Entry,
    ) -> Result<Reply, AppError> {
        match request {
            SaasV2Request::NewInstance(r) => {
                audit.order_id = Some(r.order_id.clone());
                self.new_instance(conn, unit, r, retry, now, audit).await
            }
            SaasV2Request::QueryInstance(r) => {
                audit.instance_id = Some(r.instance_id.clone());
                self.query_instance(conn, &r.instance_ids()).await
            }
            SaasV2Request::RefreshInstance(r) => {
                audit.order_id = Some(r.order_id.clone());
                audit.instance_id = Some(r.instance_id.clone());
                self.refresh_instance(conn, unit, r, now).await
            }
            SaasV2Request::UpdateInstanceStatus(r) => {
                audit.instance_id = Some(r.instance_id.clone());
                let command = match r.status() {
                    Some(StatusChange::Freeze) => Command::Freeze,
                    Some(StatusChange::Unfreeze) => Command::Unfreeze,
                    None => {
                        return Err(koogallery::Error::from(FieldError::not_allowed(
                            "status",
                            StatusChange::NAMES,
                        ))
                        .into());
                    }
                };
                service::change_state(conn, unit, &r.instance_id, command, None, now).await?;
                Ok(Reply::ok())
            }
            SaasV2Request::ReleaseInstance(r) => {
                audit.instance_id = Some(r.instance_id.clone());
                audit.order_id.clone_from(&r.order_id);
                service::change_state(
                    conn,
                    unit,
                    &r.instance_id,
                    Command::Release,
                    r.order_id.as_deref(),
                    now,
                )
                .await?;
                Ok(Reply::ok())
            }
            SaasV2Request::UpgradeInstance(r) => {
                audit.instance_id = Some(r.instance_id.clone());
                audit.order_id = Some(r.order_id.clone());
                if service::upgrade(conn, unit, &r.instance_id, &r.order_id, now).await?
                    && self.openapi.is_some()
                {
                    self.order_fetch_in(
                        unit,
                        &r.instance_id,
                        &r.order_id,
                        &r.order_line_id,
                        "upgrade",
                        now,
                    )?;
                }
                Ok(Reply::ok())
            }
            SaasV2Request::ChangeInstanceCheck(r) => {
                audit.instance_id = Some(r.instance_id.clone());
                let inst = service::load(conn, &r.instance_id).await?;
                // A renewal change may apply unless the instance is gone. Without usage data
                // there is nothing that a downgrade could lose.
                instance::apply(inst.state, Command::Upgrade)?;
                Ok(Reply::ok())
            }
            SaasV2Request::OrderNotify(r) => {
                audit.order_id = Some(r.order_id.clone());
                if self.openapi.is_some() {
                    let payload = JobPayload {
                        order_id: Some(r.order_id.clone()),
                        order_line_id: Some(r.order_line_id.clone()),
                        purpose: Some("notify".to_owned()),
                        ..JobPayload::default()
                    };
                    let dedupe = format!("notify|{}|{}", r.order_id, r.order_line_id);
                    self.enqueue_in(unit, JOB_FETCH_ORDER, &payload, Some(&dedupe), now)?;
                }
                Ok(Reply::ok())
            }
        }
    }

    /// Debugging and dial-test calls (`testFlag = 1`, saas.md §2.4, §10): authenticated like any
    /// call, answered with a well-formed success, touching nothing, repeatable in any order.
    fn v2_test(&self, request: &SaasV2Request) -> Reply {
        match request {
            SaasV2Request::NewInstance(r) => Reply::New(saas_v2::NewInstanceResponse::new(
                ResultCode::Success,
                test_instance_id(&r.order_id, &r.order_line_id),
            )),
            SaasV2Request::QueryInstance(r) => {
                let info = r
                    .instance_ids()
                    .iter()
                    .map(|id| self.test_instance_info(id))
                    .collect();
                Reply::Query(QueryInstanceResponse::new(ResultCode::Success, info))
            }
            _ => Reply::ok(),
        }
    }

    /// `newInstance` (saas.md §5.1, §6, §7): idempotent by (orderId, orderLineId), and for
    /// on-demand lines by (orderId, productId); the instance id is the first call's businessId;
    /// provisioning happens in a job.
    ///
    /// The request carries no productId, and the order is read in a job, never while KooGallery
    /// waits. The two keys can only differ for a second line of one order, so the first line of
    /// an order claims it (`v2first|orderId`, in the creating unit); a later line finds the
    /// claim taken (a `"first-line"` conflict) and is applied again with the order, read then
    /// ([`Gateway::v2_second_line`]).
    async fn new_instance(
        &self,
        conn: &mut AnyConnection,
        unit: &mut UnitOfWork,
        r: &saas_v2::NewInstance,
        retry: Option<&'static str>,
        now: i64,
        audit: &mut Entry,
    ) -> Result<Reply, AppError> {
        let line = line_key(&r.order_id, &r.order_line_id);
        // The first decision assumes the common case, a first call for the line, and reads
        // nothing: the creation step itself refuses a line that exists (a `"create"`
        // conflict), and the decision after it reads which instance the line has.
        if retry.is_some()
            && let Some(id) = store_instances::keyed(conn, &line).await?
        {
            let inst = service::load(conn, &id).await?;
            audit.instance_id = Some(id);
            return Ok(Reply::New(saas_v2::NewInstanceResponse::new(
                Gateway::creation_status(&inst)?,
                inst.instance_id,
            )));
        }
        if retry == Some("first-line") {
            return Err(AppError::OrderUnread);
        }
        // The id is the businessId, unless another order line's instance has it (KooGallery
        // never does this, but the id is not ours): then the creation conflicted on it.
        let mut id = r.business_id.clone();
        if retry == Some("create") && store_instances::get(conn, &id).await?.is_some() {
            id = uuid::Uuid::new_v4().to_string();
        }
        let order_line_id = Some(r.order_line_id.clone()).filter(|l| !l.is_empty());
        let new = NewInstance {
            instance_id: id.clone(),
            create_key: line,
            protocol: "saas_v2",
            order_id: r.order_id.clone(),
            order_line_id: order_line_id.clone(),
            ..NewInstance::default()
        };
        store_instances::create_in(unit, &new, now);
        let first = format!("v2first|{}", r.order_id);
        store_instances::claim_key_in(unit, "first-line", &first, &id, now);
        self.created_in(unit, &id, r, order_line_id, now);
        audit.instance_id = Some(id.clone());
        Ok(Reply::New(saas_v2::NewInstanceResponse::new(
            ResultCode::Processing,
            id,
        )))
    }

    /// What follows the creation of an instance: its history entry and the job that reads its
    /// order (with AK/SK) or provisions it.
    fn created_in(
        &self,
        unit: &mut UnitOfWork,
        instance_id: &str,
        r: &saas_v2::NewInstance,
        order_line_id: Option<String>,
        now: i64,
    ) {
        service::record_in(
            unit,
            &NewEvent {
                instance_id,
                kind: "created",
                from: None,
                to: State::Provisioning,
                order_id: Some(&r.order_id),
                detail: None,
                at: now,
            },
        );
        let payload = JobPayload {
            instance_id: Some(instance_id.to_owned()),
            order_id: Some(r.order_id.clone()),
            order_line_id,
            purpose: Some("create".to_owned()),
        };
        let kind = if self.openapi.is_some() {
            JOB_FETCH_ORDER
        } else {
            JOB_PROVISION
        };
        // A payload of plain strings always serialises.
        let _ = self.enqueue_in(
            unit,
            kind,
            &payload,
            Some(&format!("create|{instance_id}")),
            now,
        );
    }

    /// Creates (or finds) the instance of one order line, keyed by the line.
    async fn create_line(
        &self,
        conn: &mut AnyConnection,
        r: &saas_v2::NewInstance,
        instance_id: &str,
        now: i64,
    ) -> Result<(Instance, bool), AppError> {
        let new = NewInstance {
            instance_id: instance_id.to_owned(),
            create_key: line_key(&r.order_id, &r.order_line_id),
            protocol: "saas_v2",
            order_id: r.order_id.clone(),
            order_line_id: Some(r.order_line_id.clone()).filter(|l| !l.is_empty()),
            ..NewInstance::default()
        };
        self.create_instance(conn, new, now).await
    }

    /// An on-demand line of an order that already has an instance: the instance of the
    /// (orderId, productId) key if there is one, else a new instance that takes the key.
    async fn join_on_demand(
        &self,
        conn: &mut AnyConnection,
        r: &saas_v2::NewInstance,
        order: &OrderInfo,
        product_id: &str,
        now: i64,
    ) -> Result<(Instance, bool), AppError> {
        let key = format!("v2od|{}|{product_id}", r.order_id);
        // Earlier lines of the same on-demand product hold the key, whether or not their own
        // order read has finished.
        for line in &order.order_line {
            if line.order_line_id == r.order_line_id
                || on_demand_product(order, &line.order_line_id) != Some(product_id)
            {
                continue;
            }
            if let Some(id) =
                store_instances::keyed(conn, &line_key(&r.order_id, &line.order_line_id)).await?
            {
                store_instances::claim_key(conn, &key, &id, now).await?;
            }
        }
        // The new instance's id must be free before it takes the key.
        let candidate = if store_instances::get(conn, &r.business_id).await?.is_none() {
            r.business_id.clone()
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let owner = store_instances::claim_key(conn, &key, &candidate, now).await?;
        if owner == candidate {
            return self.create_line(conn, r, &candidate, now).await;
        }
        let line = line_key(&r.order_id, &r.order_line_id);
        let id = store_instances::claim_key(conn, &line, &owner, now).await?;
        Ok((service::load(conn, &id).await?, false))
    }

    /// Reads the order of a `newInstance` body, bounded by [`INLINE_ORDER_READ`].
    async fn read_order_inline(&self, body: &[u8]) -> Result<OrderInfo, AppError> {
        let order_id = match SaasV2Request::decode(body)? {
            SaasV2Request::NewInstance(r) => r.order_id,
            _ => return Err(AppError::OrderUnread),
        };
        let unavailable = || AppError::OrderUnavailable(order_id.clone());
        let client = self.openapi.as_ref().ok_or_else(unavailable)?;
        match tokio::time::timeout(INLINE_ORDER_READ, client.query_order(&order_id, None)).await {
            Ok(Ok(order)) => Ok(order),
            Ok(Err(e)) => {
                tracing::warn!(order = %order_id, error = %e, "cannot read the order of a second order line");
                Err(unavailable())
            }
            Err(_) => {
                tracing::warn!(order = %order_id, "reading the order of a second order line timed out");
                Err(unavailable())
            }
        }
    }

    /// `queryInstance` (saas.md §5.2): `000004` while any requested instance is provisioning,
    /// `000003` when none is known, otherwise one entry per known instance.
    async fn query_instance(
        &self,
        conn: &mut AnyConnection,
        ids: &[&str],
    ) -> Result<Reply, AppError> {
        let mut info = Vec::new();
        let mut provisioning = false;
        let mut failure = None;
        for id in ids {
            let Some(inst) = store_instances::get(conn, id).await? else {
                continue;
            };
            match Gateway::creation_status(&inst) {
                Ok(ResultCode::Processing) => provisioning = true,
                Ok(_) => {
                    let mut entry = self.instance_info(&inst, self.v2_cipher.as_ref())?;
                    entry.usage_info = crate::metering::usage_info(self, conn, &inst).await?;
                    info.push(entry);
                }
                Err(e) => failure = Some(e),
            }
        }
        if provisioning {
            return Ok(Reply::Query(QueryInstanceResponse::new(
                ResultCode::Processing,
                Vec::new(),
            )));
        }
        if info.is_empty() {
            return Err(failure.unwrap_or_else(|| AppError::NotFound(ids.join(","))));
        }
        let mut answer = QueryInstanceResponse::new(ResultCode::Success, info);
        answer.encrypt_type = self
            .v2_cipher
            .as_ref()
            .map(|c| c.key_size().encrypt_type().to_owned());
        Ok(Reply::Query(answer))
    }

    /// `refreshInstance` (saas.md §5.3): a new absolute expiry, applied once per order id.
    async fn refresh_instance(
        &self,
        conn: &mut AnyConnection,
        unit: &mut UnitOfWork,
        r: &saas_v2::RefreshInstance,
        now: i64,
    ) -> Result<Reply, AppError> {
        let scene = r.scene();
        let renewal = Renewal {
            instance_id: &r.instance_id,
            order_id: &r.order_id,
            expire_time: &r.expire_time,
            trial_to_formal: matches!(scene, Some(Scene::TrialToFormal)),
            product_id: r.product_id.as_deref(),
            detail: serde_json::json!({"scene": r.scene, "expireTime": r.expire_time}).to_string(),
        };
        let (_, applied) = service::renew(conn, unit, &renewal, now).await?;
        if applied && matches!(scene, Some(Scene::RenewalChange)) && self.openapi.is_some() {
            self.order_fetch_in(
                unit,
                &r.instance_id,
                &r.order_id,
                &r.order_line_id,
                "change",
                now,
            )?;
        }
        Ok(Reply::ok())
    }

    fn order_fetch_in(
        &self,
        unit: &mut UnitOfWork,
        instance_id: &str,
        order_id: &str,
        order_line_id: &str,
        purpose: &str,
        now: i64,
    ) -> Result<(), AppError> {
        let payload = JobPayload {
            instance_id: Some(instance_id.to_owned()),
            order_id: Some(order_id.to_owned()),
            order_line_id: Some(order_line_id.to_owned()).filter(|l| !l.is_empty()),
            purpose: Some(purpose.to_owned()),
        };
        self.enqueue_in(
            unit,
            JOB_FETCH_ORDER,
            &payload,
            Some(&format!("{purpose}|{order_id}")),
            now,
        )
    }

    /// Creates an instance idempotently. The id is the first businessId; if that id is taken by
    /// another order line (KooGallery never does this, but the id is not ours), a UUID is used.
    pub(super) async fn create_instance(
        &self,
        conn: &mut AnyConnection,
        mut new: NewInstance,
        now: i64,
    ) -> Result<(Instance, bool), AppError> {
        if let Some(found) = store_instances::create_if_absent(conn, &new, now).await? {
            return Ok(found);
        }
        new.instance_id = uuid::Uuid::new_v4().to_string();
        store_instances::create_if_absent(conn, &new, now)
            .await?
            .ok_or_else(|| {
                AppError::Store(crate::store::StoreError::Corrupt(
                    "instance id collision".to_owned(),
                ))
            })
    }

    /// Sample access information for debugging calls.
    pub(super) fn test_instance_info(&self, id: &str) -> saas_v2::InstanceInfo {
        let vars = crate::provision::Vars {
            instance_id: id,
            order_id: "test",
            customer_id: "test",
        };
        let mut app = crate::provision::provision(&self.templates, vars);
        app.password = Some("test-password".to_owned());
        saas_v2::InstanceInfo {
            instance_id: id.to_owned(),
            app_info: Some(app),
            usage_info: None,
        }
    }
}

impl super::Decide for SaasV2Request {
    type New = saas_v2::NewInstanceResponse;

    async fn decide(
        &self,
        gw: &Gateway,
        conn: &mut AnyConnection,
        unit: &mut UnitOfWork,
        retry: Option<&'static str>,
        now: i64,
        audit: &mut Entry,
    ) -> Result<Reply, AppError> {
        if self.test_flag() {
            return Ok(gw.v2_test(self));
        }
        gw.v2_decide(conn, unit, self, retry, now, audit).await
    }
}

/// How long a `newInstance` for a second line of an order waits for the order (saas.md §6:
/// inline only when fast); KooGallery's own timeout is 20 s.
const INLINE_ORDER_READ: std::time::Duration = std::time::Duration::from_secs(5);

/// The creation key of a V2 order line.
fn line_key(order_id: &str, order_line_id: &str) -> String {
    format!("v2|{order_id}|{order_line_id}")
}

/// The product of an order line when the line is on-demand (`ON_DEMAND`), the charging mode
/// keyed by (orderId, productId) (saas.md §5.1).
fn on_demand_product<'a>(order: &'a OrderInfo, order_line_id: &str) -> Option<&'a str> {
    let line = order
        .order_line
        .iter()
        .find(|l| l.order_line_id == order_line_id)?;
    if line.charging_mode != "ON_DEMAND" {
        return None;
    }
    line.product_info.as_ref()?.first()?.product_id.as_deref()
}

/// A stable instance id for a debugging `newInstance`: the same order line always gets the
/// same id, without storing anything.
pub(super) fn test_instance_id(order_id: &str, order_line_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{order_id}\n{order_line_id}").as_bytes());
    format!("test-{}", &hex::encode(digest)[..32])
}
