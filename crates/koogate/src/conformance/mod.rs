//! `koogate conformance`: KooGallery's seller-console debugging, and more, against any
//! production interface (koogate or a merchant's own server in any language).
//!
//! A run is a fixed list of cases for one protocol family and charging mode, planned before the
//! first request (so the list, the progress bar and the reports agree), then executed in order:
//! later cases use what earlier ones returned (the `instanceId` of a `newInstance`). Every answer
//! is verified as the debugging tool verifies it (HTTP 200, `application/json`, JSON, `resultCode`,
//! mandatory fields and their lengths, `Body-Sign` over the exact bytes), and every reason starts
//! with the console's own message (saas.md §10).
//!
//! Groups of cases:
//! * `debug` — the saved debug cases the console requires for the charging mode, `testFlag=1`,
//!   with the documented mock order ids (saas.md §10, §11).
//! * `shuffled` — the same debug cases again, same parameters, in a shuffled order (dial tests
//!   replay them forever, in any order: saas.md §7, §9).
//! * `auth` — requests KooGallery would never send: forged, tampered, unsigned, stale, future,
//!   replayed. Each must be refused with HTTP 200 and the spec's code (security.md §15).
//! * `real` — real traffic (no `testFlag`): create, resend with a new `businessId` (same
//!   `instanceId`), `queryInstance` polled until provisioned, and the re-runnable part of the
//!   lifecycle. Skipped with `--debug-only`.
//!
//! A case the runner cannot send with the settings given (the kit's `applicationSync` without
//! the merchant's public key) is not silently dropped: it is listed as skipped, with the reason,
//! in every form of the report.
//!
//! Cases per family live in their own module; this one holds the runner and the reports.

pub mod check;
pub mod http;
pub mod kit;
pub mod report;
pub mod v1;
pub mod v2;

use std::time::{Duration, Instant};

use serde::Serialize;

use self::http::{Answer, Failure, Target};

/// The protocol family under test (`--family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    SaasV2,
    SaasV1,
    LicenseV1,
    LicenseOnline,
    LicenseCode,
    Kit,
}

impl Family {
    pub const fn name(self) -> &'static str {
        match self {
            Self::SaasV2 => "saas-v2",
            Self::SaasV1 => "saas-v1",
            Self::LicenseV1 => "license-v1",
            Self::LicenseOnline => "license-online",
            Self::LicenseCode => "license-code",
            Self::Kit => "kit",
        }
    }
}

/// The charging mode whose debug cases run (`--charging`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charging {
    Period,
    OneTime,
    OnDemand,
}

impl Charging {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Period => "period",
            Self::OneTime => "onetime",
            Self::OnDemand => "ondemand",
        }
    }

    /// The documented mock order of a new purchase in this mode (saas.md §11).
    pub const fn mock_order(self) -> &'static str {
        match self {
            Self::Period => "MOCKPERIODYEARNEW",
            Self::OneTime => "MOCKONETIMENEW",
            Self::OnDemand => "MOCKONDEMAND",
        }
    }
}

/// Mock renewal order (saas.md §11).
pub const MOCK_RENEW: &str = "MOCKMONTYRENEW";
/// Mock change / upgrade order.
pub const MOCK_CHANGE: &str = "MOCKMONTYCHANGE";
/// Mock unsubscription order.
pub const MOCK_UNSUBSCRIBE: &str = "MOCKMONTYUNSUBSCRIBE";
/// The product of the mock orders (openapi.md §5 sample).
pub const MOCK_PRODUCT_ID: &str = "OFFI846204237451911168";
/// The SKU of the mock orders.
pub const MOCK_SKU: &str = "0a4d1578-5295-46a7-92d4-7c803dccc51d";

/// The order line of a mock order: the order id + `-000001` (saas.md §11).
pub fn line_of(order_id: &str) -> String {
    format!("{order_id}-000001")
}

/// What one run needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    /// The basic key (V2) or access key (V1): signs requests, checks `Body-Sign`.
    pub key: String,
    pub kit_key: Option<String>,
    pub license_key: Option<String>,
    /// The merchant's RSA public key (PEM, SPKI or PKCS#1) the kit's `applicationSync.clientSecret`
    /// is encrypted with; without it `applicationSync` is skipped.
    pub kit_public_key: Option<String>,
    pub family: Family,
    pub charging: Charging,
    /// Skip the `real` group (no instance is created).
    pub debug_only: bool,
    /// How long a real `queryInstance` is polled while it answers `000004`.
    pub provision_timeout: Duration,
    /// Extra trusted CA certificates (DER) for HTTPS, besides the Mozilla roots.
    pub extra_roots: Vec<Vec<u8>>,
}

/// A group of cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Debug,
    Shuffled,
    Auth,
    Real,
}

impl Group {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Shuffled => "shuffled",
            Self::Auth => "auth",
            Self::Real => "real",
        }
    }
}

/// One planned case.
#[derive(Debug, Clone)]
pub struct Def<A> {
    pub id: String,
    pub group: Group,
    /// What the case sends and checks, one sentence.
    pub what: String,
    pub action: A,
}

/// Why a case failed.
#[derive(Debug)]
pub enum Fail {
    /// No answer: the rest of the run may be pointless.
    Transport(Failure),
    /// An answer that does not conform.
    Check(String),
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Check(s)
    }
}

/// The verdict of one case: notes for a pass, or why it failed.
pub type Verdict = Result<Vec<String>, Fail>;

/// What was sent and received last, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Seen {
    /// `POST /path?query` or `GET /path?query`.
    pub request: String,
    /// The JSON body sent (V2), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub group: Group,
    pub what: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<Seen>,
}

/// A case that was not sent, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub id: String,
    pub group: Group,
    pub what: String,
    pub reason: String,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub family: &'static str,
    pub charging: &'static str,
    pub url: String,
    pub debug_only: bool,
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    /// True when every case passed (exit code 0).
    pub ok: bool,
    pub duration_ms: u64,
    pub cases: Vec<CaseResult>,
    /// Cases not sent (not counted in `total`), each with its reason.
    pub skipped: Vec<Skipped>,
}

/// Progress of a run (the CLI draws a bar; tests need nothing).
pub trait Progress {
    fn start(&self, total: usize);
    fn case_started(&self, id: &str);
    fn case_done(&self, result: &CaseResult);
    fn finish(&self);
}

/// No progress display.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: usize) {}
    fn case_started(&self, _: &str) {}
    fn case_done(&self, _: &CaseResult) {}
    fn finish(&self) {}
}

/// A family's case executor: the state shared by its cases (ids returned so far).
pub trait Runner {
    type Action;
    /// Runs one case.
    fn exec(&mut self, action: &Self::Action) -> impl Future<Output = Verdict>;
    /// What the case sent and received last (taken once per case).
    fn take_seen(&mut self) -> Option<Seen>;
}

/// Runs a family: plans, executes, reports. `Err` only when the settings cannot be used at all
/// (a URL or a CA certificate the TLS stack refuses).
pub async fn run(settings: &Settings, progress: &dyn Progress) -> Result<Report, String> {
    let target = Target::new(&settings.url, &settings.extra_roots)?;
    let started = Instant::now();
    let cases = match settings.family {
        Family::SaasV2 | Family::LicenseOnline | Family::LicenseCode => {
            let defs = v2::plan(settings);
            let mut runner = v2::V2Runner::new(settings, target);
            execute(&mut runner, defs, progress).await
        }
        Family::SaasV1 | Family::LicenseV1 => {
            let defs = v1::plan(settings);
            let mut runner = v1::V1Runner::new(settings, target);
            execute(&mut runner, defs, progress).await
        }
        Family::Kit => {
            let defs = kit::plan(settings);
            let mut runner = kit::KitRunner::new(settings, target);
            execute(&mut runner, defs, progress).await
        }
    };
    let skipped = match settings.family {
        Family::Kit => kit::skipped(settings),
        _ => Vec::new(),
    };
    let passed = cases.iter().filter(|c| c.passed).count();
    let failed = cases.len() - passed;
    Ok(Report {
        family: settings.family.name(),
        charging: settings.charging.name(),
        url: settings.url.clone(),
        debug_only: settings.debug_only,
        total: cases.len(),
        passed,
        failed,
        ok: failed == 0 && !cases.is_empty(),
        duration_ms: millis(started.elapsed()),
        cases,
        skipped,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Executes the planned cases in order. After an unreachable address, or two timeouts in a
/// row, the remaining cases are reported as failed without being sent.
async fn execute<R: Runner>(
    runner: &mut R,
    defs: Vec<Def<R::Action>>,
    progress: &dyn Progress,
) -> Vec<CaseResult> {
    progress.start(defs.len());
    let mut results = Vec::with_capacity(defs.len());
    let mut abort: Option<String> = None;
    let mut timeouts = 0;
    for def in defs {
        progress.case_started(&def.id);
        let started = Instant::now();
        let (passed, reason, notes, exchange) = if let Some(why) = &abort {
            (false, Some(format!("not run: {why}")), Vec::new(), None)
        } else {
            let verdict = runner.exec(&def.action).await;
            let seen = runner.take_seen();
            match verdict {
                Ok(notes) => {
                    timeouts = 0;
                    (true, None, notes, seen)
                }
                Err(Fail::Check(reason)) => {
                    timeouts = 0;
                    (false, Some(reason), Vec::new(), seen)
                }
                Err(Fail::Transport(f)) => {
                    let reason = check::transport(&f);
                    match f {
                        Failure::Unreachable(_) => {
                            abort = Some(format!(
                                "{} (the address could not be reached)",
                                check::UNREACHABLE
                            ));
                        }
                        Failure::Timeout => {
                            timeouts += 1;
                            if timeouts >= 2 {
                                abort = Some(format!(
                                    "{} (two requests in a row timed out)",
                                    check::TIMEOUT
                                ));
                            }
                        }
                        Failure::Malformed(_) => timeouts = 0,
                    }
                    (false, Some(reason), Vec::new(), seen)
                }
            }
        };
        let result = CaseResult {
            id: def.id,
            group: def.group,
            what: def.what,
            passed,
            reason,
            notes,
            duration_ms: millis(started.elapsed()),
            exchange,
        };
        progress.case_done(&result);
        results.push(result);
    }
    progress.finish();
    results
}

/// Sends one request and records it for the report.
pub(crate) async fn send(
    target: &Target,
    request_target: &str,
    body: Option<&str>,
    seen: &mut Option<Seen>,
) -> Result<Answer, Fail> {
    send_with(target, request_target, body, &[], seen).await
}

/// Sends one request with extra headers and records it for the report.
pub(crate) async fn send_with(
    target: &Target,
    request_target: &str,
    body: Option<&str>,
    headers: &[(String, String)],
    seen: &mut Option<Seen>,
) -> Result<Answer, Fail> {
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut record = Seen {
        request: format!("{method} {request_target}"),
        request_body: body.map(str::to_owned),
        ..Seen::default()
    };
    for (name, value) in headers {
        record.request.push_str(&format!(" [{name}: {value}]"));
    }
    let result = target
        .send(request_target, body.map(str::as_bytes), headers)
        .await;
    if let Ok(a) = &result {
        record.http_status = Some(a.status);
        record.response_body = Some(http::truncate(&String::from_utf8_lossy(&a.body), 2000));
    }
    *seen = Some(record);
    result.map_err(Fail::Transport)
}

/// An expiry a year from now, `yyyyMMddHHmmss` UTC.
pub fn expire_in_a_year() -> String {
    koogallery::time::format_expire_time(
        time::OffsetDateTime::now_utc() + time::Duration::days(365),
    )
}

/// A tag unique to this run: `KGC` + 12 upper-case hex digits.
pub fn run_tag() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("KGC{}", id[..12].to_ascii_uppercase())
}

/// A new `businessId` (KooGallery's are UUIDs).
pub fn business_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `items` in a random order that differs from the given one when it can: the first item
/// (always the creation) never stays first, so "query before create" is exercised.
pub fn shuffled<T: Clone>(items: &[T]) -> Vec<T> {
    use rand::seq::SliceRandom;
    let mut out = items.to_vec();
    if out.len() < 2 {
        return out;
    }
    out[1..].shuffle(&mut rand::thread_rng());
    // Move the creation to a random place other than the first.
    let to = rand::Rng::gen_range(&mut rand::thread_rng(), 1..out.len());
    let first = out.remove(0);
    out.insert(to, first);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(family: Family, charging: Charging, debug_only: bool) -> Settings {
        Settings {
            url: "http://127.0.0.1:9/produce".to_owned(),
            key: "basic".to_owned(),
            kit_key: Some("kit".to_owned()),
            license_key: Some("license".to_owned()),
            kit_public_key: None,
            family,
            charging,
            debug_only,
            provision_timeout: Duration::from_secs(60),
            extra_roots: Vec::new(),
        }
    }

    #[test]
    fn every_plan_has_unique_ids_in_group_order() {
        use Charging::*;
        use Family::*;
        for family in [SaasV2, SaasV1, LicenseV1, LicenseOnline, LicenseCode, Kit] {
            for charging in [Period, OneTime, OnDemand] {
                for (debug_only, with_key) in [(false, false), (true, false), (false, true)] {
                    let mut s = settings(family, charging, debug_only);
                    if with_key {
                        s.kit_public_key = Some(
                            include_str!("../../../koogallery/tests/fixtures/rsa3072_test_pub.pem")
                                .to_owned(),
                        );
                    }
                    let groups: Vec<(String, Group)> = match family {
                        SaasV2 | LicenseOnline | LicenseCode => {
                            v2::plan(&s).into_iter().map(|d| (d.id, d.group)).collect()
                        }
                        SaasV1 | LicenseV1 => {
                            v1::plan(&s).into_iter().map(|d| (d.id, d.group)).collect()
                        }
                        Kit => kit::plan(&s).into_iter().map(|d| (d.id, d.group)).collect(),
                    };
                    let ids: std::collections::HashSet<&str> =
                        groups.iter().map(|(id, _)| id.as_str()).collect();
                    assert_eq!(ids.len(), groups.len(), "{family:?} {charging:?}");
                    let order = |g: Group| match g {
                        Group::Debug => 0,
                        Group::Shuffled => 1,
                        Group::Auth => 2,
                        Group::Real => 3,
                    };
                    assert!(
                        groups.windows(2).all(|w| order(w[0].1) <= order(w[1].1)),
                        "{family:?} {charging:?}"
                    );
                    for (id, group) in &groups {
                        assert!(id.starts_with(group.name()), "{id}");
                    }
                    let has_real = groups.iter().any(|(_, g)| *g == Group::Real);
                    // License codes come from KooGallery: no real traffic is possible.
                    assert_eq!(
                        has_real,
                        !debug_only && family != LicenseCode,
                        "{family:?} {charging:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn shuffled_moves_the_first_item() {
        for _ in 0..50 {
            let s = shuffled(&[1, 2, 3, 4]);
            assert_ne!(s[0], 1);
            let mut sorted = s.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![1, 2, 3, 4]);
        }
        assert_eq!(shuffled(&[1]), vec![1]);
    }
}
