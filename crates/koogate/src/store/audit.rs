//! The audit log: one row per inbound call, with personal data redacted before it gets here.

use sqlx::{AnyConnection, Row};

use super::uow::UnitOfWork;
use super::{Db, Result, new_id};

/// One audited call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub id: String,
    /// Unix epoch milliseconds.
    pub at: i64,
    /// `saas_v2`, `saas_v1`, …
    pub family: String,
    pub activity: Option<String>,
    pub order_id: Option<String>,
    pub instance_id: Option<String>,
    pub test: bool,
    /// `ok`, `rejected` (bad input), `unauthenticated`, `replayed`, `error`.
    pub verdict: String,
    pub result_code: String,
    pub result_msg: Option<String>,
    pub latency_us: i64,
    /// The request, personal data redacted.
    pub request: String,
}

impl Entry {
    pub fn new(family: &str, at: i64) -> Entry {
        Entry {
            id: new_id(),
            at,
            family: family.to_owned(),
            activity: None,
            order_id: None,
            instance_id: None,
            test: false,
            verdict: String::new(),
            result_code: String::new(),
            result_msg: None,
            latency_us: 0,
            request: String::new(),
        }
    }
}

const INSERT: &str = "INSERT INTO audit_log (id, at, family, activity, order_id, instance_id, test, verdict, \
     result_code, result_msg, latency_us, request) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// The audit row as a step of the call's unit of work.
pub fn insert_in(unit: &mut UnitOfWork, e: &Entry) {
    unit.push(
        INSERT,
        vec![
            (&e.id).into(),
            e.at.into(),
            (&e.family).into(),
            (&e.activity).into(),
            (&e.order_id).into(),
            (&e.instance_id).into(),
            e.test.into(),
            (&e.verdict).into(),
            (&e.result_code).into(),
            (&e.result_msg).into(),
            e.latency_us.into(),
            (&e.request).into(),
        ],
    );
}

pub async fn insert(conn: &mut AnyConnection, e: &Entry) -> Result<()> {
    let mut unit = UnitOfWork::new();
    insert_in(&mut unit, e);
    super::uow::run_held(conn, &unit).await
}

/// Rewrites the outcome of an audited call (a V1 `newInstance` provisioned by the merchant's
/// application is answered after its row was first written).
pub async fn set_outcome(conn: &mut AnyConnection, e: &Entry) -> Result<()> {
    sqlx::query(
        "UPDATE audit_log SET verdict = $1, result_code = $2, result_msg = $3, latency_us = $4 WHERE id = $5",
    )
    .bind(&e.verdict)
    .bind(&e.result_code)
    .bind(&e.result_msg)
    .bind(e.latency_us)
    .bind(&e.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which audit rows to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub family: Option<String>,
    pub activity: Option<String>,
    pub order_id: Option<String>,
    pub instance_id: Option<String>,
    pub result_code: Option<String>,
    pub verdict: Option<String>,
    pub limit: i64,
}

/// Rows matching `f`, newest first. Every filter value is bound, never spliced into SQL.
pub async fn query(db: &Db, f: &Filter) -> Result<Vec<Entry>> {
    let rows = sqlx::query(
        "SELECT id, at, family, activity, order_id, instance_id, test, verdict, result_code, result_msg, latency_us, request \
         FROM audit_log WHERE ($1 IS NULL OR at >= $1) AND ($2 IS NULL OR at < $2) AND ($3 IS NULL OR family = $3) \
         AND ($4 IS NULL OR activity = $4) AND ($5 IS NULL OR order_id = $5) AND ($6 IS NULL OR instance_id = $6) \
         AND ($7 IS NULL OR result_code = $7) AND ($8 IS NULL OR verdict = $8) ORDER BY at DESC, id DESC LIMIT $9",
    )
    .bind(f.since)
    .bind(f.until)
    .bind(&f.family)
    .bind(&f.activity)
    .bind(&f.order_id)
    .bind(&f.instance_id)
    .bind(&f.result_code)
    .bind(&f.verdict)
    .bind(f.limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Entry {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                family: r.try_get("family")?,
                activity: r.try_get("activity")?,
                order_id: r.try_get("order_id")?,
                instance_id: r.try_get("instance_id")?,
                test: r.try_get::<i64, _>("test")? != 0,
                verdict: r.try_get("verdict")?,
                result_code: r.try_get("result_code")?,
                result_msg: r.try_get("result_msg")?,
                latency_us: r.try_get("latency_us")?,
                request: r.try_get("request")?,
            })
        })
        .collect()
}
