//! The webhook outbox: events written in the transaction of the change they describe, their
//! deliveries to endpoints (claimed with a lease, in order per endpoint and instance), and every
//! attempt (docs/integration.md).

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::uow::UnitOfWork;
use super::{Backend, Db, Result, new_id};

/// An endpoint events are delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// The `whsec_…` secret, sealed with the data key.
    pub secret_sealed: String,
    /// Event types, or `["*"]` for all.
    pub event_types: Vec<String>,
    /// `config` (from the config file) or `runtime` (CLI, REST API).
    pub source: String,
    pub enabled: bool,
    pub created_at: i64,
}

impl Endpoint {
    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled && self.event_types.iter().any(|t| t == "*" || t == event_type)
    }
}

/// A delivery of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub instance_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A claimed delivery with what sending it needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub payload: String,
    pub url: String,
    pub secret_sealed: String,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: i64,
    pub at: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The start of the response body.
    pub response: Option<String>,
    pub error: Option<String>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(i64),
    Failed,
}

const ENDPOINT_COLUMNS: &str = "id, url, secret_sealed, event_types, source, enabled, created_at";
const DELIVERY_COLUMNS: &str = "d.id, d.event_id, e.event_type, d.endpoint_id, d.instance_id, d.status, \
    d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.updated_at";

fn endpoint_from_row(row: &AnyRow) -> Result<Endpoint> {
    let types: String = row.try_get("event_types")?;
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        secret_sealed: row.try_get("secret_sealed")?,
        event_types: types.split(',').map(str::to_owned).collect(),
        source: row.try_get("source")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery> {
    Ok(Delivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        endpoint_id: row.try_get("endpoint_id")?,
        instance_id: row.try_get("instance_id")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Adds an endpoint, or updates the one with the same id (config endpoints keep their id).
pub async fn put_endpoint(conn: &mut AnyConnection, e: &Endpoint) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, secret_sealed, event_types, source, enabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET url = $2, secret_sealed = $3, \
         event_types = $4, source = $5, enabled = $6",
    )
    .bind(&e.id)
    .bind(&e.url)
    .bind(&e.secret_sealed)
    .bind(e.event_types.join(","))
    .bind(&e.source)
    .bind(i64::from(e.enabled))
    .bind(e.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Disables the config endpoints that are no longer in the config file.
pub async fn disable_config_endpoints_except(
    conn: &mut AnyConnection,
    keep: &[String],
) -> Result<()> {
    for e in endpoints(conn).await? {
        if e.source == "config" && e.enabled && !keep.contains(&e.id) {
            sqlx::query("UPDATE webhook_endpoints SET enabled = 0 WHERE id = $1")
                .bind(&e.id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Every endpoint, oldest first.
pub async fn endpoints(conn: &mut AnyConnection) -> Result<Vec<Endpoint>> {
    let rows = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
    ))
    .fetch_all(conn)
    .await?;
    rows.iter().map(endpoint_from_row).collect()
}

pub async fn endpoint(conn: &mut AnyConnection, id: &str) -> Result<Option<Endpoint>> {
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(endpoint_from_row).transpose()
}

/// An event and a pending delivery to every enabled endpoint that wants its type, as steps of a
/// unit: two statements whatever the number of endpoints. A delivery's id is derived from the
/// event's and the endpoint's, so it needs no read of the endpoints.
pub fn emit_in(
    unit: &mut UnitOfWork,
    event_type: &str,
    instance_id: Option<&str>,
    payload: String,
    now_ms: i64,
) {
    let event_id = new_id();
    unit.push(
        "INSERT INTO webhook_events (id, event_type, instance_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
        vec![
            (&event_id).into(),
            event_type.into(),
            instance_id.into(),
            payload.into(),
            now_ms.into(),
        ],
    );
    // event_types is '*' or a comma-separated list; `_` is a LIKE wildcard, so it is escaped.
    let pattern = format!(
        "%,{},%",
        event_type
            .replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%")
    );
    unit.push(
        "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, instance_id, status, attempts, \
         next_attempt_at, created_at, updated_at) \
         SELECT $1 || '-' || id, $1, id, $2, 'pending', 0, $3, $3, $3 FROM webhook_endpoints \
         WHERE enabled = 1 AND (',' || event_types || ',' LIKE '%,*,%' \
         OR ',' || event_types || ',' LIKE $4 ESCAPE '\\')",
        vec![
            event_id.into(),
            instance_id.into(),
            now_ms.into(),
            pattern.into(),
        ],
    );
}

/// Writes an event and a pending delivery to every enabled endpoint that wants its type; or,
/// with `only_endpoint`, to that endpoint alone (test events). Call inside the transaction of
/// the change the event describes. Returns the event id.
pub async fn emit(
    conn: &mut AnyConnection,
    event_type: &str,
    instance_id: Option<&str>,
    payload: &str,
    only_endpoint: Option<&str>,
    now_ms: i64,
) -> Result<String> {
    let event_id = new_id();
    sqlx::query(
        "INSERT INTO webhook_events (id, event_type, instance_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&event_id)
    .bind(event_type)
    .bind(instance_id)
    .bind(payload)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    for endpoint in endpoints(conn).await? {
        let chosen = match only_endpoint {
            Some(id) => endpoint.id == id,
            None => endpoint.wants(event_type),
        };
        if chosen {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, instance_id, status, attempts, \
                 next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5)",
            )
            .bind(new_id())
            .bind(&event_id)
            .bind(&endpoint.id)
            .bind(instance_id)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(event_id)
}

/// Claims the oldest due delivery whose lease is free and which has no earlier pending delivery
/// for the same endpoint and instance (events of one instance arrive in order).
pub async fn claim(db: &Db, worker: &str, now_ms: i64, lease_ms: i64) -> Result<Option<Claimed>> {
    let lock = match db.backend {
        Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET locked_by = $1, locked_until = $2, attempts = attempts + 1, updated_at = $3 \
         WHERE id = (SELECT d.id FROM webhook_deliveries d WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
           AND (d.locked_until IS NULL OR d.locked_until < $3) \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id \
             AND p.instance_id = d.instance_id AND p.status = 'pending' \
             AND (p.created_at < d.created_at OR (p.created_at = d.created_at AND p.id < d.id))) \
           ORDER BY d.next_attempt_at, d.created_at, d.id LIMIT 1{lock}) \
         RETURNING id"
    );
    let Some(row) = sqlx::query(&sql)
        .bind(worker)
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .fetch_optional(&db.pool)
        .await?
    else {
        return Ok(None);
    };
    let id: String = row.try_get("id")?;
    claimed(db, &id).await.map(Some)
}

/// Claims one pending delivery by id (`koogate webhooks test` sends its test event itself);
/// `None` if it is not pending or another worker holds it.
pub async fn claim_one(
    db: &Db,
    id: &str,
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Option<Claimed>> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET locked_by = $1, locked_until = $2, attempts = attempts + 1, updated_at = $3 \
         WHERE id = $4 AND status = 'pending' AND (locked_until IS NULL OR locked_until < $3)",
    )
    .bind(worker)
    .bind(now_ms + lease_ms)
    .bind(now_ms)
    .bind(id)
    .execute(&db.pool)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    claimed(db, id).await.map(Some)
}

async fn claimed(db: &Db, id: &str) -> Result<Claimed> {
    let row = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS}, e.payload, w.url, w.secret_sealed FROM webhook_deliveries d \
         JOIN webhook_events e ON e.id = d.event_id JOIN webhook_endpoints w ON w.id = d.endpoint_id \
         WHERE d.id = $1"
    ))
    .bind(id)
    .fetch_one(&db.pool)
    .await?;
    Ok(Claimed {
        delivery: delivery_from_row(&row)?,
        payload: row.try_get("payload")?,
        url: row.try_get("url")?,
        secret_sealed: row.try_get("secret_sealed")?,
    })
}

/// Records an attempt and moves the delivery on, if the lease is still `worker`'s. Returns
/// false when it was not (another worker took the delivery over).
pub async fn finish_attempt(
    db: &Db,
    delivery: &Delivery,
    worker: &str,
    attempt: &Attempt,
    next: Next,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = db.begin().await?;
    let (status, next_at) = match next {
        Next::Delivered => ("delivered", delivery.next_attempt_at),
        Next::RetryAt(at) => ("pending", at),
        Next::Failed => ("failed", delivery.next_attempt_at),
    };
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, locked_by = NULL, locked_until = NULL, \
         last_status = $3, last_error = $4, updated_at = $5 WHERE id = $6 AND locked_by = $7",
    )
    .bind(status)
    .bind(next_at)
    .bind(attempt.status_code)
    .bind(&attempt.error)
    .bind(now_ms)
    .bind(&delivery.id)
    .bind(worker)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO webhook_attempts (id, delivery_id, attempt, at, status_code, latency_ms, response, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(&delivery.id)
    .bind(attempt.attempt)
    .bind(attempt.at)
    .bind(attempt.status_code)
    .bind(attempt.latency_ms)
    .bind(&attempt.response)
    .bind(&attempt.error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Sends a delivery again: back to pending, due now. Returns false if there is no such delivery.
pub async fn replay(conn: &mut AnyConnection, id: &str, now_ms: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, locked_by = NULL, \
         locked_until = NULL, updated_at = $1 WHERE id = $2",
    )
    .bind(now_ms)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint_id: Option<String>,
    pub instance_id: Option<String>,
    pub status: Option<String>,
    /// Only deliveries created before this (id, created_at) cursor: the next page.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// Deliveries, newest first.
pub async fn deliveries(conn: &mut AnyConnection, f: &DeliveryFilter) -> Result<Vec<Delivery>> {
    let (before_at, before_id) = f.before.clone().unzip();
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
         WHERE ($1 IS NULL OR d.endpoint_id = $1) AND ($2 IS NULL OR d.instance_id = $2) \
         AND ($3 IS NULL OR d.status = $3) \
         AND ($4 IS NULL OR d.created_at < $4 OR (d.created_at = $4 AND d.id < $5)) \
         ORDER BY d.created_at DESC, d.id DESC LIMIT $6"
    ))
    .bind(&f.endpoint_id)
    .bind(&f.instance_id)
    .bind(&f.status)
    .bind(before_at)
    .bind(before_id)
    .bind(f.limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(delivery_from_row).collect()
}

pub async fn delivery(conn: &mut AnyConnection, id: &str) -> Result<Option<Delivery>> {
    let row = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
         WHERE d.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(delivery_from_row).transpose()
}

/// The attempts of a delivery, oldest first.
pub async fn attempts(conn: &mut AnyConnection, delivery_id: &str) -> Result<Vec<Attempt>> {
    let rows = sqlx::query(
        "SELECT attempt, at, status_code, latency_ms, response, error FROM webhook_attempts \
         WHERE delivery_id = $1 ORDER BY attempt, at",
    )
    .bind(delivery_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Attempt {
                attempt: r.try_get("attempt")?,
                at: r.try_get("at")?,
                status_code: r.try_get("status_code")?,
                latency_ms: r.try_get("latency_ms")?,
                response: r.try_get("response")?,
                error: r.try_get("error")?,
            })
        })
        .collect()
}

/// Deletes what is finished and older than `before_ms`: delivered and failed deliveries (with
/// their attempts), then events no delivery refers to any more. Pending deliveries and their
/// events are kept whatever their age. Returns (deliveries, events) deleted.
pub async fn purge(db: &Db, before_ms: i64) -> Result<(u64, u64)> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries \
         WHERE status IN ('delivered', 'failed') AND updated_at < $1)",
    )
    .bind(before_ms)
    .execute(&mut *tx)
    .await?;
    let deliveries = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND updated_at < $1",
    )
    .bind(before_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let events = sqlx::query(
        "DELETE FROM webhook_events WHERE created_at < $1 AND NOT EXISTS \
         (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
    )
    .bind(before_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok((deliveries, events))
}

/// The earliest `next_attempt_at` of a pending delivery.
pub async fn next_due(db: &Db) -> Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT MIN(next_attempt_at) AS next FROM webhook_deliveries WHERE status = 'pending'",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get("next")?)
}
