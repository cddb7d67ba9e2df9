//! KooGallery's marketplace: orders, instances and their lifecycle, the calls it owes the
//! merchant with their retry schedules, and the production-interface messages (生产接口消息).
//!
//! Time is the emulated clock ([`EmuClock`]). Work is a discrete-event simulation:
//! [`Marketplace::run_due`] performs, in time order, every call attempt and lifecycle step that
//! is due at the current emulated time, each stamped with the time it was due — so advancing the
//! clock by three hours performs the three hourly retries that fell in between, deterministically.
//! A background task ([`Marketplace::spawn_scheduler`]) calls it as the clock runs; tests call
//! it directly after [`EmuClock::advance`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use koogallery::model::openapi::{BuyerInfo, OrderInfo, OrderLine, OrderProduct};
use koogallery::model::saas_v2::{ProductInfo, Scene, StatusChange};
use koogallery::model::{Decimal, JsonOrString, license, saas_v1, saas_v2};
use serde::{Deserialize, Serialize};

use crate::catalog::{ChargingMode, Family, MerchantKeys, Product};
use crate::clock::{DAY_MS, EmuClock, wall_clock_ms};
use crate::dispatch::{self, Expect, Transport, Verdict};
use crate::openapi::OpenApi;
use crate::schedule::{self, Exhausted};
use crate::state::{
    CallRecord, FollowUp, Instance, InstanceStatus, Job, JobState, Order, OrderKind, OrderStatus,
    State, Store, StoreError,
};

/// The freeze (grace) period after expiry: up to 15 days (saas.md §9, license.md §4.4).
pub const GRACE_MS: i64 = 15 * DAY_MS;
/// Most call records kept; older ones are dropped.
pub const MAX_CALL_RECORDS: usize = 5_000;
/// The message of an `applicationSync` that could not be sent because no RSA public key of the
/// merchant is configured (the emulator's own wording: KooGallery requires the key before it
/// issues a credential).
pub const NO_PUBLIC_KEY: &str =
    "not sent: no RSA public key of the merchant to encrypt clientSecret with (kitPublicKey)";
/// Most steps one [`Marketplace::run_due`] performs (a guard against a runaway loop).
pub const MAX_STEPS_PER_RUN: usize = 100_000;

/// Settings of the marketplace.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The production URL of products that name none.
    pub merchant_url: Option<String>,
    /// The keys of products that name none.
    pub keys: MerchantKeys,
    /// The freeze period before release.
    pub grace_ms: i64,
    /// The buyer of orders that name none.
    pub customer_id: String,
    pub customer_name: String,
    /// The buyer's contact data, in the order's `buyerInfo` and (encrypted) in V1 `newInstance`
    /// when the product asks for it.
    pub mobile_phone: String,
    pub email: String,
    /// The merchant's RSA public key (PEM) of products that name none: joint-operation
    /// `applicationSync` encrypts `clientSecret` with it (jointop.md §5). Without one the call
    /// fails (not sent) and waits in the messages for a restart.
    pub kit_public_key: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            merchant_url: None,
            keys: MerchantKeys::default(),
            grace_ms: GRACE_MS,
            customer_id: "5e1f0b7a9c2d4e6f8a0b1c2d3e4f5a6b".to_owned(),
            customer_name: "emulator_buyer_01".to_owned(),
            mobile_phone: "18600000000".to_owned(),
            email: "buyer@example.com".to_owned(),
            kit_public_key: None,
        }
    }
}

/// What went wrong with a control request.
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotSupported(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An order to place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRequest {
    pub kind: Option<OrderKind>,
    /// The product bought (`new`, `on-demand`, `trial`).
    #[serde(default)]
    pub product_id: Option<String>,
    /// The resource the order is about (every other kind).
    #[serde(default)]
    pub resource_id: Option<String>,
    /// `upgrade`, `renewal-change`: the product moved to (default: the product's `upgradeTo`).
    #[serde(default)]
    pub target_product_id: Option<String>,
    /// `upgrade`: the new linear value (default: the target product's).
    #[serde(default)]
    pub linear_value: Option<i64>,
    /// Periods bought, renewed or refunded (default 1).
    #[serde(default)]
    pub periods: Option<u32>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub customer_name: Option<String>,
}

impl OrderRequest {
    pub fn new(kind: OrderKind) -> Self {
        Self {
            kind: Some(kind),
            ..Self::default()
        }
    }
    pub fn product(mut self, product_id: impl Into<String>) -> Self {
        self.product_id = Some(product_id.into());
        self
    }
    pub fn resource(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id = Some(resource_id.into());
        self
    }
    pub fn target(mut self, product_id: impl Into<String>) -> Self {
        self.target_product_id = Some(product_id.into());
        self
    }
}

/// A production-interface message: a call that failed and is retried, or waits for a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The call's ID: restart it with this.
    pub id: u64,
    pub activity: String,
    pub family: Family,
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// `retrying` or `failed`.
    pub state: String,
    pub message: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at_ms: Option<i64>,
    /// Whether a manual restart is possible (not after the order was refunded).
    pub restartable: bool,
}

/// KooGallery, emulated.
pub struct Marketplace {
    state: Mutex<State>,
    clock: Arc<EmuClock>,
    wall: Arc<dyn Fn() -> i64 + Send + Sync>,
    settings: Settings,
    openapi: Arc<OpenApi>,
    client: reqwest::Client,
    run_lock: tokio::sync::Mutex<()>,
    save_lock: tokio::sync::Mutex<()>,
    store: Option<Store>,
    wake: tokio::sync::Notify,
    observer: Option<Observer>,
}

/// Called with an instance after every step that may have changed it (order placed, call
/// settled, lifecycle transition): the hook through which other parts of the emulator (usage
/// bills, license codes) learn about instances.
pub type Observer = Arc<dyn Fn(&Instance) + Send + Sync>;

impl std::fmt::Debug for Marketplace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("Marketplace")
            .field("now_ms", &self.clock.now_ms())
            .field("products", &st.products.len())
            .field("orders", &st.orders.len())
            .field("instances", &st.instances.len())
            .field("keys", &self.settings.keys)
            .finish_non_exhaustive()
    }
}

/// One unit of due work.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// (time, rank 0, resource): an expiry or the end of a grace period.
    Lifecycle(i64, String),
    /// (time, job ID): a call attempt.
    Call(i64, u64),
}

impl Step {
    fn key(&self) -> (i64, u8) {
        match self {
            Self::Lifecycle(at, _) => (*at, 0),
            Self::Call(at, _) => (*at, 1),
        }
    }
}

/// A call attempt ready to send.
struct Attempt {
    job_id: u64,
    at: i64,
    /// The request, or why it was not sent: (console message, detail).
    prepared: Result<dispatch::Prepared, (String, String)>,
    key: String,
    expect: Expect,
    transport: Transport,
    body_sign_required: bool,
}

impl Marketplace {
    /// A marketplace with the default catalog, in memory.
    pub fn new(settings: Settings, clock: Arc<EmuClock>, openapi: Arc<OpenApi>) -> Self {
        let mut state = State::default();
        for p in crate::catalog::default_catalog() {
            state.products.insert(p.product_id.clone(), p);
        }
        Self {
            state: Mutex::new(state),
            clock,
            wall: Arc::new(wall_clock_ms),
            settings,
            openapi,
            client: dispatch::client(),
            run_lock: tokio::sync::Mutex::new(()),
            save_lock: tokio::sync::Mutex::new(()),
            store: None,
            wake: tokio::sync::Notify::new(),
            observer: None,
        }
    }

    /// Registers the [`Observer`] of instance changes.
    pub fn with_observer(mut self, observer: impl Fn(&Instance) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Keeps the open API's books in step with a resource, then tells the observer.
    fn observe(&self, resource_id: &str) {
        let (instance, price) = {
            let st = self.lock();
            let instance = st.instances.get(resource_id).cloned();
            let price = instance
                .as_ref()
                .and_then(|i| st.products.get(&i.product_id))
                .map(|p| p.price.clone());
            (instance, price)
        };
        let Some(instance) = instance else { return };
        self.keep_books(&instance, price.as_deref());
        if let Some(observer) = &self.observer {
            observer(&instance);
        }
    }

    /// On-demand instances the merchant created may receive usage, billed at the product's
    /// price per unit (the usage API, openapi.md §3); License code 2.0 codes may be activated
    /// and queried (openapi.md §6). Released resources are closed in both books.
    fn keep_books(&self, instance: &Instance, price: Option<&str>) {
        let now = self.clock.now_ms();
        let metered = matches!(
            instance.charging_mode,
            ChargingMode::OnDemand | ChargingMode::OnDemandPkg
        );
        if let (true, Some(id)) = (metered, instance.instance_id.as_deref()) {
            let mut usage = self.openapi.usage();
            match instance.status {
                InstanceStatus::Active | InstanceStatus::Frozen if usage.instance(id).is_none() => {
                    let unit_price = price
                        .and_then(|p| rust_decimal::Decimal::from_str_exact(p).ok())
                        .unwrap_or_default();
                    usage.register(
                        id,
                        crate::usage::MeteredInstance {
                            product_id: instance.product_id.clone(),
                            unit_price,
                            opened_at_ms: now,
                            closed_at_ms: None,
                        },
                    );
                }
                InstanceStatus::Released => usage.close(id, now),
                _ => {}
            }
        }
        if let (Family::LicenseCode2, Some(code)) = (instance.family, instance.license.as_deref()) {
            let mut licenses = self.openapi.licenses();
            let status = match instance.status {
                InstanceStatus::Released | InstanceStatus::Failed => "RELEASED",
                InstanceStatus::Frozen => "EXPIRED",
                _ => "ALIVE",
            };
            if licenses.code(code).is_none() {
                licenses.issue_code(crate::license::LicenseCode {
                    code: code.to_owned(),
                    order_id: instance.order_id.clone(),
                    product_id: instance.product_id.clone(),
                    amount: instance.linear_value.unwrap_or(1),
                    expire_at_ms: instance.expire_ms.unwrap_or(i64::MAX),
                    // The emulated buyer receives the code at once.
                    received: true,
                    activated_at_ms: None,
                    status: status.to_owned(),
                    heartbeats: Default::default(),
                });
            } else {
                licenses.set_status(code, status);
            }
        }
    }

    /// Replaces the wall clock that stamps signatures (Unix epoch milliseconds).
    pub fn with_wall_clock(mut self, wall: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.wall = Arc::new(wall);
        self
    }

    /// Persists to `store`, resuming the state saved there, if any: its orders are published
    /// on the open API again and the clock moves forward to the saved time.
    pub async fn with_store(mut self, store: Store) -> Result<Self, StoreError> {
        if let Some(saved) = store.load().await? {
            let now = self.clock.now_ms();
            if saved.now_ms > now {
                self.clock.advance(saved.now_ms - now);
            }
            let published: Vec<OrderInfo> = saved
                .orders
                .values()
                .filter_map(|o| order_info(&saved, &self.settings, o))
                .collect();
            for info in published {
                self.openapi.add_order(info);
            }
            *self.lock() = saved;
        }
        self.store = Some(store);
        self.persist().await?;
        Ok(self)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn clock(&self) -> &Arc<EmuClock> {
        &self.clock
    }

    pub fn openapi(&self) -> &Arc<OpenApi> {
        &self.openapi
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The emulated time.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A copy of the whole state (tests, debugging).
    pub fn snapshot(&self) -> State {
        let mut st = self.lock().clone();
        st.now_ms = self.clock.now_ms();
        st
    }

    /// Saves the state if persistent.
    pub async fn persist(&self) -> Result<(), StoreError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let _guard = self.save_lock.lock().await;
        let snapshot = self.snapshot();
        store.save(&snapshot).await
    }

    /// Wakes the background scheduler (after the clock moved or work was added).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    // -----------------------------------------------------------------------------------------
    // Catalog
    // -----------------------------------------------------------------------------------------

    /// The catalog, keys redacted.
    pub fn products(&self) -> Vec<Product> {
        self.lock()
            .products
            .values()
            .map(Product::redacted)
            .collect()
    }

    /// Adds or replaces a product.
    pub async fn add_product(&self, product: Product) -> Result<Product, EmuError> {
        product.validate().map_err(EmuError::BadRequest)?;
        let listed = product.redacted();
        self.lock()
            .products
            .insert(product.product_id.clone(), product);
        self.persist().await?;
        Ok(listed)
    }

    // -----------------------------------------------------------------------------------------
    // Listings
    // -----------------------------------------------------------------------------------------

    pub fn orders(&self) -> Vec<Order> {
        self.lock().orders.values().cloned().collect()
    }

    pub fn order(&self, order_id: &str) -> Option<Order> {
        self.lock().orders.get(order_id).cloned()
    }

    /// Every instance; the kit client secret redacted.
    pub fn instances(&self) -> Vec<Instance> {
        self.lock().instances.values().map(listed).collect()
    }

    /// An instance; the kit client secret redacted.
    pub fn instance(&self, resource_id: &str) -> Option<Instance> {
        self.lock().instances.get(resource_id).map(listed)
    }

    /// Every scheduled call, oldest first.
    pub fn jobs(&self) -> Vec<Job> {
        self.lock().jobs.values().cloned().collect()
    }

    /// Every HTTP call made to the merchant, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().calls.clone()
    }

    /// The production-interface messages: calls being retried after a failure, and calls whose
    /// retries are exhausted.
    pub fn messages(&self) -> Vec<Message> {
        let st = self.lock();
        st.jobs
            .values()
            .filter_map(|job| {
                let state = match job.state {
                    JobState::Failed => "failed",
                    JobState::Pending if job.last_message.is_some() && job.attempts > 0 => {
                        "retrying"
                    }
                    _ => return None,
                };
                Some(Message {
                    id: job.id,
                    activity: job.activity.clone(),
                    family: job.family,
                    resource_id: job.resource_id.clone(),
                    order_id: job.order_id.clone(),
                    state: state.to_owned(),
                    message: job.last_message.clone().unwrap_or_default(),
                    attempts: job.total_attempts,
                    next_at_ms: job.next_at_ms,
                    restartable: restart_refusal(&st, job).is_none(),
                })
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Orders
    // -----------------------------------------------------------------------------------------

    /// Places an order: records it, publishes it on the open API and schedules the calls it
    /// causes, due now. Call [`run_due`](Self::run_due) to perform them.
    pub async fn place_order(&self, request: OrderRequest) -> Result<Order, EmuError> {
        let order = {
            let now = self.clock.now_ms();
            let mut st = self.lock();
            let order = place(&mut st, &self.settings, now, &request)?;
            if let Some(info) = order_info(&st, &self.settings, &order) {
                self.openapi.add_order(info);
            }
            order
        };
        self.observe(&order.resource_id);
        self.persist().await?;
        self.wake();
        Ok(order)
    }

    /// Restarts a call by hand (重新启动): one attempt now. A call that is still being retried
    /// is attempted now as its next retry.
    pub async fn restart(&self, job_id: u64) -> Result<Job, EmuError> {
        let job = {
            let now = self.clock.now_ms();
            let mut st = self.lock();
            let Some(job) = st.jobs.get(&job_id).cloned() else {
                return Err(EmuError::NotFound(format!("no call {job_id}")));
            };
            if let Some(why) = restart_refusal(&st, &job) {
                return Err(EmuError::Conflict(why));
            }
            let Some(job) = st.jobs.get_mut(&job_id) else {
                return Err(EmuError::NotFound(format!("no call {job_id}")));
            };
            if job.state == JobState::Failed {
                job.attempts = job.schedule.attempts.saturating_sub(1);
                job.restarts += 1;
            }
            job.state = JobState::Pending;
            job.next_at_ms = Some(now);
            job.clone()
        };
        self.persist().await?;
        self.wake();
        Ok(job)
    }

    /// The buyer's software asks for a license of an online-License instance (through the
    /// ISCDesk client): KooGallery calls `getLicenseAsync` with a new `eventId` (license.md
    /// §4.1); the merchant delivers with the market-event upload. Returns the scheduled call;
    /// its body carries the `eventId`.
    pub async fn request_license(
        &self,
        resource_id: &str,
        device_fingerprint: Option<String>,
    ) -> Result<Job, EmuError> {
        let job = {
            let now = self.clock.now_ms();
            let mut st = self.lock();
            let instance = st
                .instances
                .get(resource_id)
                .cloned()
                .ok_or_else(|| EmuError::NotFound(format!("no resource {resource_id}")))?;
            if instance.family != Family::OnlineLicense {
                return Err(EmuError::BadRequest(format!(
                    "{resource_id} is a {} instance: getLicenseAsync is for online License",
                    instance.family.as_str()
                )));
            }
            let (Some(instance_id), InstanceStatus::Active) =
                (instance.instance_id.clone(), instance.status)
            else {
                return Err(EmuError::Conflict(format!(
                    "resource {resource_id} is not active"
                )));
            };
            let at = |ms: i64| {
                koogallery::time::from_epoch_millis(ms)
                    .map(koogallery::time::format_license_datetime)
            };
            let event_id = uuid::Uuid::new_v4().simple().to_string();
            // The merchant delivers this event with the market-event upload (openapi.md §7).
            self.openapi
                .licenses()
                .expect_event(&event_id, &instance_id);
            let body = v2_body(&license::GetLicenseAsyncRequest {
                activity: "getLicenseAsync".to_owned(),
                event_id,
                instance_id,
                effective_time: at(now).unwrap_or_default(),
                expire_time: instance.expire_ms.and_then(at),
                device_fingerprint,
                test_flag: None,
            });
            let id = add_job(
                &mut st,
                now,
                Family::OnlineLicense,
                "getLicenseAsync",
                resource_id,
                None,
                body,
                None,
            );
            st.jobs.get(&id).cloned()
        };
        self.persist().await?;
        self.wake();
        job.ok_or_else(|| EmuError::NotFound("the call vanished".to_owned()))
    }

    /// A rule violation freezes an instance; clearing it unfreezes (saas.md §9 #7): V2
    /// `updateInstanceStatus`, V1 `instanceStatus` `FREEZE`/`NORMAL` (§13.7), License code
    /// `updateLicenseCodeStatus`. A violation freeze has no grace period: the instance stays
    /// frozen until unfrozen (or until it expires and is released as usual).
    pub async fn set_status(&self, resource_id: &str, freeze: bool) -> Result<Job, EmuError> {
        let job = {
            let now = self.clock.now_ms();
            let mut st = self.lock();
            let instance = st
                .instances
                .get(resource_id)
                .cloned()
                .ok_or_else(|| EmuError::NotFound(format!("no resource {resource_id}")))?;
            let Some(instance_id) = instance.instance_id.clone() else {
                return Err(EmuError::Conflict(format!(
                    "resource {resource_id} has no instanceId yet"
                )));
            };
            let expected = if freeze {
                InstanceStatus::Active
            } else {
                InstanceStatus::Frozen
            };
            if instance.status != expected {
                return Err(EmuError::Conflict(format!(
                    "resource {resource_id} is not {}",
                    if freeze { "active" } else { "frozen" }
                )));
            }
            let (activity, body) = match instance.family {
                Family::SaasV1 => (
                    saas_v1::InstanceStatus::ACTIVITY,
                    v2_body(&saas_v1::InstanceStatus {
                        activity: saas_v1::InstanceStatus::ACTIVITY.to_owned(),
                        instance_id: instance_id.clone(),
                        instance_status: if freeze {
                            saas_v1::ResourceStatus::Freeze
                        } else {
                            saas_v1::ResourceStatus::Normal
                        }
                        .as_str()
                        .to_owned(),
                        ..saas_v1::InstanceStatus::default()
                    }),
                ),
                Family::License1 => {
                    return Err(EmuError::NotSupported(
                        "License 1.0 has no status change".to_owned(),
                    ));
                }
                family => freeze_body(family, &instance_id, &instance.order_id, freeze),
            };
            if let Some(i) = st.instances.get_mut(resource_id) {
                if freeze {
                    i.status = InstanceStatus::Frozen;
                    i.frozen_ms = Some(now);
                    i.release_at_ms = None;
                } else {
                    i.status = InstanceStatus::Active;
                    i.frozen_ms = None;
                    i.release_at_ms = None;
                }
            }
            let id = add_job(
                &mut st,
                now,
                instance.family,
                activity,
                resource_id,
                None,
                body,
                None,
            );
            st.jobs.get(&id).cloned()
        };
        self.observe(resource_id);
        self.persist().await?;
        self.wake();
        job.ok_or_else(|| EmuError::NotFound("the call vanished".to_owned()))
    }

    /// A change in the buyer's directory of a joint-operation instance (jointop.md §6): the
    /// administrator authorises, changes or removes a user (`authSync`), a department changes
    /// (`singleOrgSync`), or the whole tree is pushed again (`allOrgSync`). Applies it to the
    /// instance's directory and schedules the call, due now.
    pub async fn sync_directory(
        &self,
        resource_id: &str,
        request: &crate::kit::SyncRequest,
    ) -> Result<Job, EmuError> {
        let job = {
            let now = self.clock.now_ms();
            let mut st = self.lock();
            let instance = st
                .instances
                .get(resource_id)
                .cloned()
                .ok_or_else(|| EmuError::NotFound(format!("no resource {resource_id}")))?;
            if instance.family != Family::JointOperation {
                return Err(EmuError::BadRequest(format!(
                    "{resource_id} is a {} instance: the kit sync is for joint operation",
                    instance.family.as_str()
                )));
            }
            let (Some(instance_id), Some(mut dir)) =
                (instance.instance_id.clone(), instance.kit.clone())
            else {
                return Err(EmuError::Conflict(format!(
                    "resource {resource_id} is not bound to an organisation yet (not delivered)"
                )));
            };
            if !matches!(
                instance.status,
                InstanceStatus::Active | InstanceStatus::Frozen
            ) {
                return Err(EmuError::Conflict(format!(
                    "resource {resource_id} is not active"
                )));
            }
            let origin = crate::kit::Origin {
                instance_id: &instance_id,
                order_id: &instance.order_id,
                at_ms: now,
            };
            let (activity, body) =
                crate::kit::apply(&mut dir, origin, request).map_err(EmuError::BadRequest)?;
            if let Some(i) = st.instances.get_mut(resource_id) {
                i.kit = Some(dir);
            }
            let id = add_job(
                &mut st,
                now,
                Family::JointOperation,
                activity,
                resource_id,
                None,
                body,
                None,
            );
            st.jobs.get(&id).cloned()
        };
        self.persist().await?;
        self.wake();
        job.ok_or_else(|| EmuError::NotFound("the call vanished".to_owned()))
    }

    /// Moves the clock forward by `ms` and performs everything that became due.
    pub async fn advance(&self, ms: i64) -> Result<usize, EmuError> {
        self.clock.advance(ms);
        self.run_due().await
    }

    /// Performs, in time order, every call attempt and lifecycle step due at the current
    /// emulated time; returns how many. Returns once nothing is due.
    pub async fn run_due(&self) -> Result<usize, EmuError> {
        let _running = self.run_lock.lock().await;
        let mut steps = 0;
        while steps < MAX_STEPS_PER_RUN {
            let now = self.clock.now_ms();
            let step = next_step(&self.lock(), now);
            let Some(step) = step else { break };
            steps += 1;
            match step {
                Step::Lifecycle(at, resource_id) => {
                    lifecycle(&mut self.lock(), &self.settings, at, &resource_id);
                    self.observe(&resource_id);
                }
                Step::Call(at, job_id) => {
                    let attempt = self.prepare(job_id, at);
                    let Some(attempt) = attempt else { continue };
                    let outcome = match &attempt.prepared {
                        Ok(prepared) => Some(dispatch::send(&self.client, prepared).await),
                        Err(_) => None,
                    };
                    let resource_id = self.settle(attempt, outcome);
                    if let Some(resource_id) = resource_id {
                        self.observe(&resource_id);
                    }
                }
            }
        }
        if steps > 0 {
            self.persist().await?;
        }
        Ok(steps)
    }

    /// When the next piece of work falls due, if any.
    pub fn next_due_ms(&self) -> Option<i64> {
        next_step(&self.lock(), i64::MAX).map(|s| s.key().0)
    }

    /// Runs [`run_due`](Self::run_due) whenever work falls due on the running clock, until the
    /// returned task is aborted.
    pub fn spawn_scheduler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.run_due().await {
                    tracing::warn!(error = %e, "emulator: scheduler run failed");
                }
                let max = std::time::Duration::from_secs(1);
                let wait = me
                    .next_due_ms()
                    .and_then(|at| me.clock.real_until(at))
                    .map_or(max, |d| d.min(max));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = me.wake.notified() => {}
                }
            }
        })
    }

    /// Signs the next attempt of a job (under the lock, no I/O).
    fn prepare(&self, job_id: u64, at: i64) -> Option<Attempt> {
        let st = self.lock();
        let job = st.jobs.get(&job_id)?;
        let instance = st.instances.get(&job.resource_id);
        let product = instance.and_then(|i| st.products.get(&i.product_id));
        let url = product
            .and_then(|p| p.merchant_url.clone())
            .or_else(|| self.settings.merchant_url.clone());
        let keys = product.map_or_else(
            || self.settings.keys.clone(),
            |p| p.keys.or(&self.settings.keys),
        );
        let kit_call = job.transport == Transport::KitPost;
        let key = match (job.family, job.activity.as_str()) {
            (_, "orderNotify") => keys.generic,
            _ if kit_call => keys.kit,
            (Family::LicenseCode2, _) => keys.license,
            _ => keys.basic,
        };
        let expect = match job.activity.as_str() {
            "newInstance" => Expect::Create,
            "getLicense" => Expect::License,
            "getLicenseAsync" => Expect::Async,
            _ if kit_call => Expect::Kit,
            "queryInstance" => Expect::Query {
                instance_id: instance
                    .and_then(|i| i.instance_id.clone())
                    .unwrap_or_default(),
                need_app_info: job.family != Family::OnlineLicense,
            },
            _ => Expect::Plain,
        };
        let mut body = job.body.clone();
        if let Some(b) = body.get_mut("businessId") {
            *b = serde_json::Value::String(uuid::Uuid::new_v4().to_string());
        }
        let mut not_sent: Option<(String, String)> = None;
        if kit_call {
            // Kit bodies carry the request time (UTC+8), renewed on every attempt.
            if let Some(t) = body.get_mut("timeStamp") {
                *t = serde_json::Value::String(crate::kit::timestamp(at));
            }
            if let Some(secret) = body.get_mut("clientSecret") {
                let pem = product
                    .and_then(|p| p.kit_public_key.clone())
                    .or_else(|| self.settings.kit_public_key.clone());
                let plain = instance
                    .and_then(|i| i.kit.as_ref())
                    .map(|d| d.client_secret.clone())
                    .unwrap_or_default();
                match pem.map(|pem| crate::kit::encrypt_secret(&pem, &plain)) {
                    Some(Ok(ct)) => *secret = serde_json::Value::String(ct),
                    Some(Err(e)) => {
                        not_sent = Some((
                            NO_PUBLIC_KEY.to_owned(),
                            format!("applicationSync not sent: the merchant's public key: {e}"),
                        ));
                    }
                    None => {
                        not_sent = Some((
                            NO_PUBLIC_KEY.to_owned(),
                            "applicationSync not sent: no RSA public key of the merchant to \
                             encrypt clientSecret with (product kitPublicKey, or \
                             --kit-public-key)"
                                .to_owned(),
                        ));
                    }
                }
            }
        }
        let wall = (self.wall)();
        let unreachable = |why: &str| (dispatch::console::UNREACHABLE.to_owned(), why.to_owned());
        let missing_key = if kit_call {
            "no kit key bound to the product (--kit-key)"
        } else {
            "no access key bound to the product (--basic-key)"
        };
        let prepared = match (url, &key, not_sent) {
            (None, _, _) => Err(unreachable(
                "no production URL bound to the product (--merchant-url)",
            )),
            (_, None, _) => Err(unreachable(missing_key)),
            (_, _, Some(why)) => Err(why),
            (Some(url), Some(key), None) => match job.transport {
                Transport::V2Post => {
                    dispatch::prepare_v2(&url, key, &body, wall, &dispatch::new_nonce())
                }
                Transport::V1Get => dispatch::prepare_v1(&url, key, &body, wall),
                Transport::KitPost => dispatch::prepare_kit(
                    &crate::kit::url(&url, &job.activity),
                    key,
                    &body,
                    wall,
                    &dispatch::new_nonce(),
                ),
            }
            .map_err(|e| unreachable(&e.to_string())),
        };
        Some(Attempt {
            job_id,
            at,
            prepared,
            key: key.unwrap_or_default(),
            expect,
            transport: job.transport,
            // The V1 families require Body-Sign; orderNotify of a V1 product travels as V2.
            body_sign_required: job.transport == Transport::V1Get,
        })
    }

    /// Records an attempt's outcome and applies its consequences; returns the resource.
    fn settle(
        &self,
        attempt: Attempt,
        outcome: Option<Result<dispatch::RawResponse, dispatch::TransportError>>,
    ) -> Option<String> {
        let mut st = self.lock();
        let job = st.jobs.get(&attempt.job_id).cloned()?;
        let (method, url, request_body) = match &attempt.prepared {
            Ok(p) => (
                p.method.to_owned(),
                p.url.clone(),
                p.body
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
            ),
            Err(_) => (String::new(), String::new(), None),
        };
        let id = st.next_number();
        let mut record = CallRecord {
            id,
            job_id: job.id,
            at_ms: attempt.at,
            activity: job.activity.clone(),
            family: job.family,
            resource_id: job.resource_id.clone(),
            order_id: job.order_id.clone(),
            method,
            url,
            request_body,
            http_status: None,
            result_code: None,
            response_body: None,
            body_sign: None,
            verdict: String::new(),
            message: None,
            detail: None,
        };
        let verdict = match (&attempt.prepared, outcome) {
            (Err((message, detail)), _) => Verdict::Failed {
                message: message.clone(),
                detail: detail.clone(),
                result_code: None,
            },
            (Ok(_), None) => Verdict::Failed {
                message: dispatch::console::UNREACHABLE.to_owned(),
                detail: "not sent".to_owned(),
                result_code: None,
            },
            (Ok(_), Some(Err(e))) => Verdict::Failed {
                message: e.console_message().to_owned(),
                detail: e.to_string(),
                result_code: None,
            },
            (Ok(_), Some(Ok(response))) => {
                record.http_status = Some(response.status);
                record.response_body = Some(dispatch::loggable_body(&response.body));
                let (verdict, sign) = dispatch::verify(
                    attempt.transport,
                    attempt.body_sign_required,
                    &attempt.key,
                    &attempt.expect,
                    &response,
                );
                record.body_sign = Some(sign);
                verdict
            }
        };
        match &verdict {
            Verdict::Success(a) | Verdict::Processing(a) => {
                record.result_code = Some(a.result_code.clone());
                record.verdict = if matches!(verdict, Verdict::Success(_)) {
                    "success"
                } else {
                    "processing"
                }
                .to_owned();
            }
            Verdict::Failed {
                message,
                detail,
                result_code,
            } => {
                record.result_code.clone_from(result_code);
                record.verdict = "failed".to_owned();
                record.message = Some(message.clone());
                record.detail = Some(detail.clone());
            }
        }
        tracing::info!(
            activity = %record.activity,
            resource = %record.resource_id,
            verdict = %record.verdict,
            status = ?record.http_status,
            result_code = ?record.result_code,
            "emulator: called the production interface"
        );
        st.calls.push(record);
        if st.calls.len() > MAX_CALL_RECORDS {
            let excess = st.calls.len() - MAX_CALL_RECORDS;
            st.calls.drain(..excess);
        }
        apply_verdict(&mut st, &job, attempt.at, verdict);
        Some(job.resource_id)
    }
}

/// An instance as listed: the kit client secret redacted.
fn listed(instance: &Instance) -> Instance {
    Instance {
        kit: instance.kit.as_ref().map(crate::kit::Directory::redacted),
        ..instance.clone()
    }
}

/// Why a job cannot be restarted, if it cannot.
fn restart_refusal(st: &State, job: &Job) -> Option<String> {
    match job.state {
        JobState::Succeeded => return Some(format!("call {} already succeeded", job.id)),
        JobState::Cancelled => return Some(format!("call {} was cancelled", job.id)),
        JobState::Pending | JobState::Failed => {}
    }
    let order = job.order_id.as_ref().and_then(|o| st.orders.get(o));
    match order {
        Some(o) if o.refunded => Some(format!(
            "order {} failed and was refunded; place a new order",
            o.order_id
        )),
        _ => None,
    }
}

fn next_step(st: &State, now: i64) -> Option<Step> {
    let lifecycle = st.instances.values().filter_map(|i| {
        let at = match i.status {
            InstanceStatus::Active if i.instance_id.is_some() && i.charging_mode.expires() => {
                i.expire_ms?
            }
            InstanceStatus::Frozen => i.release_at_ms?,
            _ => return None,
        };
        (at <= now).then(|| Step::Lifecycle(at, i.resource_id.clone()))
    });
    let calls = st.jobs.values().filter_map(|j| {
        let at = j.next_at_ms?;
        (j.state == JobState::Pending && at <= now).then_some(Step::Call(at, j.id))
    });
    lifecycle
        .chain(calls)
        .min_by(|a, b| a.key().cmp(&b.key()).then(a.cmp(b)))
}

/// Expiry → freeze (with the grace period) and end of grace → release (saas.md §9).
fn lifecycle(st: &mut State, settings: &Settings, at: i64, resource_id: &str) {
    let Some(instance) = st.instances.get_mut(resource_id) else {
        return;
    };
    let Some(instance_id) = instance.instance_id.clone() else {
        return;
    };
    let family = instance.family;
    let purchase = instance.order_id.clone();
    match instance.status {
        InstanceStatus::Active => {
            instance.status = InstanceStatus::Frozen;
            instance.frozen_ms = Some(at);
            instance.release_at_ms = Some(at.saturating_add(settings.grace_ms));
            let (activity, body) = freeze_body(family, &instance_id, &purchase, true);
            add_job(st, at, family, activity, resource_id, None, body, None);
        }
        InstanceStatus::Frozen => {
            instance.status = InstanceStatus::Released;
            instance.release_at_ms = Some(at);
            let (activity, body) = release_body(family, &instance_id, &purchase, None);
            add_job(st, at, family, activity, resource_id, None, body, None);
            kit_release(st, at, resource_id, None);
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn add_job(
    st: &mut State,
    at: i64,
    family: Family,
    activity: &str,
    resource_id: &str,
    order_id: Option<&str>,
    body: serde_json::Value,
    then: Option<FollowUp>,
) -> u64 {
    let id = st.next_number();
    let transport = if crate::kit::is_kit(activity) {
        Transport::KitPost
    } else if family.is_v1() {
        Transport::V1Get
    } else {
        Transport::V2Post
    };
    st.jobs.insert(
        id,
        Job {
            id,
            activity: activity.to_owned(),
            family,
            transport,
            resource_id: resource_id.to_owned(),
            order_id: order_id.map(str::to_owned),
            body,
            schedule: schedule::for_call(family, activity),
            then: then.map(Box::new),
            state: JobState::Pending,
            attempts: 0,
            total_attempts: 0,
            next_at_ms: Some(at),
            created_ms: at,
            last_message: None,
            restarts: 0,
        },
    );
    id
}

fn apply_verdict(st: &mut State, job: &Job, at: i64, verdict: Verdict) {
    let Some(j) = st.jobs.get_mut(&job.id) else {
        return;
    };
    j.attempts += 1;
    j.total_attempts += 1;
    let exhausted = j.attempts >= j.schedule.attempts;
    match verdict {
        Verdict::Success(answer) => {
            j.state = JobState::Succeeded;
            j.next_at_ms = None;
            j.last_message = None;
            on_success(st, job, at, answer);
        }
        Verdict::Processing(answer) if job.activity == "newInstance" => {
            // 000004: accepted; the access information comes from polling.
            j.state = JobState::Succeeded;
            j.next_at_ms = None;
            j.last_message = None;
            on_success(st, job, at, answer);
        }
        Verdict::Processing(_) => {
            if exhausted {
                let message =
                    "queryInstance returned no instance information (appInfo) within the polling window"
                        .to_owned();
                j.state = JobState::Failed;
                j.next_at_ms = None;
                j.last_message = Some(message.clone());
                on_exhausted(st, job, &message);
            } else {
                j.next_at_ms = Some(at.saturating_add(j.schedule.interval_ms));
            }
        }
        Verdict::Failed { message, .. } => {
            j.last_message = Some(message.clone());
            if exhausted {
                j.state = JobState::Failed;
                j.next_at_ms = None;
                on_exhausted(st, job, &message);
            } else {
                j.next_at_ms = Some(at.saturating_add(j.schedule.interval_ms));
            }
        }
    }
}

fn on_exhausted(st: &mut State, job: &Job, message: &str) {
    if job.schedule.exhausted != Exhausted::FailOrder {
        return;
    }
    let Some(order_id) = job.order_id.clone() else {
        return;
    };
    let Some(order) = st.orders.get_mut(&order_id) else {
        return;
    };
    order.status = OrderStatus::Failed;
    order.refunded = true;
    order.message = Some(message.to_owned());
    let creates = order.kind.creates();
    let resource = order.resource_id.clone();
    if creates && let Some(i) = st.instances.get_mut(&resource) {
        i.status = InstanceStatus::Failed;
    }
    for other in st.jobs.values_mut() {
        if other.order_id.as_deref() == Some(order_id.as_str()) && other.state == JobState::Pending
        {
            other.state = JobState::Cancelled;
            other.next_at_ms = None;
        }
    }
}

fn on_success(st: &mut State, job: &Job, at: i64, answer: dispatch::Answer) {
    let mut follow = job.then.as_deref().cloned();
    let mut kit_chain: Option<FollowUp> = None;
    let order = job
        .order_id
        .as_ref()
        .and_then(|o| st.orders.get(o))
        .cloned();
    if let Some(instance) = st.instances.get_mut(&job.resource_id) {
        match job.activity.as_str() {
            "getLicense" => {
                instance.instance_id.clone_from(&answer.instance_id);
                instance.license.clone_from(&answer.license);
                if instance.status == InstanceStatus::Creating {
                    instance.status = InstanceStatus::Active;
                }
            }
            "newInstance" => {
                if let Some(id) = answer.instance_id.clone() {
                    instance.instance_id = Some(id.clone());
                    let synchronous = answer.result_code == koogallery::ResultCode::Success.code();
                    if job.family == Family::OnlineLicense && synchronous {
                        // Online License has no access information to poll for.
                        if instance.status == InstanceStatus::Creating {
                            instance.status = InstanceStatus::Active;
                        }
                    } else if let Some(app) = &answer.app_info {
                        // V1: the access information comes with the answer.
                        instance.app_info = Some(redacted_app_info(app));
                        if instance.status == InstanceStatus::Creating {
                            instance.status = InstanceStatus::Active;
                        }
                    } else {
                        // V2: poll queryInstance for it (saas.md §5.2, §6).
                        follow = Some(FollowUp {
                            activity: "queryInstance".to_owned(),
                            body: v2_body(&saas_v2::QueryInstance {
                                activity: saas_v2::QueryInstance::ACTIVITY.to_owned(),
                                instance_id: id,
                                test_flag: None,
                            }),
                            then: None,
                        });
                    }
                }
            }
            "queryInstance" => {
                if let Some(app) = &answer.app_info {
                    instance.app_info = Some(redacted_app_info(app));
                }
                if instance.status == InstanceStatus::Creating {
                    instance.status = InstanceStatus::Active;
                }
                // Joint operation: the buyer binds the delivered product to its organisation
                // (jointop.md §6): tenant, application, full organisation, then users.
                if job.family == Family::JointOperation
                    && instance.kit.is_none()
                    && let Some(id) = instance.instance_id.clone()
                {
                    let dir =
                        crate::kit::Directory::new(&instance.customer_id, &instance.customer_name);
                    kit_chain = Some(kit_binding(&dir, &id, &instance.order_id, at));
                    instance.kit = Some(dir);
                }
            }
            "upgradeInstance" | "upgrade" => {
                if let Some(o) = &order {
                    instance.product_id.clone_from(&o.product_id);
                    instance.sku_code.clone_from(&o.sku_code);
                    instance.linear_value = o.linear_value;
                }
            }
            "refreshInstance" => {
                if let Some(o) = order
                    .as_ref()
                    .filter(|o| o.kind == OrderKind::RenewalChange)
                {
                    instance.product_id.clone_from(&o.product_id);
                    instance.sku_code.clone_from(&o.sku_code);
                    instance.linear_value = o.linear_value;
                    instance.period = o.period;
                    if let Some(t) = o.expire_time.as_deref().and_then(parse_expire_ms) {
                        instance.expire_ms = Some(t);
                    }
                }
            }
            _ => {}
        }
    }
    match follow {
        Some(f) => {
            let then = f.then.map(|b| *b);
            add_job(
                st,
                at,
                job.family,
                &f.activity,
                &job.resource_id,
                job.order_id.as_deref(),
                f.body,
                then,
            );
        }
        None => {
            if let Some(o) = job.order_id.as_ref().and_then(|o| st.orders.get_mut(o))
                && o.status == OrderStatus::Processing
                && job.activity != "orderNotify"
            {
                o.status = OrderStatus::Completed;
            }
        }
    }
    if let Some(chain) = kit_chain {
        let then = chain.then.map(|b| *b);
        add_job(
            st,
            at,
            job.family,
            &chain.activity,
            &job.resource_id,
            job.order_id.as_deref(),
            chain.body,
            then,
        );
    }
}

/// The kit calls of a buyer binding a product to its organisation (jointop.md §6), as one chain
/// in the suggested processing order: `tenantSync` (add) → `applicationSync` (add) →
/// `allOrgSync` → `authSync` (add, the authorised users). Each is sent once the previous one
/// succeeded.
fn kit_binding(
    dir: &crate::kit::Directory,
    instance_id: &str,
    order_id: &str,
    at: i64,
) -> FollowUp {
    use koogallery::model::kit::SyncFlag;
    let origin = crate::kit::Origin {
        instance_id,
        order_id,
        at_ms: at,
    };
    let users = FollowUp {
        activity: "authSync".to_owned(),
        body: crate::kit::auth_sync(dir, origin, dir.users.clone(), SyncFlag::Add),
        then: None,
    };
    let orgs = FollowUp {
        activity: "allOrgSync".to_owned(),
        body: crate::kit::all_org_sync(dir, origin),
        then: Some(Box::new(users)),
    };
    let application = FollowUp {
        activity: "applicationSync".to_owned(),
        body: crate::kit::application_sync(dir, origin, SyncFlag::Add),
        then: Some(Box::new(orgs)),
    };
    FollowUp {
        activity: "tenantSync".to_owned(),
        body: crate::kit::tenant_sync(dir, origin, SyncFlag::Add),
        then: Some(Box::new(application)),
    }
}

/// Joint operation: the `tenantSync` with `flag` `0` that goes with a release (jointop.md §6:
/// the buyer dissolves the organisation), scheduled after the release call.
fn kit_release(st: &mut State, at: i64, resource_id: &str, order_id: Option<&str>) {
    let Some(instance) = st.instances.get(resource_id) else {
        return;
    };
    let (Family::JointOperation, Some(dir), Some(instance_id)) = (
        instance.family,
        instance.kit.clone(),
        instance.instance_id.clone(),
    ) else {
        return;
    };
    let body = crate::kit::tenant_sync(
        &dir,
        crate::kit::Origin {
            instance_id: &instance_id,
            order_id: order_id.unwrap_or(&instance.order_id),
            at_ms: at,
        },
        koogallery::model::kit::SyncFlag::Delete,
    );
    add_job(
        st,
        at,
        Family::JointOperation,
        "tenantSync",
        resource_id,
        order_id,
        body,
        None,
    );
}

fn redacted_app_info(app: &saas_v2::AppInfo) -> serde_json::Value {
    let mut shown = app.clone();
    if shown.password.is_some() {
        shown.password = Some("<redacted>".to_owned());
    }
    serde_json::to_value(shown).unwrap_or(serde_json::Value::Null)
}

fn parse_expire_ms(s: &str) -> Option<i64> {
    koogallery::time::parse_expire_time(s)
        .ok()
        .map(koogallery::time::epoch_millis)
}

fn format_expire(ms: i64) -> Option<String> {
    koogallery::time::from_epoch_millis(ms).map(koogallery::time::format_expire_time)
}

fn v2_body<T: Serialize>(model: &T) -> serde_json::Value {
    serde_json::to_value(model).unwrap_or(serde_json::Value::Null)
}

/// The freeze call of a family: V2 `updateInstanceStatus` (saas.md §5.4), V1 `expireInstance`
/// (§13.4); `freeze = false` is the V2 unfreeze.
fn freeze_body(
    family: Family,
    instance_id: &str,
    purchase_order: &str,
    freeze: bool,
) -> (&'static str, serde_json::Value) {
    let status = if freeze {
        StatusChange::Freeze
    } else {
        StatusChange::Unfreeze
    }
    .as_str()
    .to_owned();
    match family {
        Family::License1 => (
            "expireLicense",
            v2_body(&license::ExpireLicenseRequest {
                activity: "expireLicense".to_owned(),
                instance_id: instance_id.to_owned(),
                order_id: purchase_order.to_owned(),
                ..license::ExpireLicenseRequest::default()
            }),
        ),
        Family::LicenseCode2 => (
            "updateLicenseCodeStatus",
            v2_body(&license::UpdateLicenseCodeStatusRequest {
                activity: "updateLicenseCodeStatus".to_owned(),
                license: instance_id.to_owned(),
                status,
                test_flag: None,
            }),
        ),
        Family::SaasV1 => (
            saas_v1::ExpireInstance::ACTIVITY,
            v2_body(&saas_v1::ExpireInstance {
                activity: saas_v1::ExpireInstance::ACTIVITY.to_owned(),
                instance_id: instance_id.to_owned(),
                order_id: purchase_order.to_owned(),
                ..saas_v1::ExpireInstance::default()
            }),
        ),
        _ => (
            saas_v2::UpdateInstanceStatus::ACTIVITY,
            v2_body(&saas_v2::UpdateInstanceStatus {
                activity: saas_v2::UpdateInstanceStatus::ACTIVITY.to_owned(),
                instance_id: instance_id.to_owned(),
                status,
                test_flag: None,
            }),
        ),
    }
}

/// The release call: V2 with the unsubscribe order when there is one (saas.md §5.5); V1 with
/// the purchase order (§13.5).
fn release_body(
    family: Family,
    instance_id: &str,
    purchase_order: &str,
    unsubscribe: Option<(&str, &str)>,
) -> (&'static str, serde_json::Value) {
    match family {
        Family::License1 => (
            "releaseLicense",
            v2_body(&license::ReleaseLicenseRequest {
                activity: "releaseLicense".to_owned(),
                instance_id: instance_id.to_owned(),
                order_id: purchase_order.to_owned(),
                ..license::ReleaseLicenseRequest::default()
            }),
        ),
        Family::LicenseCode2 => (
            "releaseLicenseCode",
            v2_body(&license::ReleaseLicenseCodeRequest {
                activity: "releaseLicenseCode".to_owned(),
                license: instance_id.to_owned(),
                order_id: unsubscribe.map(|(o, _)| o.to_owned()),
                order_line_id: unsubscribe.map(|(_, l)| l.to_owned()),
                test_flag: None,
            }),
        ),
        Family::SaasV1 => (
            saas_v1::ReleaseInstance::ACTIVITY,
            v2_body(&saas_v1::ReleaseInstance {
                activity: saas_v1::ReleaseInstance::ACTIVITY.to_owned(),
                instance_id: instance_id.to_owned(),
                order_id: purchase_order.to_owned(),
                ..saas_v1::ReleaseInstance::default()
            }),
        ),
        _ => (
            saas_v2::ReleaseInstance::ACTIVITY,
            v2_body(&saas_v2::ReleaseInstance {
                activity: saas_v2::ReleaseInstance::ACTIVITY.to_owned(),
                instance_id: instance_id.to_owned(),
                order_id: unsubscribe.map(|(o, _)| o.to_owned()),
                order_line_id: unsubscribe.map(|(_, l)| l.to_owned()),
                test_flag: None,
            }),
        ),
    }
}

/// KooGallery-style order IDs: `CS` + `yyMMddHHmm` + 5 characters (saas.md §12 examples).
fn new_order_id(st: &mut State, now: i64) -> String {
    let n = st.next_number();
    let stamp = koogallery::time::from_epoch_millis(now)
        .map(koogallery::time::format_expire_time)
        .unwrap_or_default();
    let short = stamp.get(2..12).unwrap_or("0000000000");
    let mut suffix = String::new();
    let mut v = n;
    for _ in 0..5 {
        let digit = u32::try_from(v % 36).unwrap_or(0);
        suffix.insert(0, char::from_digit(digit, 36).unwrap_or('0'));
        v /= 36;
    }
    format!("CS{short}{}", suffix.to_uppercase())
}

/// A V1 contact field, encrypted with the product's basic key (AES-256), if the product asks
/// for it and a key is bound.
fn v1_encrypted(
    product: &Product,
    settings: &Settings,
    wanted: bool,
    plain: &str,
) -> Option<String> {
    if !wanted {
        return None;
    }
    let key = product.keys.or(&settings.keys).basic?;
    let cipher = koogallery::crypto::FieldCipher::new(&key, koogallery::crypto::KeySize::Aes256);
    Some(cipher.encrypt(plain))
}

/// `periods` times a period.
fn times(period: Option<crate::catalog::Period>, periods: u32) -> Option<crate::catalog::Period> {
    period.map(|p| crate::catalog::Period::new(p.unit, p.number.saturating_mul(periods)))
}

/// Amount of `periods` × the product's price, negated for a refund.
fn amount(product: &Product, periods: u32, refund: bool) -> String {
    let sign = if refund { "-" } else { "" };
    match product.price.parse::<i64>() {
        Ok(p) => {
            let total = p.saturating_mul(i64::from(periods));
            if refund {
                total.saturating_neg().to_string()
            } else {
                total.to_string()
            }
        }
        Err(_) => format!("{sign}{}", product.price),
    }
}

/// Validates and records an order and its resource; schedules its calls, and the
/// `orderNotify` of a product with order notification (saas.md §5.8).
fn place(
    st: &mut State,
    settings: &Settings,
    now: i64,
    request: &OrderRequest,
) -> Result<Order, EmuError> {
    let order = place_calls(st, settings, now, request)?;
    let notify = st
        .products
        .get(&order.product_id)
        .is_some_and(|p| p.order_notify);
    if notify && let Some(family) = st.instances.get(&order.resource_id).map(|i| i.family) {
        let body = v2_body(&saas_v2::OrderNotify {
            activity: saas_v2::OrderNotify::ACTIVITY.to_owned(),
            order_id: order.order_id.clone(),
            order_line_id: order.order_line_id.clone(),
            test_flag: Some(koogallery::model::TestFlag::REAL),
        });
        let id = add_job(
            st,
            order.created_ms,
            family,
            saas_v2::OrderNotify::ACTIVITY,
            &order.resource_id,
            Some(&order.order_id),
            body,
            None,
        );
        // orderNotify is a V2 notification whatever the product's family.
        if let Some(job) = st.jobs.get_mut(&id) {
            job.transport = Transport::V2Post;
        }
    }
    Ok(order)
}

/// Validates and records an order and its resource; schedules its calls.
#[allow(clippy::too_many_lines)]
fn place_calls(
    st: &mut State,
    settings: &Settings,
    now: i64,
    request: &OrderRequest,
) -> Result<Order, EmuError> {
    let kind = request
        .kind
        .ok_or_else(|| EmuError::BadRequest("kind is required".to_owned()))?;
    let periods = request.periods.unwrap_or(1);
    if periods == 0 {
        return Err(EmuError::BadRequest(
            "periods must be at least 1".to_owned(),
        ));
    }
    // Expiries travel as yyyyMMddHHmmss: keep whole seconds so what is told is what is kept.
    let now = now - now.rem_euclid(1000);
    let order_id = new_order_id(st, now);
    let order_line_id = format!("{order_id}-000001");
    let product_of = |st: &State, id: &str| {
        st.products
            .get(id)
            .cloned()
            .ok_or_else(|| EmuError::NotFound(format!("no product {id}")))
    };

    if kind.creates() {
        let product_id = request.product_id.as_deref().ok_or_else(|| {
            EmuError::BadRequest(format!("a {} order needs productId", kind.as_str()))
        })?;
        let product = product_of(st, product_id)?;
        match kind {
            OrderKind::OnDemand if product.charging_mode != ChargingMode::OnDemand => {
                return Err(EmuError::BadRequest(format!(
                    "{product_id} is not an on-demand product"
                )));
            }
            OrderKind::Trial if product.trial_days.is_none() => {
                return Err(EmuError::BadRequest(format!(
                    "{product_id} cannot be tried"
                )));
            }
            _ => {}
        }
        let trial = kind == OrderKind::Trial;
        let expire_ms = if trial {
            let days = i64::from(product.trial_days.unwrap_or(0));
            Some(now.saturating_add(days.saturating_mul(DAY_MS)))
        } else if product.charging_mode.expires() {
            product.period.and_then(|p| p.add_to(now, periods))
        } else {
            None
        };
        let period = if trial {
            Some(crate::catalog::Period::new(
                crate::catalog::PeriodUnit::Day,
                product.trial_days.unwrap_or(0),
            ))
        } else {
            product.period.filter(|_| product.charging_mode.expires())
        };
        let resource_id = format!("RES{:06}", st.next_number());
        let customer_id = request
            .customer_id
            .clone()
            .unwrap_or_else(|| settings.customer_id.clone());
        let customer_name = request
            .customer_name
            .clone()
            .unwrap_or_else(|| settings.customer_name.clone());
        let order = Order {
            order_id: order_id.clone(),
            order_line_id: order_line_id.clone(),
            kind,
            order_type: kind.order_type().to_owned(),
            resource_id: resource_id.clone(),
            product_id: product.product_id.clone(),
            sku_code: product.sku_code.clone(),
            charging_mode: product.charging_mode,
            period: times(period, periods),
            expire_time: expire_ms.and_then(format_expire),
            linear_value: product.linear_value,
            amount: if trial {
                "0".to_owned()
            } else {
                amount(&product, periods, false)
            },
            status: OrderStatus::Processing,
            refunded: false,
            created_ms: now,
            message: None,
        };
        let instance = Instance {
            resource_id: resource_id.clone(),
            instance_id: None,
            family: product.family,
            product_id: product.product_id.clone(),
            sku_code: product.sku_code.clone(),
            charging_mode: product.charging_mode,
            period,
            linear_value: product.linear_value,
            status: InstanceStatus::Creating,
            trial,
            expire_ms,
            frozen_ms: None,
            release_at_ms: None,
            order_id: order_id.clone(),
            order_line_id: order_line_id.clone(),
            customer_id,
            customer_name,
            license: None,
            app_info: None,
            kit: None,
        };
        let (activity, body) = match product.family {
            Family::LicenseCode2 => {
                // KooGallery generates the code; the merchant activates it later (license.md
                // §5.4): nothing is called at purchase.
                let code = format!("PL{:010}", st.next_number());
                let mut instance = instance;
                instance.instance_id = Some(code.clone());
                instance.license = Some(code);
                instance.status = InstanceStatus::Active;
                let mut order = order;
                order.status = OrderStatus::Completed;
                st.instances.insert(resource_id, instance);
                st.orders.insert(order_id, order.clone());
                return Ok(order);
            }
            Family::License1 => (
                "getLicense",
                v2_body(&license::GetLicenseRequest {
                    activity: "getLicense".to_owned(),
                    customer_id: instance.customer_id.clone(),
                    customer_name: Some(instance.customer_name.clone()),
                    business_id: String::new(),
                    order_id: order_id.clone(),
                    sku_code: Some(product.sku_code.clone()),
                    product_id: product.product_id.clone(),
                    expire_time: order.expire_time.clone(),
                    period_type: order.period.map(|p| p.unit.as_str().to_owned()),
                    period_number: order.period.map(|p| p.number.to_string()),
                    amount: product.linear_value.map(|v| v.to_string()),
                    ..license::GetLicenseRequest::default()
                }),
            ),
            Family::SaasV1 => (
                "newInstance",
                v2_body(&saas_v1::NewInstance {
                    activity: saas_v1::NewInstance::ACTIVITY.to_owned(),
                    customer_id: instance.customer_id.clone(),
                    customer_name: Some(instance.customer_name.clone()),
                    business_id: String::new(),
                    order_id: order_id.clone(),
                    sku_code: Some(product.sku_code.clone()),
                    product_id: product.product_id.clone(),
                    trial_flag: trial.then(|| "1".to_owned()),
                    expire_time: order.expire_time.clone(),
                    charging_mode: Some(product.charging_mode.v1_code().to_owned()),
                    period_type: order.period.map(|p| p.unit.as_str().to_owned()),
                    period_number: order.period.map(|p| p.number.to_string()),
                    order_amount: Some(order.amount.clone()),
                    amount: product.linear_value.map(|v| v.to_string()),
                    mobile_phone: v1_encrypted(
                        &product,
                        settings,
                        product.send_mobile_phone,
                        &settings.mobile_phone,
                    ),
                    email: v1_encrypted(&product, settings, product.send_email, &settings.email),
                    saas_extend_params: (!product.extend_params.is_empty()).then(|| {
                        saas_v1::encode_saas_extend_params(
                            &product
                                .extend_params
                                .iter()
                                .map(|p| saas_v1::ExtendParam {
                                    name: p.name.clone(),
                                    value: p.value.clone(),
                                })
                                .collect::<Vec<_>>(),
                        )
                    }),
                    ..saas_v1::NewInstance::default()
                }),
            ),
            Family::SaasV2 | Family::OnlineLicense | Family::JointOperation => (
                "newInstance",
                v2_body(&saas_v2::NewInstance {
                    activity: saas_v2::NewInstance::ACTIVITY.to_owned(),
                    order_id: order_id.clone(),
                    order_line_id: order_line_id.clone(),
                    business_id: String::new(),
                    test_flag: None,
                    nested_order_data: false,
                }),
            ),
        };
        st.instances.insert(resource_id.clone(), instance);
        st.orders.insert(order_id.clone(), order.clone());
        add_job(
            st,
            now,
            product.family,
            activity,
            &resource_id,
            Some(&order_id),
            body,
            None,
        );
        return Ok(order);
    }

    // Orders about an existing resource.
    let resource_id = request.resource_id.as_deref().ok_or_else(|| {
        EmuError::BadRequest(format!("a {} order needs resourceId", kind.as_str()))
    })?;
    let instance = st
        .instances
        .get(resource_id)
        .cloned()
        .ok_or_else(|| EmuError::NotFound(format!("no resource {resource_id}")))?;
    let product = product_of(st, &instance.product_id)?;
    let family = instance.family;
    let Some(instance_id) = instance.instance_id.clone() else {
        return Err(EmuError::Conflict(format!(
            "resource {resource_id} has no instanceId yet (status {:?})",
            instance.status
        )));
    };
    if !matches!(
        instance.status,
        InstanceStatus::Active | InstanceStatus::Frozen
    ) {
        return Err(EmuError::Conflict(format!(
            "resource {resource_id} is {}",
            serde_json::to_value(instance.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        )));
    }
    let frozen = instance.status == InstanceStatus::Frozen;
    let mut order = Order {
        order_id: order_id.clone(),
        order_line_id: order_line_id.clone(),
        kind,
        order_type: kind.order_type().to_owned(),
        resource_id: resource_id.to_owned(),
        product_id: instance.product_id.clone(),
        sku_code: instance.sku_code.clone(),
        charging_mode: instance.charging_mode,
        period: instance.period,
        expire_time: instance.expire_ms.and_then(format_expire),
        linear_value: instance.linear_value,
        amount: amount(&product, periods, false),
        status: OrderStatus::Processing,
        refunded: false,
        created_ms: now,
        message: None,
    };
    let period_product = |what: &str| {
        if instance.charging_mode.expires() {
            product.period.ok_or_else(|| {
                EmuError::BadRequest(format!("{} has no period", product.product_id))
            })
        } else {
            Err(EmuError::BadRequest(format!(
                "{what} needs a period product; {resource_id} is {}",
                instance.charging_mode.wire()
            )))
        }
    };
    let target_of = |st: &State| -> Result<Product, EmuError> {
        let id = request
            .target_product_id
            .clone()
            .or_else(|| product.upgrade_to.clone())
            .ok_or_else(|| {
                EmuError::BadRequest(format!(
                    "{} has no upgradeTo product: give targetProductId",
                    product.product_id
                ))
            })?;
        let target = product_of(st, &id)?;
        if target.family != family {
            return Err(EmuError::BadRequest(format!(
                "{id} is a {} product, the resource is {}",
                target.family.as_str(),
                family.as_str()
            )));
        }
        Ok(target)
    };
    let unfreeze = |family: Family| {
        (frozen && !family.is_v1()).then(|| {
            let (activity, body) = freeze_body(family, &instance_id, &instance.order_id, false);
            FollowUp {
                activity: activity.to_owned(),
                body,
                then: None,
            }
        })
    };
    let refresh = |scene: Scene, order: &Order, trial_to_formal: bool| {
        let expire_time = order.expire_time.clone().unwrap_or_default();
        match family {
            Family::License1 => (
                "refreshLicense",
                v2_body(&license::RefreshLicenseRequest {
                    activity: "refreshLicense".to_owned(),
                    order_id: order.order_id.clone(),
                    instance_id: instance_id.clone(),
                    product_id: Some(order.product_id.clone()),
                    expire_time,
                    period_type: order.period.map(|p| p.unit.as_str().to_owned()),
                    period_number: order.period.map(|p| p.number.to_string()),
                    ..license::RefreshLicenseRequest::default()
                }),
            ),
            Family::LicenseCode2 => (
                "refreshLicenseCode",
                v2_body(&license::RefreshLicenseCodeRequest {
                    activity: "refreshLicenseCode".to_owned(),
                    expire_time,
                    license: instance_id.clone(),
                    order_id: order.order_id.clone(),
                    order_line_id: order.order_line_id.clone(),
                    product_id: Some(order.product_id.clone()),
                    scene: scene.as_str().to_owned(),
                    test_flag: None,
                }),
            ),
            Family::SaasV1 => (
                "refreshInstance",
                v2_body(&saas_v1::RefreshInstance {
                    activity: saas_v1::RefreshInstance::ACTIVITY.to_owned(),
                    order_id: order.order_id.clone(),
                    instance_id: instance_id.clone(),
                    product_id: Some(order.product_id.clone()),
                    expire_time,
                    trial_to_formal: trial_to_formal.then(|| "1".to_owned()),
                    period_type: order.period.map(|p| p.unit.as_str().to_owned()),
                    period_number: order.period.map(|p| p.number.to_string()),
                    order_amount: Some(order.amount.clone()),
                    ..saas_v1::RefreshInstance::default()
                }),
            ),
            Family::SaasV2 | Family::OnlineLicense | Family::JointOperation => (
                "refreshInstance",
                v2_body(&saas_v2::RefreshInstance {
                    activity: saas_v2::RefreshInstance::ACTIVITY.to_owned(),
                    scene: scene.as_str().to_owned(),
                    order_id: order.order_id.clone(),
                    order_line_id: order.order_line_id.clone(),
                    instance_id: instance_id.clone(),
                    product_id: Some(order.product_id.clone()),
                    expire_time,
                    test_flag: None,
                }),
            ),
        }
    };

    let (activity, body, then): (&str, serde_json::Value, Option<FollowUp>) = match kind {
        OrderKind::Renew | OrderKind::TrialToFormal => {
            let period = period_product(kind.as_str())?;
            let trial_to_formal = kind == OrderKind::TrialToFormal;
            if trial_to_formal && !instance.trial {
                return Err(EmuError::Conflict(format!(
                    "resource {resource_id} is not a trial"
                )));
            }
            if !trial_to_formal && instance.trial {
                return Err(EmuError::Conflict(format!(
                    "resource {resource_id} is a trial: convert it with trial-to-formal"
                )));
            }
            // A renewal extends the current expiry; a conversion starts a paid period now.
            let from = if trial_to_formal {
                now
            } else {
                instance.expire_ms.unwrap_or(now)
            };
            let expire = period
                .add_to(from, periods)
                .ok_or_else(|| EmuError::BadRequest("expiry out of range".to_owned()))?;
            order.expire_time = format_expire(expire);
            order.period = times(Some(period), periods);
            if let Some(i) = st.instances.get_mut(resource_id) {
                i.expire_ms = Some(expire);
                i.period = Some(period);
                i.trial = false;
                i.status = InstanceStatus::Active;
                i.frozen_ms = None;
                i.release_at_ms = None;
            }
            let scene = if trial_to_formal {
                Scene::TrialToFormal
            } else {
                Scene::Renewal
            };
            if trial_to_formal && family == Family::LicenseCode2 {
                return Err(EmuError::NotSupported(
                    "License code 2.0 has no trial conversion".to_owned(),
                ));
            }
            let (activity, body) = refresh(scene, &order, trial_to_formal);
            (activity, body, unfreeze(family))
        }
        OrderKind::UnsubscribeRenewal => {
            let period = period_product(kind.as_str())?;
            let current = instance.expire_ms.unwrap_or(now);
            let expire = period
                .subtract_from(current, periods)
                .ok_or_else(|| EmuError::BadRequest("expiry out of range".to_owned()))?;
            order.expire_time = format_expire(expire);
            order.amount = amount(&product, periods, true);
            if let Some(i) = st.instances.get_mut(resource_id) {
                i.expire_ms = Some(expire);
            }
            let (activity, body) = refresh(Scene::UnsubscribeRenewalPeriod, &order, false);
            (activity, body, None)
        }
        OrderKind::RenewalChange => {
            if !matches!(family, Family::SaasV2 | Family::JointOperation) {
                return Err(EmuError::NotSupported(format!(
                    "{} has no renewal change (changeInstanceCheck is SaaS V2 only)",
                    family.as_str()
                )));
            }
            period_product(kind.as_str())?;
            let target = target_of(st)?;
            let target_period = target.period.ok_or_else(|| {
                EmuError::BadRequest(format!("{} has no period", target.product_id))
            })?;
            let expire = target_period
                .add_to(instance.expire_ms.unwrap_or(now), periods)
                .ok_or_else(|| EmuError::BadRequest("expiry out of range".to_owned()))?;
            order.product_id.clone_from(&target.product_id);
            order.sku_code.clone_from(&target.sku_code);
            order.linear_value = request.linear_value.or(target.linear_value);
            order.period = times(Some(target_period), periods);
            order.expire_time = format_expire(expire);
            order.amount = amount(&target, periods, false);
            let check = v2_body(&saas_v2::ChangeInstanceCheck {
                activity: saas_v2::ChangeInstanceCheck::ACTIVITY.to_owned(),
                instance_id: instance_id.clone(),
                product_info: Some(JsonOrString::new(ProductInfo {
                    product_id: target.product_id.clone(),
                    sku_code: target.sku_code.clone(),
                    linear_value: order.linear_value.map(|v| Decimal(v.to_string())),
                    product_name: target.name.clone(),
                })),
                test_flag: None,
            });
            let (refresh_activity, refresh_body) = refresh(Scene::RenewalChange, &order, false);
            let then = FollowUp {
                activity: refresh_activity.to_owned(),
                body: refresh_body,
                then: unfreeze(family).map(Box::new),
            };
            ("changeInstanceCheck", check, Some(then))
        }
        OrderKind::Upgrade => {
            if !matches!(
                family,
                Family::SaasV2 | Family::SaasV1 | Family::JointOperation
            ) {
                return Err(EmuError::NotSupported(format!(
                    "{} has no upgrade activity",
                    family.as_str()
                )));
            }
            if frozen {
                return Err(EmuError::Conflict(format!(
                    "resource {resource_id} is frozen: renew it first"
                )));
            }
            let target = match (&request.target_product_id, &product.upgrade_to) {
                (None, None) if request.linear_value.is_some() => product.clone(),
                _ => target_of(st)?,
            };
            order.product_id.clone_from(&target.product_id);
            order.sku_code.clone_from(&target.sku_code);
            order.linear_value = request.linear_value.or(target.linear_value);
            order.amount = amount(&target, 1, false);
            let body = match family {
                Family::SaasV1 => v2_body(&saas_v1::Upgrade {
                    activity: saas_v1::Upgrade::ACTIVITY.to_owned(),
                    instance_id: instance_id.clone(),
                    order_id: order_id.clone(),
                    sku_code: target.sku_code.clone(),
                    product_id: target.product_id.clone(),
                    amount: order.linear_value.map(|v| v.to_string()),
                    ..saas_v1::Upgrade::default()
                }),
                _ => v2_body(&saas_v2::UpgradeInstance {
                    activity: saas_v2::UpgradeInstance::ACTIVITY.to_owned(),
                    instance_id: instance_id.clone(),
                    order_id: order_id.clone(),
                    order_line_id: order_line_id.clone(),
                    test_flag: None,
                }),
            };
            let activity = if family == Family::SaasV1 {
                saas_v1::Upgrade::ACTIVITY
            } else {
                saas_v2::UpgradeInstance::ACTIVITY
            };
            (activity, body, None)
        }
        OrderKind::Unsubscribe => {
            order.amount = amount(&product, 1, true);
            if let Some(i) = st.instances.get_mut(resource_id) {
                i.status = InstanceStatus::Released;
                i.release_at_ms = Some(now);
            }
            let (activity, body) = release_body(
                family,
                &instance_id,
                &instance.order_id,
                Some((&order_id, &order_line_id)),
            );
            (activity, body, None)
        }
        OrderKind::New | OrderKind::OnDemand | OrderKind::Trial => {
            return Err(EmuError::BadRequest("unreachable order kind".to_owned()));
        }
    };
    st.orders.insert(order_id.clone(), order.clone());
    add_job(
        st,
        now,
        family,
        activity,
        resource_id,
        Some(&order_id),
        body,
        then,
    );
    if kind == OrderKind::Unsubscribe {
        kit_release(st, now, resource_id, Some(&order_id));
    }
    Ok(order)
}

/// The order as the query-order API publishes it (openapi.md §5): what the merchant is told.
pub fn order_info(st: &State, settings: &Settings, order: &Order) -> Option<OrderInfo> {
    let instance = st.instances.get(&order.resource_id)?;
    let product = st.products.get(&order.product_id);
    let product_name = product.map_or_else(|| order.product_id.clone(), |p| p.name.clone());
    let extend_params = product
        .map(|p| {
            p.extend_params
                .iter()
                .map(|e| koogallery::model::openapi::ExtendParam {
                    name: e.name.clone(),
                    value: Some(e.value.clone()),
                })
                .collect()
        })
        .unwrap_or_default();
    let created = koogallery::time::from_epoch_millis(order.created_ms)
        .map(koogallery::time::format_expire_time)
        .unwrap_or_default();
    let line = OrderLine {
        order_line_id: order.order_line_id.clone(),
        charging_mode: order.charging_mode.wire().to_owned(),
        period_type: order.period.map(|p| p.unit.as_str().to_owned()),
        period_number: order.period.map(|p| Decimal(p.number.to_string())),
        expire_time: order.expire_time.clone(),
        product_info: Some(vec![OrderProduct {
            product_id: Some(order.product_id.clone()),
            sku_code: Some(order.sku_code.clone()),
            linear_value: order.linear_value.map(|v| Decimal(v.to_string())),
            product_name: Some(product_name),
        }]),
        extend_params: Some(extend_params),
        currency: Some(order.amount.clone()),
        currency_after_discount: Some(order.amount.clone()),
        trial_flag: Some(
            if order.kind == OrderKind::Trial {
                "1"
            } else {
                "0"
            }
            .to_owned(),
        ),
        ..OrderLine::default()
    };
    Some(OrderInfo {
        order_id: order.order_id.clone(),
        order_type: order.order_type.clone(),
        create_time: created,
        order_line: vec![line],
        buyer_info: Some(BuyerInfo {
            customer_id: Some(instance.customer_id.clone()),
            customer_name: Some(instance.customer_name.clone()),
            customer_type: Some(Decimal("0".to_owned())),
            mobile_phone: Some(settings.mobile_phone.clone()),
            email: Some(settings.email.clone()),
            ..BuyerInfo::default()
        }),
        extend_params: Some(Vec::new()),
    })
}
