//! SaaS V1 (saas.md §13): `GET <produce path>?activity=…&timeStamp=…&authToken=…`.
//!
//! V1 carries the order in the request and expects the access information in the `newInstance`
//! answer, so the built-in provisioner runs inline here (it touches no external system).

use std::time::Instant;

use koogallery::ResultCode;
use koogallery::error::FieldError;
use koogallery::model::openapi::{OrderInfo, OrderLine, OrderProduct};
use koogallery::model::saas_v1::{self, ResourceStatus, SaasV1Request};
use koogallery::model::saas_v2::QueryInstanceResponse;
use koogallery::query::{decode_query, param};
use koogallery::sign::v1;
use sqlx::AnyConnection;

use super::{Answer, Gateway, Renewal, encrypt_credentials, fail_audit, redact};
use crate::domain::instance::{Command, State};
use crate::error::AppError;
use crate::provision::{Outcome, ProvisionError};
use crate::service::instances as service;
use crate::store::audit::Entry;
use crate::store::instances::{self as store_instances, Change, Instance, NewEvent, NewInstance};
use crate::store::orders;
use crate::store::uow::UnitOfWork;

/// This generation's answers.
type Reply = super::Reply<saas_v1::NewInstanceResponse>;

/// V1 `chargingMode` integers (saas.md §13.2) as the order API's names.
fn charging_mode_name(v1: &str) -> Option<&'static str> {
    match v1 {
        "0" => Some("ON_DEMAND"),
        "1" => Some("PERIOD"),
        "3" => Some("ONE_TIME"),
        "5" => Some("ON_DEMAND_PKG"),
        _ => None,
    }
}

impl Gateway {
    /// Handles one V1 call; `query` is the raw URL query string.
    pub async fn handle_v1(&self, query: &str) -> Answer {
        let started = Instant::now();
        let now = self.now();
        let params = decode_query(query);
        let key = self.keys.v1.as_str();
        let mut audit = Entry::new("saas_v1", now);
        audit.activity = param(&params, "activity").map(str::to_owned);
        audit.request = redact::params(&params);

        let authenticated = v1::verify_get(key, &params).and_then(|()| {
            v1::check_v1_window(
                param(&params, "timeStamp").unwrap_or_default(),
                now,
                self.v1_window_ms,
            )
        });
        if let Err(e) = authenticated {
            let e = AppError::Protocol(e.into());
            tracing::info!(check = e.verdict(), "V1 request refused");
            fail_audit(&mut audit, &e, started);
            audit.request = redact::excerpt(&audit.request, query.len());
            self.record_rejection(&audit, None).await;
            return Gateway::error_answer(key, &e);
        }
        // V1 has no nonce: the authToken itself is remembered for twice the window.
        let token = param(&params, "authToken").unwrap_or_default();
        let expires_at = now
            .saturating_add(i64::try_from(self.v1_window_ms.saturating_mul(2)).unwrap_or(i64::MAX));
        let applied = match self
            .v1_apply(token, expires_at, &params, now, started, &mut audit)
            .await
        {
            // Committed, nonce and audit row included: what the application then says is
            // recorded by `provision_by_application` in that audit row.
            Ok(reply) => {
                self.provision_by_application(reply, &mut audit, started)
                    .await
            }
            Err(e) => Err(self
                .reject_authenticated(&mut audit, e, ("v1", token, expires_at), started)
                .await),
        };
        match applied {
            Ok(reply) => Gateway::answer(key, &reply),
            Err(e) => {
                if let AppError::Store(inner) = &e {
                    tracing::error!(error = %inner, "V1 request failed on the database");
                }
                Gateway::error_answer(key, &e)
            }
        }
    }

    async fn v1_apply(
        &self,
        token: &str,
        expires_at: i64,
        params: &[(String, String)],
        now: i64,
        started: Instant,
        audit: &mut Entry,
    ) -> Result<Reply, AppError> {
        let request = SaasV1Request::decode(params)?;
        audit.test = request.test_flag();
        // V1 has no nonce and no separate signature: the authToken is both.
        self.decide_and_commit(
            &request,
            ("v1", token, expires_at),
            None,
            now,
            audit,
            started,
        )
        .await
    }

    /// V1 answers `newInstance` with the access information (§13.2): an instance whose product
    /// is provisioned by the merchant's application (`webhook`, `exec`) was created, still
    /// provisioning, by [`Gateway::v1_apply`]; the application is called now, holding no
    /// database connection, and the call's audit row is updated with the final answer.
    /// A `202` leaves it provisioning (`000004`: KooGallery calls again, and the instance is
    /// complete once the application used the REST API); an unreachable application `000005`;
    /// a refusal fails the instance with `000104`.
    async fn provision_by_application(
        &self,
        reply: Reply,
        audit: &mut Entry,
        started: Instant,
    ) -> Result<Reply, AppError> {
        let Reply::New(answer) = &reply else {
            return Ok(reply);
        };
        if answer.result_code != ResultCode::Processing.code() {
            return Ok(reply);
        }
        let instance_id = answer.instance_id.clone();
        let inst = {
            let mut conn = self.db.pool.acquire().await?;
            service::load(&mut conn, &instance_id).await?
        };
        let Some(rule) =
            self.external_provisioner(inst.product_id.as_deref(), inst.sku_code.as_deref())
        else {
            return Ok(reply);
        };
        let outcome = crate::provision::call(rule, &self.http, &inst, self.now()).await;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let result = match outcome {
            Ok(Outcome::Ready(app)) => {
                crate::service::instances::complete_provisioning(
                    &self.sealer,
                    &mut tx,
                    &instance_id,
                    &app,
                    now,
                )
                .await?;
                let inst = service::load(&mut tx, &instance_id).await?;
                self.v1_new_reply(&inst)
            }
            Ok(Outcome::Accepted) => Ok(reply),
            Err(ProvisionError::Transient(m)) => Err(AppError::ProvisionerUnavailable(m)),
            Err(ProvisionError::Permanent(m)) => {
                let code = ResultCode::ServiceError;
                crate::service::instances::fail_provisioning(&mut tx, &instance_id, code, &m, now)
                    .await?;
                Err(AppError::ProvisionFailed(code, m))
            }
        };
        match &result {
            Ok(r) => {
                audit.result_code = r.code().code().to_owned();
                audit.result_msg = Some(r.code().message().to_owned());
            }
            Err(e) => fail_audit(audit, e, started),
        }
        audit.latency_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
        crate::store::audit::set_outcome(&mut tx, audit).await?;
        tx.commit().await?;
        self.jobs_ready.notify_waiters();
        result
    }

    /// The `newInstance` answer for an instance: its state's code and, once ready, its access
    /// information with `userName`/`password` encrypted.
    fn v1_new_reply(&self, inst: &Instance) -> Result<Reply, AppError> {
        let code = Gateway::creation_status(inst)?;
        let info = self.instance_info(inst, Some(&self.v1_cipher))?;
        let mut answer =
            saas_v1::NewInstanceResponse::new(code, inst.instance_id.clone(), info.app_info);
        answer.encrypt_type = Some(self.v1_cipher.key_size().encrypt_type().to_owned());
        Ok(Reply::New(answer))
    }

    fn v1_test(&self, request: &SaasV1Request) -> Reply {
        match request {
            SaasV1Request::NewInstance(r) => {
                let id = super::v2::test_instance_id(&r.order_id, &r.product_id);
                let mut app = self.test_instance_info(&id).app_info;
                if let Some(app) = app.as_mut() {
                    encrypt_credentials(app, &self.v1_cipher);
                }
                let mut answer = saas_v1::NewInstanceResponse::new(ResultCode::Success, id, app);
                answer.encrypt_type = Some(self.v1_cipher.key_size().encrypt_type().to_owned());
                Reply::New(answer)
            }
            SaasV1Request::QueryInstance(r) => {
                let info = r
                    .instance_ids()
                    .iter()
                    .map(|id| {
                        let mut info = self.test_instance_info(id);
                        if let Some(app) = info.app_info.as_mut() {
                            encrypt_credentials(app, &self.v1_cipher);
                        }
                        info
                    })
                    .collect();
                let mut answer = QueryInstanceResponse::new(ResultCode::Success, info);
                answer.encrypt_type = Some(self.v1_cipher.key_size().encrypt_type().to_owned());
                Reply::Query(answer)
            }
            _ => Reply::ok(),
        }
    }

    async fn v1_decide(
        &self,
        conn: &mut AnyConnection,
        unit: &mut UnitOfWork,
        request: &SaasV1Request,
        retry: Option<&'static str>,
        now: i64,
        audit: &mut Entry,
    ) -> Result<Reply, AppError> {
        match request {
            SaasV1Request::NewInstance(r) => {
                audit.order_id = Some(r.order_id.clone());
                self.v1_new_instance(conn, unit, r, retry, now, audit).await
            }
            SaasV1Request::RefreshInstance(r) => {
                audit.order_id = Some(r.order_id.clone());
                audit.instance_id = Some(r.instance_id.clone());
                let renewal = Renewal {
                    instance_id: &r.instance_id,
                    order_id: &r.order_id,
                    expire_time: &r.expire_time,
                    trial_to_formal: r.is_trial_to_formal(),
                    product_id: r.product_id.as_deref(),
                    detail: serde_json::json!({"trialToFormal": r.is_trial_to_formal(), "expireTime": r.expire_time}).to_string(),
                };
                let (inst, applied) = service::renew(conn, unit, &renewal, now).await?;
                // V1 has no unfreeze for period products (instanceStatus is for on-demand ones,
                // §13.7): a renewal of an expired, frozen instance is what reactivates it.
                let refund = r
                    .order_amount
                    .as_deref()
                    .is_some_and(|a| a.trim_start().starts_with('-'));
                let expire_at = koogallery::time::parse_expire_time(&r.expire_time)
                    .map(koogallery::time::epoch_millis)
                    .ok();
                let runs_on = expire_at.is_some_and(|at| at > now);
                if applied && inst.state == State::Frozen && !refund && runs_on {
                    // The renewal above moved the version by one.
                    let renewed = Instance {
                        version: inst.version + 1,
                        expire_at,
                        ..inst
                    };
                    service::transition_in(
                        unit,
                        &renewed,
                        Command::Unfreeze,
                        Some(&r.order_id),
                        now,
                    )?;
                }
                Ok(Reply::ok())
            }
            SaasV1Request::ExpireInstance(r) => {
                audit.instance_id = Some(r.instance_id.clone());
                service::change_state(
                    conn,
                    unit,
                    &r.instance_id,
                    Command::Freeze,
                    Some(&r.order_id),
                    now,
                )
                .await?;
                Ok(Reply::ok())
            }
            SaasV1Request::ReleaseInstance(r) => {
                audit.instance_id = Some(r.instance_id.clone());
                service::change_state(
                    conn,
                    unit,
                    &r.instance_id,
                    Command::Release,
                    Some(&r.order_id),
                    now,
                )
                .await?;
                Ok(Reply::ok())
            }
            SaasV1Request::Upgrade(r) => {
                audit.order_id = Some(r.order_id.clone());
                audit.instance_id = Some(r.instance_id.clone());
                let spec = Change {
                    product_id: Some(r.product_id.clone()),
                    sku_code: Some(r.sku_code.clone()),
                    quantity: r.amount.clone().filter(|a| !a.is_empty()),
                    ..Change::default()
                };
                let detail = serde_json::json!({"skuCode": r.sku_code, "productId": r.product_id})
                    .to_string();
                service::upgrade_with(
                    conn,
                    unit,
                    &r.instance_id,
                    &r.order_id,
                    "upgrade",
                    spec,
                    Some(&detail),
                    now,
                )
                .await?;
                Ok(Reply::ok())
            }
            SaasV1Request::InstanceStatus(r) => {
                audit.instance_id = Some(r.instance_id.clone());
                let command = match r.status() {
                    Some(ResourceStatus::Freeze) => Command::Freeze,
                    Some(ResourceStatus::Normal) => Command::Unfreeze,
                    None => {
                        return Err(koogallery::Error::from(FieldError::not_allowed(
                            "instanceStatus",
                            &["FREEZE", "NORMAL"],
                        ))
                        .into());
                    }
                };
                service::change_state(conn, unit, &r.instance_id, command, None, now).await?;
                Ok(Reply::ok())
            }
            SaasV1Request::QueryInstance(r) => {
                audit.instance_id = Some(r.instance_id.clone());
                let mut info = Vec::new();
                for id in r.instance_ids() {
                    if let Some(inst) = store_instances::get(conn, id).await?
                        && Gateway::creation_status(&inst).is_ok()
                    {
                        let mut entry = self.instance_info(&inst, Some(&self.v1_cipher))?;
                        entry.usage_info = crate::metering::usage_info(self, conn, &inst).await?;
                        info.push(entry);
                    }
                }
                if info.is_empty() {
                    return Err(AppError::NotFound(r.instance_id.clone()));
                }
                let mut answer = QueryInstanceResponse::new(ResultCode::Success, info);
                answer.encrypt_type = Some(self.v1_cipher.key_size().encrypt_type().to_owned());
                Ok(Reply::Query(answer))
            }
        }
    }

    /// V1 `newInstance` (saas.md §13.2): idempotent by (orderId, productId); provisioned inline;
    /// answered with the encrypted access information. A repeat answers from the stored instance;
    /// the creation conflicts (`\"create\"`) when a concurrent duplicate won, and is decided again.
    async fn v1_new_instance(
        &self,
        conn: &mut AnyConnection,
        unit: &mut UnitOfWork,
        r: &saas_v1::NewInstance,
        retry: Option<&'static str>,
        now: i64,
        audit: &mut Entry,
    ) -> Result<Reply, AppError> {
        // Decrypt first: a value that does not decrypt is a bad parameter, and nothing is written.
        let decrypt = |field: &str, value: &Option<String>| -> Result<Option<String>, AppError> {
            value
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| {
                    self.v1_cipher.decrypt(v).map_err(|e| {
                        koogallery::Error::from(FieldError::invalid(field, e.to_string())).into()
                    })
                })
                .transpose()
        };
        let phone = decrypt("mobilePhone", &r.mobile_phone)?;
        let email = decrypt("email", &r.email)?;
        let expire_at = match r.expire_time.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => Some(koogallery::time::epoch_millis(
                koogallery::time::parse_expire_time(t).map_err(|e| {
                    koogallery::Error::from(FieldError::invalid("expireTime", e.to_string()))
                })?,
            )),
            None => None,
        };
        let charging_mode = r.charging_mode.as_deref().and_then(charging_mode_name);
        let trial = r.trial_flag.as_deref() == Some("1");
        let new = NewInstance {
            instance_id: r.business_id.clone(),
            create_key: format!("v1|{}|{}", r.order_id, r.product_id),
            protocol: "saas_v1",
            order_id: r.order_id.clone(),
            order_line_id: None,
            product_id: Some(r.product_id.clone()),
            sku_code: r.sku_code.clone(),
            charging_mode: charging_mode.map(str::to_owned),
            quantity: r.amount.clone().filter(|a| !a.is_empty()),
            customer_id: Some(r.customer_id.clone()),
            trial,
            expire_at,
        };
        // As for V2: read only after the creation conflicted (a repeat, or the id is taken).
        if retry.is_some()
            && let Some(id) = store_instances::keyed(conn, &new.create_key).await?
        {
            let inst = service::load(conn, &id).await?;
            audit.instance_id = Some(id);
            return self.v1_new_reply(&inst);
        }
        // The id is the businessId, unless another instance has it (then the creation
        // conflicted on it).
        let mut new = new;
        if retry == Some("create")
            && store_instances::get(conn, &new.instance_id)
                .await?
                .is_some()
        {
            new.instance_id = uuid::Uuid::new_v4().to_string();
        }
        store_instances::create_in(unit, &new, now);
        let buyer = serde_json::json!({"customerId": r.customer_id, "customerName": r.customer_name, "mobilePhone": phone, "email": email});
        let order = OrderInfo {
            order_id: r.order_id.clone(),
            order_type: if trial { "TRIAL" } else { "NEW" }.to_owned(),
            order_line: vec![OrderLine {
                order_line_id: format!("{}|{}", r.order_id, r.product_id),
                charging_mode: charging_mode.unwrap_or("PERIOD").to_owned(),
                period_type: r.period_type.clone(),
                expire_time: r.expire_time.clone(),
                product_info: Some(vec![OrderProduct {
                    product_id: Some(r.product_id.clone()),
                    sku_code: r.sku_code.clone(),
                    ..OrderProduct::default()
                }]),
                ..OrderLine::default()
            }],
            ..OrderInfo::default()
        };
        orders::save_in(
            unit,
            &order,
            Some(&self.sealer.seal(&buyer.to_string())),
            now,
        );
        service::record_in(
            unit,
            &NewEvent {
                instance_id: &new.instance_id,
                kind: "created",
                from: None,
                to: State::Provisioning,
                order_id: Some(&r.order_id),
                detail: None,
                at: now,
            },
        );
        audit.instance_id = Some(new.instance_id.clone());
        // The instance as this unit creates it.
        let mut inst = Instance {
            instance_id: new.instance_id.clone(),
            create_key: new.create_key.clone(),
            protocol: new.protocol.to_owned(),
            order_id: new.order_id.clone(),
            order_line_id: None,
            product_id: new.product_id.clone(),
            sku_code: new.sku_code.clone(),
            charging_mode: new.charging_mode.clone(),
            quantity: new.quantity.clone(),
            customer_id: new.customer_id.clone(),
            state: State::Provisioning,
            trial: new.trial,
            expire_at: new.expire_at,
            app_info: None,
            failure_code: None,
            failure_msg: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        // The built-in provisioner runs here, in the same unit; the merchant's application is
        // called after the commit ([`Gateway::provision_by_application`]).
        if self
            .external_provisioner(Some(&r.product_id), r.sku_code.as_deref())
            .is_none()
        {
            let vars = crate::provision::Vars {
                instance_id: &inst.instance_id,
                order_id: &r.order_id,
                customer_id: &r.customer_id,
            };
            let app = crate::provision::provision(&self.templates, vars);
            let sealed = service::seal_app(&self.sealer, &app)?;
            service::provisioned_in(unit, &inst, sealed.clone(), now);
            inst.state = State::Active;
            inst.app_info = Some(sealed);
        }
        self.v1_new_reply(&inst)
    }
}

impl super::Decide for SaasV1Request {
    type New = saas_v1::NewInstanceResponse;

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
            return Ok(gw.v1_test(self));
        }
        gw.v1_decide(conn, unit, self, retry, now, audit).await
    }
}
