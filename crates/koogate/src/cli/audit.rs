//! `koogate audit`: the calls KooGallery made, newest first.

use anyhow::{Context, Result};
use clap::Args;

use crate::config::{Config, ConfigArgs};
use crate::store::Db;
use crate::store::audit::{self, Filter};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Only calls at or after this time (RFC 3339, e.g. 2026-11-30T08:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only calls before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this protocol family (saas_v2, saas_v1).
    #[arg(long)]
    pub family: Option<String>,
    /// Only this activity (newInstance, queryInstance, …).
    #[arg(long)]
    pub activity: Option<String>,
    /// Only calls about this order.
    #[arg(long)]
    pub order_id: Option<String>,
    /// Only calls about this instance.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Only calls answered with this result code (e.g. 000001).
    #[arg(long)]
    pub result_code: Option<String>,
    /// Only calls with this verdict: ok, rejected, unauthenticated, replayed, error.
    #[arg(long)]
    pub verdict: Option<String>,
    /// At most this many rows.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_time(flag: &str, value: Option<&str>) -> Result<Option<i64>> {
    value
        .map(|v| {
            let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .with_context(|| {
                    format!("--{flag} {v:?} is not an RFC 3339 time such as 2026-11-30T08:00:00Z")
                })?;
            Ok(koogallery::time::epoch_millis(t))
        })
        .transpose()
}

fn format_time(ms: i64) -> String {
    koogallery::time::from_epoch_millis(ms)
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

pub async fn run(args: AuditArgs) -> Result<String> {
    let filter = Filter {
        since: parse_time("since", args.since.as_deref())?,
        until: parse_time("until", args.until.as_deref())?,
        family: args.family,
        activity: args.activity,
        order_id: args.order_id,
        instance_id: args.instance_id,
        result_code: args.result_code,
        verdict: args.verdict,
        limit: args.limit,
    };
    let config = Config::load(&args.config)?;
    let db = Db::connect(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the database {}",
            config.redacted_database_url()
        )
    })?;
    let rows = audit::query(&db, &filter).await?;
    if args.json {
        return Ok(rows
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .collect::<Vec<_>>()
            .join("\n"));
    }
    let mut out = format!(
        "{:<25} {:<8} {:<22} {:<6} {:<15} {:>9}  {:<24} {}\n",
        "time", "family", "activity", "code", "verdict", "latency", "order", "instance"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<25} {:<8} {:<22} {:<6} {:<15} {:>7}µs  {:<24} {}{}\n",
            format_time(r.at),
            r.family,
            r.activity.as_deref().unwrap_or("-"),
            r.result_code,
            r.verdict,
            r.latency_us,
            r.order_id.as_deref().unwrap_or("-"),
            r.instance_id.as_deref().unwrap_or("-"),
            if r.test { " (test)" } else { "" }
        ));
    }
    out.push_str(&format!("{} call(s)", rows.len()));
    Ok(out)
}
