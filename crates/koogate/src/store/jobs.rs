//! The persistent job queue. A job is claimed with a lease (`locked_by`, `locked_until`); a
//! worker that dies leaves its lease to expire and another worker claims the job again. A job's
//! effects are committed together with its completion, which checks the lease is still ours,
//! so a job whose lease was taken over cannot apply its effects twice.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::uow::UnitOfWork;
use super::{Db, Result, new_id};

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: String,
    /// Claims so far, this one included.
    pub attempts: i64,
    pub max_attempts: i64,
}

/// A job as listed for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub attempts: i64,
    pub run_at: i64,
    pub last_error: Option<String>,
}

const ENQUEUE: &str = "INSERT INTO jobs (id, kind, payload, dedupe_key, status, attempts, max_attempts, run_at, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $7, $8) ON CONFLICT (dedupe_key) DO NOTHING";

/// [`enqueue`] as a step of a unit of work.
pub fn enqueue_in(
    unit: &mut UnitOfWork,
    kind: &str,
    payload: &str,
    dedupe_key: Option<&str>,
    run_at: i64,
    max_attempts: i64,
    now_ms: i64,
) {
    unit.enqueues_jobs = true;
    unit.push(
        ENQUEUE,
        vec![
            new_id().into(),
            kind.into(),
            payload.into(),
            dedupe_key.into(),
            max_attempts.into(),
            run_at.into(),
            now_ms.into(),
            now_ms.into(),
        ],
    );
}

/// Adds a job. With a `dedupe_key`, a second job with the same key is not added (returns false).
pub async fn enqueue(
    conn: &mut AnyConnection,
    kind: &str,
    payload: &str,
    dedupe_key: Option<&str>,
    run_at: i64,
    max_attempts: i64,
    now_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(ENQUEUE)
        .bind(new_id())
        .bind(kind)
        .bind(payload)
        .bind(dedupe_key)
        .bind(max_attempts)
        .bind(run_at)
        .bind(now_ms)
        .bind(now_ms)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

fn job_from_row(row: &AnyRow) -> Result<Job> {
    Ok(Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
    })
}

/// Claims up to `limit` of the oldest due jobs whose lease is free, for `lease_ms`, in one unit
/// of work: the candidates are read, then each is taken only if it is still free (a
/// compare-and-set on its lease), so workers on any number of nodes never share a job and a
/// worker that lost a candidate to another simply does not get it.
pub async fn claim_batch(
    db: &Db,
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Job>> {
    let rows = sqlx::query(
        "SELECT id, kind, payload, attempts, max_attempts FROM jobs WHERE status = 'pending' AND run_at <= $1 \
         AND (locked_until IS NULL OR locked_until < $1) ORDER BY run_at, id LIMIT $2",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let candidates = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let mut unit = UnitOfWork::new();
    for job in &candidates {
        unit.push(
            "UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE id = $4 AND status = 'pending' AND (locked_until IS NULL OR locked_until < $3)",
            vec![
                worker.into(),
                (now_ms + lease_ms).into(),
                now_ms.into(),
                (&job.id).into(),
            ],
        );
    }
    let counts = db.commit_counted(unit).await.map_err(|e| match e {
        super::uow::CommitError::Store(e) => e,
        super::uow::CommitError::Conflict(label) => super::StoreError::Commit(label.to_owned()),
    })?;
    Ok(candidates
        .into_iter()
        .zip(counts)
        .filter(|(_, n)| *n == 1)
        .map(|(mut job, _)| {
            job.attempts += 1;
            job
        })
        .collect())
}

/// [`complete`] as a step of the unit that applies the job's effects: a `"lease"` conflict,
/// and nothing of the unit written, when the lease is no longer this worker's.
pub fn complete_in(unit: &mut UnitOfWork, id: &str, worker: &str, now_ms: i64) {
    unit.push_one(
        "lease",
        "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, last_error = NULL, updated_at = $1 \
         WHERE id = $2 AND locked_by = $3 AND status = 'pending'",
        vec![now_ms.into(), id.into(), worker.into()],
    );
}

/// Marks a claimed job done, if the lease is still this worker's. Call inside the transaction
/// that applies the job's effects, and roll back when it returns false.
pub async fn complete(
    conn: &mut AnyConnection,
    id: &str,
    worker: &str,
    now_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, last_error = NULL, updated_at = $1 \
         WHERE id = $2 AND locked_by = $3 AND status = 'pending'",
    )
    .bind(now_ms)
    .bind(id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases a claimed job to run again at `run_at`, recording why it failed.
pub async fn retry_at(
    db: &Db,
    id: &str,
    worker: &str,
    run_at: i64,
    error: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET locked_by = NULL, locked_until = NULL, run_at = $1, last_error = $2, updated_at = $3 \
         WHERE id = $4 AND locked_by = $5",
    )
    .bind(run_at)
    .bind(error)
    .bind(now_ms)
    .bind(id)
    .bind(worker)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Gives a claimed job up for good ('dead'), recording why; call inside the transaction that
/// records the failure's effects.
pub async fn give_up(
    conn: &mut AnyConnection,
    id: &str,
    worker: &str,
    error: &str,
    now_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'dead', locked_by = NULL, locked_until = NULL, last_error = $1, updated_at = $2 \
         WHERE id = $3 AND locked_by = $4 AND status = 'pending'",
    )
    .bind(error)
    .bind(now_ms)
    .bind(id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Frees every lease. Only for a single-node SQLite deployment at start-up, when no other
/// worker can hold one: jobs interrupted by a crash then resume at once.
pub async fn release_all_leases(db: &Db) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE jobs SET locked_by = NULL, locked_until = NULL WHERE status = 'pending' AND locked_by IS NOT NULL",
    )
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// The earliest `run_at` of a pending job, to know how long a worker may sleep.
pub async fn next_due(db: &Db) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT MIN(run_at) AS next FROM jobs WHERE status = 'pending'")
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get("next")?)
}

/// Jobs, newest first, optionally of one status.
pub async fn list(db: &Db, status: Option<&str>, limit: i64) -> Result<Vec<JobStatus>> {
    let rows = sqlx::query(
        "SELECT id, kind, status, attempts, run_at, last_error FROM jobs WHERE ($1 IS NULL OR status = $1) \
         ORDER BY created_at DESC, id LIMIT $2",
    )
    .bind(status)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(JobStatus {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                run_at: r.try_get("run_at")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .collect()
}
