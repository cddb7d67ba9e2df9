//! `koogate conformance`: runs KooGallery's seller-console debug cases, and more, against a
//! production interface and reports every case (see `crate::conformance` and
//! docs/conformance.md).
//!
//! Output: the report on stdout (a table, or JSON with `--json`), optionally JUnit XML in
//! `--junit FILE`, a progress bar on stderr when it is a terminal. Exit 0 when every case
//! passes; 1 when a case fails or the address cannot be reached (the report is still printed,
//! then `error: …` on stderr); 2 for usage errors. A `--ca-cert` or `--kit-public-key` file that
//! cannot be read or used is exit 1 with `error: …` naming the option and the file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::conformance::{self, CaseResult, Charging, Family, Progress, Settings, report};

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// The production interface to check, e.g. https://merchant.example.com/produce (koogate
    /// or any other server). Requests go only there: no proxy, no redirects.
    #[arg(long, value_parser = crate::signed_call::parse_url)]
    pub url: String,
    /// The key of the family's interface type: the basic key (saas-v2, license-online), the
    /// product's access key (saas-v1, license-v1). Requests are signed with it and the
    /// `Body-Sign` of answers checked with it.
    #[arg(long)]
    pub key: String,
    /// The kit key (联营SaaS同步接口), for --family kit.
    #[arg(long)]
    pub kit_key: Option<String>,
    /// The merchant's RSA public key, PEM (SPKI "BEGIN PUBLIC KEY" as uploaded in the seller
    /// console, or PKCS#1), for --family kit: applicationSync's clientSecret is encrypted with it
    /// (RSA-OAEP, jointop.md §5). Without it the applicationSync cases are skipped.
    #[arg(long, value_name = "FILE")]
    pub kit_public_key: Option<PathBuf>,
    /// The license-code key (License授权码交付接口), for --family license-code.
    #[arg(long)]
    pub license_key: Option<String>,
    /// The protocol family to check: saas-v2 (POST, basic key), saas-v1 (GET, access key),
    /// license-v1 (License 1.0 GET, access key), license-online (POST, basic key),
    /// license-code (POST, --license-key), kit (joint-operation sync, --kit-key).
    #[arg(long, value_enum)]
    pub family: FamilyArg,
    /// The charging mode whose required debug cases run (saas.md §10); License families:
    /// period or onetime; ignored by kit.
    #[arg(long, value_enum, default_value = "period")]
    pub charging: ChargingArg,
    /// Print the report as one JSON object instead of a table (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run only the debug (testFlag=1) and authentication cases: no real instance is created.
    #[arg(long)]
    pub debug_only: bool,
    /// Also trust the CA certificates of this PEM file for HTTPS (a staging server with a private
    /// CA). KooGallery itself accepts only publicly trusted certificates.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Seconds a real queryInstance is polled while it answers 000004.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub provision_timeout: u64,
}

/// `--family` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FamilyArg {
    #[value(name = "saas-v2")]
    SaasV2,
    #[value(name = "saas-v1")]
    SaasV1,
    #[value(name = "license-v1")]
    LicenseV1,
    #[value(name = "license-online")]
    LicenseOnline,
    #[value(name = "license-code")]
    LicenseCode,
    #[value(name = "kit")]
    Kit,
}

/// `--charging` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChargingArg {
    Period,
    Onetime,
    Ondemand,
}

impl From<FamilyArg> for Family {
    fn from(f: FamilyArg) -> Family {
        match f {
            FamilyArg::SaasV2 => Family::SaasV2,
            FamilyArg::SaasV1 => Family::SaasV1,
            FamilyArg::LicenseV1 => Family::LicenseV1,
            FamilyArg::LicenseOnline => Family::LicenseOnline,
            FamilyArg::LicenseCode => Family::LicenseCode,
            FamilyArg::Kit => Family::Kit,
        }
    }
}

impl From<ChargingArg> for Charging {
    fn from(c: ChargingArg) -> Charging {
        match c {
            ChargingArg::Period => Charging::Period,
            ChargingArg::Onetime => Charging::OneTime,
            ChargingArg::Ondemand => Charging::OnDemand,
        }
    }
}

/// The progress bar on stderr.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new(visible: bool) -> Bar {
        let bar = if visible {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Bar { bar }
    }
}

impl Progress for Bar {
    fn start(&self, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(0);
    }

    fn case_started(&self, id: &str) {
        self.bar.set_message(id.to_owned());
    }

    fn case_done(&self, result: &CaseResult) {
        if !result.passed {
            self.bar.println(format!("FAIL {}", result.id));
        }
        self.bar.inc(1);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Usage errors clap cannot see (a combination of values): exit 2 with clap's format.
fn check_usage(args: &ConformanceArgs) {
    use clap::CommandFactory;
    use clap::error::ErrorKind;
    let problem = match (args.family, args.charging) {
        (FamilyArg::LicenseCode, _) if args.license_key.is_none() => Some(
            "--family license-code needs --license-key (the key bound to License授权码交付接口)",
        ),
        (FamilyArg::Kit, _) if args.kit_key.is_none() => {
            Some("--family kit needs --kit-key (the key bound to 联营SaaS同步接口)")
        }
        (
            FamilyArg::LicenseV1 | FamilyArg::LicenseOnline | FamilyArg::LicenseCode,
            ChargingArg::Ondemand,
        ) => Some(
            "License products are sold one-time or period (license.md §1): use --charging period or onetime",
        ),
        _ => None,
    };
    if let Some(message) = problem {
        let mut cmd = crate::cli::Cli::command();
        cmd.build();
        let sub = cmd
            .find_subcommand_mut("conformance")
            .cloned()
            .unwrap_or_else(crate::cli::Cli::command);
        sub.bin_name("koogate conformance")
            .error(ErrorKind::ArgumentConflict, message)
            .exit();
    }
}

/// The certificates of a PEM file, DER-encoded.
fn read_ca_certs(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM file of certificates", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// The merchant's public key of `--kit-public-key`: a PEM RSA public key that can encrypt a
/// `clientSecret` of the length the runner sends.
fn read_kit_public_key(path: &std::path::Path) -> Result<String> {
    let what = format!("--kit-public-key {}", path.display());
    let pem = std::fs::read_to_string(path).with_context(|| format!("{what}: cannot read"))?;
    if pem.contains("PRIVATE KEY-----") {
        bail!(
            "{what}: this is a private key; give the public key uploaded in the seller console (openssl pkey -in {} -pubout), never the private key",
            path.display()
        );
    }
    if !pem.contains("-----BEGIN ") {
        bail!("{what}: not a PEM file (no \"-----BEGIN PUBLIC KEY-----\" line)");
    }
    if pem.contains("-----BEGIN CERTIFICATE-----") {
        bail!(
            "{what}: this is a certificate; give its public key (openssl x509 -in {} -pubkey -noout)",
            path.display()
        );
    }
    conformance::kit::check_public_key(&pem).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(pem)
}

/// `koogate conformance`.
pub async fn run(args: ConformanceArgs) -> Result<String> {
    check_usage(&args);
    let extra_roots = match &args.ca_cert {
        Some(path) => read_ca_certs(path)?,
        None => Vec::new(),
    };
    let kit_public_key = match &args.kit_public_key {
        Some(path) => Some(read_kit_public_key(path)?),
        None => None,
    };
    let settings = Settings {
        url: args.url.clone(),
        key: args.key.clone(),
        kit_key: args.kit_key.clone(),
        license_key: args.license_key.clone(),
        kit_public_key,
        family: args.family.into(),
        charging: args.charging.into(),
        debug_only: args.debug_only,
        provision_timeout: Duration::from_secs(args.provision_timeout),
        extra_roots,
    };
    let bar = Bar::new(!args.json && std::io::stderr().is_terminal());
    let report = match conformance::run(&settings, &bar).await {
        Ok(r) => r,
        Err(e) => bail!("{e}"),
    };
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&report))
            .with_context(|| format!("cannot write the JUnit report to {}", path.display()))?;
    }
    let output = if args.json {
        report::json(&report)
    } else {
        report::table(&report)
    };
    println!("{output}");
    if report.ok {
        return Ok(String::new());
    }
    let unreachable = report.cases.iter().any(|c| {
        c.reason
            .as_deref()
            .is_some_and(|r| r.starts_with(conformance::check::UNREACHABLE))
    });
    if unreachable {
        bail!(
            "{} {} is unreachable: {} of {} cases failed",
            conformance::check::UNREACHABLE,
            report.url,
            report.failed,
            report.total
        );
    }
    bail!(
        "{} of {} conformance cases failed",
        report.failed,
        report.total
    )
}
