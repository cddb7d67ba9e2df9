//! The emulator as one server: the open API, the control API (and the sub-routers other
//! modules add) on one listener, and the scheduler that drives the marketplace.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;

use crate::catalog::MerchantKeys;
use crate::clock::{EmuClock, wall_clock_ms};
use crate::marketplace::{Marketplace, Settings};
use crate::openapi::{self, OpenApi};
use crate::state::{Store, StoreError};

/// Merges sub-routers (control, usage, licenses …) into the open API's router, which owns the
/// fallback (the gateway's `APIGW.0101`): each part must define routes only, no fallback.
pub fn compose(open_api: Router, parts: impl IntoIterator<Item = Router>) -> Router {
    parts.into_iter().fold(open_api, Router::merge)
}

/// Every route of the emulator. Add new sub-routers to the list here.
pub fn router(open_api: Arc<OpenApi>, marketplace: Arc<Marketplace>) -> Router {
    let open_api_for_bills = open_api.clone();
    compose(
        openapi::router(open_api),
        [
            crate::control::router(marketplace),
            crate::usage::control_router(open_api_for_bills),
        ],
    )
}

/// How to run the emulator (`koogate emulator serve`).
#[derive(Clone, Default)]
pub struct Config {
    pub listen: Option<SocketAddr>,
    /// The merchant account's AK/SK the open API accepts.
    pub ak: String,
    pub sk: String,
    /// Keys the production interface is called with (basic, kit, license, generic).
    pub keys: MerchantKeys,
    /// Emulated seconds per real second; 0 = the clock moves only when advanced.
    pub time_scale: f64,
    /// SQLite file to persist to; in memory when absent.
    pub state: Option<PathBuf>,
    /// Production URL of the catalog's products.
    pub merchant_url: Option<String>,
    /// The merchant's RSA public key (PEM) for joint-operation `applicationSync`'s
    /// `clientSecret`, for products that name none.
    pub kit_public_key: Option<String>,
}

impl fmt::Debug for Config {
    /// Never prints the SK or the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("ak", &self.ak)
            .field("sk", &"<redacted>")
            .field("keys", &self.keys)
            .field("time_scale", &self.time_scale)
            .field("state", &self.state)
            .field("merchant_url", &self.merchant_url)
            .field(
                "kit_public_key",
                &self.kit_public_key.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(String),
}

/// The emulator's parts, shared with its server.
#[derive(Debug, Clone)]
pub struct Emulator {
    pub openapi: Arc<OpenApi>,
    pub marketplace: Arc<Marketplace>,
}

impl Emulator {
    /// Builds the open API and the marketplace from `config` (resuming `config.state`).
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        if config.ak.is_empty() || config.sk.is_empty() {
            return Err(StartError::Config(
                "the open API needs the merchant account's AK and SK (--ak, --sk)".to_owned(),
            ));
        }
        if !config.time_scale.is_finite() || config.time_scale < 0.0 {
            return Err(StartError::Config(
                "the time scale must be a non-negative number".to_owned(),
            ));
        }
        let mut openapi = OpenApi::new([(config.ak.clone(), config.sk.clone())]);
        if let Some(basic) = &config.keys.basic {
            // The usage push's body signature uses the merchant's basic key.
            openapi = openapi.with_usage_key(basic);
        }
        let openapi = Arc::new(openapi);
        let clock = Arc::new(EmuClock::scaled(wall_clock_ms(), config.time_scale));
        if let Some(pem) = &config.kit_public_key {
            crate::kit::parse_public_key(pem)
                .map_err(|e| StartError::Config(format!("--kit-public-key: {e}")))?;
        }
        let settings = Settings {
            merchant_url: config.merchant_url.clone(),
            keys: config.keys.clone(),
            kit_public_key: config.kit_public_key.clone(),
            ..Settings::default()
        };
        let mut marketplace = Marketplace::new(settings, clock, openapi.clone());
        if let Some(path) = &config.state {
            marketplace = marketplace.with_store(Store::open(path).await?).await?;
        }
        Ok(Self {
            openapi,
            marketplace: Arc::new(marketplace),
        })
    }

    pub fn router(&self) -> Router {
        router(self.openapi.clone(), self.marketplace.clone())
    }
}

/// A running emulator. Dropping it stops the server and the scheduler.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub emulator: Emulator,
    server: tokio::task::JoinHandle<()>,
    scheduler: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (it normally never does).
    pub async fn wait(mut self) {
        let _ = (&mut self.server).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
        self.scheduler.abort();
    }
}

/// Starts the emulator: binds `config.listen` (default `127.0.0.1:8090`; port 0 picks a free
/// one), serves every route, runs the scheduler.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let emulator = Emulator::build(&config).await?;
    let addr = config
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8090)));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Listen(addr, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Listen(addr, e))?;
    let app = emulator.router();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "emulator: server stopped");
        }
    });
    let scheduler = emulator.marketplace.spawn_scheduler();
    Ok(Running {
        addr,
        emulator,
        server,
        scheduler,
    })
}
