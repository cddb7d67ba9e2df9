//! `koogate load`: a load generator for a production interface, sending calls signed exactly as
//! KooGallery signs them (a fresh nonce and the current time on every request).
//!
//! One run has up to two phases with the same shape (activity, concurrency, duration, rate and
//! the same request construction, signing included): with `--baseline`, first against a trivial
//! in-process HTTP endpoint (a fixed 60-byte JSON answer), then against `--url`. The throughput
//! ratio of the two is the number to compare across machines: on a shared two-core machine the
//! absolute figures move by tens of percent from one minute to the next.
//!
//! Each phase has a warm-up that creates the instances the measured requests target (not
//! counted), then the measurement: `--concurrency` workers, each sending one request at a time.
//! Without `--rate` every worker sends back to back (closed model); with `--rate` the send times
//! are scheduled at fixed intervals (open model). A request sent late, because every worker was
//! still waiting for an answer, has its latency measured from its scheduled time, so a server
//! that falls behind shows its queueing delay instead of hiding it (no coordinated omission); a
//! request sent on time is measured from when it is sent, so the 1 ms granularity of the timer
//! is not charged to the server.
//!
//! After a measurement that created instances (`newInstance`, `mixed`), the created instances
//! are checked with signed `queryInstance` calls (not counted) for up to `--settle-secs`: the
//! report says how many were provisioned by then, so that a server that answers `000004` fast
//! but provisions slower than it accepts shows its backlog instead of hiding it.
//!
//! Safety: requests go only to `--url` (no proxy, no redirects) and to the in-process baseline on
//! 127.0.0.1; every loop is bounded by the duration, and requests still in flight at the end are
//! awaited for at most [`REQUEST_TIMEOUT`] plus a second.

use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use koogallery::sign::body_sign;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::signed_call;

/// Longest accepted `--duration`: the run is bounded.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Most workers accepted.
const MAX_CONCURRENCY: usize = 4096;
/// Highest accepted `--rate`, requests per second.
const MAX_RATE: f64 = 1_000_000.0;
/// Timeout of one request (connect, send, whole answer read).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the warm-up may wait for its instances to be provisioned.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(120);
/// At most this many instances are created by the warm-up (at least one per worker).
const WARMUP_MAX: usize = 1000;
/// Instances created per worker by the warm-up, below [`WARMUP_MAX`].
const WARMUP_PER_WORKER: usize = 10;
/// One response in this many (per worker, the first included) has its `Body-Sign` verified.
const SIGN_SAMPLE: u64 = 100;
/// Longest accepted `--settle-secs`.
const MAX_SETTLE: Duration = Duration::from_secs(3600);
/// At most this many created instances are remembered for the provisioning check (in all).
const MAX_TRACKED: usize = 1_000_000;
/// Requests in flight at once during the provisioning check (at most the concurrency).
const CHECK_WORKERS: usize = 8;
/// How long the provisioning check may spend, after `--settle-secs`, on checking every batch
/// still pending once, and then on telling which instances of the batches that still answer
/// `000004` are the ones provisioning.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Ids per `queryInstance` of the provisioning check (saas.md §5.2: at most 100).
const CHECK_BATCH: usize = 100;
/// At most this many requests, after `--settle-secs`, telling which instances of the batches
/// that still answer `000004` are the ones provisioning (about nine batches of 100).
const CHECK_SPLIT_REQUESTS: u64 = 1000;
/// The baseline's answer: a fixed 60-byte JSON.
const BASELINE_BODY: &[u8] = br#"{"resultCode":"000000","resultMsg":"success.","base":"line"}"#;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The production interface to load, e.g. http://127.0.0.1:8080/produce. Nothing is sent
    /// anywhere else (no proxy, no redirects).
    #[arg(long, value_parser = crate::signed_call::parse_url)]
    pub url: String,
    /// The basic key: requests are signed with it and the `Body-Sign` of answers checked with it.
    #[arg(long)]
    pub key: String,
    /// What to send: one V2 activity, `v1-queryInstance` (a V1 GET), or `mixed` (20%
    /// newInstance, 60% queryInstance, 10% updateInstanceStatus, 10% refreshInstance).
    #[arg(long, value_enum)]
    pub activity: Activity,
    /// Workers, each with one request in flight at a time.
    #[arg(long, value_parser = parse_concurrency)]
    pub concurrency: usize,
    /// How long to send: `10s`, `1m`, `1m30s`, `500ms`, or plain seconds (`10`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,
    /// Total requests per second, sent at fixed intervals (open model: a request sent late
    /// because every worker was busy is timed from its scheduled send time). Without it every
    /// worker sends back to back.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Print one JSON object instead of a table (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// First run the same load against a trivial in-process HTTP endpoint, and report both and
    /// the throughput ratio.
    #[arg(long)]
    pub baseline: bool,
    /// After a run that created instances (`newInstance`, `mixed`): how long to wait, in
    /// seconds, for them to be provisioned, checking with `queryInstance` (not counted). The
    /// report gives how many were provisioned by then. `0` checks once without waiting.
    #[arg(long, default_value = "10", value_parser = parse_settle)]
    pub settle_secs: Duration,
}

/// The `--activity` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Activity {
    #[value(name = "newInstance")]
    NewInstance,
    #[value(name = "queryInstance")]
    QueryInstance,
    #[value(name = "refreshInstance")]
    RefreshInstance,
    #[value(name = "updateInstanceStatus")]
    UpdateInstanceStatus,
    #[value(name = "releaseInstance")]
    ReleaseInstance,
    #[value(name = "upgradeInstance")]
    UpgradeInstance,
    #[value(name = "changeInstanceCheck")]
    ChangeInstanceCheck,
    #[value(name = "v1-queryInstance")]
    V1QueryInstance,
    #[value(name = "mixed")]
    Mixed,
}

/// One kind of request actually sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Query,
    Refresh,
    Update,
    Release,
    Upgrade,
    ChangeCheck,
    V1Query,
}

/// The `mixed` sequence each worker cycles through: 2 × newInstance, 6 × queryInstance,
/// 1 × updateInstanceStatus, 1 × refreshInstance, interleaved.
const MIX: [Kind; 10] = [
    Kind::Query,
    Kind::New,
    Kind::Query,
    Kind::Update,
    Kind::Query,
    Kind::Query,
    Kind::New,
    Kind::Query,
    Kind::Refresh,
    Kind::Query,
];

impl Activity {
    fn name(self) -> &'static str {
        match self {
            Self::NewInstance => "newInstance",
            Self::QueryInstance => "queryInstance",
            Self::RefreshInstance => "refreshInstance",
            Self::UpdateInstanceStatus => "updateInstanceStatus",
            Self::ReleaseInstance => "releaseInstance",
            Self::UpgradeInstance => "upgradeInstance",
            Self::ChangeInstanceCheck => "changeInstanceCheck",
            Self::V1QueryInstance => "v1-queryInstance",
            Self::Mixed => "mixed",
        }
    }

    /// The kind of a worker's `seq`-th request.
    fn kind(self, seq: u64) -> Kind {
        match self {
            Self::NewInstance => Kind::New,
            Self::QueryInstance => Kind::Query,
            Self::RefreshInstance => Kind::Refresh,
            Self::UpdateInstanceStatus => Kind::Update,
            Self::ReleaseInstance => Kind::Release,
            Self::UpgradeInstance => Kind::Upgrade,
            Self::ChangeInstanceCheck => Kind::ChangeCheck,
            Self::V1QueryInstance => Kind::V1Query,
            Self::Mixed => {
                let i = usize::try_from(seq % MIX.len() as u64).unwrap_or(0);
                MIX[i]
            }
        }
    }

    /// Whether the measured requests target existing instances (a warm-up is needed).
    fn needs_instances(self) -> bool {
        self != Self::NewInstance
    }

    /// Whether the measured requests create instances (checked for provisioning afterwards).
    fn creates_instances(self) -> bool {
        matches!(self, Self::NewInstance | Self::Mixed)
    }
}

fn parse_concurrency(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("not a whole number: {s:?}"))?;
    if n == 0 || n > MAX_CONCURRENCY {
        return Err(format!("must be between 1 and {MAX_CONCURRENCY}"));
    }
    Ok(n)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number: {s:?}"))?;
    if !r.is_finite() || r <= 0.0 || r > MAX_RATE {
        return Err(format!("must be above 0 and at most {MAX_RATE}"));
    }
    Ok(r)
}

/// `--settle-secs`: seconds, 0 to [`MAX_SETTLE`].
fn parse_settle(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {s:?}"))?;
    if !secs.is_finite() || secs < 0.0 || secs > MAX_SETTLE.as_secs_f64() {
        return Err(format!("must be between 0 and {}", MAX_SETTLE.as_secs()));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `10s`, `1m`, `1m30s`, `250ms`, `1h`, `1.5s`, or plain seconds (`10`, `2.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("not a duration: {s:?} (e.g. 10s, 1m, 1m30s, 500ms, or seconds)");
    let is_number_char = |c: char| c.is_ascii_digit() || c == '.';
    if s.is_empty() {
        return Err(bad());
    }
    let secs = if s.chars().all(is_number_char) {
        s.parse::<f64>().map_err(|_| bad())?
    } else {
        let mut total = 0.0;
        let mut rest = s;
        while !rest.is_empty() {
            let end = rest.find(|c| !is_number_char(c)).unwrap_or(rest.len());
            let number: f64 = rest[..end].parse().map_err(|_| bad())?;
            rest = &rest[end..];
            let end = rest.find(is_number_char).unwrap_or(rest.len());
            let factor = match rest[..end].trim() {
                "ms" => 0.001,
                "s" | "sec" | "secs" => 1.0,
                "m" | "min" | "mins" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            total += number * factor;
            rest = &rest[end..];
        }
        total
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(bad());
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("at most {}s", MAX_DURATION.as_secs()));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What every phase shares.
struct Plan {
    activity: Activity,
    concurrency: usize,
    duration: Duration,
    rate: Option<f64>,
    key: Arc<str>,
    /// Prefix of every order, business and instance id of this run, so runs never collide.
    run_id: String,
    /// Warm-up instances when the activity needs them.
    warmup: usize,
    /// How long to wait for the instances created by the measurement to be provisioned.
    settle: Duration,
}

/// One request, ready to send.
enum Request {
    Post { url: String, body: String },
    Get { url: String },
}

/// A V2 call: a fresh nonce, the current time, the signature of `body`.
fn v2_request(base: &str, key: &str, body: String) -> Request {
    Request::Post {
        url: signed_call::v2_url(base, key, body.as_bytes()),
        body,
    }
}

/// A V1 call: the parameters plus the current `timeStamp` and its `authToken`.
fn v1_request(base: &str, key: &str, params: Vec<(String, String)>) -> Request {
    Request::Get {
        url: signed_call::v1_url(base, key, params),
    }
}

fn new_instance_body(order_id: &str, business_id: &str) -> String {
    json!({
        "activity": "newInstance",
        "businessId": business_id,
        "orderId": order_id,
        "orderLineId": format!("{order_id}-000001"),
    })
    .to_string()
}

/// A `queryInstance` of one id, or of several joined with commas.
fn query_body(instance_id: &str) -> String {
    json!({"activity": "queryInstance", "instanceId": instance_id}).to_string()
}

/// What came back.
enum Outcome {
    Answer {
        status: u16,
        body_sign: Option<String>,
        body: axum::body::Bytes,
    },
    Transport,
}

async fn send(client: &reqwest::Client, request: Request) -> Outcome {
    let builder = match request {
        Request::Post { url, body } => client
            .post(url)
            .header("Content-Type", "application/json;charset=utf8")
            .body(body),
        Request::Get { url } => client.get(url),
    };
    let Ok(response) = builder.send().await else {
        return Outcome::Transport;
    };
    let status = response.status().as_u16();
    let body_sign = response
        .headers()
        .get(body_sign::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match response.bytes().await {
        Ok(body) => Outcome::Answer {
            status,
            body_sign,
            body,
        },
        Err(_) => Outcome::Transport,
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "resultCode")]
    result_code: Option<String>,
    #[serde(rename = "instanceId")]
    instance_id: Option<String>,
}

/// The `resultCode` of an answer (`<none>` without one, `<not-json>` if the body is not JSON).
fn result_code(body: &[u8]) -> (String, Option<String>) {
    match serde_json::from_slice::<Envelope>(body) {
        Ok(e) => (
            e.result_code.unwrap_or_else(|| "<none>".to_owned()),
            e.instance_id,
        ),
        Err(_) => ("<not-json>".to_owned(), None),
    }
}

/// Counters of one worker (merged at the end).
struct Stats {
    latency_us: Histogram<u64>,
    codes: BTreeMap<String, u64>,
    requests: u64,
    http_errors: u64,
    transport_errors: u64,
    signs_checked: u64,
    sign_mismatches: u64,
    last_done: Option<Instant>,
    /// `newInstance` calls answered `000000` or `000004`.
    created: u64,
    /// The `instanceId`s of those answers, with when they came (up to the worker's share of
    /// [`MAX_TRACKED`]).
    created_ids: Vec<(Instant, String)>,
}

impl Stats {
    fn new() -> Result<Stats> {
        Ok(Stats {
            // Auto-resizing, three significant digits.
            latency_us: Histogram::new(3).context("cannot create a histogram")?,
            codes: BTreeMap::new(),
            requests: 0,
            http_errors: 0,
            transport_errors: 0,
            signs_checked: 0,
            sign_mismatches: 0,
            last_done: None,
            created: 0,
            created_ids: Vec::new(),
        })
    }

    fn merge(&mut self, other: &Stats) {
        let _ = self.latency_us.add(&other.latency_us);
        for (code, n) in &other.codes {
            *self.codes.entry(code.clone()).or_default() += n;
        }
        self.requests += other.requests;
        self.http_errors += other.http_errors;
        self.transport_errors += other.transport_errors;
        self.signs_checked += other.signs_checked;
        self.sign_mismatches += other.sign_mismatches;
        self.last_done = self.last_done.max(other.last_done);
        self.created += other.created;
        self.created_ids.extend(other.created_ids.iter().cloned());
    }
}

fn lock(stats: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One worker's state during the measurement.
struct Worker {
    index: usize,
    /// The phase's tag in ids (`b` baseline, `t` target), after the run id.
    prefix: String,
    url: Arc<str>,
    key: Arc<str>,
    activity: Activity,
    /// The instances this worker targets: its own share of the warm-up, so that no two
    /// workers change the same instance at once.
    instances: Vec<String>,
    frozen: Vec<bool>,
    cursor: usize,
    seq: u64,
    /// The `expireTime` of renewals: a year after the start.
    expire_time: String,
    /// At most this many created instance ids are remembered by this worker.
    track_max: usize,
}

impl Worker {
    /// The next instance of this worker's share (round robin).
    fn next_instance(&mut self) -> (usize, String) {
        if self.instances.is_empty() {
            return (0, format!("{}-none", self.prefix));
        }
        let i = self.cursor % self.instances.len();
        self.cursor = self.cursor.wrapping_add(1);
        (i, self.instances[i].clone())
    }

    /// Builds the next request: a fresh nonce and timestamp, unique ids where the activity
    /// creates something.
    fn next_request(&mut self) -> Request {
        let seq = self.seq;
        self.seq += 1;
        let kind = self.activity.kind(seq);
        let tag = format!("{}{}x{seq}", self.prefix, self.index);
        let body = match kind {
            Kind::New => new_instance_body(&format!("{tag}N"), &format!("{tag}B")),
            Kind::Query => {
                let (_, id) = self.next_instance();
                query_body(&id)
            }
            Kind::Refresh => {
                let (_, id) = self.next_instance();
                json!({
                    "activity": "refreshInstance",
                    "expireTime": self.expire_time,
                    "instanceId": id,
                    "orderId": format!("{tag}R"),
                    "orderLineId": format!("{tag}R-000001"),
                    "scene": "RENEWAL",
                })
                .to_string()
            }
            Kind::Update => {
                let (i, id) = self.next_instance();
                let status = match self.frozen.get_mut(i) {
                    Some(frozen) => {
                        *frozen = !*frozen;
                        if *frozen { "FREEZE" } else { "UNFREEZE" }
                    }
                    None => "FREEZE",
                };
                json!({"activity": "updateInstanceStatus", "instanceId": id, "status": status})
                    .to_string()
            }
            Kind::Release => {
                let (_, id) = self.next_instance();
                json!({
                    "activity": "releaseInstance",
                    "instanceId": id,
                    "orderId": format!("{tag}U"),
                    "orderLineId": format!("{tag}U-000001"),
                })
                .to_string()
            }
            Kind::Upgrade => {
                let (_, id) = self.next_instance();
                json!({
                    "activity": "upgradeInstance",
                    "instanceId": id,
                    "orderId": format!("{tag}G"),
                    "orderLineId": format!("{tag}G-000001"),
                })
                .to_string()
            }
            Kind::ChangeCheck => {
                let (_, id) = self.next_instance();
                json!({
                    "activity": "changeInstanceCheck",
                    "instanceId": id,
                    "productInfo": {
                        "productId": "LOAD-P2",
                        "skuCode": "LOAD-S2",
                        "linearValue": 20,
                        "productName": "Pro",
                    },
                })
                .to_string()
            }
            Kind::V1Query => {
                let (_, id) = self.next_instance();
                let params = vec![
                    ("activity".to_owned(), "queryInstance".to_owned()),
                    ("instanceId".to_owned(), id),
                ];
                return v1_request(&self.url, &self.key, params);
            }
        };
        v2_request(&self.url, &self.key, body)
    }

    /// Sends until the deadline: back to back, or at the scheduled times of the shared ticket
    /// counter when a rate is given.
    async fn run(
        mut self,
        client: reqwest::Client,
        stats: Arc<Mutex<Stats>>,
        done: Arc<AtomicU64>,
        schedule: Schedule,
    ) {
        loop {
            let now = Instant::now();
            if now >= schedule.deadline {
                break;
            }
            let started = match &schedule.rate {
                None => now,
                Some((tickets, rate)) => {
                    let ticket = tickets.fetch_add(1, Ordering::Relaxed);
                    let offset = Duration::from_secs_f64(ticket as f64 / rate);
                    let at = schedule.start + offset;
                    if at >= schedule.deadline {
                        break;
                    }
                    if at > now {
                        // On time: the worker was idle. Latency starts when the request is
                        // sent, so the timer's granularity (1 ms) is not charged to the server.
                        tokio::time::sleep_until(at).await;
                        Instant::now()
                    } else {
                        // Late: every worker was busy waiting for answers. Latency starts at
                        // the scheduled time, so the wait is charged (no coordinated omission).
                        at
                    }
                }
            };
            let check_sign = self.seq.is_multiple_of(SIGN_SAMPLE);
            let kind = self.activity.kind(self.seq);
            let request = self.next_request();
            let outcome = send(&client, request).await;
            let finished = Instant::now();
            let mut s = lock(&stats);
            s.requests += 1;
            s.last_done = Some(finished);
            match outcome {
                Outcome::Transport => s.transport_errors += 1,
                Outcome::Answer {
                    status,
                    body_sign: sign,
                    body,
                } => {
                    let micros = u64::try_from(finished.duration_since(started).as_micros())
                        .unwrap_or(u64::MAX);
                    let _ = s.latency_us.record(micros.max(1));
                    if (200..300).contains(&status) {
                        let (code, instance_id) = result_code(&body);
                        if kind == Kind::New && (code == "000000" || code == "000004") {
                            s.created += 1;
                            if let Some(id) = instance_id
                                && s.created_ids.len() < self.track_max
                            {
                                s.created_ids.push((finished, id));
                            }
                        }
                        *s.codes.entry(code).or_default() += 1;
                    } else {
                        s.http_errors += 1;
                    }
                    if check_sign {
                        s.signs_checked += 1;
                        if body_sign::verify(&self.key, &body, sign.as_deref()).is_err() {
                            s.sign_mismatches += 1;
                        }
                    }
                }
            }
            drop(s);
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// When to send.
#[derive(Clone)]
struct Schedule {
    start: Instant,
    deadline: Instant,
    /// The shared ticket counter and the rate, in the open model.
    rate: Option<(Arc<AtomicU64>, f64)>,
}

/// The results of one phase.
#[derive(Debug, Serialize)]
struct Report {
    activity: &'static str,
    url: String,
    concurrency: usize,
    duration_s: f64,
    rate_rps: Option<f64>,
    warmup_instances: usize,
    requests: u64,
    elapsed_s: f64,
    throughput_rps: f64,
    latency_ms: Latency,
    result_codes: BTreeMap<String, u64>,
    http_errors: u64,
    transport_errors: u64,
    body_signs_checked: u64,
    body_sign_mismatches: u64,
    unsent: u64,
    /// The provisioning check, after a run that created instances against the target.
    /// (Flattened: nothing at all when there was no check.)
    #[serde(flatten)]
    provisioning: Option<Provisioning>,
}

/// How many of the instances created by the measurement were provisioned after it.
#[derive(Debug, Serialize)]
struct Provisioning {
    /// `newInstance` calls of the measurement answered `000000` or `000004`.
    created: u64,
    /// Of those, instances that `queryInstance` answered `000000` by the end of the check.
    provisioned: u64,
    /// Instances whose last answer was `000004` (alone, or in a batch that was not split
    /// further before the check's time ran out).
    still_provisioning: u64,
    /// The rest: not known to the server, never answered, no `instanceId` in the answer, or not
    /// remembered (beyond [`MAX_TRACKED`]).
    unknown: u64,
    /// Seconds after the measurement at which every created instance was confirmed
    /// provisioned; `null` when some were not within `settle_s`.
    all_provisioned_after_s: Option<f64>,
    /// The `--settle-secs` given.
    settle_s: f64,
    /// `queryInstance` calls sent by the check.
    check_requests: u64,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The whole output of `--json`.
#[derive(Debug, Serialize)]
struct JsonOutput {
    #[serde(flatten)]
    target: Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_to_baseline: Option<f64>,
}

/// The progress display on stderr (hidden when stderr is not a terminal or with `--json`).
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(visible: bool) -> Progress {
        let bar = if visible {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    fn warmup(&self, phase: &str, n: usize) {
        self.bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        self.bar.set_prefix(phase.to_owned());
        self.bar
            .set_message(format!("warm-up: creating {n} instances"));
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    fn checking(&self, phase: &str, n: usize) {
        self.bar.reset();
        self.bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        self.bar.set_prefix(phase.to_owned());
        self.bar.set_message(format!(
            "checking that {n} created instances are provisioned"
        ));
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    fn measuring(&self, phase: &str, duration: Duration) {
        self.bar.disable_steady_tick();
        self.bar.set_style(
            ProgressStyle::with_template("{prefix}: [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        self.bar.set_prefix(phase.to_owned());
        self.bar
            .set_length(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        self.bar.set_position(0);
        self.bar.set_message("");
    }

    fn tick(&self, elapsed: Duration, done: u64) {
        self.bar
            .set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        let secs = elapsed.as_secs_f64();
        let rps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        self.bar
            .set_message(format!("{done} requests, {rps:.0} req/s"));
    }

    fn clear(&self) {
        self.bar.disable_steady_tick();
        self.bar.finish_and_clear();
    }
}

/// One HTTP client for the whole run: HTTP/1.1 keep-alive, an idle pool as large as the
/// concurrency, no proxy and no redirects (requests go only to the URL given).
fn client(concurrency: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(concurrency.max(1))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("cannot build the HTTP client")
}

/// Fails when `url` cannot be reached at all. The probe is a debugging call (`testFlag=1`),
/// which a production interface answers without storing anything.
async fn probe(client: &reqwest::Client, url: &str, key: &str) -> Result<()> {
    let body = r#"{"activity":"newInstance","businessId":"koogate-load-probe","orderId":"koogate-load-probe","orderLineId":"koogate-load-probe-000001","testFlag":"1"}"#;
    let Request::Post { url: signed, body } = v2_request(url, key, body.to_owned()) else {
        return Ok(());
    };
    let response = client
        .post(signed)
        .header("Content-Type", "application/json;charset=utf8")
        .body(body)
        .send()
        .await
        .map_err(reqwest::Error::without_url)
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let answer = response
        .bytes()
        .await
        .map_err(reqwest::Error::without_url)
        .with_context(|| format!("cannot read the answer of {url}"))?;
    let (code, _) = result_code(&answer);
    if !status.is_success() || code != "000000" {
        eprintln!(
            "warning: {url} answered a signed test call with HTTP {} and resultCode {code}; is --key its basic key?",
            status.as_u16()
        );
    }
    Ok(())
}

/// The warm-up of one worker: creates its share of instances, then waits (bounded) until
/// they are provisioned. Returns the instance ids that were accepted.
async fn warm_up_share(
    client: reqwest::Client,
    url: Arc<str>,
    key: Arc<str>,
    ids: Vec<(String, String)>,
    deadline: Instant,
) -> (Vec<String>, bool) {
    let mut accepted = Vec::new();
    for (order_id, business_id) in ids {
        if Instant::now() >= deadline {
            break;
        }
        let request = v2_request(&url, &key, new_instance_body(&order_id, &business_id));
        if let Outcome::Answer { status, body, .. } = send(&client, request).await {
            let (code, instance_id) = result_code(&body);
            if (200..300).contains(&status) && (code == "000000" || code == "000004") {
                accepted.push(instance_id.unwrap_or(business_id));
            }
        }
    }
    // Provisioning runs in the server's jobs: poll queryInstance (at most 100 ids per call)
    // until every batch answers 000000.
    let mut pending: Vec<&[String]> = accepted.chunks(100).collect();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for batch in pending {
            let body = query_body(&batch.join(","));
            let ready = match send(&client, v2_request(&url, &key, body)).await {
                Outcome::Answer { status, body, .. } => {
                    (200..300).contains(&status) && result_code(&body).0 == "000000"
                }
                Outcome::Transport => false,
            };
            if !ready {
                still.push(batch);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let all_ready = pending.is_empty();
    (accepted, all_ready)
}

/// The answer to a `queryInstance` of some ids, for the provisioning check.
enum Check {
    /// `000000`: the ids listed in `info` (the others are not known to the server), or `000003`
    /// (none known).
    Answered(HashSet<String>),
    /// `000004`: at least one of the ids is still being provisioned.
    Processing,
    /// Anything else (another code, an HTTP or transport error), or not sent in time.
    Failed,
}

#[derive(Deserialize)]
struct QueryEnvelope {
    #[serde(rename = "resultCode")]
    result_code: Option<String>,
    #[serde(default)]
    info: Vec<QueryInfo>,
}

#[derive(Deserialize)]
struct QueryInfo {
    #[serde(rename = "instanceId")]
    instance_id: Option<String>,
}

async fn check_ids(client: &reqwest::Client, url: &str, key: &str, ids: &[String]) -> Check {
    let body = query_body(&ids.join(","));
    let Outcome::Answer { status, body, .. } = send(client, v2_request(url, key, body)).await
    else {
        return Check::Failed;
    };
    if !(200..300).contains(&status) {
        return Check::Failed;
    }
    let Ok(answer) = serde_json::from_slice::<QueryEnvelope>(&body) else {
        return Check::Failed;
    };
    match answer.result_code.as_deref() {
        Some("000000") => Check::Answered(
            answer
                .info
                .into_iter()
                .filter_map(|i| i.instance_id)
                .collect(),
        ),
        Some("000003") => Check::Answered(HashSet::new()),
        Some("000004") => Check::Processing,
        _ => Check::Failed,
    }
}

/// A group of instance ids still to confirm, and whether its last answer was `000004`.
type Pending = (Vec<String>, bool);

/// The provisioning check's client and counters.
struct Checker<'a> {
    client: &'a reqwest::Client,
    url: &'a Arc<str>,
    key: &'a Arc<str>,
    /// Requests in flight at once.
    workers: usize,
    /// Requests sent.
    sent: u64,
    /// Instances answered `000000`.
    provisioned: u64,
}

impl Checker<'_> {
    /// Checks every group of ids once, at most `workers` at a time; a group not sent by
    /// `deadline` is [`Check::Failed`]. Answers are in the order of `groups`.
    async fn check(&mut self, groups: &[Vec<String>], deadline: Instant) -> Vec<Check> {
        let mut answers: Vec<Check> = groups.iter().map(|_| Check::Failed).collect();
        let mut set = JoinSet::new();
        let mut next = 0;
        loop {
            while set.len() < self.workers && next < groups.len() && Instant::now() < deadline {
                let (client, url, key, ids) = (
                    self.client.clone(),
                    self.url.clone(),
                    self.key.clone(),
                    groups[next].clone(),
                );
                let i = next;
                set.spawn(async move { (i, check_ids(&client, &url, &key, &ids).await) });
                self.sent += 1;
                next += 1;
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            if let Ok((i, answer)) = joined {
                answers[i] = answer;
            }
        }
        answers
    }

    /// Checks `groups` once, counts the instances of those answered `000000`, and returns the
    /// others (marked as `000004` when they answered it, else as before), and whether there
    /// were any.
    async fn settle(&mut self, groups: Vec<Pending>, deadline: Instant) -> (Vec<Pending>, bool) {
        let ids: Vec<Vec<String>> = groups.iter().map(|(g, _)| g.clone()).collect();
        let answers = self.check(&ids, deadline).await;
        let mut still = Vec::new();
        for ((group, processing), answer) in groups.into_iter().zip(answers) {
            match answer {
                Check::Answered(ready) => {
                    self.provisioned +=
                        group.iter().filter(|id| ready.contains(*id)).count() as u64;
                }
                Check::Processing => still.push((group, true)),
                Check::Failed => still.push((group, processing)),
            }
        }
        let any = !still.is_empty();
        (still, any)
    }
}

/// The provisioning check after the measurement, on the created instances in the order they
/// were created, in batches of [`CHECK_BATCH`]:
///
/// 1. until `settle` has passed or every batch answered `000000`: rounds with a growing pause
///    (100 ms, doubling up to 1 s), each checking the oldest pending batches, [`CHECK_WORKERS`]
///    at a time, up to the first wave in which one still answers `000004` (a server provisions
///    roughly in order, so the newer ones are then most likely not ready either): waiting costs
///    the server a few queries a round, not one per batch, so it hardly slows the provisioning
///    it waits for;
/// 2. then every batch still pending, once;
/// 3. then, because a server answers `000004` for a whole batch while any one of its instances
///    is provisioning, the batches still answering it, oldest first, as groups of 10, then the
///    ids of the groups still answering it one by one (within [`CHECK_TIMEOUT`] and
///    [`CHECK_SPLIT_REQUESTS`]).
///
/// `provisioned` counts only instances answered `000000`, so it is exact or low;
/// `still_provisioning` counts those whose last answer, alone or in a group, was `000004`.
async fn check_provisioning(
    client: &reqwest::Client,
    url: &Arc<str>,
    key: &Arc<str>,
    created: u64,
    ids: Vec<String>,
    settle: Duration,
    workers: usize,
) -> Provisioning {
    let start = Instant::now();
    let deadline = start + settle;
    let mut checker = Checker {
        client,
        url,
        key,
        workers,
        sent: 0,
        provisioned: 0,
    };
    let mut pending: Vec<Pending> = ids
        .chunks(CHECK_BATCH)
        .map(|c| (c.to_vec(), false))
        .collect();
    let mut all_after = None;

    // 1. Waiting.
    let mut pause = Duration::from_millis(100);
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        let mut rest = pending.into_iter();
        loop {
            let wave: Vec<Pending> = rest.by_ref().take(workers).collect();
            if wave.is_empty() {
                break;
            }
            let (not_ready, any) = checker.settle(wave, deadline).await;
            still.extend(not_ready);
            if any {
                break;
            }
        }
        still.extend(rest);
        pending = still;
        if pending.is_empty() {
            all_after = Some(start.elapsed());
        } else {
            tokio::time::sleep_until(deadline.min(Instant::now() + pause)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    // 2. Every batch still pending, once (with `--settle-secs 0`, the only round).
    if !pending.is_empty() {
        (pending, _) = checker
            .settle(pending, Instant::now() + CHECK_TIMEOUT)
            .await;
        if pending.is_empty() {
            all_after = Some(start.elapsed());
        }
    }

    // 3. Which instances of the batches still answering 000004 are the ones provisioning.
    // Bounded in time and in requests, since the check's queries compete with the provisioning;
    // a batch not split by then keeps its batch's answer.
    let split_deadline = Instant::now() + CHECK_TIMEOUT;
    let budget = checker.sent + CHECK_SPLIT_REQUESTS;
    let mut left = Vec::new();
    for (batch, processing) in pending {
        if checker.sent >= budget || Instant::now() >= split_deadline {
            left.push((batch, processing));
            continue;
        }
        let tens: Vec<Pending> = batch.chunks(10).map(|c| (c.to_vec(), processing)).collect();
        let (tens, _) = checker.settle(tens, split_deadline).await;
        let ones: Vec<Pending> = tens
            .iter()
            .flat_map(|(g, p)| g.iter().map(|id| (vec![id.clone()], *p)))
            .collect();
        let (ones, _) = checker.settle(ones, split_deadline).await;
        left.extend(ones);
    }
    let still_provisioning: u64 = left
        .iter()
        .filter(|(_, processing)| *processing)
        .map(|(g, _)| g.len() as u64)
        .sum();
    let provisioned = checker.provisioned;
    Provisioning {
        created,
        provisioned,
        still_provisioning,
        unknown: created.saturating_sub(provisioned + still_provisioning),
        all_provisioned_after_s: all_after
            .filter(|_| provisioned == created)
            .map(|d| round(d.as_secs_f64(), 3)),
        settle_s: settle.as_secs_f64(),
        check_requests: checker.sent,
    }
}

/// Runs one phase (warm-up, measurement, then, with `check` and an activity that creates
/// instances, the provisioning check) against `url`.
async fn run_phase(
    client: &reqwest::Client,
    plan: &Plan,
    url: &str,
    phase: &str,
    check: bool,
    progress: &Progress,
) -> Result<Report> {
    let tag = &phase[..1];
    let prefix = format!("{}{tag}", plan.run_id);
    let url: Arc<str> = Arc::from(url);
    let c = plan.concurrency;

    // Warm-up: worker w creates instances w, w + C, w + 2C, …
    let mut shares: Vec<Vec<String>> = vec![Vec::new(); c];
    let mut warmup_instances = 0;
    if plan.activity.needs_instances() {
        progress.warmup(phase, plan.warmup);
        let deadline = Instant::now() + WARMUP_TIMEOUT;
        let mut set = JoinSet::new();
        for w in 0..c {
            let ids: Vec<(String, String)> = (w..plan.warmup)
                .step_by(c)
                .map(|i| (format!("{prefix}W{i}"), format!("{prefix}I{i}")))
                .collect();
            let task = warm_up_share(client.clone(), url.clone(), plan.key.clone(), ids, deadline);
            set.spawn(async move { (w, task.await) });
        }
        let mut not_ready = false;
        while let Some(joined) = set.join_next().await {
            let (w, (ids, ready)) = joined.context("a warm-up task failed")?;
            warmup_instances += ids.len();
            not_ready |= !ready;
            if let Some(share) = shares.get_mut(w) {
                *share = ids;
            }
        }
        if warmup_instances == 0 {
            eprintln!(
                "warning: {phase}: the warm-up created no instance (every newInstance was refused); the requests target instances that do not exist"
            );
        } else if not_ready {
            eprintln!(
                "warning: {phase}: some warm-up instances were not provisioned within {}s",
                WARMUP_TIMEOUT.as_secs()
            );
        }
        // A worker without a share of its own (more workers than instances) shares one.
        let all: Vec<String> = shares.iter().flatten().cloned().collect();
        if !all.is_empty() {
            for (w, share) in shares.iter_mut().enumerate() {
                if share.is_empty() {
                    share.push(all[w % all.len()].clone());
                }
            }
        }
    }

    // Measurement.
    progress.measuring(phase, plan.duration);
    let expire_time = koogallery::time::format_millis17(
        time::OffsetDateTime::now_utc() + time::Duration::days(365),
    );
    let start = Instant::now();
    let schedule = Schedule {
        start,
        deadline: start + plan.duration,
        rate: plan.rate.map(|r| (Arc::new(AtomicU64::new(0)), r)),
    };
    let done = Arc::new(AtomicU64::new(0));
    let mut all_stats = Vec::with_capacity(c);
    let mut set = JoinSet::new();
    for (index, instances) in shares.into_iter().enumerate() {
        let stats = Arc::new(Mutex::new(Stats::new()?));
        all_stats.push(stats.clone());
        let worker = Worker {
            index,
            prefix: prefix.clone(),
            url: url.clone(),
            key: plan.key.clone(),
            activity: plan.activity,
            frozen: vec![false; instances.len()],
            instances,
            cursor: 0,
            seq: 0,
            expire_time: expire_time.clone(),
            track_max: MAX_TRACKED / c,
        };
        set.spawn(worker.run(client.clone(), stats, done.clone(), schedule.clone()));
    }
    // Wait for the workers: they stop at the deadline; requests in flight then are awaited for
    // at most the request timeout (plus a second), then abandoned.
    let give_up = schedule.deadline + REQUEST_TIMEOUT + Duration::from_secs(1);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            joined = set.join_next() => {
                if joined.is_none() {
                    break;
                }
            }
            _ = ticker.tick() => {
                progress.tick(start.elapsed().min(plan.duration), done.load(Ordering::Relaxed));
            }
            () = tokio::time::sleep_until(give_up) => {
                set.abort_all();
                eprintln!("warning: {phase}: requests still in flight {}s after the end were abandoned", (REQUEST_TIMEOUT + Duration::from_secs(1)).as_secs());
                break;
            }
        }
    }
    progress.clear();

    let mut total = Stats::new()?;
    for s in &all_stats {
        total.merge(&lock(s));
    }
    drop(all_stats);
    // In the open model, the scheduled sends before the deadline that no worker took: the
    // workers were all busy (the server, or this generator, could not keep up with the rate).
    let unsent = schedule.rate.as_ref().map_or(0, |(tickets, rate)| {
        let scheduled = (plan.duration.as_secs_f64() * rate).ceil() as u64;
        scheduled.saturating_sub(tickets.load(Ordering::Relaxed))
    });
    let elapsed = total
        .last_done
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
    let elapsed_s = elapsed.as_secs_f64();
    let throughput = if elapsed_s > 0.0 {
        total.requests as f64 / elapsed_s
    } else {
        0.0
    };
    let provisioning = if check && plan.activity.creates_instances() {
        // In the order they were created, so that a batch holds instances created together.
        let mut created = std::mem::take(&mut total.created_ids);
        created.sort_by_key(|(at, _)| *at);
        let ids: Vec<String> = created.into_iter().map(|(_, id)| id).collect();
        progress.checking(phase, ids.len());
        let p = check_provisioning(
            client,
            &url,
            &plan.key,
            total.created,
            ids,
            plan.settle,
            c.min(CHECK_WORKERS),
        )
        .await;
        progress.clear();
        Some(p)
    } else {
        None
    };
    Ok(Report {
        activity: plan.activity.name(),
        url: url.to_string(),
        concurrency: c,
        duration_s: plan.duration.as_secs_f64(),
        rate_rps: plan.rate,
        warmup_instances,
        requests: total.requests,
        elapsed_s: round(elapsed_s, 3),
        throughput_rps: round(throughput, 1),
        latency_ms: Latency::of(&total.latency_us),
        result_codes: total.codes,
        http_errors: total.http_errors,
        transport_errors: total.transport_errors,
        body_signs_checked: total.signs_checked,
        body_sign_mismatches: total.sign_mismatches,
        unsent,
        provisioning,
    })
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The in-process baseline: any request is answered with the same 60-byte JSON and its
/// `Body-Sign`, after its body is read.
struct Baseline {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Baseline {
    async fn start(key: &str, path: &str) -> Result<Baseline> {
        use axum::http::{HeaderName, HeaderValue, header};
        let sign = HeaderValue::from_str(&body_sign::header_value(key, BASELINE_BODY))
            .context("cannot build the baseline's Body-Sign")?;
        let handler = move |_body: axum::body::Bytes| {
            let sign = sign.clone();
            async move {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        ),
                        (HeaderName::from_static("body-sign"), sign),
                    ],
                    BASELINE_BODY,
                )
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot start the baseline endpoint on 127.0.0.1")?;
        let url = format!("http://{}{path}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Baseline { url, stop, task })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// `koogate load`.
pub async fn run(args: LoadArgs) -> Result<String> {
    let client = client(args.concurrency)?;
    probe(&client, &args.url, &args.key).await?;
    let run_id = format!(
        "L{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10].to_ascii_uppercase()
    );
    let plan = Plan {
        activity: args.activity,
        concurrency: args.concurrency,
        duration: args.duration,
        rate: args.rate,
        key: Arc::from(args.key.as_str()),
        run_id,
        warmup: (args.concurrency * WARMUP_PER_WORKER)
            .min(WARMUP_MAX)
            .max(args.concurrency),
        settle: args.settle_secs,
    };
    let progress = Progress::new(!args.json && std::io::stderr().is_terminal());
    let baseline = if args.baseline {
        let path =
            url::Url::parse(&args.url).map_or_else(|_| "/".to_owned(), |u| u.path().to_owned());
        let server = Baseline::start(&args.key, &path).await?;
        let report = run_phase(&client, &plan, &server.url, "baseline", false, &progress).await;
        server.stop().await;
        Some(report?)
    } else {
        None
    };
    let target = run_phase(&client, &plan, &args.url, "target", true, &progress).await?;
    let ratio = baseline.as_ref().and_then(|b| {
        (b.throughput_rps > 0.0).then(|| round(target.throughput_rps / b.throughput_rps, 3))
    });
    if args.json {
        let out = JsonOutput {
            target,
            baseline,
            ratio_to_baseline: ratio,
        };
        return serde_json::to_string_pretty(&out).context("cannot write the JSON report");
    }
    Ok(table(&target, baseline.as_ref(), ratio))
}

/// The human report: one column per phase.
fn table(target: &Report, baseline: Option<&Report>, ratio: Option<f64>) -> String {
    let mut reports: Vec<(&str, &Report)> = Vec::new();
    if let Some(b) = baseline {
        reports.push(("baseline", b));
    }
    reports.push(("target", target));
    let mode = match target.rate_rps {
        Some(r) => format!("open model at {r} req/s"),
        None => "closed model, back to back".to_owned(),
    };
    let mut out = format!(
        "koogate load: {} against {}\nconcurrency {}, duration {}s, {mode}\n\n",
        target.activity, target.url, target.concurrency, target.duration_s
    );
    let mut row = |label: &str, cells: Vec<String>| {
        let _ = write!(out, "{label:<24}");
        for cell in cells {
            let _ = write!(out, "{cell:>14}");
        }
        out.push('\n');
    };
    let cells = |f: &dyn Fn(&Report) -> String| reports.iter().map(|(_, r)| f(r)).collect();
    row(
        "",
        reports.iter().map(|(name, _)| (*name).to_owned()).collect(),
    );
    row(
        "warm-up instances",
        cells(&|r| r.warmup_instances.to_string()),
    );
    row("requests", cells(&|r| r.requests.to_string()));
    row("elapsed s", cells(&|r| format!("{:.2}", r.elapsed_s)));
    row(
        "throughput req/s",
        cells(&|r| format!("{:.1}", r.throughput_rps)),
    );
    row(
        "latency p50 ms",
        cells(&|r| format!("{:.3}", r.latency_ms.p50)),
    );
    row(
        "latency p90 ms",
        cells(&|r| format!("{:.3}", r.latency_ms.p90)),
    );
    row(
        "latency p99 ms",
        cells(&|r| format!("{:.3}", r.latency_ms.p99)),
    );
    row(
        "latency p99.9 ms",
        cells(&|r| format!("{:.3}", r.latency_ms.p999)),
    );
    row(
        "latency max ms",
        cells(&|r| format!("{:.3}", r.latency_ms.max)),
    );
    let mut codes: Vec<&String> = reports
        .iter()
        .flat_map(|(_, r)| r.result_codes.keys())
        .collect();
    codes.sort();
    codes.dedup();
    for code in codes {
        row(
            &format!("resultCode {code}"),
            cells(&|r| r.result_codes.get(code).copied().unwrap_or(0).to_string()),
        );
    }
    row("HTTP errors", cells(&|r| r.http_errors.to_string()));
    row(
        "transport errors",
        cells(&|r| r.transport_errors.to_string()),
    );
    row(
        "Body-Sign checked",
        cells(&|r| r.body_signs_checked.to_string()),
    );
    row(
        "Body-Sign mismatches",
        cells(&|r| r.body_sign_mismatches.to_string()),
    );
    if target.rate_rps.is_some() {
        row("unsent (behind rate)", cells(&|r| r.unsent.to_string()));
    }
    if let Some(p) = &target.provisioning {
        let _ = write!(out, "\nprovisioned: {} of {}", p.provisioned, p.created);
        match p.all_provisioned_after_s {
            Some(after) => {
                let _ = write!(out, " (all confirmed {after:.2}s after the measurement)");
            }
            None => {
                let _ = write!(out, " within {}s", p.settle_s);
                if p.still_provisioning > 0 {
                    let _ = write!(out, ", {} still provisioning", p.still_provisioning);
                }
                if p.unknown > 0 {
                    let _ = write!(out, ", {} unknown", p.unknown);
                }
            }
        }
        out.push('\n');
    }
    if let Some(ratio) = ratio {
        let _ = write!(out, "\nthroughput ratio target/baseline: {ratio:.3}");
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration(s).unwrap();
        assert_eq!(d("10s"), Duration::from_secs(10));
        assert_eq!(d("10"), Duration::from_secs(10));
        assert_eq!(d("2.5"), Duration::from_millis(2500));
        assert_eq!(d("1m"), Duration::from_secs(60));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        for bad in [
            "", "0", "0s", "-1", "s", "10x", "inf", "NaN", "1.2.3s", "25h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settle_secs() {
        assert_eq!(parse_settle("0"), Ok(Duration::ZERO));
        assert_eq!(parse_settle("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_settle("2.5"), Ok(Duration::from_millis(2500)));
        for bad in ["", "-1", "10s", "inf", "NaN", "3601"] {
            assert!(parse_settle(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn baseline_body_is_60_bytes_of_json() {
        assert_eq!(BASELINE_BODY.len(), 60);
        assert_eq!(result_code(BASELINE_BODY).0, "000000");
    }

    #[test]
    fn mixed_is_20_60_10_10() {
        let count = |k: Kind| (0..1000).filter(|&s| Activity::Mixed.kind(s) == k).count();
        assert_eq!(count(Kind::New), 200);
        assert_eq!(count(Kind::Query), 600);
        assert_eq!(count(Kind::Update), 100);
        assert_eq!(count(Kind::Refresh), 100);
    }

    #[test]
    fn requests_are_signed_and_fresh() {
        let Request::Post { url, body } = v2_request("http://h/produce", "k", "{}".to_owned())
        else {
            panic!("a V2 request is a POST");
        };
        let Request::Post { url: url2, .. } = v2_request("http://h/produce", "k", "{}".to_owned())
        else {
            panic!("a V2 request is a POST");
        };
        assert_ne!(url, url2, "a fresh nonce every time");
        let query = url.split_once('?').unwrap().1;
        let params = koogallery::query::decode_query(query);
        let p = |n| koogallery::query::param(&params, n).unwrap().to_owned();
        assert_eq!(
            p("signature"),
            koogallery::sign::v2::sign("k", &p("nonce"), &p("timestamp"), body.as_bytes())
        );
        let Request::Get { url } = v1_request("http://h/produce?x=1", "k", Vec::new()) else {
            panic!("a V1 request is a GET");
        };
        assert!(url.starts_with("http://h/produce?x=1&timeStamp="), "{url}");
    }
}
