//! Usage events and the windows (buckets) they are aggregated into (docs/metering.md).
//! Quantities are integers of 1e-4 units, so every `SUM` is exact on both databases.

use std::collections::{HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Backend, Db, Result};

/// Rows per multi-row statement: far below SQLite's and PostgreSQL's bind-parameter limits.
const CHUNK: usize = 500;

/// Placeholders of a multi-row `VALUES` list: `rows` groups of `width` parameters, with a
/// constant tail after them. PostgreSQL numbers them (`$1`…); SQLite gets anonymous `?`,
/// because binding `$N` makes sqlx ask SQLite for every parameter's name, which SQLite finds by
/// a linear scan: quadratic in the number of parameters (a 500-row insert spent 90% of its time
/// there). With `?` the caller binds every parameter of every row in order.
fn values_list(sqlite: bool, rows: usize, width: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(rows * (width * 5 + tail.len() + 4));
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for j in 0..width {
            if j > 0 {
                sql.push(',');
            }
            if sqlite {
                sql.push('?');
            } else {
                sql.push_str(&format!("${}", i * width + j + 1));
            }
        }
        sql.push_str(tail);
        sql.push(')');
    }
    sql
}

/// The placeholders of an `IN (…)` list of `n` parameters (see [`values_list`]).
fn in_list(sqlite: bool, n: usize) -> String {
    if sqlite {
        vec!["?"; n].join(",")
    } else {
        (1..=n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn is_sqlite(conn: &AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("sqlite")
}

/// What ingestion and push need to know of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFacts {
    pub state: String,
    pub product_id: Option<String>,
    pub charging_mode: Option<String>,
    pub created_at: i64,
    /// When it was released, if it was.
    pub released_at: Option<i64>,
}

/// The facts of the instances among `ids` that exist.
pub async fn instance_facts(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<HashMap<String, InstanceFacts>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let placeholders = in_list(is_sqlite(conn), chunk.len());
        let sql = format!(
            "SELECT i.instance_id, i.state, i.product_id, i.charging_mode, i.created_at, \
             (SELECT MIN(e.at) FROM instance_events e WHERE e.instance_id = i.instance_id AND e.to_state = 'released') AS released_at \
             FROM instances i WHERE i.instance_id IN ({placeholders})"
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            out.insert(
                row.try_get("instance_id")?,
                InstanceFacts {
                    state: row.try_get("state")?,
                    product_id: row.try_get("product_id")?,
                    charging_mode: row.try_get("charging_mode")?,
                    created_at: row.try_get("created_at")?,
                    released_at: row.try_get("released_at")?,
                },
            );
        }
    }
    Ok(out)
}

/// An event to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub idempotency_key: String,
    pub instance_id: String,
    /// `""` when no package is deducted.
    pub pkg_instance: String,
    pub quantity: i64,
    pub occurred_at: i64,
    pub window_start: i64,
    pub late: bool,
}

/// The keys among `keys` that are already stored.
pub async fn existing_keys(conn: &mut AnyConnection, keys: &[&str]) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for chunk in keys.chunks(CHUNK * 2) {
        let placeholders = in_list(is_sqlite(conn), chunk.len());
        let sql = format!(
            "SELECT idempotency_key FROM usage_events WHERE idempotency_key IN ({placeholders})"
        );
        let mut q = sqlx::query(&sql);
        for k in chunk {
            q = q.bind(*k);
        }
        for row in q.fetch_all(&mut *conn).await? {
            out.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(out)
}

/// Inserts events with multi-row statements, skipping keys already stored; returns how many
/// rows were inserted. (No `RETURNING`: streaming a row per event back from the database
/// costs more than the insert itself; the caller checks the count.)
pub async fn insert_events(
    conn: &mut AnyConnection,
    rows: &[EventRow],
    now_ms: i64,
) -> Result<u64> {
    let mut inserted = 0;
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO usage_events (idempotency_key, instance_id, pkg_instance, quantity, occurred_at, \
             window_start, late, received_at) VALUES {} ON CONFLICT (idempotency_key) DO NOTHING",
            values_list(is_sqlite(conn), chunk.len(), 8, "")
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(&r.idempotency_key)
                .bind(&r.instance_id)
                .bind(&r.pkg_instance)
                .bind(r.quantity)
                .bind(r.occurred_at)
                .bind(r.window_start)
                .bind(i64::from(r.late))
                .bind(now_ms);
        }
        inserted += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(inserted)
}

/// Usage to add to a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDelta {
    pub metering_sn: String,
    pub instance_id: String,
    pub pkg_instance: String,
    pub window_start: i64,
    pub window_end: i64,
    pub quantity: i64,
    pub events: i64,
}

/// Adds to each window, creating it open; a window that is no longer open is left alone.
/// Returns how many windows took their delta (all of them, unless one was sealed).
pub async fn add_to_buckets(
    conn: &mut AnyConnection,
    deltas: &[BucketDelta],
    now_ms: i64,
) -> Result<u64> {
    let mut applied = 0;
    for chunk in deltas.chunks(CHUNK) {
        let mut sql = format!(
            "INSERT INTO usage_buckets (metering_sn, instance_id, pkg_instance, window_start, window_end, quantity, \
             events, next_attempt_at, created_at, updated_at, status, attempts) VALUES {}",
            values_list(is_sqlite(conn), chunk.len(), 10, ",'open',0")
        );
        sql.push_str(
            " ON CONFLICT (metering_sn) DO UPDATE SET quantity = usage_buckets.quantity + excluded.quantity, \
             events = usage_buckets.events + excluded.events, updated_at = excluded.updated_at \
             WHERE usage_buckets.status = 'open'",
        );
        let mut q = sqlx::query(&sql);
        for d in chunk {
            q = q
                .bind(&d.metering_sn)
                .bind(&d.instance_id)
                .bind(&d.pkg_instance)
                .bind(d.window_start)
                .bind(d.window_end)
                .bind(d.quantity)
                .bind(d.events)
                .bind(now_ms)
                .bind(now_ms)
                .bind(now_ms);
        }
        applied += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(applied)
}

/// The serials among `sns` whose window is no longer open.
pub async fn closed_buckets(conn: &mut AnyConnection, sns: &[&str]) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for chunk in sns.chunks(CHUNK) {
        let placeholders = in_list(is_sqlite(conn), chunk.len());
        let sql = format!(
            "SELECT metering_sn FROM usage_buckets WHERE status <> 'open' AND metering_sn IN ({placeholders})"
        );
        let mut q = sqlx::query(&sql);
        for sn in chunk {
            q = q.bind(*sn);
        }
        for row in q.fetch_all(&mut *conn).await? {
            out.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(out)
}

/// Moves stored events to another window (a late event whose window was sealed meanwhile).
pub async fn reattribute_event(
    conn: &mut AnyConnection,
    idempotency_key: &str,
    window_start: i64,
) -> Result<()> {
    sqlx::query("UPDATE usage_events SET window_start = $1, late = 1 WHERE idempotency_key = $2")
        .bind(window_start)
        .bind(idempotency_key)
        .execute(conn)
        .await?;
    Ok(())
}

/// A window as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub metering_sn: String,
    pub instance_id: String,
    pub pkg_instance: String,
    pub window_start: i64,
    pub window_end: i64,
    pub quantity: i64,
    pub events: i64,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub error_code: Option<String>,
    pub last_error: Option<String>,
    pub pushed_at: Option<i64>,
    pub settled_at: Option<i64>,
}

const BUCKET_COLUMNS: &str = "metering_sn, instance_id, pkg_instance, window_start, window_end, quantity, events, \
    status, attempts, next_attempt_at, error_code, last_error, pushed_at, settled_at";

fn bucket_from_row(row: &AnyRow) -> Result<Bucket> {
    Ok(Bucket {
        metering_sn: row.try_get("metering_sn")?,
        instance_id: row.try_get("instance_id")?,
        pkg_instance: row.try_get("pkg_instance")?,
        window_start: row.try_get("window_start")?,
        window_end: row.try_get("window_end")?,
        quantity: row.try_get("quantity")?,
        events: row.try_get("events")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        error_code: row.try_get("error_code")?,
        last_error: row.try_get("last_error")?,
        pushed_at: row.try_get("pushed_at")?,
        settled_at: row.try_get("settled_at")?,
    })
}

/// Seals every open window that ended at least `grace_ms` ago; returns how many.
pub async fn seal_due(db: &Db, now_ms: i64, grace_ms: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE usage_buckets SET status = 'sealed', next_attempt_at = $1, updated_at = $1 \
         WHERE status = 'open' AND window_end <= $2",
    )
    .bind(now_ms)
    .bind(now_ms.saturating_sub(grace_ms))
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// Sealed windows that began before `cutoff` (too old for KooGallery).
pub async fn sealed_before(conn: &mut AnyConnection, cutoff: i64) -> Result<Vec<Bucket>> {
    let rows = sqlx::query(&format!(
        "SELECT {BUCKET_COLUMNS} FROM usage_buckets WHERE status = 'sealed' AND window_start < $1 \
         ORDER BY window_start, instance_id, pkg_instance"
    ))
    .bind(cutoff)
    .fetch_all(conn)
    .await?;
    rows.iter().map(bucket_from_row).collect()
}

/// Makes every sealed window due now (an operator's `push --now`).
pub async fn make_due(db: &Db, now_ms: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE usage_buckets SET next_attempt_at = $1 WHERE status = 'sealed' AND next_attempt_at > $1",
    )
    .bind(now_ms)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// Makes accepted windows of `[from, to)` sealed again, so they are pushed once more with their
/// serials (KooGallery ignores a record it already has): `usage backfill`.
pub async fn reopen_accepted(db: &Db, from: i64, to: i64, now_ms: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE usage_buckets SET status = 'sealed', next_attempt_at = $1, updated_at = $1 \
         WHERE status = 'accepted' AND window_start >= $2 AND window_start < $3",
    )
    .bind(now_ms)
    .bind(from)
    .bind(to)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// How many sealed windows are due at `now_ms`.
pub async fn due_count(db: &Db, now_ms: i64) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM usage_buckets WHERE status = 'sealed' AND next_attempt_at <= $1 \
         AND (locked_until IS NULL OR locked_until < $1)",
    )
    .bind(now_ms)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get(0)?)
}

/// Claims up to `limit` due sealed windows, oldest window first, for `lease_ms`.
pub async fn claim_due(db: &Db, now_ms: i64, limit: usize, lease_ms: i64) -> Result<Vec<Bucket>> {
    let lock = match db.backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE usage_buckets SET locked_until = $1 WHERE metering_sn IN (SELECT metering_sn FROM usage_buckets \
         WHERE status = 'sealed' AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until < $2) \
         ORDER BY window_start, instance_id, pkg_instance LIMIT $3{lock}) RETURNING {BUCKET_COLUMNS}"
    );
    let rows = sqlx::query(&sql)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&db.pool)
        .await?;
    let mut buckets = rows
        .iter()
        .map(bucket_from_row)
        .collect::<Result<Vec<_>>>()?;
    // RETURNING does not keep the subquery's order.
    buckets.sort_by(|a, b| {
        (a.window_start, &a.instance_id, &a.pkg_instance).cmp(&(
            b.window_start,
            &b.instance_id,
            &b.pkg_instance,
        ))
    });
    Ok(buckets)
}

/// Settles a sealed window: `accepted`, `rejected` or `expired`. False if it was not sealed.
pub async fn settle(
    conn: &mut AnyConnection,
    metering_sn: &str,
    status: &str,
    error: Option<(&str, &str)>,
    pushed: bool,
    now_ms: i64,
) -> Result<bool> {
    let (code, message) = error.unzip();
    let done = sqlx::query(
        "UPDATE usage_buckets SET status = $1, error_code = $2, last_error = $3, locked_until = NULL, \
         settled_at = $4, updated_at = $4, attempts = attempts + $5, pushed_at = CASE WHEN $5 = 1 THEN $4 ELSE pushed_at END \
         WHERE metering_sn = $6 AND status = 'sealed'",
    )
    .bind(status)
    .bind(code)
    .bind(message)
    .bind(now_ms)
    .bind(i64::from(pushed))
    .bind(metering_sn)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a failed push attempt of a sealed window; it is tried again at `next_at`.
pub async fn retry_later(
    conn: &mut AnyConnection,
    metering_sn: &str,
    next_at: i64,
    error: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE usage_buckets SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, \
         locked_until = NULL, pushed_at = $3, updated_at = $3 WHERE metering_sn = $4 AND status = 'sealed'",
    )
    .bind(next_at)
    .bind(error)
    .bind(now_ms)
    .bind(metering_sn)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which windows to list or report.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub instance_id: Option<String>,
    pub status: Option<String>,
    /// Windows starting at or after this.
    pub from: Option<i64>,
    /// Windows starting before this.
    pub to: Option<i64>,
    pub limit: i64,
}

/// Windows, oldest first.
pub async fn buckets(conn: &mut AnyConnection, f: &Filter) -> Result<Vec<Bucket>> {
    let rows = sqlx::query(&format!(
        "SELECT {BUCKET_COLUMNS} FROM usage_buckets WHERE ($1 IS NULL OR instance_id = $1) \
         AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR window_start >= $3) AND ($4 IS NULL OR window_start < $4) \
         ORDER BY window_start, instance_id, pkg_instance LIMIT $5"
    ))
    .bind(&f.instance_id)
    .bind(&f.status)
    .bind(f.from)
    .bind(f.to)
    .bind(f.limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(bucket_from_row).collect()
}

/// One line of the usage report: a window start and what happened to its usage (1e-4 units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportRow {
    pub window_start: i64,
    pub windows: i64,
    pub events: i64,
    pub recorded: i64,
    /// Sent to KooGallery at least once.
    pub pushed: i64,
    pub accepted: i64,
    /// Refused by KooGallery, or too old to push.
    pub rejected: i64,
    /// Not settled yet (open or sealed).
    pub pending: i64,
}

/// Recorded, pushed, accepted and rejected usage per window start.
pub async fn report(conn: &mut AnyConnection, f: &Filter) -> Result<Vec<ReportRow>> {
    let rows = sqlx::query(
        "SELECT window_start, CAST(COUNT(*) AS BIGINT) AS windows, CAST(SUM(events) AS BIGINT) AS events, \
         CAST(SUM(quantity) AS BIGINT) AS recorded, \
         CAST(SUM(CASE WHEN pushed_at IS NOT NULL THEN quantity ELSE 0 END) AS BIGINT) AS pushed, \
         CAST(SUM(CASE WHEN status = 'accepted' THEN quantity ELSE 0 END) AS BIGINT) AS accepted, \
         CAST(SUM(CASE WHEN status IN ('rejected', 'expired') THEN quantity ELSE 0 END) AS BIGINT) AS rejected, \
         CAST(SUM(CASE WHEN status IN ('open', 'sealed') THEN quantity ELSE 0 END) AS BIGINT) AS pending \
         FROM usage_buckets WHERE ($1 IS NULL OR instance_id = $1) AND ($2 IS NULL OR window_start >= $2) \
         AND ($3 IS NULL OR window_start < $3) GROUP BY window_start ORDER BY window_start LIMIT $4",
    )
    .bind(&f.instance_id)
    .bind(f.from)
    .bind(f.to)
    .bind(f.limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ReportRow {
                window_start: r.try_get("window_start")?,
                windows: r.try_get("windows")?,
                events: r.try_get("events")?,
                recorded: r.try_get("recorded")?,
                pushed: r.try_get("pushed")?,
                accepted: r.try_get("accepted")?,
                rejected: r.try_get("rejected")?,
                pending: r.try_get("pending")?,
            })
        })
        .collect()
}

/// The usage recorded for an instance (1e-4 units), refused windows excluded, and the usage
/// deducted from it as a package, per on-demand instance.
pub async fn totals(
    conn: &mut AnyConnection,
    instance_id: &str,
) -> Result<(Option<i64>, Vec<(String, i64)>)> {
    let own: Option<i64> = sqlx::query(
        "SELECT CAST(SUM(quantity) AS BIGINT) FROM usage_buckets WHERE instance_id = $1 \
         AND status NOT IN ('rejected', 'expired')",
    )
    .bind(instance_id)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    let rows = sqlx::query(
        "SELECT instance_id, CAST(SUM(quantity) AS BIGINT) AS used FROM usage_buckets WHERE pkg_instance = $1 \
         AND status NOT IN ('rejected', 'expired') GROUP BY instance_id ORDER BY instance_id",
    )
    .bind(instance_id)
    .fetch_all(&mut *conn)
    .await?;
    let packages = rows
        .iter()
        .map(|r| Ok((r.try_get("instance_id")?, r.try_get("used")?)))
        .collect::<Result<Vec<_>>>()?;
    Ok((own, packages))
}

/// Frees every push lease (single-node SQLite at start-up, like jobs).
pub async fn release_all_leases(db: &Db) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE usage_buckets SET locked_until = NULL WHERE status = 'sealed' AND locked_until IS NOT NULL",
    )
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}
