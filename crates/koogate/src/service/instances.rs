//! The instance aggregate: creation, state commands, renewals and upgrades, decided on what was
//! read and written as units of work guarded by the instance's version.
//!
//! Every function here reads through `conn` (a pooled connection, or the transaction a caller
//! still holds) and appends its changes to `unit`; none writes. A change of an instance is
//! conditional on the version it was read at, so a unit decided on a stale read fails as a
//! `"version"` conflict and the caller decides again: a renewal that loses the race against a
//! release re-reads the released instance and is refused, never applied after it.

use koogallery::ResultCode;
use koogallery::model::saas_v2::AppInfo;
use sqlx::AnyConnection;

use crate::domain::instance::{self, Command, State, Transition};
use crate::error::AppError;
use crate::seal::Sealer;
use crate::store::StoreError;
use crate::store::instances::{self as store, Change, Instance, NewEvent};
use crate::store::uow::{CommitError, UnitOfWork, run_sqlx};

/// A history entry and its outbox event.
pub fn record_in(unit: &mut UnitOfWork, e: &NewEvent<'_>) {
    store::history_in(unit, e);
    crate::webhooks::instance_event_in(unit, e);
}

/// [`record_in`] inside a transaction the caller holds.
#[allow(clippy::too_many_arguments)]
pub async fn record_event(
    conn: &mut AnyConnection,
    instance_id: &str,
    kind: &str,
    from: Option<State>,
    to: State,
    order_id: Option<&str>,
    detail: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut unit = UnitOfWork::new();
    record_in(
        &mut unit,
        &NewEvent {
            instance_id,
            kind,
            from,
            to,
            order_id,
            detail,
            at: now_ms,
        },
    );
    crate::store::uow::run_held(conn, &unit).await
}

/// Runs a unit inside a transaction the caller holds; a conflict there is [`AppError::Conflict`].
pub async fn run_in(conn: &mut AnyConnection, unit: &UnitOfWork) -> Result<(), AppError> {
    run_sqlx(conn, unit).await.map(drop).map_err(AppError::from)
}

/// Loads an instance or answers `000003`.
pub async fn load(conn: &mut AnyConnection, id: &str) -> Result<Instance, AppError> {
    store::get(conn, id)
        .await?
        .ok_or_else(|| AppError::NotFound(id.to_owned()))
}

/// A state command (freeze, unfreeze, release): the guarded change and its event. Nothing is
/// added when the command changes nothing (a repeat).
pub fn transition_in(
    unit: &mut UnitOfWork,
    inst: &Instance,
    command: Command,
    order_id: Option<&str>,
    now: i64,
) -> Result<(), AppError> {
    let t = instance::apply(inst.state, command)?;
    if t.changed {
        command_in(
            unit,
            inst,
            command,
            &t,
            Change::default(),
            order_id,
            None,
            now,
        );
    }
    Ok(())
}

/// A command decided on `inst` as read: the change of the instance, with the state the
/// command leads to, guarded by the version read, and its history entry.
#[allow(clippy::too_many_arguments)]
fn command_in(
    unit: &mut UnitOfWork,
    inst: &Instance,
    command: Command,
    t: &Transition,
    change: Change,
    order_id: Option<&str>,
    detail: Option<&str>,
    now: i64,
) {
    let change = Change {
        state: Some(t.to),
        ..change
    };
    store::change_in(unit, inst, &change, now);
    record_in(
        unit,
        &NewEvent {
            instance_id: &inst.instance_id,
            kind: command.event_kind(),
            from: Some(t.from),
            to: t.to,
            order_id,
            detail,
            at: now,
        },
    );
}

/// A command an order carries (renewal, upgrade), applied once per `(order_id, activity)`.
/// Returns false, planning nothing, for an order applied already.
#[allow(clippy::too_many_arguments)]
async fn once_per_order(
    conn: &mut AnyConnection,
    unit: &mut UnitOfWork,
    inst: &Instance,
    command: Command,
    activity: &str,
    order_id: &str,
    change: Change,
    detail: Option<&str>,
    now: i64,
) -> Result<bool, AppError> {
    let t = instance::apply(inst.state, command)?;
    if store::order_applied(conn, order_id, activity).await? {
        return Ok(false);
    }
    store::apply_order_once_in(unit, order_id, activity, &inst.instance_id, now);
    command_in(unit, inst, command, &t, change, Some(order_id), detail, now);
    Ok(true)
}

/// Reads an instance and plans a state command on it.
pub async fn change_state(
    conn: &mut AnyConnection,
    unit: &mut UnitOfWork,
    instance_id: &str,
    command: Command,
    order_id: Option<&str>,
    now: i64,
) -> Result<(), AppError> {
    let inst = load(conn, instance_id).await?;
    transition_in(unit, &inst, command, order_id, now)
}

/// A provisioning that finished: the instance becomes active with its sealed access
/// information. Returns false (nothing planned) when the instance is no longer provisioning.
pub fn provisioned_in(
    unit: &mut UnitOfWork,
    inst: &Instance,
    sealed_app: String,
    now: i64,
) -> bool {
    let Ok(t) = instance::apply(inst.state, Command::Provisioned) else {
        return false;
    };
    if !t.changed {
        return false;
    }
    let change = Change {
        app_info: Some(sealed_app),
        ..Change::default()
    };
    command_in(
        unit,
        inst,
        Command::Provisioned,
        &t,
        change,
        None,
        None,
        now,
    );
    true
}

/// What a renewal carries, from either protocol generation.
pub struct Renewal<'a> {
    pub instance_id: &'a str,
    pub order_id: &'a str,
    pub expire_time: &'a str,
    pub trial_to_formal: bool,
    pub product_id: Option<&'a str>,
    /// JSON recorded with the event.
    pub detail: String,
}

/// A renewal (saas.md §5.3, §13.3): the new absolute expiry, applied once per order id
/// (renewal refunds shorten it the same way). Returns the instance as read, and whether the
/// order is new (false: a repeat of an applied order, nothing planned).
pub async fn renew(
    conn: &mut AnyConnection,
    unit: &mut UnitOfWork,
    r: &Renewal<'_>,
    now: i64,
) -> Result<(Instance, bool), AppError> {
    let inst = load(conn, r.instance_id).await?;
    let expire_at = koogallery::time::parse_expire_time(r.expire_time).map_err(|e| {
        koogallery::Error::from(koogallery::error::FieldError::invalid(
            "expireTime",
            e.to_string(),
        ))
    })?;
    let change = Change {
        expire_at: Some(koogallery::time::epoch_millis(expire_at)),
        trial: r.trial_to_formal.then_some(false),
        product_id: r.product_id.map(str::to_owned),
        ..Change::default()
    };
    let applied = once_per_order(
        conn,
        unit,
        &inst,
        Command::Renew,
        "refreshInstance",
        r.order_id,
        change,
        Some(&r.detail),
        now,
    )
    .await?;
    Ok((inst, applied))
}

/// An upgrade (saas.md §5.6), applied once per order id. Returns whether the order is new.
pub async fn upgrade(
    conn: &mut AnyConnection,
    unit: &mut UnitOfWork,
    instance_id: &str,
    order_id: &str,
    now: i64,
) -> Result<bool, AppError> {
    // No column changes (V2 reads the new specification from the order later), but the
    // version moves, so the upgrade is ordered against a concurrent release.
    upgrade_with(
        conn,
        unit,
        instance_id,
        order_id,
        "upgradeInstance",
        Change::default(),
        None,
        now,
    )
    .await
}

/// An upgrade to the specification `spec` (V1 carries it in the request), applied once per
/// `(order_id, activity)`, recorded with `detail`. Returns whether the order is new.
#[allow(clippy::too_many_arguments)]
pub async fn upgrade_with(
    conn: &mut AnyConnection,
    unit: &mut UnitOfWork,
    instance_id: &str,
    order_id: &str,
    activity: &str,
    spec: Change,
    detail: Option<&str>,
    now: i64,
) -> Result<bool, AppError> {
    let inst = load(conn, instance_id).await?;
    once_per_order(
        conn,
        unit,
        &inst,
        Command::Upgrade,
        activity,
        order_id,
        spec,
        detail,
        now,
    )
    .await
}

/// Makes a provisioning instance active with its access information (sealed), recording the
/// event. Returns false when the instance is no longer provisioning (nothing changed).
pub async fn complete_provisioning(
    sealer: &Sealer,
    conn: &mut AnyConnection,
    instance_id: &str,
    app: &AppInfo,
    now: i64,
) -> Result<bool, crate::store::StoreError> {
    let Some(inst) = store::get(conn, instance_id).await? else {
        return Ok(false);
    };
    let mut unit = UnitOfWork::new();
    if !provisioned_in(&mut unit, &inst, seal_app(sealer, app)?, now) {
        return Ok(false);
    }
    crate::store::uow::run_held(conn, &unit).await?;
    Ok(true)
}

/// Access information sealed with the data key, as stored.
pub fn seal_app(sealer: &Sealer, app: &AppInfo) -> Result<String, crate::store::StoreError> {
    let json =
        serde_json::to_string(app).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
    Ok(sealer.seal(&json))
}

/// Marks a provisioning instance failed with `code` (answered to KooGallery's later calls).
/// Returns false when the instance is not provisioning (nothing changed).
pub async fn fail_provisioning(
    conn: &mut AnyConnection,
    instance_id: &str,
    code: ResultCode,
    message: &str,
    now: i64,
) -> Result<bool, crate::store::StoreError> {
    let Some(inst) = store::get(conn, instance_id).await? else {
        return Ok(false);
    };
    let Ok(t) = instance::apply(inst.state, Command::ProvisionFailed) else {
        return Ok(false);
    };
    if !t.changed || !store::set_state(conn, instance_id, t.from, t.to, now).await? {
        return Ok(false);
    }
    store::set_failure(conn, instance_id, code.code(), message, now).await?;
    record_event(
        conn,
        instance_id,
        Command::ProvisionFailed.event_kind(),
        Some(t.from),
        t.to,
        None,
        Some(message),
        now,
    )
    .await?;
    Ok(true)
}

impl From<CommitError> for AppError {
    fn from(e: CommitError) -> AppError {
        match e {
            CommitError::Conflict(_) => AppError::Conflict,
            CommitError::Store(e) => AppError::Store(e),
        }
    }
}
