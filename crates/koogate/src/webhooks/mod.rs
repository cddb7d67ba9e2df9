//! Event webhooks to the merchant's application (docs/integration.md): every lifecycle event is
//! written to the outbox in the transaction of its change ([`instance_event_in`]); delivery
//! workers ([`Deliverer`]) send each one to every endpoint that wants it, signed per the Standard
//! Webhooks convention, retried with exponential back-off until delivered or too old, in order per
//! endpoint and instance. Nothing here ever blocks a KooGallery callback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

pub use crate::config::Schedule;
pub use crate::events::{EVENT_TYPES, check_event_types, check_secret, instance_event_type};

use crate::app::Gateway;
use crate::store::Result as StoreResult;
use crate::store::instances::NewEvent;
use crate::store::uow::UnitOfWork;
use crate::store::webhooks::{self as store, Attempt, Claimed, Next};

/// The Standard Webhooks body: `{"type", "timestamp", "data"}`.
pub fn envelope(event_type: &str, now_ms: i64, data: Value) -> String {
    let timestamp = koogallery::time::from_epoch_millis(now_ms)
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    json!({"type": event_type, "timestamp": timestamp, "data": data}).to_string()
}

/// The outbox event of an instance history entry, as steps of the entry's unit of work.
pub fn instance_event_in(unit: &mut UnitOfWork, e: &NewEvent<'_>) {
    let Some(event_type) = instance_event_type(e.kind) else {
        return;
    };
    // A JSON detail is passed as JSON, anything else as text.
    let detail = e
        .detail
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| json!(d)));
    let data = json!({
        "instance_id": e.instance_id,
        "from_state": e.from.map(crate::domain::instance::State::as_str),
        "state": e.to.as_str(),
        "order_id": e.order_id,
        "detail": detail,
    });
    store::emit_in(
        unit,
        event_type,
        Some(e.instance_id),
        envelope(event_type, e.at, data),
        e.at,
    );
}

/// The id of an endpoint from the config file: stable across restarts, derived from its URL.
pub fn config_endpoint_id(url: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("cfg_{}", &hex::encode(Sha256::digest(url.as_bytes()))[..16])
}

/// Makes the database's config endpoints match the config file: adds or updates each, disables
/// the ones no longer listed (their delivery log stays).
pub async fn sync_config_endpoints(
    gateway: &Gateway,
    endpoints: &[crate::config::WebhookEndpointConfig],
) -> StoreResult<()> {
    use secrecy::ExposeSecret as _;
    let now = gateway.clock.now_ms();
    let mut tx = gateway.db.begin().await?;
    let mut keep = Vec::new();
    for e in endpoints {
        let id = config_endpoint_id(&e.url);
        let created_at = store::endpoint(&mut tx, &id)
            .await?
            .map_or(now, |existing| existing.created_at);
        store::put_endpoint(
            &mut tx,
            &store::Endpoint {
                id: id.clone(),
                url: e.url.clone(),
                secret_sealed: gateway.sealer.seal(e.secret.expose_secret()),
                event_types: e.events.clone(),
                source: "config".to_owned(),
                enabled: true,
                created_at,
            },
        )
        .await?;
        keep.push(id);
    }
    store::disable_config_endpoints_except(&mut tx, &keep).await?;
    tx.commit().await?;
    Ok(())
}

/// The HTTP client of webhook deliveries and provisioning calls.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("koogate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A new random Standard Webhooks secret: `whsec_` + base64 of 24 random bytes.
pub fn generate_secret() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The signed headers of a body: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
pub fn sign(
    secret: &str,
    message_id: &str,
    now_ms: i64,
    body: &str,
) -> Result<[(&'static str, String); 3], String> {
    let timestamp = now_ms.div_euclid(1000);
    let signature = standardwebhooks::Webhook::new(secret)
        .and_then(|w| w.sign(message_id, timestamp, body.as_bytes()))
        .map_err(|e| format!("cannot sign: {e}"))?;
    Ok([
        (standardwebhooks::HEADER_WEBHOOK_ID, message_id.to_owned()),
        (
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        ),
        (standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature),
    ])
}

impl Schedule {
    /// What follows a failed attempt number `attempts` (1-based) of an event created at
    /// `created_at`.
    pub fn after_failure(&self, attempts: i64, created_at: i64, now_ms: i64) -> Next {
        let delay = crate::backoff::Backoff {
            first_ms: self.first_retry_ms,
            max_ms: self.max_retry_ms,
        }
        .delay_ms(attempts);
        let at = now_ms.saturating_add(delay);
        if at.saturating_sub(created_at) > self.max_age_ms {
            Next::Failed
        } else {
            Next::RetryAt(at)
        }
    }
}

/// At most this many characters of a response body are kept in the delivery log.
const RESPONSE_EXCERPT_CHARS: usize = 512;

/// Sends one signed request and describes the attempt (status, latency, excerpt, error).
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    message_id: &str,
    body: &str,
    now_ms: i64,
    timeout: Duration,
) -> (Option<u16>, Option<String>, Duration, Option<String>) {
    let started = Instant::now();
    let headers = match sign(secret, message_id, now_ms, body) {
        Ok(h) => h,
        Err(e) => return (None, None, started.elapsed(), Some(e)),
    };
    let mut request = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let excerpt: String = text.chars().take(RESPONSE_EXCERPT_CHARS).collect();
            let error = (!(200..300).contains(&status)).then(|| format!("HTTP {status}"));
            (Some(status), Some(excerpt), started.elapsed(), error)
        }
        Err(e) => (None, None, started.elapsed(), Some(describe(e))),
    }
}

/// A transport error in a few words, without the URL's query (it may carry a token).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.without_url().to_string()
    }
}

/// A delivery worker: claims due deliveries and sends them until `shutdown` turns true.
pub struct Deliverer {
    /// Database, clock, sealer, and the notification of committed changes.
    pub gateway: Arc<Gateway>,
    pub client: reqwest::Client,
    pub schedule: Schedule,
    pub worker_id: String,
}

/// How long an idle worker sleeps before looking again (events written by another node).
const POLL: Duration = Duration::from_secs(1);

/// Finished deliveries and their events are kept this long (the delivery log), then purged.
pub const RETENTION_MS: i64 = 30 * 24 * 3_600_000;
/// How often a worker purges.
const PURGE_EVERY_MS: i64 = 3_600_000;

impl Deliverer {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut purged_at = i64::MIN;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let gw = &self.gateway;
            let now = gw.clock.now_ms();
            if now.saturating_sub(purged_at) >= PURGE_EVERY_MS {
                purged_at = now;
                match store::purge(&gw.db, now.saturating_sub(RETENTION_MS)).await {
                    Ok((0, 0)) => {}
                    Ok((deliveries, events)) => {
                        tracing::info!(deliveries, events, "purged the old webhook delivery log")
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot purge the webhook delivery log"),
                }
            }
            let lease = self.lease_ms();
            match store::claim(&gw.db, &self.worker_id, now, lease).await {
                Ok(Some(claimed)) => self.deliver(claimed).await,
                Ok(None) => {
                    let notified = gw.jobs_ready.notified();
                    let sleep = match store::next_due(&gw.db).await {
                        Ok(Some(at)) if at > now => {
                            Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(POLL)
                        }
                        _ => POLL,
                    };
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(sleep) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim a webhook delivery; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// How long a claimed delivery is reserved: well beyond one attempt's timeout.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.schedule.timeout_ms)
            .unwrap_or(i64::MAX)
            .saturating_mul(2)
            .saturating_add(5_000)
    }

    /// One attempt of a claimed delivery.
    pub async fn deliver(&self, claimed: Claimed) {
        let d = &claimed.delivery;
        let gw = &self.gateway;
        let now = gw.clock.now_ms();
        let (status, response, latency, error) = match gw.sealer.open(&claimed.secret_sealed) {
            Ok(secret) => {
                send(
                    &self.client,
                    &claimed.url,
                    &secret,
                    &d.event_id,
                    &claimed.payload,
                    now,
                    Duration::from_millis(self.schedule.timeout_ms),
                )
                .await
            }
            Err(e) => (
                None,
                None,
                Duration::ZERO,
                Some(format!("cannot open the endpoint's secret: {e}")),
            ),
        };
        let finished = gw.clock.now_ms();
        let next = match error {
            None => Next::Delivered,
            Some(_) => self
                .schedule
                .after_failure(d.attempts, d.created_at, finished),
        };
        let attempt = Attempt {
            attempt: d.attempts,
            at: now,
            status_code: status.map(i64::from),
            latency_ms: i64::try_from(latency.as_millis()).unwrap_or(i64::MAX),
            response,
            error: error.clone(),
        };
        match &next {
            Next::Delivered => {
                tracing::info!(delivery = %d.id, event = %d.event_type, "webhook delivered")
            }
            Next::RetryAt(_) => {
                tracing::warn!(delivery = %d.id, event = %d.event_type, attempt = d.attempts, error = error.as_deref().unwrap_or(""), "webhook delivery failed; will retry")
            }
            Next::Failed => {
                tracing::error!(delivery = %d.id, event = %d.event_type, attempt = d.attempts, error = error.as_deref().unwrap_or(""), "webhook delivery given up (too old)")
            }
        }
        match store::finish_attempt(&gw.db, d, &self.worker_id, &attempt, next, finished).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery = %d.id, "webhook delivery lease lost; another worker has it")
            }
            Err(e) => {
                tracing::error!(delivery = %d.id, error = %e, "cannot record a webhook attempt; it will be sent again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_the_ceiling_then_stop_at_the_maximum_age() {
        let s = Schedule {
            first_retry_ms: 1_000,
            max_retry_ms: 8_000,
            max_age_ms: 60_000,
            timeout_ms: 1_000,
        };
        assert_eq!(s.after_failure(1, 0, 0), Next::RetryAt(1_000));
        assert_eq!(s.after_failure(2, 0, 0), Next::RetryAt(2_000));
        assert_eq!(s.after_failure(4, 0, 0), Next::RetryAt(8_000));
        assert_eq!(s.after_failure(30, 0, 0), Next::RetryAt(8_000));
        assert_eq!(s.after_failure(i64::MAX, 0, 10), Next::RetryAt(8_010));
        assert_eq!(s.after_failure(5, 0, 52_000), Next::RetryAt(60_000));
        assert_eq!(s.after_failure(5, 0, 52_001), Next::Failed);
    }

    #[test]
    fn every_instance_kind_maps_to_a_catalogued_type() {
        for kind in [
            "created",
            "provisioned",
            "provision_failed",
            "renewed",
            "frozen",
            "unfrozen",
            "upgraded",
            "specification_changed",
            "released",
            "credentials_rotated",
        ] {
            let t = instance_event_type(kind).unwrap_or_default();
            assert!(EVENT_TYPES.contains(&t), "{kind}");
        }
        assert_eq!(instance_event_type("something_else"), None);
    }

    #[test]
    fn signatures_verify_with_the_standard_webhooks_library() {
        let secret = generate_secret();
        check_secret(&secret).unwrap_or_else(|e| panic!("{e}"));
        let now = koogallery::time::epoch_millis(time::OffsetDateTime::now_utc());
        let headers = sign(&secret, "msg_1", now, r#"{"a":1}"#).unwrap_or_else(|e| panic!("{e}"));
        let mut map = axum::http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(k, v.parse().unwrap_or_else(|_| panic!("header")));
        }
        let wh = standardwebhooks::Webhook::new(&secret).unwrap_or_else(|e| panic!("{e}"));
        assert!(wh.verify(br#"{"a":1}"#, &map).is_ok());
        assert!(wh.verify(br#"{"a":2}"#, &map).is_err());
    }

    #[test]
    fn secrets_and_types_are_checked() {
        assert!(check_secret("whsec_!!").is_err());
        assert!(check_secret("secret").is_err());
        assert!(check_event_types(&["*".to_owned(), "instance.ready".to_owned()]).is_ok());
        assert!(check_event_types(&["instance.exploded".to_owned()]).is_err());
    }
}
