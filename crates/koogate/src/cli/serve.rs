//! `koogate serve`, `koogate migrate`, `koogate check-config`.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::app::{Gateway, Keys};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigArgs, FirstStart, LogFormat};
use crate::jobs::Runner;
use crate::openapi::OpenApiClient;
use crate::seal::Sealer;
use crate::store::{Db, nonces};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl Gateway {
    /// Builds the production interface from a prepared configuration (keys filled in).
    pub fn from_config(config: &Config, db: Db, clock: Arc<dyn Clock>) -> Result<Gateway> {
        let key = |k: &Option<secrecy::SecretString>, name: &str| -> Result<String> {
            Ok(k.as_ref()
                .with_context(|| format!("the {name} key is not set"))?
                .expose_secret()
                .to_owned())
        };
        let keys = Keys {
            basic: key(&config.keys.basic, "basic")?,
            kit: key(&config.keys.kit, "kit")?,
            license: key(&config.keys.license, "license")?,
            generic: key(&config.keys.generic, "generic")?,
            v1: match &config.keys.v1 {
                Some(v1) => v1.expose_secret().to_owned(),
                None => key(&config.keys.basic, "basic")?,
            },
        };
        let data_key = config
            .data_key
            .as_ref()
            .context("the data key is not set")?;
        Ok(Gateway {
            v1_cipher: koogallery::crypto::FieldCipher::new(&keys.v1, config.v1_key_size),
            v2_cipher: config
                .v2_encrypt_credentials
                .then(|| koogallery::crypto::FieldCipher::new(&keys.basic, config.v1_key_size)),
            keys,
            db,
            clock,
            window_ms: config.time_window_ms,
            v1_window_ms: config.v1_time_window_ms,
            sealer: Sealer::new(data_key.expose_secret()),
            templates: config.provisioner.clone(),
            openapi: openapi_client(config)?.map(Arc::new),
            provisioners: config.provisioners.clone(),
            http: crate::webhooks::http_client()?,
            jobs_ready: Arc::new(tokio::sync::Notify::new()),
            metering: config.metering.clone(),
        })
    }
}

/// The gateway an operator command works with: the configured database (migrated) and keys.
pub async fn gateway_for_cli(args: &crate::config::ConfigArgs) -> Result<Arc<Gateway>> {
    let mut config = Config::load(args)?;
    config.prepare_data_dir()?;
    let db = Db::open(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the database {}",
            config.redacted_database_url()
        )
    })?;
    Ok(Arc::new(Gateway::from_config(
        &config,
        db,
        Arc::new(SystemClock),
    )?))
}

/// The open-API client, when account AK/SK are configured.
pub fn openapi_client(config: &Config) -> Result<Option<OpenApiClient>> {
    match (&config.ak, &config.sk) {
        (Some(ak), Some(sk)) => Ok(Some(
            OpenApiClient::new(&config.openapi_url, ak.expose_secret(), sk.expose_secret())
                .context("KOOGATE_OPENAPI_URL")?,
        )),
        _ => Ok(None),
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KOOGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Everything `serve` runs, for the binary and for tests: the HTTP server, the job workers and
/// the nonce purge, until `shutdown` turns true.
pub async fn run_server(
    config: Config,
    db: Db,
    listener: tokio::net::TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = Arc::new(Gateway::from_config(&config, db.clone(), clock.clone())?);
    let tls = match &config.tls {
        Some(t) => Some(crate::http::tls_acceptor(&t.cert, &t.key)?),
        None => None,
    };
    if gateway.openapi.is_none() {
        // Said at every start, not only in the docs: this refuses real orders.
        tracing::warn!(
            "account AK/SK are not configured (KOOGATE_AK, KOOGATE_SK): orders cannot be read, so \
             the second line of a multi-line V2 order is answered 000005 until they are, and \
             KooGallery refunds it after its retries (about 3 hours)"
        );
    }
    if db.backend == crate::store::Backend::Sqlite {
        // SQLite serves one node: any lease left in the database belongs to a process that died.
        // Not fatal: the leases expire on their own, and /readyz reports the database.
        match crate::store::jobs::release_all_leases(&db).await {
            Ok(0) => {}
            Ok(freed) => tracing::info!(
                jobs = freed,
                "resuming jobs interrupted by the previous run"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot free the leases of the previous run; they expire on their own")
            }
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    let node = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..config.workers.max(1) {
        let runner = Runner {
            gateway: gateway.clone(),
            worker_id: format!("{}-{i}", &node[..12]),
            lease_ms: i64::try_from(config.job_lease_ms).unwrap_or(i64::MAX),
        };
        tasks.spawn(runner.run(shutdown.clone()));
    }
    let purge_db = db.clone();
    let mut purge_shutdown = shutdown.clone();
    tasks.spawn(async move {
        loop {
            if let Err(e) = nonces::purge(&purge_db, clock.now_ms()).await {
                tracing::warn!(error = %e, "cannot purge expired nonces");
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                _ = purge_shutdown.changed() => break,
            }
        }
    });
    // Not fatal, like the lease release above: the server starts with the database down and
    // /readyz says so; the endpoints already in the database keep receiving events.
    if let Err(e) =
        crate::webhooks::sync_config_endpoints(&gateway, &config.webhooks.endpoints).await
    {
        tracing::error!(error = %e, "cannot record the webhook endpoints of the config file; restart once the database is back");
    }
    let client = crate::webhooks::http_client()?;
    for i in 0..config.workers.max(1) {
        let deliverer = crate::webhooks::Deliverer {
            gateway: gateway.clone(),
            client: client.clone(),
            schedule: config.webhooks.schedule,
            worker_id: format!("{}-w{i}", &node[..12]),
        };
        tasks.spawn(deliverer.run(shutdown.clone()));
    }
    if db.backend == crate::store::Backend::Sqlite {
        // As for jobs: a push lease left in a single-node database belongs to a dead process.
        if let Err(e) = crate::store::usage::release_all_leases(&db).await {
            tracing::warn!(error = %e, "cannot free the usage-push leases of the previous run");
        }
    }
    let scheduler = crate::metering::push::Scheduler {
        gateway: gateway.clone(),
    };
    tasks.spawn(scheduler.run(shutdown.clone()));
    let app = crate::http::router(
        gateway,
        &config.produce_path,
        config.max_body_bytes,
        config.admin_token.clone(),
    );
    crate::http::serve(listener, app, tls, shutdown).await;
    while tasks.join_next().await.is_some() {}
    Ok(())
}

fn banner(config: &Config, local: std::net::SocketAddr, first: &FirstStart) -> String {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut out = format!(
        "koogate {} listening on {scheme}://{local}\nproduction interface: {scheme}://{local}{} (POST = SaaS V2, GET = SaaS V1)\ndatabase: {}\n",
        env!("CARGO_PKG_VERSION"),
        config.produce_path,
        config.redacted_database_url()
    );
    if !first.generated.is_empty() {
        out.push_str(&format!(
            "\nFirst start: generated {} in {}.\nBind these keys to the production address in the seller console (卖家中心 > 应用工具 > 密钥管理):\n",
            first.generated.join(", "),
            config.data_dir.display()
        ));
        for (name, key) in [
            ("basic", &config.keys.basic),
            ("kit", &config.keys.kit),
            ("license", &config.keys.license),
            ("generic", &config.keys.generic),
        ] {
            if first.generated.iter().any(|g| g.starts_with(name))
                && let Some(k) = key
            {
                out.push_str(&format!("  {name:<8} {}\n", k.expose_secret()));
            }
        }
        out.push_str("They are shown only this once; they stay in the data directory (keys.toml, mode 0600).\n");
    }
    for w in config.warnings() {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

pub async fn serve(args: ServeArgs) -> Result<String> {
    let mut config = Config::load(&args.config)?;
    init_tracing(config.log_format);
    // The database first: keys are generated only for a database that holds nothing sealed
    // with them, never silently for existing data.
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    }
    let db = Db::open(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the database {}",
            config.redacted_database_url()
        )
    })?;
    let first = if db.holds_sealed_data().await? {
        config.keep_existing_keys()?;
        FirstStart::default()
    } else {
        config.prepare_data_dir()?
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    print!("{}", banner(&config, local, &first));
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    run_server(config, db, listener, shutdown).await?;
    Ok(String::new())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn migrate(args: ServeArgs) -> Result<String> {
    let config = Config::load(&args.config)?;
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    }
    let db = Db::connect(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the database {}",
            config.redacted_database_url()
        )
    })?;
    db.migrate().await?;
    Ok(format!(
        "migrations applied to {}",
        config.redacted_database_url()
    ))
}

pub fn check_config(args: ServeArgs) -> Result<String> {
    let mut config = Config::load(&args.config)?;
    config.read_data_dir()?;
    Ok(config.explain())
}
