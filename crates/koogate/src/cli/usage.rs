//! `koogate usage`: record usage from scripts, report recorded vs pushed vs accepted vs rejected
//! usage per window, push now, backfill, and measure ingestion (docs/metering.md).

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::api::usage::{ReportLine, WindowView};
use crate::app::Gateway;
use crate::config::ConfigArgs;
use crate::metering::ingest::{self, IngestReport};
use crate::metering::{self, MAX_AGE_MS, parse_time, push};
use crate::store::usage::{self as store, Filter};

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(subcommand)]
    pub command: UsageCommand,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Record usage: one event from the flags, or a batch (JSON array or NDJSON) from --file.
    Record {
        #[command(flatten)]
        config: ConfigArgs,
        /// The on-demand instance.
        #[arg(long, required_unless_present = "file")]
        instance: Option<String>,
        /// Decimal quantity, > 0, at most 4 decimals.
        #[arg(long, required_unless_present = "file")]
        quantity: Option<String>,
        /// When the usage happened: RFC 3339 or epoch ms [default: now].
        #[arg(long)]
        at: Option<String>,
        /// Idempotency key [default: a new UUID: the event is never de-duplicated].
        #[arg(long)]
        key: Option<String>,
        /// The use-until-exhausted package instance deducted.
        #[arg(long)]
        pkg: Option<String>,
        /// Events as a JSON array or NDJSON; `-` reads stdin.
        #[arg(long, conflicts_with_all = ["instance", "quantity", "at", "key", "pkg"])]
        file: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Recorded, pushed, accepted and rejected usage per window.
    Report {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long)]
        instance: Option<String>,
        /// Windows starting at or after this (RFC 3339 or epoch ms).
        #[arg(long)]
        from: Option<String>,
        /// Windows starting before this (RFC 3339 or epoch ms).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Usage windows one by one, with their serial, status and rejection reason.
    Windows {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long)]
        instance: Option<String>,
        /// open, sealed, accepted, rejected or expired.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Push every sealed window now (retry delays ignored), oldest first.
    Push {
        #[command(flatten)]
        config: ConfigArgs,
        /// Required: push now rather than at the scheduler's next pass.
        #[arg(long, required = true)]
        now: bool,
        #[arg(long)]
        json: bool,
    },
    /// Push again the accepted windows of a period (within 21 days) with their serials, so that
    /// KooGallery gets any record it is missing and ignores the ones it has; then every sealed one.
    Backfill {
        #[command(flatten)]
        config: ConfigArgs,
        /// [default: 21 days ago]
        #[arg(long)]
        from: Option<String>,
        /// [default: now]
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Measure ingestion throughput (events/s) and memory on a scratch database, with a
    /// baseline (parsing the same batches without storing them) measured in the same run.
    Bench(BenchArgs),
}

pub async fn run(args: UsageArgs) -> Result<String> {
    match args.command {
        UsageCommand::Record {
            config,
            instance,
            quantity,
            at,
            key,
            pkg,
            file,
            json,
        } => {
            let gw = super::serve::gateway_for_cli(&config).await?;
            let body = match file.as_deref() {
                Some("-") => {
                    let mut b = Vec::new();
                    std::io::stdin().read_to_end(&mut b)?;
                    b
                }
                Some(path) => std::fs::read(path).with_context(|| format!("cannot read {path}"))?,
                None => {
                    let at = match at {
                        Some(t) => parse_time(&t).map_err(anyhow::Error::msg)?,
                        None => gw.clock.now_ms(),
                    };
                    serde_json::to_vec(&serde_json::json!([{
                        "instance_id": instance,
                        "quantity": quantity,
                        "occurred_at": at,
                        "idempotency_key": key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                        "relate_pkg_instance": pkg,
                    }]))?
                }
            };
            let events = ingest::parse_batch(&body).map_err(anyhow::Error::msg)?;
            let report = ingest::ingest(&gw.db, &gw.metering, events, gw.clock.now_ms()).await?;
            if json {
                return Ok(serde_json::to_string_pretty(&report)?);
            }
            let text = describe_ingest(&report);
            if report.accepted + report.duplicates == 0 && !report.rejected.is_empty() {
                bail!("{text}");
            }
            Ok(text)
        }
        UsageCommand::Report {
            config,
            instance,
            from,
            to,
            json,
        } => {
            let gw = super::serve::gateway_for_cli(&config).await?;
            let filter = filter(instance, None, from, to, 100_000)?;
            let mut conn = gw.db.pool.acquire().await?;
            let lines: Vec<ReportLine> = store::report(&mut conn, &filter)
                .await?
                .into_iter()
                .map(ReportLine::from)
                .collect();
            if json {
                return Ok(serde_json::to_string_pretty(&lines)?);
            }
            let mut out = format!(
                "{:<21} {:>7} {:>8} {:>14} {:>14} {:>14} {:>14} {:>14}",
                "WINDOW",
                "WINDOWS",
                "EVENTS",
                "RECORDED",
                "PUSHED",
                "ACCEPTED",
                "REJECTED",
                "PENDING"
            );
            for l in &lines {
                out.push_str(&format!(
                    "\n{:<21} {:>7} {:>8} {:>14} {:>14} {:>14} {:>14} {:>14}",
                    l.window_start,
                    l.windows,
                    l.events,
                    l.recorded,
                    l.pushed,
                    l.accepted,
                    l.rejected,
                    l.pending
                ));
            }
            Ok(out)
        }
        UsageCommand::Windows {
            config,
            instance,
            status,
            from,
            to,
            limit,
            json,
        } => {
            let gw = super::serve::gateway_for_cli(&config).await?;
            if let Some(s) = status.as_deref()
                && !matches!(s, "open" | "sealed" | "accepted" | "rejected" | "expired")
            {
                bail!("--status must be open, sealed, accepted, rejected or expired, got {s:?}");
            }
            let filter = filter(instance, status, from, to, limit)?;
            let mut conn = gw.db.pool.acquire().await?;
            let windows: Vec<WindowView> = store::buckets(&mut conn, &filter)
                .await?
                .into_iter()
                .map(WindowView::from)
                .collect();
            if json {
                return Ok(serde_json::to_string_pretty(&windows)?);
            }
            let mut out = format!(
                "{:<38} {:<21} {:>14} {:<9} {:>8}  {}",
                "INSTANCE", "WINDOW", "USAGE", "STATUS", "ATTEMPTS", "ERROR"
            );
            for w in &windows {
                out.push_str(&format!(
                    "\n{:<38} {:<21} {:>14} {:<9} {:>8}  {}",
                    w.instance_id,
                    w.window_start,
                    w.usage_value,
                    w.status,
                    w.attempts,
                    w.error.as_deref().unwrap_or("")
                ));
            }
            Ok(out)
        }
        UsageCommand::Push { config, now, json } => {
            debug_assert!(now);
            let gw = super::serve::gateway_for_cli(&config).await?;
            let at = gw.clock.now_ms();
            store::make_due(&gw.db, at).await?;
            let summary = push_with_bar(&gw, at, json).await?;
            finish(summary, json)
        }
        UsageCommand::Backfill {
            config,
            from,
            to,
            json,
        } => {
            let gw = super::serve::gateway_for_cli(&config).await?;
            let at = gw.clock.now_ms();
            let from = match from {
                Some(t) => parse_time(&t).map_err(anyhow::Error::msg)?,
                None => at - MAX_AGE_MS,
            }
            .max(at - MAX_AGE_MS);
            let to = match to {
                Some(t) => parse_time(&t).map_err(anyhow::Error::msg)?,
                None => at,
            };
            store::reopen_accepted(&gw.db, from, to, at).await?;
            store::make_due(&gw.db, at).await?;
            let summary = push_with_bar(&gw, at, json).await?;
            finish(summary, json)
        }
        UsageCommand::Bench(args) => bench(args).await,
    }
}

fn filter(
    instance_id: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: i64,
) -> Result<Filter> {
    let time = |v: Option<String>| {
        v.map(|t| parse_time(&t).map_err(anyhow::Error::msg))
            .transpose()
    };
    Ok(Filter {
        instance_id,
        status,
        from: time(from)?,
        to: time(to)?,
        limit,
    })
}

fn describe_ingest(r: &IngestReport) -> String {
    let mut out = format!(
        "received {}, accepted {}, duplicates {}, late {}, rejected {}",
        r.received,
        r.accepted,
        r.duplicates,
        r.late,
        r.rejected.len()
    );
    for x in &r.rejected {
        out.push_str(&format!(
            "\n  #{} {}: {}",
            x.index,
            x.idempotency_key.as_deref().unwrap_or("-"),
            x.reason
        ));
    }
    out
}

/// One push pass with a progress bar on stderr (when it is a terminal and not --json).
async fn push_with_bar(gw: &Gateway, now: i64, json: bool) -> Result<push::PushSummary> {
    use std::io::IsTerminal as _;
    let total = store::due_count(&gw.db, now).await?;
    let bar = if !json && std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(
            Some(u64::try_from(total).unwrap_or(0)),
            ProgressDrawTarget::stderr(),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} windows {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let tick = bar.clone();
    let summary = push::push_due(gw, now, &move |n| tick.inc(n as u64)).await?;
    bar.finish_and_clear();
    Ok(summary)
}

fn finish(s: push::PushSummary, json: bool) -> Result<String> {
    if json {
        return Ok(serde_json::to_string_pretty(&s)?);
    }
    if s.no_client {
        bail!(
            "no account AK/SK is configured (KOOGATE_AK/KOOGATE_SK): usage cannot be pushed; {} windows sealed",
            s.sealed
        );
    }
    let mut out = format!(
        "sealed {}, calls {}, accepted {}, rejected {}, expired {}, retrying {}",
        s.sealed, s.calls, s.accepted, s.rejected, s.expired, s.retrying
    );
    if let Some(e) = &s.last_error {
        out.push_str(&format!("\nlast error: {e}"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Benchmark

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Database to measure: sqlite://… or postgres://… [default: a scratch SQLite file, with
    /// the server's settings]. A PostgreSQL database should be empty and dedicated to the run.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Length of the measured run (after the baseline).
    #[arg(long, default_value = "10", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Events per ingestion call.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch: u64,
    /// On-demand instances the events are spread over.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub instances: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    backend: String,
    batch: u64,
    instances: u64,
    seconds: f64,
    events: u64,
    events_per_sec: f64,
    /// Per batch, milliseconds: median and 99th percentile.
    batch_p50_ms: f64,
    batch_p99_ms: f64,
    baseline_events_per_sec: f64,
    ratio_to_baseline: f64,
    rss_start_kib: u64,
    rss_peak_kib: u64,
    rss_end_kib: u64,
    /// Exact check: the stored total equals the total sent.
    total_matches: bool,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A batch body: NDJSON-free JSON array of `batch` events with fresh keys.
fn bench_body(run: &str, seq: &mut u64, batch: u64, instances: u64, now: i64) -> Vec<u8> {
    let mut body = Vec::with_capacity(usize::try_from(batch).unwrap_or(0) * 130);
    body.push(b'[');
    for i in 0..batch {
        if i > 0 {
            body.push(b',');
        }
        *seq += 1;
        let inst = *seq % instances;
        // Quantities 0.0001 to 9.9999; times within the last 50 minutes (current windows).
        let q = format!("{}.{:04}", *seq % 10, 1 + (*seq * 7) % 9_999);
        let at = now - i64::try_from(*seq % 3_000_000).unwrap_or(0);
        body.extend_from_slice(
            format!(
                r#"{{"instance_id":"{run}-{inst}","quantity":"{q}","occurred_at":{at},"idempotency_key":"{run}-{}"}}"#,
                *seq
            )
            .as_bytes(),
        );
    }
    body.push(b']');
    body
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn bench(args: BenchArgs) -> Result<String> {
    let scratch = std::env::temp_dir().join(format!(
        "koogate-usage-bench-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&scratch)
                .with_context(|| format!("cannot create {}", scratch.display()))?;
            format!("sqlite://{}/bench.db", scratch.display())
        }
    };
    let result = bench_on(&args, &url).await;
    if args.database_url.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

async fn bench_on(args: &BenchArgs, url: &str) -> Result<String> {
    let db = crate::store::Db::open(url)
        .await
        .context("cannot open the benchmark database")?;
    let settings = metering::Settings::default();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    {
        let mut tx = db.begin().await?;
        for i in 0..args.instances {
            let id = format!("{run}-{i}");
            let new = crate::store::instances::NewInstance {
                instance_id: id.clone(),
                create_key: format!("bench|{id}"),
                protocol: "saas_v2",
                order_id: format!("BENCH{run}"),
                charging_mode: Some("ON_DEMAND".to_owned()),
                ..Default::default()
            };
            crate::store::instances::create_if_absent(&mut tx, &new, now - 3_600_000).await?;
        }
        tx.commit().await?;
    }
    let rss_start = rss_kib();
    let peak = Arc::new(AtomicU64::new(rss_start));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let duration = Duration::from_secs(args.seconds);
    // Baseline: parsing the same batches, nothing stored.
    let mut seq = 0u64;
    let mut base_events = 0u64;
    let mut base_time = Duration::ZERO;
    let base_end = Instant::now() + duration.min(Duration::from_secs(3));
    while Instant::now() < base_end {
        let body = bench_body(&run, &mut seq, args.batch, args.instances, now);
        let t = Instant::now();
        let events = ingest::parse_batch(&body).map_err(anyhow::Error::msg)?;
        base_time += t.elapsed();
        base_events += events.len() as u64;
    }
    // The measured run: parse + validate + store, one transaction per batch.
    let mut seq = 1_000_000_000u64;
    let mut events = 0u64;
    let mut busy = Duration::ZERO;
    let mut batches = Vec::new();
    let mut sent_total = 0i64;
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let body = bench_body(&run, &mut seq, args.batch, args.instances, now);
        let t = Instant::now();
        let parsed = ingest::parse_batch(&body).map_err(anyhow::Error::msg)?;
        let at = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let report = ingest::ingest(&db, &settings, parsed, at).await?;
        let took = t.elapsed();
        busy += took;
        batches.push(took.as_secs_f64() * 1000.0);
        events += report.accepted as u64;
        if !report.rejected.is_empty() {
            bail!(
                "the benchmark's events were refused: {}",
                report.rejected[0].reason
            );
        }
        for e in ingest::parse_batch(&body)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .flatten()
        {
            if let Some(q) = e.quantity {
                let text = match q {
                    ingest::TextOrNumber::Text(t) => t,
                    ingest::TextOrNumber::Number(n) => n.to_string(),
                };
                sent_total += metering::parse_quantity(&text).unwrap_or(0);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let stored: i64 = {
        use sqlx::Row as _;
        sqlx::query("SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM usage_buckets")
            .fetch_one(&db.pool)
            .await?
            .try_get(0)?
    };
    batches.sort_by(f64::total_cmp);
    let rate = events as f64 / busy.as_secs_f64().max(1e-9);
    let base_rate = base_events as f64 / base_time.as_secs_f64().max(1e-9);
    let report = BenchReport {
        backend: match db.backend {
            crate::store::Backend::Sqlite => "sqlite".to_owned(),
            crate::store::Backend::Postgres => "postgres".to_owned(),
        },
        batch: args.batch,
        instances: args.instances,
        seconds: busy.as_secs_f64(),
        events,
        events_per_sec: rate,
        batch_p50_ms: percentile(&batches, 0.5),
        batch_p99_ms: percentile(&batches, 0.99),
        baseline_events_per_sec: base_rate,
        ratio_to_baseline: rate / base_rate.max(1e-9),
        rss_start_kib: rss_start,
        rss_peak_kib: peak.load(Ordering::Relaxed).max(rss_kib()),
        rss_end_kib: rss_kib(),
        total_matches: stored == sent_total,
    };
    if args.json {
        return Ok(serde_json::to_string_pretty(&report)?);
    }
    Ok(format!(
        "backend {}: {:.0} events/s ({} events in {:.1} s of ingestion, batches of {}; p50 {:.2} ms, p99 {:.2} ms per batch)\n\
         baseline (parsing only): {:.0} events/s; ratio {:.3}\n\
         RSS: start {} KiB, peak {} KiB, end {} KiB; stored total matches: {}",
        report.backend,
        report.events_per_sec,
        report.events,
        report.seconds,
        report.batch,
        report.batch_p50_ms,
        report.batch_p99_ms,
        report.baseline_events_per_sec,
        report.ratio_to_baseline,
        report.rss_start_kib,
        report.rss_peak_kib,
        report.rss_end_kib,
        report.total_matches
    ))
}
