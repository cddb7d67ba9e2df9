//! Storage: one set of SQL statements for SQLite (the embedded default) and PostgreSQL (several
//! nodes sharing state), run through sqlx's `Any` driver with `$N` placeholders, which both
//! backends understand.
//!
//! Idempotency is enforced by unique constraints (`INSERT … ON CONFLICT DO NOTHING`, then read
//! back), never by check-then-insert. Every time is Unix epoch milliseconds.

pub mod audit;
pub mod instances;
pub mod jobs;
pub mod nonces;
pub mod orders;
pub mod uow;
pub mod usage;
pub mod webhooks;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

/// Which database a [`Db`] talks to; a few statements differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool and the backend behind it; on SQLite also the one writer that commits
/// units of work ([`writer`]).
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    writer: Option<writer::Writer>,
}

/// Errors of the storage layer: the database is unavailable or refused a statement.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database write failed: {0}")]
    Commit(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Db {
    /// Connects to `sqlite://path` (the file is created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
                // Readers and the writers that are not on the hot path. Every transaction of
                // theirs is BEGIN IMMEDIATE (`Db::begin`), so none meets SQLITE_BUSY on a lock
                // upgrade next to the writer thread. WAL keeps readers unblocked;
                // synchronous=FULL makes every acknowledged change durable across a power cut,
                // not only a crash (KooGallery is told an instanceId only once).
                AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?
            }
        };
        let writer = match backend {
            Backend::Sqlite => sqlite_file(url).map(writer::Writer::start).transpose()?,
            Backend::Postgres => None,
        };
        Ok(Db {
            pool,
            backend,
            writer,
        })
    }

    /// Commits a unit of work durably, or not at all: on SQLite through the writer thread (group
    /// commit), on PostgreSQL in a transaction of its own.
    pub async fn commit(&self, unit: uow::UnitOfWork) -> std::result::Result<(), uow::CommitError> {
        self.commit_counted(unit).await.map(drop)
    }

    /// [`Db::commit`], returning how many rows each statement changed.
    pub async fn commit_counted(
        &self,
        unit: uow::UnitOfWork,
    ) -> std::result::Result<Vec<u64>, uow::CommitError> {
        if unit.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(w) = &self.writer {
            return w.commit(unit).await;
        }
        let mut tx = self.begin().await?;
        let counts = uow::run_sqlx(&mut tx, &unit).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(counts)
    }

    /// A transaction on the pool. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a read-then-write transaction would otherwise fail with SQLITE_BUSY when
    /// the writer thread committed in between.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Applies every pending migration (embedded in the binary).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<Db> {
        let db = Db::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Whether the database holds anything written with the keys: instances (sealed
    /// credentials), orders (sealed buyer data), webhook endpoints (sealed secrets).
    pub async fn holds_sealed_data(&self) -> Result<bool> {
        let n: i64 = sqlx::Row::try_get(
            &sqlx::query(
                "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM instances LIMIT 1) a) \
                 + (SELECT COUNT(*) FROM (SELECT 1 FROM orders LIMIT 1) b) \
                 + (SELECT COUNT(*) FROM (SELECT 1 FROM webhook_endpoints LIMIT 1) c)",
            )
            .fetch_one(&self.pool)
            .await?,
            0,
        )?;
        Ok(n > 0)
    }

    /// Closes the pool and the writer: every later statement and commit fails.
    pub async fn close(&self) {
        if let Some(w) = &self.writer {
            w.close();
        }
        self.pool.close().await;
    }

    /// Whether the database answers and its last commit succeeded (for `/readyz`).
    pub async fn ping(&self) -> bool {
        self.writer.as_ref().is_none_or(writer::Writer::healthy)
            && sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// The file of a `sqlite:` URL, unless the database lives in memory (then there is no file for
/// a second connection to open, and units run on the pool).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// A new time-ordered unique id (UUID v7) as text.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    #[tokio::test]
    async fn dollar_placeholders_bind_by_number_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        // $2 appears before $1: binding must follow the number, not the position.
        let row = sqlx::query("SELECT $2 || '-' || $1 AS s")
            .bind("one")
            .bind("two")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("s"), "two-one");
        let mode = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(mode.get::<String, _>(0), "wal");
        // Migrations are idempotent.
        db.migrate().await.unwrap();
    }
}
