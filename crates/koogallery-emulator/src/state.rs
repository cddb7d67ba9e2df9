//! The emulator's state — catalog, orders, instances, scheduled calls, the call log — and its
//! persistence: in memory, or as a durable snapshot in SQLite (`--state FILE`).
//!
//! Persistence is one row holding the whole state as JSON, rewritten after every change in one
//! transaction (WAL, `synchronous=FULL`). The emulator's state is small, and a snapshot cannot
//! be torn between tables.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

use crate::catalog::{ChargingMode, Family, Period, Product};
use crate::dispatch::{BodySignCheck, Transport};
use crate::schedule::Schedule;

/// The kinds of order a buyer can place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderKind {
    /// A new purchase (period, one-time, on-demand package).
    New,
    /// A new on-demand purchase.
    OnDemand,
    /// A trial.
    Trial,
    /// A trial converted to a paid period.
    TrialToFormal,
    /// A renewal.
    Renew,
    /// A refund of a renewal period (退续费).
    UnsubscribeRenewal,
    /// A renewal with a new specification: `changeInstanceCheck`, then `refreshInstance`
    /// `RENEWAL_CHANGE`.
    RenewalChange,
    /// A paid upgrade or scale-out.
    Upgrade,
    /// An unsubscription.
    Unsubscribe,
}

impl OrderKind {
    pub const ALL: [OrderKind; 9] = [
        Self::New,
        Self::OnDemand,
        Self::Trial,
        Self::TrialToFormal,
        Self::Renew,
        Self::UnsubscribeRenewal,
        Self::RenewalChange,
        Self::Upgrade,
        Self::Unsubscribe,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::OnDemand => "on-demand",
            Self::Trial => "trial",
            Self::TrialToFormal => "trial-to-formal",
            Self::Renew => "renew",
            Self::UnsubscribeRenewal => "unsubscribe-renewal",
            Self::RenewalChange => "renewal-change",
            Self::Upgrade => "upgrade",
            Self::Unsubscribe => "unsubscribe",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// `orderType` of the query-order API (openapi.md §5). A renewal refund is an
    /// unsubscription of the renewed period; renewal changes and upgrades are changes.
    pub const fn order_type(self) -> &'static str {
        match self {
            Self::New | Self::OnDemand => "NEW",
            Self::Trial => "TRIAL",
            Self::TrialToFormal => "TRIAL_TO_FORMAL",
            Self::Renew => "RENEW",
            Self::UnsubscribeRenewal | Self::Unsubscribe => "UNSUBSCRIBE",
            Self::RenewalChange | Self::Upgrade => "CHANGE",
        }
    }

    /// Whether the order creates an instance.
    pub const fn creates(self) -> bool {
        matches!(self, Self::New | Self::OnDemand | Self::Trial)
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderStatus {
    /// Paid; the merchant has not completed it yet.
    Processing,
    /// Completed by the merchant.
    Completed,
    /// Failed; `refunded` says whether KooGallery refunded it.
    Failed,
}

/// An order as KooGallery keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: String,
    pub order_line_id: String,
    pub kind: OrderKind,
    /// `orderType` as the query-order API reports it.
    pub order_type: String,
    pub resource_id: String,
    pub product_id: String,
    pub sku_code: String,
    pub charging_mode: ChargingMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// `yyyyMMddHHmmss`, UTC, as told to the merchant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_value: Option<i64>,
    pub amount: String,
    pub status: OrderStatus,
    pub refunded: bool,
    /// Emulated time the order was placed.
    pub created_ms: i64,
    /// Why it failed, in the seller console's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An instance (a purchased resource) as KooGallery sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceStatus {
    /// Ordered; the merchant has not delivered it yet.
    Creating,
    Active,
    /// Expired, within the grace period.
    Frozen,
    Released,
    /// Creation failed; the order was refunded.
    Failed,
}

/// A purchased resource, identified by the emulator's `resourceId` and, once the merchant
/// answered, by the merchant's `instanceId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub family: Family,
    pub product_id: String,
    pub sku_code: String,
    pub charging_mode: ChargingMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_value: Option<i64>,
    pub status: InstanceStatus,
    pub trial: bool,
    /// Emulated expiry (period and package products).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_ms: Option<i64>,
    /// When the freeze started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_ms: Option<i64>,
    /// When the grace period ends and the instance is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_at_ms: Option<i64>,
    /// The purchase order.
    pub order_id: String,
    pub order_line_id: String,
    pub customer_id: String,
    pub customer_name: String,
    /// License 1.0: the license the merchant delivered; License code 2.0: the license code
    /// KooGallery generated (also used as `instanceId` in calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The access information the merchant returned, password redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info: Option<serde_json::Value>,
    /// Joint operation: the buyer's directory synced with the kit (tenant, application
    /// credential, departments, users), once the instance was delivered. The client secret is
    /// kept here (persisted) and redacted in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kit: Option<crate::kit::Directory>,
}

/// Where a scheduled call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Waiting for its next attempt (`nextAtMs`).
    Pending,
    Succeeded,
    /// Every scheduled attempt failed; see `exhausted` of its schedule.
    Failed,
    /// No longer wanted (its order failed, or its resource went away).
    Cancelled,
}

/// The step after a successful call, scheduled right after it (a flow such as
/// `changeInstanceCheck` → `refreshInstance` → `updateInstanceStatus` `UNFREEZE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowUp {
    pub activity: String,
    pub body: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<Box<FollowUp>>,
}

/// One logical call to the merchant with its retry schedule: the unit of the
/// production-interface messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: u64,
    pub activity: String,
    pub family: Family,
    pub transport: Transport,
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The request before signing (`businessId` is renewed on every attempt).
    pub body: serde_json::Value,
    pub schedule: Schedule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<Box<FollowUp>>,
    pub state: JobState,
    /// Attempts made since the schedule (re)started.
    pub attempts: u32,
    /// Attempts made in total, manual restarts included.
    pub total_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at_ms: Option<i64>,
    pub created_ms: i64,
    /// The seller console's message of the last failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    /// How many times it was restarted by hand.
    pub restarts: u32,
}

/// One HTTP call to the merchant and KooGallery's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub id: u64,
    pub job_id: u64,
    /// Emulated time of the attempt.
    pub at_ms: i64,
    pub activity: String,
    pub family: Family,
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    pub method: String,
    /// The URL called, with its signature parameters.
    pub url: String,
    /// The JSON body (V2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sign: Option<BodySignCheck>,
    /// `success`, `processing` (accepted, not finished) or `failed`.
    pub verdict: String,
    /// The seller console's message, for a failed call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Details for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Everything the emulator remembers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Emulated time when saved.
    pub now_ms: i64,
    pub next_id: u64,
    pub products: BTreeMap<String, Product>,
    pub orders: BTreeMap<String, Order>,
    pub instances: BTreeMap<String, Instance>,
    pub jobs: BTreeMap<u64, Job>,
    pub calls: Vec<CallRecord>,
}

impl State {
    /// A fresh number for IDs.
    pub fn next_number(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("state snapshot is not readable: {0}")]
    Json(#[from] serde_json::Error),
}

/// The SQLite file behind `--state`.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the state file.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS emulator_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                saved_at_ms BIGINT NOT NULL,
                data TEXT NOT NULL
            )",
        )
        .execute(&pool)
        .await?;
        Ok(Self { pool })
    }

    /// The saved state, if any.
    pub async fn load(&self) -> Result<Option<State>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT data FROM emulator_state WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some((data,)) => Some(serde_json::from_str(&data)?),
            None => None,
        })
    }

    /// Replaces the saved state.
    pub async fn save(&self, state: &State) -> Result<(), StoreError> {
        let data = serde_json::to_string(state)?;
        sqlx::query(
            "INSERT INTO emulator_state (id, saved_at_ms, data) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET saved_at_ms = excluded.saved_at_ms, data = excluded.data",
        )
        .bind(state.now_ms)
        .bind(data)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the pool (flushes the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
