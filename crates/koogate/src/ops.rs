//! What operators and the merchant's application do to instances and webhooks, shared by the
//! REST API ([`crate::api`]) and the CLI: complete or fail a provisioning, rotate credentials,
//! manage webhook endpoints, replay a delivery, send a test event.

use koogallery::ResultCode;
use koogallery::model::Validate;
use koogallery::model::saas_v2::AppInfo;
use serde_json::json;

use crate::app::Gateway;
use crate::domain::instance::State;
use crate::store::instances::{self, Event, Instance};
use crate::store::webhooks::{self as store_webhooks, Endpoint};
use crate::store::{StoreError, new_id};

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0} not found")]
    NotFound(String),
    /// The current state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for OpsError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Db(e))
    }
}

fn invalid(field: &str, message: impl Into<String>) -> OpsError {
    OpsError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// An instance and its history.
pub async fn instance(gw: &Gateway, id: &str) -> Result<(Instance, Vec<Event>), OpsError> {
    let mut conn = gw.db.pool.acquire().await?;
    let inst = instances::get(&mut conn, id)
        .await?
        .ok_or_else(|| OpsError::NotFound(format!("instance {id}")))?;
    let history = instances::events(&mut conn, id).await?;
    Ok((inst, history))
}

/// Completes a provisioning with the application's access information.
pub async fn complete(gw: &Gateway, id: &str, app: &AppInfo) -> Result<Instance, OpsError> {
    app.validate()
        .map_err(|e| invalid("appInfo", e.to_string()))?;
    let now = gw.clock.now_ms();
    let mut tx = gw.db.begin().await?;
    expect_provisioning(&mut tx, id).await?;
    if !crate::service::instances::complete_provisioning(&gw.sealer, &mut tx, id, app, now).await? {
        return Err(OpsError::Conflict(format!(
            "instance {id} changed concurrently; try again"
        )));
    }
    tx.commit().await?;
    gw.jobs_ready.notify_waiters();
    Ok(instance(gw, id).await?.0)
}

/// Refuses unless the instance exists and is still provisioning.
async fn expect_provisioning(conn: &mut sqlx::AnyConnection, id: &str) -> Result<(), OpsError> {
    let inst = instances::get(conn, id)
        .await?
        .ok_or_else(|| OpsError::NotFound(format!("instance {id}")))?;
    if inst.state != State::Provisioning {
        return Err(OpsError::Conflict(format!(
            "instance {id} is {}, not provisioning",
            inst.state.as_str()
        )));
    }
    Ok(())
}

/// Codes a failed creation may be answered with (saas.md §3).
pub const FAILURE_CODES: [ResultCode; 8] = [
    ResultCode::NoResource,
    ResultCode::MobileInvalid,
    ResultCode::EmailInvalid,
    ResultCode::AlreadyPurchased,
    ResultCode::ServiceError,
    ResultCode::BenefitAlreadySubscribed,
    ResultCode::SoldOut,
    ResultCode::EmailDomainExists,
];

/// Fails a provisioning: KooGallery's later calls are answered with `code` (default `000104`),
/// so the order fails and is refunded.
pub async fn fail(
    gw: &Gateway,
    id: &str,
    code: Option<&str>,
    message: &str,
) -> Result<Instance, OpsError> {
    let code = match code {
        None => ResultCode::ServiceError,
        Some(c) => FAILURE_CODES
            .into_iter()
            .find(|f| f.code() == c)
            .ok_or_else(|| {
                let known: Vec<&str> = FAILURE_CODES.iter().map(|f| f.code()).collect();
                invalid(
                    "code",
                    format!("must be one of {}, got {c:?}", known.join(", ")),
                )
            })?,
    };
    if message.trim().is_empty() {
        return Err(invalid("message", "must not be empty"));
    }
    let now = gw.clock.now_ms();
    let mut tx = gw.db.begin().await?;
    expect_provisioning(&mut tx, id).await?;
    if !crate::service::instances::fail_provisioning(&mut tx, id, code, message, now).await? {
        return Err(OpsError::Conflict(format!(
            "instance {id} changed concurrently; try again"
        )));
    }
    tx.commit().await?;
    Ok(instance(gw, id).await?.0)
}

/// Gives an instance a new administrator password; returns the new access information (the
/// only time the password is shown, besides KooGallery's `queryInstance`).
pub async fn rotate_credentials(gw: &Gateway, id: &str) -> Result<AppInfo, OpsError> {
    let now = gw.clock.now_ms();
    let mut tx = gw.db.begin().await?;
    let inst = instances::get(&mut tx, id)
        .await?
        .ok_or_else(|| OpsError::NotFound(format!("instance {id}")))?;
    let sealed = match (&inst.app_info, inst.state) {
        (Some(sealed), State::Active | State::Frozen) => sealed.clone(),
        _ => {
            return Err(OpsError::Conflict(format!(
                "instance {id} is {} and has no credentials to rotate",
                inst.state.as_str()
            )));
        }
    };
    let json = gw
        .sealer
        .open(&sealed)
        .map_err(|e| StoreError::Corrupt(format!("access information of {id}: {e}")))?;
    let mut app: AppInfo = serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("access information of {id}: {e}")))?;
    app.password = Some(crate::provision::generate_password());
    let json = serde_json::to_string(&app).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    instances::set_app_info(&mut tx, id, &gw.sealer.seal(&json), now).await?;
    crate::service::instances::record_event(
        &mut tx,
        id,
        "credentials_rotated",
        Some(inst.state),
        inst.state,
        None,
        None,
        now,
    )
    .await?;
    tx.commit().await?;
    gw.jobs_ready.notify_waiters();
    Ok(app)
}

/// Adds a webhook endpoint at runtime; returns it with its secret (generated when not given).
pub async fn add_endpoint(
    gw: &Gateway,
    url: &str,
    secret: Option<&str>,
    events: Option<Vec<String>>,
) -> Result<(Endpoint, String), OpsError> {
    let parsed = url::Url::parse(url).map_err(|e| invalid("url", e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", "must be an http:// or https:// URL"));
    }
    let secret = match secret {
        Some(s) => {
            crate::webhooks::check_secret(s).map_err(|e| invalid("secret", e))?;
            s.to_owned()
        }
        None => crate::webhooks::generate_secret(),
    };
    let events = events
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| vec!["*".to_owned()]);
    crate::webhooks::check_event_types(&events).map_err(|e| invalid("events", e))?;
    let endpoint = Endpoint {
        id: format!("ep_{}", new_id().replace('-', "")),
        url: url.to_owned(),
        secret_sealed: gw.sealer.seal(&secret),
        event_types: events,
        source: "runtime".to_owned(),
        enabled: true,
        created_at: gw.clock.now_ms(),
    };
    let mut conn = gw.db.pool.acquire().await?;
    store_webhooks::put_endpoint(&mut conn, &endpoint).await?;
    Ok((endpoint, secret))
}

/// Sends a delivery again (it keeps its attempt log).
pub async fn replay(gw: &Gateway, delivery_id: &str) -> Result<(), OpsError> {
    let mut conn = gw.db.pool.acquire().await?;
    if !store_webhooks::replay(&mut conn, delivery_id, gw.clock.now_ms()).await? {
        return Err(OpsError::NotFound(format!("delivery {delivery_id}")));
    }
    gw.jobs_ready.notify_waiters();
    Ok(())
}

/// Queues a `webhook.test` event for one endpoint; returns its delivery.
pub async fn send_test(
    gw: &Gateway,
    endpoint_id: &str,
) -> Result<store_webhooks::Delivery, OpsError> {
    let now = gw.clock.now_ms();
    let mut tx = gw.db.begin().await?;
    if store_webhooks::endpoint(&mut tx, endpoint_id)
        .await?
        .is_none()
    {
        return Err(OpsError::NotFound(format!("endpoint {endpoint_id}")));
    }
    let body = crate::webhooks::envelope(
        "webhook.test",
        now,
        json!({"message": "a test event from koogate", "endpoint_id": endpoint_id}),
    );
    let event_id =
        store_webhooks::emit(&mut tx, "webhook.test", None, &body, Some(endpoint_id), now).await?;
    let filter = store_webhooks::DeliveryFilter {
        endpoint_id: Some(endpoint_id.to_owned()),
        limit: 50,
        ..Default::default()
    };
    let delivery = store_webhooks::deliveries(&mut tx, &filter)
        .await?
        .into_iter()
        .find(|d| d.event_id == event_id)
        .ok_or_else(|| StoreError::Corrupt("test delivery vanished".to_owned()))?;
    tx.commit().await?;
    gw.jobs_ready.notify_waiters();
    Ok(delivery)
}
