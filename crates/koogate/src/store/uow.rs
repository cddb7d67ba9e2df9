//! Units of work: every change one command makes (nonce, domain rows, the compare-and-set of a
//! state transition, events, outbox deliveries, jobs, the audit row), as one value that the
//! store commits atomically or not at all.
//!
//! A unit is a list of statements, each with what it must do: [`Expect::Any`], or
//! [`Expect::One`], exactly one row changed — the compare-and-set that makes a unit conditional
//! on what its command read. When an expectation fails, nothing of the unit is written and the
//! caller gets [`CommitError::Conflict`] with the step's label: it re-reads and decides again.
//! The store never calls up: the service that built the unit decided everything in it.
//!
//! On SQLite the units of many concurrent callers are committed by one writer thread in one
//! durable transaction, each inside a savepoint ([`super::writer`]); on PostgreSQL each unit is
//! a transaction on the pool. Statements are written once, with `$N` placeholders.

use super::StoreError;

/// A value bound to a placeholder, typed even when null (PostgreSQL wants the type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Arg {
        Arg::Text(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Int(Some(i64::from(v)))
    }
}

/// What a statement must do for its unit to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Anything, including no row at all (`ON CONFLICT DO NOTHING` of an optional row).
    Any,
    /// Exactly one row changed; otherwise the unit is a conflict named by this label.
    One(&'static str),
}

/// One statement of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub sql: &'static str,
    pub args: Vec<Arg>,
    pub expect: Expect,
}

/// The changes of one command, committed together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitOfWork {
    pub steps: Vec<Step>,
    /// Whether it enqueues a job, so that the workers are woken once it is committed.
    pub enqueues_jobs: bool,
}

impl UnitOfWork {
    pub fn new() -> UnitOfWork {
        UnitOfWork::default()
    }

    /// A statement whose row count does not matter.
    pub fn push(&mut self, sql: &'static str, args: Vec<Arg>) -> &mut Self {
        self.steps.push(Step {
            sql,
            args,
            expect: Expect::Any,
        });
        self
    }

    /// A statement that must change exactly one row, or the unit is a conflict named `label`.
    pub fn push_one(
        &mut self,
        label: &'static str,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> &mut Self {
        self.steps.push(Step {
            sql,
            args,
            expect: Expect::One(label),
        });
        self
    }

    /// Appends every step of `other`.
    pub fn extend(&mut self, other: UnitOfWork) -> &mut Self {
        self.steps.extend(other.steps);
        self.enqueues_jobs |= other.enqueues_jobs;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Why a unit was not committed. Either way nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A compare-and-set step changed no row (or several): what the unit was decided on has
    /// changed. The label names the step.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `$N` placeholders as `?N`: SQLite numbers `?N` by its digits, whereas `$N` would be a named
/// parameter numbered by first appearance.
pub(super) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs a unit in the caller's sqlx transaction (PostgreSQL, SQLite without a writer, and the
/// code paths that still hold a transaction of their own).
pub async fn run_sqlx(
    conn: &mut sqlx::AnyConnection,
    unit: &UnitOfWork,
) -> Result<Vec<u64>, CommitError> {
    let mut counts = Vec::with_capacity(unit.steps.len());
    for step in &unit.steps {
        let mut q = sqlx::query(step.sql);
        for arg in &step.args {
            q = match arg {
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Int(v) => q.bind(*v),
            };
        }
        let done = q.execute(&mut *conn).await.map_err(StoreError::from)?;
        if let Expect::One(label) = step.expect
            && done.rows_affected() != 1
        {
            return Err(CommitError::Conflict(label));
        }
        counts.push(done.rows_affected());
    }
    Ok(counts)
}

/// [`run_sqlx`] for a unit without expectations of its own, inside a transaction the caller
/// holds: a conflict there (there should be none) is a store error naming it.
pub async fn run_held(conn: &mut sqlx::AnyConnection, unit: &UnitOfWork) -> Result<(), StoreError> {
    match run_sqlx(conn, unit).await {
        Ok(_) => Ok(()),
        Err(CommitError::Store(e)) => Err(e),
        Err(CommitError::Conflict(label)) => {
            Err(StoreError::Commit(format!("unexpected conflict: {label}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered_placeholders("SELECT $2 || '$1' || $1, $10"),
            "SELECT ?2 || '$1' || ?1, ?10"
        );
        assert_eq!(numbered_placeholders("a $ b $x"), "a $ b $x");
    }
}
