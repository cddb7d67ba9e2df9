//! Replay protection (security.md §4): a nonce (V2, kit) or an authToken (V1) is remembered
//! until it expires; a live repeat is a replay.

use sqlx::AnyConnection;

use super::uow::UnitOfWork;
use super::{Db, Result};

/// Records `nonce` under `scope` until `expires_at`. Returns `false` when it is already
/// remembered and still live (a replay). An expired, not yet purged entry is reused.
pub async fn remember(
    conn: &mut AnyConnection,
    scope: &str,
    nonce: &str,
    now_ms: i64,
    expires_at: i64,
) -> Result<bool> {
    let done = sqlx::query(REMEMBER)
        .bind(scope)
        .bind(nonce)
        .bind(expires_at)
        .bind(now_ms)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

const REMEMBER: &str = "INSERT INTO nonces (scope, nonce, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (scope, nonce) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE nonces.expires_at < $4";

/// [`remember`] as the first step of a unit of work: a live repeat makes the unit a
/// `"nonce"` conflict (a replay), and nothing of it is written.
pub fn remember_in(unit: &mut UnitOfWork, scope: &str, nonce: &str, now_ms: i64, expires_at: i64) {
    unit.push_one(
        "nonce",
        REMEMBER,
        vec![scope.into(), nonce.into(), expires_at.into(), now_ms.into()],
    );
}

/// Forgets every expired entry; returns how many.
pub async fn purge(db: &Db, now_ms: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM nonces WHERE expires_at < $1")
        .bind(now_ms)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}
