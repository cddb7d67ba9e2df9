//! Instances and their event history.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::uow::UnitOfWork;
use super::{Result, StoreError, new_id};
use crate::domain::instance::State;

/// An instance as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub instance_id: String,
    pub create_key: String,
    pub protocol: String,
    pub order_id: String,
    pub order_line_id: Option<String>,
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub charging_mode: Option<String>,
    pub quantity: Option<String>,
    pub customer_id: Option<String>,
    pub state: State,
    pub trial: bool,
    pub expire_at: Option<i64>,
    /// `AppInfo` JSON sealed with the data key.
    pub app_info: Option<String>,
    pub failure_code: Option<String>,
    pub failure_msg: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Bumped by every change: what a compare-and-set compares.
    pub version: i64,
}

/// What is known when an instance is created.
#[derive(Debug, Clone, Default)]
pub struct NewInstance {
    pub instance_id: String,
    pub create_key: String,
    pub protocol: &'static str,
    pub order_id: String,
    pub order_line_id: Option<String>,
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub charging_mode: Option<String>,
    pub quantity: Option<String>,
    pub customer_id: Option<String>,
    pub trial: bool,
    pub expire_at: Option<i64>,
}

const COLUMNS: &str = "instance_id, create_key, protocol, order_id, order_line_id, product_id, sku_code, \
    charging_mode, quantity, customer_id, state, trial, expire_at, app_info, failure_code, failure_msg, created_at, updated_at, version";

fn from_row(row: &AnyRow) -> Result<Instance> {
    let state: String = row.try_get("state")?;
    Ok(Instance {
        instance_id: row.try_get("instance_id")?,
        create_key: row.try_get("create_key")?,
        protocol: row.try_get("protocol")?,
        order_id: row.try_get("order_id")?,
        order_line_id: row.try_get("order_line_id")?,
        product_id: row.try_get("product_id")?,
        sku_code: row.try_get("sku_code")?,
        charging_mode: row.try_get("charging_mode")?,
        quantity: row.try_get("quantity")?,
        customer_id: row.try_get("customer_id")?,
        state: State::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown instance state {state:?}")))?,
        trial: row.try_get::<i64, _>("trial")? != 0,
        expire_at: row.try_get("expire_at")?,
        app_info: row.try_get("app_info")?,
        failure_code: row.try_get("failure_code")?,
        failure_msg: row.try_get("failure_msg")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// Creates the instance unless one with the same `create_key` exists; returns the stored
/// instance (the existing one on a repeat) and whether this call created it. Safe under
/// concurrent duplicates: the unique constraint decides, not a prior read. `None` when the
/// `instance_id` is taken by an instance of another `create_key`.
pub async fn create_if_absent(
    conn: &mut AnyConnection,
    new: &NewInstance,
    now_ms: i64,
) -> Result<Option<(Instance, bool)>> {
    let done = sqlx::query(
        "INSERT INTO instances (instance_id, create_key, protocol, order_id, order_line_id, product_id, sku_code, \
         charging_mode, quantity, customer_id, state, trial, expire_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING",
    )
    .bind(&new.instance_id)
    .bind(&new.create_key)
    .bind(new.protocol)
    .bind(&new.order_id)
    .bind(&new.order_line_id)
    .bind(&new.product_id)
    .bind(&new.sku_code)
    .bind(&new.charging_mode)
    .bind(&new.quantity)
    .bind(&new.customer_id)
    .bind(State::Provisioning.as_str())
    .bind(i64::from(new.trial))
    .bind(new.expire_at)
    .bind(now_ms)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM instances WHERE create_key = $1"
    ))
    .bind(&new.create_key)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok((from_row(&r)?, done.rows_affected() == 1)))
        .transpose()
}

/// Records `key` → `instance_id` unless the key is taken; returns the instance the key leads to
/// (this one, or the one that took it first). Idempotent under concurrent calls: the primary
/// key decides.
pub async fn claim_key(
    conn: &mut AnyConnection,
    key: &str,
    instance_id: &str,
    now_ms: i64,
) -> Result<String> {
    sqlx::query(
        "INSERT INTO instance_keys (key_text, instance_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(instance_id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    keyed(conn, key)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("instance key {key} vanished")))
}

/// The instance a key leads to: an instance's own `create_key`, or a key of `instance_keys`.
pub async fn keyed(conn: &mut AnyConnection, key: &str) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT instance_id FROM instances WHERE create_key = $1 \
         UNION ALL SELECT instance_id FROM instance_keys WHERE key_text = $1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

pub async fn get(conn: &mut AnyConnection, instance_id: &str) -> Result<Option<Instance>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM instances WHERE instance_id = $1"
    ))
    .bind(instance_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Which instances to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<State>,
    pub order_id: Option<String>,
    /// Only instances created before this (created_at, instance_id) cursor: the next page.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// Instances, newest first.
pub async fn list(conn: &mut AnyConnection, f: &Filter) -> Result<Vec<Instance>> {
    let (before_at, before_id) = f.before.clone().unzip();
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM instances WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR order_id = $2) \
         AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND instance_id < $4)) \
         ORDER BY created_at DESC, instance_id DESC LIMIT $5"
    ))
    .bind(f.state.map(State::as_str))
    .bind(&f.order_id)
    .bind(before_at)
    .bind(before_id)
    .bind(f.limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Moves the state from `from` to `to` if it is still `from` (compare-and-set); false if
/// another writer changed it first.
pub async fn set_state(
    conn: &mut AnyConnection,
    instance_id: &str,
    from: State,
    to: State,
    now_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE instances SET state = $1, updated_at = $2, version = version + 1 WHERE instance_id = $3 AND state = $4",
    )
    .bind(to.as_str())
    .bind(now_ms)
    .bind(instance_id)
    .bind(from.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Order data learnt after creation (from the query-order API) or a new specification (upgrade).
#[derive(Debug, Clone, Default)]
pub struct OrderData {
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub charging_mode: Option<String>,
    pub quantity: Option<String>,
    pub customer_id: Option<String>,
    pub trial: Option<bool>,
    pub expire_at: Option<i64>,
}

/// Applies every field that is `Some`; the others keep their value.
pub async fn set_order_data(
    conn: &mut AnyConnection,
    instance_id: &str,
    d: &OrderData,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE instances SET product_id = COALESCE($1, product_id), sku_code = COALESCE($2, sku_code), \
         charging_mode = COALESCE($3, charging_mode), quantity = COALESCE($4, quantity), \
         customer_id = COALESCE($5, customer_id), trial = COALESCE($6, trial), expire_at = COALESCE($7, expire_at), \
         updated_at = $8, version = version + 1 WHERE instance_id = $9",
    )
    .bind(&d.product_id)
    .bind(&d.sku_code)
    .bind(&d.charging_mode)
    .bind(&d.quantity)
    .bind(&d.customer_id)
    .bind(d.trial.map(i64::from))
    .bind(d.expire_at)
    .bind(now_ms)
    .bind(instance_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_app_info(
    conn: &mut AnyConnection,
    instance_id: &str,
    sealed: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query("UPDATE instances SET app_info = $1, updated_at = $2, version = version + 1 WHERE instance_id = $3")
        .bind(sealed)
        .bind(now_ms)
        .bind(instance_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_failure(
    conn: &mut AnyConnection,
    instance_id: &str,
    code: &str,
    msg: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query("UPDATE instances SET failure_code = $1, failure_msg = $2, updated_at = $3, version = version + 1 WHERE instance_id = $4")
        .bind(code)
        .bind(msg)
        .bind(now_ms)
        .bind(instance_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// One entry of an instance's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub instance_id: String,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub order_id: Option<String>,
    pub detail: Option<String>,
    pub at: i64,
}

/// A history entry.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub instance_id: &'a str,
    pub kind: &'a str,
    pub from: Option<State>,
    pub to: State,
    pub order_id: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub at: i64,
}

/// A history entry as a step of a unit: the entry's `seq` is the version of the instance when
/// the entry is written, so write it after the change it records.
pub fn history_in(unit: &mut UnitOfWork, e: &NewEvent<'_>) {
    unit.push(
        "INSERT INTO instance_events (id, instance_id, kind, from_state, to_state, order_id, detail, at, seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT version FROM instances WHERE instance_id = $2))",
        vec![
            new_id().into(),
            e.instance_id.into(),
            e.kind.into(),
            e.from.map(State::as_str).into(),
            e.to.as_str().into(),
            e.order_id.into(),
            e.detail.into(),
            e.at.into(),
        ],
    );
}

/// The creation of an instance as a step: a `"create"` conflict when its `create_key` or its
/// id is taken, or when its key already leads to another instance through `instance_keys` (a
/// line joined to another line's instance). The caller then reads: a duplicate, or an id to
/// replace.
pub fn create_in(unit: &mut UnitOfWork, new: &NewInstance, now_ms: i64) {
    unit.push_one(
        "create",
        "INSERT INTO instances (instance_id, create_key, protocol, order_id, order_line_id, product_id, sku_code, \
         charging_mode, quantity, customer_id, state, trial, expire_at, created_at, updated_at, version) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, 1 \
         WHERE NOT EXISTS (SELECT 1 FROM instance_keys WHERE key_text = $2) ON CONFLICT DO NOTHING",
        vec![
            (&new.instance_id).into(),
            (&new.create_key).into(),
            new.protocol.into(),
            (&new.order_id).into(),
            (&new.order_line_id).into(),
            (&new.product_id).into(),
            (&new.sku_code).into(),
            (&new.charging_mode).into(),
            (&new.quantity).into(),
            (&new.customer_id).into(),
            State::Provisioning.as_str().into(),
            new.trial.into(),
            new.expire_at.into(),
            now_ms.into(),
        ],
    );
}

/// `key` → `instance_id` as a step: a conflict named `label` when the key is taken.
pub fn claim_key_in(
    unit: &mut UnitOfWork,
    label: &'static str,
    key: &str,
    instance_id: &str,
    now_ms: i64,
) {
    unit.push_one(
        label,
        "INSERT INTO instance_keys (key_text, instance_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        vec![key.into(), instance_id.into(), now_ms.into()],
    );
}

/// What a command changes in an instance; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub state: Option<State>,
    pub expire_at: Option<i64>,
    pub trial: Option<bool>,
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub quantity: Option<String>,
    /// Sealed access information.
    pub app_info: Option<String>,
}

/// A change of an instance, conditional on the version it was decided on: a `"version"`
/// conflict when anything changed the instance since it was read.
pub fn change_in(unit: &mut UnitOfWork, inst: &Instance, c: &Change, now_ms: i64) {
    unit.push_one(
        "version",
        "UPDATE instances SET state = COALESCE($1, state), expire_at = COALESCE($2, expire_at), \
         trial = COALESCE($3, trial), product_id = COALESCE($4, product_id), \
         app_info = COALESCE($8, app_info), sku_code = COALESCE($9, sku_code), \
         quantity = COALESCE($10, quantity), updated_at = $5, \
         version = version + 1 WHERE instance_id = $6 AND version = $7",
        vec![
            c.state.map(State::as_str).into(),
            c.expire_at.into(),
            c.trial.map(i64::from).into(),
            (&c.product_id).into(),
            now_ms.into(),
            (&inst.instance_id).into(),
            inst.version.into(),
            (&c.app_info).into(),
            (&c.sku_code).into(),
            (&c.quantity).into(),
        ],
    );
}

/// `(order_id, activity)` applied to an instance, as a step: an `"applied"` conflict when the
/// order was applied already.
pub fn apply_order_once_in(
    unit: &mut UnitOfWork,
    order_id: &str,
    activity: &str,
    instance_id: &str,
    now_ms: i64,
) {
    unit.push_one(
        "applied",
        "INSERT INTO applied_orders (order_id, activity, instance_id, applied_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (order_id, activity) DO NOTHING",
        vec![order_id.into(), activity.into(), instance_id.into(), now_ms.into()],
    );
}

/// Whether `(order_id, activity)` was applied already.
pub async fn order_applied(
    conn: &mut AnyConnection,
    order_id: &str,
    activity: &str,
) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM applied_orders WHERE order_id = $1 AND activity = $2")
            .bind(order_id)
            .bind(activity)
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// The history of an instance, oldest first.
pub async fn events(conn: &mut AnyConnection, instance_id: &str) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT id, instance_id, kind, from_state, to_state, order_id, detail, at FROM instance_events \
         WHERE instance_id = $1 ORDER BY at, id",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                id: r.try_get("id")?,
                instance_id: r.try_get("instance_id")?,
                kind: r.try_get("kind")?,
                from_state: r.try_get("from_state")?,
                to_state: r.try_get("to_state")?,
                order_id: r.try_get("order_id")?,
                detail: r.try_get("detail")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}
