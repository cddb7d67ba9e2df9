//! `koogate webhooks`: endpoints, deliveries, replay and test events — the same operations as
//! the REST API (`/api/v1/webhook-…`), on the configured database.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use crate::api::{DeliveryView, EndpointView};
use crate::config::ConfigArgs;
use crate::store::webhooks as store;

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    pub command: WebhooksCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint; prints its id and secret (the only time the secret is shown).
    Add {
        #[command(flatten)]
        config: ConfigArgs,
        /// Where to POST events (http:// or https://).
        url: String,
        /// whsec_… (generated when absent).
        #[arg(long)]
        secret: Option<String>,
        /// Event types to send, comma-separated (default: all). See docs/integration.md.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long)]
        json: bool,
    },
    /// List endpoints.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long)]
        json: bool,
    },
    /// List deliveries, newest first.
    Deliveries {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        instance_id: Option<String>,
        /// pending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Send a delivery again (a running server picks it up).
    Replay {
        #[command(flatten)]
        config: ConfigArgs,
        delivery_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a webhook.test event to an endpoint now and show the outcome.
    Test {
        #[command(flatten)]
        config: ConfigArgs,
        endpoint_id: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: WebhooksArgs) -> Result<String> {
    match args.command {
        WebhooksCommand::Add {
            config,
            url,
            secret,
            events,
            json,
        } => {
            let gw = super::serve::gateway_for_cli(&config).await?;
            let (endpoint, secret) =
                crate::ops::add_endpoint(&gw, &url, secret.as_deref(), events).await?;
            let view = EndpointView::from_endpoint(endpoint, Some(secret));
            if json {
                return Ok(serde_json::to_string_pretty(&view)?);
            }
            Ok(format!(
                "endpoint {} added for {}\nevents: {}\nsecret: {}  (shown only now; verify signatures with it)",
                view.id,
                view.url,
                view.events.join(","),
                view.secret.as_deref().unwrap_or_default()
            ))
        }
        WebhooksCommand::List { config, json } => {
            let gw = super::serve::gateway_for_cli(&config).await?;
            let mut conn = gw.db.pool.acquire().await?;
            let views: Vec<EndpointView> = store::endpoints(&mut conn)
                .await?
                .into_iter()
                .map(|e| EndpointView::from_endpoint(e, None))
                .collect();
            if json {
                return Ok(serde_json::to_string_pretty(&views)?);
            }
            let mut out = format!(
                "{:<36} {:<8} {:<8} {:<40} {}",
                "ENDPOINT", "SOURCE", "ENABLED", "URL", "EVENTS"
            );
            for v in &views {
                out.push_str(&format!(
                    "\n{:<36} {:<8} {:<8} {:<40} {}",
                    v.id,
                    v.source,
                    v.enabled,
                    v.url,
                    v.events.join(",")
                ));
            }
            Ok(out)
        }
        WebhooksCommand::Deliveries {
            config,
            endpoint,
            instance_id,
            status,
            limit,
            json,
        } => {
            if let Some(s) = status.as_deref()
                && !matches!(s, "pending" | "delivered" | "failed")
            {
                bail!("--status must be pending, delivered or failed, got {s:?}");
            }
            let gw = super::serve::gateway_for_cli(&config).await?;
            let mut conn = gw.db.pool.acquire().await?;
            let filter = store::DeliveryFilter {
                endpoint_id: endpoint,
                instance_id,
                status,
                before: None,
                limit,
            };
            let views: Vec<DeliveryView> = store::deliveries(&mut conn, &filter)
                .await?
                .into_iter()
                .map(|d| DeliveryView::from_delivery(d, None))
                .collect();
            if json {
                return Ok(serde_json::to_string_pretty(&views)?);
            }
            let mut out = format!(
                "{:<36} {:<30} {:<10} {:>8} {:<26} {}",
                "DELIVERY", "EVENT", "STATUS", "ATTEMPTS", "CREATED", "LAST ERROR"
            );
            for v in &views {
                out.push_str(&format!(
                    "\n{:<36} {:<30} {:<10} {:>8} {:<26} {}",
                    v.id,
                    v.event_type,
                    v.status,
                    v.attempts,
                    v.created_at,
                    v.last_error.as_deref().unwrap_or("-")
                ));
            }
            Ok(out)
        }
        WebhooksCommand::Replay {
            config,
            delivery_id,
            json,
        } => {
            let gw = super::serve::gateway_for_cli(&config).await?;
            crate::ops::replay(&gw, &delivery_id).await?;
            let mut conn = gw.db.pool.acquire().await?;
            let delivery = store::delivery(&mut conn, &delivery_id).await?;
            let view = delivery.map(|d| DeliveryView::from_delivery(d, None));
            if json {
                return Ok(serde_json::to_string_pretty(&view)?);
            }
            Ok(format!(
                "delivery {delivery_id} queued again; a running koogate sends it"
            ))
        }
        WebhooksCommand::Test {
            config,
            endpoint_id,
            json,
        } => {
            let loaded = crate::config::Config::load(&config)?;
            let gw = super::serve::gateway_for_cli(&config).await?;
            let delivery = crate::ops::send_test(&gw, &endpoint_id).await?;
            let deliverer = crate::webhooks::Deliverer {
                gateway: gw.clone(),
                client: crate::webhooks::http_client()?,
                schedule: loaded.webhooks.schedule,
                worker_id: format!("cli-{}", std::process::id()),
            };
            let now = gw.clock.now_ms();
            if let Some(claimed) = store::claim_one(
                &gw.db,
                &delivery.id,
                &deliverer.worker_id,
                now,
                deliverer.lease_ms(),
            )
            .await?
            {
                deliverer.deliver(claimed).await;
            }
            let mut conn = gw.db.pool.acquire().await?;
            let attempts = store::attempts(&mut conn, &delivery.id).await?;
            let delivery = store::delivery(&mut conn, &delivery.id).await?;
            let view = delivery.map(|d| DeliveryView::from_delivery(d, Some(attempts)));
            if json {
                return Ok(serde_json::to_string_pretty(&view)?);
            }
            let Some(view) = view else {
                bail!("the test delivery disappeared");
            };
            let last = view.attempt_log.as_ref().and_then(|a| a.last());
            match (view.status.as_str(), last) {
                ("delivered", Some(a)) => Ok(format!(
                    "delivered: HTTP {} in {} ms (delivery {})",
                    a.status_code.unwrap_or_default(),
                    a.latency_ms,
                    view.id
                )),
                (_, Some(a)) => bail!(
                    "not delivered: {} (delivery {} will be retried by a running koogate)",
                    a.error.as_deref().unwrap_or("unknown error"),
                    view.id
                ),
                (_, None) => Ok(format!(
                    "queued as delivery {}; a running koogate is sending it",
                    view.id
                )),
            }
        }
    }
}
