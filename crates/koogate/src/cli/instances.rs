//! `koogate instances`: list and inspect instances, complete or fail a provisioning — the same
//! operations as the REST API (`/api/v1/instances`), on the configured database.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use crate::api::{AppInfoView, InstanceView};
use crate::config::ConfigArgs;
use crate::domain::instance::State;
use crate::store::instances;

#[derive(Debug, Args)]
pub struct InstancesArgs {
    #[command(subcommand)]
    pub command: InstancesCommand,
}

#[derive(Debug, Subcommand)]
pub enum InstancesCommand {
    /// List instances, newest first.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only instances in this state: provisioning, active, frozen, released, failed.
        #[arg(long)]
        state: Option<String>,
        /// Only instances of this order.
        #[arg(long)]
        order_id: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        /// JSON (as the REST API answers) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one instance with its history.
    Show {
        #[command(flatten)]
        config: ConfigArgs,
        instance_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Complete a provisioning the application accepted: the instance becomes active and
    /// KooGallery's queryInstance returns this access information.
    Complete {
        #[command(flatten)]
        config: ConfigArgs,
        instance_id: String,
        /// The access information as JSON, as KooGallery shows it:
        /// '{"frontEndUrl":"https://…","adminUrl":…,"userName":…,"password":…,"memo":…}'.
        /// `-` reads it from stdin (keeps a password out of the process list).
        #[arg(long, value_name = "JSON")]
        app_info: String,
        #[arg(long)]
        json: bool,
    },
    /// Fail a provisioning: KooGallery's calls for it are answered with CODE, so the order
    /// fails and is refunded.
    Fail {
        #[command(flatten)]
        config: ConfigArgs,
        instance_id: String,
        /// Why (shown in the instance's history).
        #[arg(long)]
        message: String,
        /// 000100–000107 (default 000104, product internal service error).
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: InstancesArgs) -> Result<String> {
    match args.command {
        InstancesCommand::List {
            config,
            state,
            order_id,
            limit,
            json,
        } => {
            let state = state
                .map(|s| {
                    State::parse(&s).with_context(|| {
                        format!("--state must be provisioning, active, frozen, released or failed, got {s:?}")
                    })
                })
                .transpose()?;
            let gw = super::serve::gateway_for_cli(&config).await?;
            let mut conn = gw.db.pool.acquire().await?;
            let filter = instances::Filter {
                state,
                order_id,
                before: None,
                limit,
            };
            let items: Vec<InstanceView> = instances::list(&mut conn, &filter)
                .await?
                .into_iter()
                .map(|i| InstanceView::from_instance(i, None))
                .collect();
            if json {
                return Ok(serde_json::to_string_pretty(&items)?);
            }
            let mut out = format!(
                "{:<38} {:<13} {:<24} {:<10} {}",
                "INSTANCE", "STATE", "ORDER", "CHARGING", "EXPIRES"
            );
            for i in &items {
                out.push_str(&format!(
                    "\n{:<38} {:<13} {:<24} {:<10} {}",
                    i.instance_id,
                    i.state,
                    i.order_id,
                    i.charging_mode.as_deref().unwrap_or("-"),
                    i.expires_at.as_deref().unwrap_or("-")
                ));
            }
            Ok(out)
        }
        InstancesCommand::Show {
            config,
            instance_id,
            json,
        } => {
            let gw = super::serve::gateway_for_cli(&config).await?;
            let (inst, history) = crate::ops::instance(&gw, &instance_id).await?;
            let view = InstanceView::from_instance(inst, Some(history));
            if json {
                return Ok(serde_json::to_string_pretty(&view)?);
            }
            Ok(describe(&view))
        }
        InstancesCommand::Complete {
            config,
            instance_id,
            app_info,
            json,
        } => {
            let text = if app_info == "-" {
                let mut buf = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)
                    .context("cannot read --app-info from stdin")?;
                buf
            } else {
                app_info
            };
            let app: AppInfoView = serde_json::from_str(&text).context(
                "--app-info must be a JSON object such as {\"frontEndUrl\":\"https://…\"}",
            )?;
            let gw = super::serve::gateway_for_cli(&config).await?;
            let inst = crate::ops::complete(&gw, &instance_id, &app.into()).await?;
            let view = InstanceView::from_instance(inst, None);
            if json {
                return Ok(serde_json::to_string_pretty(&view)?);
            }
            Ok(format!("instance {} is {}", view.instance_id, view.state))
        }
        InstancesCommand::Fail {
            config,
            instance_id,
            message,
            code,
            json,
        } => {
            let gw = super::serve::gateway_for_cli(&config).await?;
            let inst = crate::ops::fail(&gw, &instance_id, code.as_deref(), &message).await?;
            let view = InstanceView::from_instance(inst, None);
            if json {
                return Ok(serde_json::to_string_pretty(&view)?);
            }
            Ok(format!(
                "instance {} is {} (KooGallery is answered {})",
                view.instance_id,
                view.state,
                view.failure_code.as_deref().unwrap_or("-")
            ))
        }
    }
}

fn describe(v: &InstanceView) -> String {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".to_owned());
    let mut out = format!(
        "instance     {}\nstate        {}\nprotocol     {}\norder        {} / {}\nproduct      {} (sku {}, quantity {})\ncharging     {}\ncustomer     {}\ntrial        {}\nexpires      {}\ncreated      {}\nupdated      {}",
        v.instance_id,
        v.state,
        v.protocol,
        v.order_id,
        opt(&v.order_line_id),
        opt(&v.product_id),
        opt(&v.sku_code),
        opt(&v.quantity),
        opt(&v.charging_mode),
        opt(&v.customer_id),
        v.trial,
        opt(&v.expires_at),
        v.created_at,
        v.updated_at
    );
    if let Some(code) = &v.failure_code {
        out.push_str(&format!(
            "\nfailure      {code}: {}",
            opt(&v.failure_message)
        ));
    }
    out.push_str("\nhistory:");
    for e in v.history.iter().flatten() {
        out.push_str(&format!(
            "\n  {}  {:<22} {} -> {}{}",
            e.at,
            e.kind,
            e.from_state.as_deref().unwrap_or("-"),
            e.state,
            e.order_id
                .as_deref()
                .map(|o| format!("  (order {o})"))
                .unwrap_or_default()
        ));
    }
    out
}
