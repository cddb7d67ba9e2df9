//! The SQLite writer: one thread, one rusqlite connection, group commit.
//!
//! Callers hand it units of work and wait. The thread takes every unit that is waiting (up to
//! [`MAX_BATCH`]), runs each in a savepoint of one `BEGIN IMMEDIATE` transaction, commits once
//! with `synchronous=FULL`, and only then answers each caller. While one batch is being made
//! durable the next one gathers, so one fsync serves many callbacks.
//!
//! - A unit that fails (a compare-and-set conflict or a refused statement) is rolled back to its
//!   savepoint; its neighbours in the batch commit.
//! - A failed `COMMIT` (disk full, I/O error) answers every unit of the batch with an error —
//!   none of them was acknowledged — and the connection is dropped and opened again, so a
//!   connection whose transaction state is unknown never carries on.
//! - Statements are prepared once and cached.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::uow::{Arg, CommitError, Expect, UnitOfWork, numbered_placeholders};

/// Units committed in one transaction at most.
const MAX_BATCH: usize = 512;
/// Units waiting for the writer at most; callers beyond it wait to hand theirs in.
const QUEUE: usize = 4096;

/// What a committed unit's statements changed: one row count per step.
pub type Counts = Vec<u64>;

struct Request {
    unit: UnitOfWork,
    reply: oneshot::Sender<Result<Counts, CommitError>>,
}

/// The handle callers commit through.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
    /// False after a commit failed, until a later one succeeds (`/readyz`).
    healthy: Arc<AtomicBool>,
    /// Units handed in so far.
    handed_in: Arc<AtomicUsize>,
    /// Set by [`Writer::close`]: every later commit fails.
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer(..)")
    }
}

impl Writer {
    /// Opens the database file and starts the writer thread.
    pub fn start(path: PathBuf) -> Result<Writer, StoreError> {
        Writer::start_gated(path, None)
    }

    /// [`Writer::start`]; with a gate, the thread takes the gate's lock before it gathers each
    /// batch, so a test can queue units and have them committed as one batch.
    fn start_gated(
        path: PathBuf,
        gate: Option<Arc<std::sync::Mutex<()>>>,
    ) -> Result<Writer, StoreError> {
        let conn = open(&path)?;
        // The writer never checkpoints: a checkpoint copies the log into the database file and
        // syncs it, which would stall every caller of the batch behind it. A thread of its own
        // does it, passively (never waiting for readers or blocking the writer), and stops when
        // the writer does.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        let checkpointer = open(&path)?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("koogate-sqlite-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(&checkpointer, &stopped))
            .map_err(|e| {
                StoreError::Commit(format!("cannot start the SQLite checkpointer: {e}"))
            })?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        let state = Thread {
            path,
            conn: Some(conn),
            sql: HashMap::new(),
            healthy: healthy.clone(),
            gate,
            _stop_checkpoints: stop_checkpoints,
        };
        std::thread::Builder::new()
            .name("koogate-sqlite-writer".to_owned())
            .spawn(move || state.run(rx))
            .map_err(|e| StoreError::Commit(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Writer {
            tx,
            healthy,
            handed_in: Arc::new(AtomicUsize::new(0)),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Commits `unit` durably, or not at all.
    pub async fn commit(&self, unit: UnitOfWork) -> Result<Counts, CommitError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Commit("the database is closed".to_owned()).into());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { unit, reply })
            .await
            .map_err(|_| StoreError::Commit("the SQLite writer has stopped".to_owned()))?;
        self.handed_in.fetch_add(1, Ordering::Relaxed);
        answer
            .await
            .map_err(|_| StoreError::Commit("the SQLite writer has stopped".to_owned()))?
    }

    /// Refuses every later commit (shutdown; tests of an unavailable database).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.healthy.store(false, Ordering::Relaxed);
    }

    /// Whether the last commit succeeded.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

fn open(path: &std::path::Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // synchronous=FULL: a commit is on disk before any caller of its batch is answered
    // (KooGallery is told an instanceId once). temp_store and the page cache keep the writer
    // off the disk for anything but the log.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; \
         PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384;",
    )?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

struct Thread {
    path: PathBuf,
    conn: Option<Connection>,
    /// `$N` statements as SQLite wants them, converted once.
    sql: HashMap<&'static str, String>,
    healthy: Arc<AtomicBool>,
    gate: Option<Arc<std::sync::Mutex<()>>>,
    /// Dropped with the thread: the checkpointer then stops.
    _stop_checkpoints: std::sync::mpsc::Sender<()>,
}

/// How often the log is checkpointed into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

fn checkpoint_loop(conn: &Connection, stopped: &std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(CHECKPOINT_EVERY)
    {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "SQLite checkpoint failed; the log grows until one succeeds");
        }
    }
}

impl Thread {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            if let Some(gate) = &self.gate {
                drop(gate.lock());
            }
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let results = self.commit_batch(&batch);
            for (request, result) in batch.into_iter().zip(results) {
                let _ = request.reply.send(result);
            }
        }
    }

    /// Commits the batch; returns one result per unit.
    fn commit_batch(&mut self, batch: &[Request]) -> Vec<Result<Counts, CommitError>> {
        let failed_all = |msg: String| {
            batch
                .iter()
                .map(|_| Err(CommitError::Store(StoreError::Commit(msg.clone()))))
                .collect()
        };
        if self.conn.is_none() {
            match self.reopen() {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    self.healthy.store(false, Ordering::Relaxed);
                    return failed_all(format!("cannot open the database: {e}"));
                }
            }
        }
        let Some(conn) = self.conn.as_ref() else {
            return failed_all("no database connection".to_owned());
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            self.discard_connection();
            return failed_all(format!("cannot begin a transaction: {e}"));
        }
        let single = batch.len() == 1;
        let mut results = Vec::with_capacity(batch.len());
        // A unit refused for a reason of the disk or the file, not of its own data.
        let mut trouble = false;
        for request in batch {
            if !single && let Err(e) = conn.execute_batch("SAVEPOINT unit") {
                results.push(Err(CommitError::Store(e.into())));
                continue;
            }
            let outcome = run_unit(conn, &mut self.sql, &request.unit);
            if let Err(CommitError::Store(StoreError::Sqlite(e))) = &outcome {
                trouble |= !is_refusal(e);
            }
            let undo = if outcome.is_err() {
                if single {
                    "ROLLBACK"
                } else {
                    "ROLLBACK TO unit; RELEASE unit"
                }
            } else if single {
                ""
            } else {
                "RELEASE unit"
            };
            if !undo.is_empty()
                && let Err(e) = conn.execute_batch(undo)
            {
                // The transaction is in an unknown state: nothing of the batch may commit.
                let _ = conn.execute_batch("ROLLBACK");
                self.discard_connection();
                return failed_all(format!("cannot undo a failed unit: {e}"));
            }
            results.push(outcome);
            // SQLite rolls a transaction back by itself on some errors (a full disk, I/O):
            // then nothing of the batch so far is written, and what follows must not run in
            // autocommit.
            if !single && conn.is_autocommit() {
                self.discard_connection();
                return failed_all("the transaction was rolled back by SQLite".to_owned());
            }
        }
        if single && results.first().is_some_and(Result::is_err) {
            if trouble {
                self.healthy.store(false, Ordering::Relaxed);
            }
            return results;
        }
        if conn.is_autocommit() {
            self.discard_connection();
            return failed_all("the transaction was rolled back by SQLite".to_owned());
        }
        if let Err(e) = conn.execute_batch("COMMIT") {
            tracing::error!(error = %e, units = batch.len(), "SQLite commit failed; nothing of the batch was acknowledged");
            let _ = conn.execute_batch("ROLLBACK");
            self.discard_connection();
            return failed_all(format!("commit failed: {e}"));
        }
        self.healthy.store(!trouble, Ordering::Relaxed);
        results
    }

    fn discard_connection(&mut self) {
        self.healthy.store(false, Ordering::Relaxed);
        self.conn = None;
    }

    fn reopen(&self) -> Result<Connection, StoreError> {
        let conn = open(&self.path)?;
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        Ok(conn)
    }
}

/// Runs the steps of one unit; the first failed expectation or statement ends it.
fn run_unit(
    conn: &Connection,
    cache: &mut HashMap<&'static str, String>,
    unit: &UnitOfWork,
) -> Result<Counts, CommitError> {
    let mut counts = Vec::with_capacity(unit.steps.len());
    for step in &unit.steps {
        let sql = cache
            .entry(step.sql)
            .or_insert_with(|| numbered_placeholders(step.sql));
        let mut stmt = conn.prepare_cached(sql).map_err(StoreError::from)?;
        let changed = stmt
            .execute(rusqlite::params_from_iter(step.args.iter()))
            .map_err(StoreError::from)?;
        if let Expect::One(label) = step.expect
            && changed != 1
        {
            return Err(CommitError::Conflict(label));
        }
        counts.push(u64::try_from(changed).unwrap_or(u64::MAX));
    }
    Ok(counts)
}

/// Whether an error is the database refusing a statement for its data (a constraint, a type),
/// rather than trouble with the disk or the file.
fn is_refusal(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    !matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::OutOfMemory
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked,
        )
    )
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Text(v) => v.to_sql(),
            Arg::Int(v) => v.to_sql(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::uow::Arg;

    /// A writer on a fresh file with a table `t`, and a gate held by the test.
    fn gated() -> (
        tempfile::TempDir,
        Writer,
        Arc<std::sync::Mutex<()>>,
        PathBuf,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL); \
             CREATE TABLE parent (id TEXT PRIMARY KEY); \
             CREATE TABLE child (id TEXT PRIMARY KEY, \
                 parent TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        drop(conn);
        let gate = Arc::new(std::sync::Mutex::new(()));
        let writer = Writer::start_gated(path.clone(), Some(gate.clone())).unwrap();
        (dir, writer, gate, path)
    }

    fn insert(unit: &mut UnitOfWork, k: &str, v: i64) {
        unit.push(
            "INSERT INTO t (k, v) VALUES ($1, $2)",
            vec![k.into(), v.into()],
        );
    }

    /// Queues `units` while the gate is held, so the writer commits them as one batch. Holding
    /// the lock across awaits is the point: only the writer thread (not a task) waits on it.
    #[allow(clippy::await_holding_lock)]
    async fn one_batch(
        writer: &Writer,
        gate: &std::sync::Mutex<()>,
        units: Vec<UnitOfWork>,
    ) -> Vec<Result<Counts, CommitError>> {
        let held = gate.lock().unwrap();
        let mut tasks = Vec::new();
        // One at a time, so they are queued in this order; the thread takes the first and
        // waits at the gate.
        for u in units {
            let target = writer.handed_in.load(Ordering::Relaxed) + 1;
            let w = writer.clone();
            tasks.push(tokio::spawn(async move { w.commit(u).await }));
            while writer.handed_in.load(Ordering::Relaxed) < target {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results
    }

    fn rows(path: &std::path::Path, sql: &str) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_unit_does_not_fail_its_batch_neighbours() {
        let (_dir, writer, gate, path) = gated();
        let units = (0..60)
            .map(|i| {
                let mut u = UnitOfWork::new();
                insert(&mut u, &format!("a{i}"), i);
                match i % 3 {
                    // A compare-and-set that finds nothing: a conflict after a write.
                    1 => {
                        u.push_one(
                            "absent",
                            "UPDATE t SET v = v + 1 WHERE k = $1",
                            vec!["nobody".into()],
                        );
                    }
                    // A statement the database refuses (duplicate key) after a write.
                    2 => insert(&mut u, "a0", 0),
                    _ => {}
                }
                u
            })
            .collect();
        let results = one_batch(&writer, &gate, units).await;
        for (i, r) in results.iter().enumerate() {
            match i % 3 {
                0 => assert!(r.is_ok(), "unit {i}: {r:?}"),
                1 => assert!(
                    matches!(r, Err(CommitError::Conflict("absent"))),
                    "unit {i}: {r:?}"
                ),
                _ => assert!(matches!(r, Err(CommitError::Store(_))), "unit {i}: {r:?}"),
            }
        }
        // Exactly the units that succeeded are there, and nothing of the others.
        assert_eq!(rows(&path, "SELECT COUNT(*) FROM t"), 20);
        assert_eq!(rows(&path, "SELECT COUNT(*) FROM t WHERE v % 3 <> 0"), 0);
        assert!(writer.healthy());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_answers_nobody_and_the_writer_recovers() {
        let (_dir, writer, gate, path) = gated();
        // Acknowledged before the failing batch: must survive it.
        let mut before = UnitOfWork::new();
        insert(&mut before, "before", 1);
        writer.commit(before).await.unwrap();

        let mut units: Vec<UnitOfWork> = (0..10)
            .map(|i| {
                let mut u = UnitOfWork::new();
                insert(&mut u, &format!("b{i}"), i);
                u
            })
            .collect();
        // A deferred foreign key is checked at COMMIT only: the whole batch's commit fails.
        let mut bad = UnitOfWork::new();
        bad.push(
            "INSERT INTO child (id, parent) VALUES ($1, $2)",
            vec!["c".into(), Arg::Text(Some("missing".to_owned()))],
        );
        units.insert(5, bad);
        let results = one_batch(&writer, &gate, units).await;
        assert!(results.iter().all(Result::is_err), "{results:?}");
        assert!(!writer.healthy());
        assert_eq!(rows(&path, "SELECT COUNT(*) FROM t"), 1);
        assert_eq!(rows(&path, "SELECT COUNT(*) FROM child"), 0);

        // The next commit works on a fresh connection, and readiness comes back.
        let mut after = UnitOfWork::new();
        insert(&mut after, "after", 2);
        writer.commit(after).await.unwrap();
        assert!(writer.healthy());
        assert_eq!(rows(&path, "SELECT COUNT(*) FROM t"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn units_commit_in_the_order_they_were_handed_in() {
        let (_dir, writer, gate, path) = gated();
        let mut first = UnitOfWork::new();
        insert(&mut first, "k", 0);
        writer.commit(first).await.unwrap();
        // Each unit moves v from i to i + 1 (a compare-and-set); in one batch, in order, all
        // succeed.
        let units = (0..50)
            .map(|i| {
                let mut u = UnitOfWork::new();
                u.push_one(
                    "version",
                    "UPDATE t SET v = $1 WHERE k = 'k' AND v = $2",
                    vec![(i + 1).into(), i.into()],
                );
                u
            })
            .collect();
        let results = one_batch(&writer, &gate, units).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(rows(&path, "SELECT v FROM t WHERE k = 'k'"), 50);
    }
}
