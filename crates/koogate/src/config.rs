//! Configuration of `koogate serve`: flags, environment variables, the TOML file and defaults,
//! resolved and validated into one [`Config`].
//!
//! Precedence: flag > env > config file > default. Clap merges flag and env into [`ConfigArgs`];
//! [`Config::load`] adds the file and the defaults and validates everything without writing to
//! disk. [`Config::prepare_data_dir`] then creates the data directory and fills in the keys that
//! were not configured: generated once, stored in `<data_dir>/keys.toml` and
//! `<data_dir>/data.key`.
//! See `docs/configuration.md`.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, STANDARD_PAD_INDIFFERENT as BASE64_ANY};
use koogallery::crypto::KeySize;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng as _, RngCore as _};
use secrecy::zeroize::Zeroize as _;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use serde::Deserialize;

/// The config file used when neither `--config` nor `KOOGATE_CONFIG` is given (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "./koogate.toml";
/// Interface keys kept in the data directory, as TOML.
pub const KEYS_FILE: &str = "keys.toml";
/// The data key kept in the data directory, as base64.
pub const DATA_KEY_FILE: &str = "data.key";
/// Length of a generated interface key (alphanumeric characters).
pub const GENERATED_KEY_LEN: usize = 32;

const DEFAULT_DATA_DIR: &str = "./koogate-data";
const DEFAULT_PRODUCE_PATH: &str = "/produce";
const DEFAULT_OPENAPI_URL: &str = "https://mkt.myhuaweicloud.com";
const DEFAULT_TIME_WINDOW_SECS: u64 = 60;
const DEFAULT_V1_TIME_WINDOW_SECS: u64 = 300;
const DEFAULT_MAX_BODY_BYTES: usize = 65_536;
const DEFAULT_FRONT_END_URL: &str = "https://app.example.com/t/{instance_id}";
const DEFAULT_USER_NAME: &str = "admin";
const DEFAULT_WORKERS: usize = 2;
const DEFAULT_JOB_LEASE_SECS: u64 = 60;
const MIN_JOB_LEASE_SECS: u64 = 5;
const MAX_WINDOW_SECS: u64 = 3600;
const MIN_BODY_BYTES: usize = 1024;
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const MAX_WORKERS: usize = 64;
const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// Length used for every placeholder when checking a template's rendered length.
const TEMPLATE_SAMPLE_LEN: usize = 64;

// ---------------------------------------------------------------------------------------------
// Settings metadata

/// One setting: its name (the key of [`Config::sources`]), flag, env var and TOML key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub flag: &'static str,
    pub env: &'static str,
    /// Dotted TOML key (`openapi.url`); empty for `config` itself.
    pub toml: &'static str,
    pub secret: bool,
}

const fn setting(
    name: &'static str,
    flag: &'static str,
    env: &'static str,
    toml: &'static str,
    secret: bool,
) -> Setting {
    Setting {
        name,
        flag,
        env,
        toml,
        secret,
    }
}

mod s {
    use super::{Setting, setting};

    pub const CONFIG: Setting = setting("config", "--config", "KOOGATE_CONFIG", "", false);
    pub const LISTEN: Setting = setting("listen", "--listen", "KOOGATE_LISTEN", "listen", false);
    pub const DATA_DIR: Setting = setting(
        "data_dir",
        "--data-dir",
        "KOOGATE_DATA_DIR",
        "data_dir",
        false,
    );
    pub const DATABASE_URL: Setting = setting(
        "database_url",
        "--database-url",
        "KOOGATE_DATABASE_URL",
        "database_url",
        false,
    );
    pub const PRODUCE_PATH: Setting = setting(
        "produce_path",
        "--produce-path",
        "KOOGATE_PRODUCE_PATH",
        "produce_path",
        false,
    );
    pub const BASIC_KEY: Setting = setting(
        "basic_key",
        "--basic-key",
        "KOOGATE_BASIC_KEY",
        "keys.basic",
        true,
    );
    pub const KIT_KEY: Setting =
        setting("kit_key", "--kit-key", "KOOGATE_KIT_KEY", "keys.kit", true);
    pub const LICENSE_KEY: Setting = setting(
        "license_key",
        "--license-key",
        "KOOGATE_LICENSE_KEY",
        "keys.license",
        true,
    );
    pub const GENERIC_KEY: Setting = setting(
        "generic_key",
        "--generic-key",
        "KOOGATE_GENERIC_KEY",
        "keys.generic",
        true,
    );
    pub const V1_KEY: Setting = setting("v1_key", "--v1-key", "KOOGATE_V1_KEY", "keys.v1", true);
    pub const AK: Setting = setting("ak", "--ak", "KOOGATE_AK", "openapi.ak", true);
    pub const SK: Setting = setting("sk", "--sk", "KOOGATE_SK", "openapi.sk", true);
    pub const OPENAPI_URL: Setting = setting(
        "openapi_url",
        "--openapi-url",
        "KOOGATE_OPENAPI_URL",
        "openapi.url",
        false,
    );
    pub const TIME_WINDOW_SECS: Setting = setting(
        "time_window_secs",
        "--time-window-secs",
        "KOOGATE_TIME_WINDOW_SECS",
        "protocol.time_window_secs",
        false,
    );
    pub const V1_TIME_WINDOW_SECS: Setting = setting(
        "v1_time_window_secs",
        "--v1-time-window-secs",
        "KOOGATE_V1_TIME_WINDOW_SECS",
        "protocol.v1_time_window_secs",
        false,
    );
    pub const V1_ENCRYPT_TYPE: Setting = setting(
        "v1_encrypt_type",
        "--v1-encrypt-type",
        "KOOGATE_V1_ENCRYPT_TYPE",
        "protocol.v1_encrypt_type",
        false,
    );
    pub const V2_ENCRYPT_CREDENTIALS: Setting = setting(
        "v2_encrypt_credentials",
        "--v2-encrypt-credentials",
        "KOOGATE_V2_ENCRYPT_CREDENTIALS",
        "protocol.v2_encrypt_credentials",
        false,
    );
    pub const ADMIN_TOKEN: Setting = setting(
        "admin_token",
        "--admin-token",
        "KOOGATE_ADMIN_TOKEN",
        "admin_token",
        true,
    );
    pub const TLS_CERT: Setting = setting(
        "tls_cert",
        "--tls-cert",
        "KOOGATE_TLS_CERT",
        "tls.cert",
        false,
    );
    pub const TLS_KEY: Setting =
        setting("tls_key", "--tls-key", "KOOGATE_TLS_KEY", "tls.key", false);
    pub const DATA_KEY: Setting = setting(
        "data_key",
        "--data-key",
        "KOOGATE_DATA_KEY",
        "data_key",
        true,
    );
    pub const MAX_BODY_BYTES: Setting = setting(
        "max_body_bytes",
        "--max-body-bytes",
        "KOOGATE_MAX_BODY_BYTES",
        "max_body_bytes",
        false,
    );
    pub const FRONT_END_URL: Setting = setting(
        "front_end_url",
        "--front-end-url",
        "KOOGATE_FRONT_END_URL",
        "provisioner.front_end_url",
        false,
    );
    pub const ADMIN_URL: Setting = setting(
        "admin_url",
        "--admin-url",
        "KOOGATE_ADMIN_URL",
        "provisioner.admin_url",
        false,
    );
    pub const MEMO: Setting = setting("memo", "--memo", "KOOGATE_MEMO", "provisioner.memo", false);
    pub const USER_NAME: Setting = setting(
        "user_name",
        "--user-name",
        "KOOGATE_USER_NAME",
        "provisioner.user_name",
        false,
    );
    pub const WORKERS: Setting =
        setting("workers", "--workers", "KOOGATE_WORKERS", "workers", false);
    pub const JOB_LEASE_SECS: Setting = setting(
        "job_lease_secs",
        "--job-lease-secs",
        "KOOGATE_JOB_LEASE_SECS",
        "job_lease_secs",
        false,
    );
    pub const LOG_FORMAT: Setting = setting(
        "log_format",
        "--log-format",
        "KOOGATE_LOG_FORMAT",
        "log_format",
        false,
    );
}

/// Every setting, in the order of `koogate check-config`.
pub const SETTINGS: &[Setting] = &[
    s::CONFIG,
    s::LISTEN,
    s::DATA_DIR,
    s::DATABASE_URL,
    s::PRODUCE_PATH,
    s::BASIC_KEY,
    s::KIT_KEY,
    s::LICENSE_KEY,
    s::GENERIC_KEY,
    s::V1_KEY,
    s::AK,
    s::SK,
    s::OPENAPI_URL,
    s::TIME_WINDOW_SECS,
    s::V1_TIME_WINDOW_SECS,
    s::V1_ENCRYPT_TYPE,
    s::V2_ENCRYPT_CREDENTIALS,
    s::ADMIN_TOKEN,
    s::TLS_CERT,
    s::TLS_KEY,
    s::DATA_KEY,
    s::MAX_BODY_BYTES,
    s::FRONT_END_URL,
    s::ADMIN_URL,
    s::MEMO,
    s::USER_NAME,
    s::WORKERS,
    s::JOB_LEASE_SECS,
    s::LOG_FORMAT,
];

/// The interface keys that `prepare_data_dir` generates when missing, with their TOML key in
/// `keys.toml`. (The V1 key is not generated: it defaults to the basic key.)
const INTERFACE_KEYS: [(Setting, &str); 4] = [
    (s::BASIC_KEY, "basic"),
    (s::KIT_KEY, "kit"),
    (s::LICENSE_KEY, "license"),
    (s::GENERIC_KEY, "generic"),
];

// ---------------------------------------------------------------------------------------------
// Command line

/// Configuration flags of `koogate serve` and `koogate check-config`; each is also read from its
/// env var. Precedence: flag > env > config file > default.
#[derive(Clone, Default, clap::Args)]
#[command(next_help_heading = "Configuration (flag > env > config file > default)")]
pub struct ConfigArgs {
    /// Configuration file (TOML) [default: ./koogate.toml if it exists]
    #[arg(long, env = "KOOGATE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "KOOGATE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for generated keys and the SQLite database [default: ./koogate-data]
    #[arg(long, env = "KOOGATE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite:// or postgres:// URL [default: sqlite://<data_dir>/koogate.db]
    #[arg(
        long,
        env = "KOOGATE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Path of the production interface [default: /produce]
    #[arg(long, env = "KOOGATE_PRODUCE_PATH", value_name = "PATH")]
    pub produce_path: Option<String>,
    /// Basic-interface key (基础接口) [default: generated on first start]
    #[arg(
        long,
        env = "KOOGATE_BASIC_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub basic_key: Option<String>,
    /// Kit key (联营SaaS同步接口) [default: generated on first start]
    #[arg(
        long,
        env = "KOOGATE_KIT_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub kit_key: Option<String>,
    /// License-code key (License授权码交付接口) [default: generated on first start]
    #[arg(
        long,
        env = "KOOGATE_LICENSE_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub license_key: Option<String>,
    /// Generic-interface key (通用接口) [default: generated on first start]
    #[arg(
        long,
        env = "KOOGATE_GENERIC_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub generic_key: Option<String>,
    /// V1 access key: authToken, Body-Sign, field cipher [default: the basic key]
    #[arg(
        long,
        env = "KOOGATE_V1_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub v1_key: Option<String>,
    /// Account access key (AK) for the open APIs
    #[arg(long, env = "KOOGATE_AK", value_name = "AK", hide_env_values = true)]
    pub ak: Option<String>,
    /// Account secret key (SK) for the open APIs
    #[arg(long, env = "KOOGATE_SK", value_name = "SK", hide_env_values = true)]
    pub sk: Option<String>,
    /// Base URL of the open APIs [default: https://mkt.myhuaweicloud.com]
    #[arg(long, env = "KOOGATE_OPENAPI_URL", value_name = "URL")]
    pub openapi_url: Option<String>,
    /// Accepted clock skew of V2 and kit requests, 1..=3600 [default: 60]
    #[arg(long, env = "KOOGATE_TIME_WINDOW_SECS", value_name = "SECS")]
    pub time_window_secs: Option<u64>,
    /// Accepted clock skew of V1 requests, 1..=3600 [default: 300]
    #[arg(long, env = "KOOGATE_V1_TIME_WINDOW_SECS", value_name = "SECS")]
    pub v1_time_window_secs: Option<u64>,
    /// Bearer token of the admin API
    #[arg(
        long,
        env = "KOOGATE_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// TLS certificate chain, PEM (with --tls-key)
    #[arg(long, env = "KOOGATE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (with --tls-cert)
    #[arg(long, env = "KOOGATE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Base64 of 32 bytes encrypting data at rest [default: <data_dir>/data.key, generated]
    #[arg(
        long,
        env = "KOOGATE_DATA_KEY",
        value_name = "BASE64",
        hide_env_values = true
    )]
    pub data_key: Option<String>,
    /// Largest accepted request body, 1024..=16777216 [default: 65536]
    #[arg(long, env = "KOOGATE_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// V1 field cipher: 1 = AES-256, 2 = AES-128 [default: 1]
    #[arg(long, env = "KOOGATE_V1_ENCRYPT_TYPE", value_name = "TYPE")]
    pub v1_encrypt_type: Option<String>,
    /// Encrypt userName/password in V2 queryInstance answers [default: false]
    #[arg(
        long,
        env = "KOOGATE_V2_ENCRYPT_CREDENTIALS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub v2_encrypt_credentials: Option<bool>,
    /// frontEndUrl template: {instance_id}, {order_id}, {customer_id}
    /// [default: https://app.example.com/t/{instance_id}]
    #[arg(long, env = "KOOGATE_FRONT_END_URL", value_name = "TEMPLATE")]
    pub front_end_url: Option<String>,
    /// adminUrl template (same placeholders)
    #[arg(long, env = "KOOGATE_ADMIN_URL", value_name = "TEMPLATE")]
    pub admin_url: Option<String>,
    /// memo template (same placeholders)
    #[arg(long, env = "KOOGATE_MEMO", value_name = "TEMPLATE")]
    pub memo: Option<String>,
    /// userName template (same placeholders) [default: admin]
    #[arg(long, env = "KOOGATE_USER_NAME", value_name = "TEMPLATE")]
    pub user_name: Option<String>,
    /// Background job workers, 1..=64 [default: 2]
    #[arg(long, env = "KOOGATE_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Seconds a claimed job stays reserved for its worker; after a crash, the job runs again
    /// once its lease has expired, 5..=3600 [default: 60]
    #[arg(long, env = "KOOGATE_JOB_LEASE_SECS", value_name = "SECS")]
    pub job_lease_secs: Option<u64>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "KOOGATE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

impl fmt::Debug for ConfigArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn hidden(v: &Option<String>) -> Option<&'static str> {
            v.as_ref().map(|_| "[REDACTED]")
        }
        f.debug_struct("ConfigArgs")
            .field("config", &self.config)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("produce_path", &self.produce_path)
            .field("basic_key", &hidden(&self.basic_key))
            .field("kit_key", &hidden(&self.kit_key))
            .field("license_key", &hidden(&self.license_key))
            .field("generic_key", &hidden(&self.generic_key))
            .field("v1_key", &hidden(&self.v1_key))
            .field("ak", &hidden(&self.ak))
            .field("sk", &hidden(&self.sk))
            .field("openapi_url", &self.openapi_url)
            .field("time_window_secs", &self.time_window_secs)
            .field("v1_time_window_secs", &self.v1_time_window_secs)
            .field("admin_token", &hidden(&self.admin_token))
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("data_key", &hidden(&self.data_key))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("v1_encrypt_type", &self.v1_encrypt_type)
            .field("v2_encrypt_credentials", &self.v2_encrypt_credentials)
            .field("front_end_url", &self.front_end_url)
            .field("admin_url", &self.admin_url)
            .field("memo", &self.memo)
            .field("user_name", &self.user_name)
            .field("workers", &self.workers)
            .field("job_lease_secs", &self.job_lease_secs)
            .field("log_format", &self.log_format)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Resolved configuration

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
    /// Generated on a first start and stored in the data directory.
    Generated,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// TLS certificate chain and private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Production-interface keys, one per interface type (spec README §3). `None` until
/// [`Config::prepare_data_dir`] fills in the ones not configured.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub basic: Option<SecretString>,
    pub kit: Option<SecretString>,
    pub license: Option<SecretString>,
    pub generic: Option<SecretString>,
    /// V1 access key; defaults to the basic key.
    pub v1: Option<SecretString>,
}

/// Values of the template placeholders.
#[derive(Debug, Clone, Copy)]
pub struct TemplateVars<'a> {
    pub instance_id: &'a str,
    pub order_id: &'a str,
    pub customer_id: &'a str,
}

/// Templates of the built-in provisioner's `appInfo`; placeholders `{instance_id}`,
/// `{order_id}`, `{customer_id}`; `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionerTemplates {
    pub front_end_url: String,
    pub admin_url: Option<String>,
    pub memo: Option<String>,
    pub user_name: String,
}

impl ProvisionerTemplates {
    /// Renders a template; values are inserted verbatim. Templates are validated by
    /// [`Config::load`], so this never fails (an invalid template is returned unchanged).
    pub fn render(template: &str, vars: &TemplateVars<'_>) -> String {
        expand(
            template,
            [vars.instance_id, vars.order_id, vars.customer_id],
        )
        .unwrap_or_else(|_| template.to_owned())
    }
}

/// A webhook endpoint from the config file (`[[webhooks.endpoints]]`, docs/integration.md).
#[derive(Debug, Clone)]
pub struct WebhookEndpointConfig {
    pub url: String,
    /// `whsec_…`.
    pub secret: SecretString,
    /// Event types, or `["*"]`.
    pub events: Vec<String>,
}

/// Webhook delivery settings (`[webhooks]`).
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    pub schedule: Schedule,
    pub endpoints: Vec<WebhookEndpointConfig>,
}

/// How an instance is provisioned (`[[provisioners]]`, docs/integration.md).
#[derive(Debug, Clone)]
pub enum ProvisionerKind {
    /// Access information from the templates of `[provisioner]`.
    Builtin,
    /// POST the request to the merchant's application.
    Webhook { url: String, secret: SecretString },
    /// Run a command: the request on stdin, `appInfo` JSON on stdout.
    Exec { command: Vec<String> },
}

/// A provisioner and the products/SKUs it serves (a missing field matches everything).
#[derive(Debug, Clone)]
pub struct ProvisionerRule {
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub kind: ProvisionerKind,
    /// Budget of one attempt.
    pub timeout_ms: u64,
    /// Attempts before the instance is marked failed.
    pub max_attempts: i64,
}

impl ProvisionerRule {
    pub fn matches(&self, product_id: Option<&str>, sku_code: Option<&str>) -> bool {
        let fits = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        fits(&self.product_id, product_id) && fits(&self.sku_code, sku_code)
    }
}

/// The resolved and validated configuration. `Debug` shows no secret (the database URL's
/// password is masked).
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub produce_path: String,
    pub keys: Keys,
    pub ak: Option<SecretString>,
    pub sk: Option<SecretString>,
    /// Without a trailing `/`.
    pub openapi_url: String,
    pub time_window_ms: u64,
    pub v1_time_window_ms: u64,
    pub admin_token: Option<SecretString>,
    pub tls: Option<TlsFiles>,
    /// Set by `load` when configured, else by [`Config::prepare_data_dir`].
    pub data_key: Option<SecretBox<[u8; 32]>>,
    pub max_body_bytes: usize,
    pub v1_key_size: KeySize,
    pub v2_encrypt_credentials: bool,
    pub provisioner: ProvisionerTemplates,
    /// Provisioners per product/SKU, first match wins; none matching: the built-in one.
    pub provisioners: Vec<ProvisionerRule>,
    pub webhooks: WebhookSettings,
    /// Usage windows and the usage push (`[metering]`, docs/metering.md).
    pub metering: MeteringSettings,
    pub workers: usize,
    /// How long a claimed job is reserved for its worker, in milliseconds.
    pub job_lease_ms: u64,
    pub log_format: LogFormat,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Source of every setting, keyed by [`Setting::name`].
    pub sources: BTreeMap<&'static str, Source>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.redacted_database_url())
            .field("produce_path", &self.produce_path)
            .field("keys", &self.keys)
            .field("ak", &self.ak)
            .field("sk", &self.sk)
            .field("openapi_url", &self.openapi_url)
            .field("time_window_ms", &self.time_window_ms)
            .field("v1_time_window_ms", &self.v1_time_window_ms)
            .field("admin_token", &self.admin_token)
            .field("tls", &self.tls)
            .field("data_key", &self.data_key)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("v1_key_size", &self.v1_key_size)
            .field("v2_encrypt_credentials", &self.v2_encrypt_credentials)
            .field("provisioner", &self.provisioner)
            .field("provisioners", &self.provisioners)
            .field("webhooks", &self.webhooks)
            .field("metering", &self.metering)
            .field("workers", &self.workers)
            .field("job_lease_ms", &self.job_lease_ms)
            .field("log_format", &self.log_format)
            .field("config_file", &self.config_file)
            .field("sources", &self.sources)
            .finish()
    }
}

impl Clone for Config {
    fn clone(&self) -> Self {
        Self {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            produce_path: self.produce_path.clone(),
            keys: self.keys.clone(),
            ak: self.ak.clone(),
            sk: self.sk.clone(),
            openapi_url: self.openapi_url.clone(),
            time_window_ms: self.time_window_ms,
            v1_time_window_ms: self.v1_time_window_ms,
            admin_token: self.admin_token.clone(),
            tls: self.tls.clone(),
            data_key: self
                .data_key
                .as_ref()
                .map(|k| SecretBox::new(Box::new(*k.expose_secret()))),
            max_body_bytes: self.max_body_bytes,
            v1_key_size: self.v1_key_size,
            v2_encrypt_credentials: self.v2_encrypt_credentials,
            provisioner: self.provisioner.clone(),
            provisioners: self.provisioners.clone(),
            webhooks: self.webhooks.clone(),
            metering: self.metering.clone(),
            workers: self.workers,
            job_lease_ms: self.job_lease_ms,
            log_format: self.log_format,
            config_file: self.config_file.clone(),
            sources: self.sources.clone(),
        }
    }
}

/// What [`Config::prepare_data_dir`] generated (setting names such as `"basic_key"` or
/// `"data_key"`), so that `serve` can show the new keys once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstStart {
    pub generated: Vec<&'static str>,
}

// ---------------------------------------------------------------------------------------------
// The config file

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    produce_path: Option<String>,
    admin_token: Option<String>,
    data_key: Option<String>,
    max_body_bytes: Option<usize>,
    workers: Option<usize>,
    job_lease_secs: Option<u64>,
    log_format: Option<String>,
    #[serde(default)]
    keys: FileKeys,
    #[serde(default)]
    openapi: FileOpenApi,
    #[serde(default)]
    protocol: FileProtocol,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    provisioner: FileProvisioner,
    #[serde(default)]
    provisioners: Vec<FileProvisionerRule>,
    #[serde(default)]
    webhooks: FileWebhooks,
    #[serde(default)]
    metering: FileMetering,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetering {
    grace_secs: Option<i64>,
    batch_size: Option<usize>,
    daily_products: Option<Vec<String>>,
    retry_first_secs: Option<i64>,
    retry_max_secs: Option<i64>,
    tick_secs: Option<u64>,
    legacy_api: Option<bool>,
    dashboard_url: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhooks {
    retry_first_ms: Option<i64>,
    retry_max_ms: Option<i64>,
    max_age_secs: Option<i64>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    endpoints: Vec<FileWebhookEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhookEndpoint {
    url: String,
    secret: String,
    events: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProvisionerRule {
    product_id: Option<String>,
    sku_code: Option<String>,
    kind: String,
    url: Option<String>,
    secret: Option<String>,
    command: Option<Vec<String>>,
    timeout_ms: Option<u64>,
    max_attempts: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    basic: Option<String>,
    kit: Option<String>,
    license: Option<String>,
    generic: Option<String>,
    v1: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOpenApi {
    url: Option<String>,
    ak: Option<String>,
    sk: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProtocol {
    time_window_secs: Option<u64>,
    v1_time_window_secs: Option<u64>,
    #[serde(default, deserialize_with = "string_or_int")]
    v1_encrypt_type: Option<String>,
    v2_encrypt_credentials: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProvisioner {
    front_end_url: Option<String>,
    admin_url: Option<String>,
    memo: Option<String>,
    user_name: Option<String>,
}

/// Accepts `v1_encrypt_type = "1"` as well as `v1_encrypt_type = 1`.
fn string_or_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrInt {
        S(String),
        I(i64),
    }
    Ok(Option::<StrOrInt>::deserialize(d)?.map(|v| match v {
        StrOrInt::S(s) => s,
        StrOrInt::I(i) => i.to_string(),
    }))
}

/// `<data_dir>/keys.toml`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKeys {
    basic: Option<String>,
    kit: Option<String>,
    license: Option<String>,
    generic: Option<String>,
}

impl StoredKeys {
    fn slot(&mut self, toml_key: &str) -> Option<&mut Option<String>> {
        match toml_key {
            "basic" => Some(&mut self.basic),
            "kit" => Some(&mut self.kit),
            "license" => Some(&mut self.license),
            "generic" => Some(&mut self.generic),
            _ => None,
        }
    }

    fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Production-interface keys generated by koogate on first start.\n\
             # Enter each in the KooGallery seller console (应用工具 > 密钥管理) for its interface type.\n\
             # Keep this file secret; nodes sharing one database must use the same keys.\n",
        );
        for (name, value) in [
            ("basic", &self.basic),
            ("kit", &self.kit),
            ("license", &self.license),
            ("generic", &self.generic),
        ] {
            if let Some(v) = value {
                out.push_str(name);
                out.push_str(" = ");
                push_toml_string(&mut out, v);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for StoredKeys {
    fn drop(&mut self) {
        for v in [
            &mut self.basic,
            &mut self.kit,
            &mut self.license,
            &mut self.generic,
        ]
        .into_iter()
        .flatten()
        {
            v.zeroize();
        }
    }
}

fn push_toml_string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Resolution

/// Parses an env var's text the way clap does, to tell an env value from a flag.
trait EnvValue: PartialEq + Sized {
    fn from_env(s: &str) -> Option<Self>;
}

macro_rules! env_value_from_str {
    ($($t:ty),*) => {$(
        impl EnvValue for $t {
            fn from_env(s: &str) -> Option<Self> {
                s.parse().ok()
            }
        }
    )*};
}
env_value_from_str!(String, PathBuf, SocketAddr, u64, usize);

impl EnvValue for bool {
    fn from_env(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        match s.as_str() {
            "y" | "yes" | "t" | "true" | "on" | "1" => Some(true),
            "n" | "no" | "f" | "false" | "off" | "0" => Some(false),
            _ => None,
        }
    }
}

/// How a setting is named in messages: `--listen`, `KOOGATE_LISTEN`, `./koogate.toml: listen`.
fn origin(s: &Setting, source: Source, file: Option<&Path>, data_dir: &Path) -> String {
    match source {
        Source::Flag => s.flag.to_owned(),
        Source::Env => s.env.to_owned(),
        Source::File => match file {
            Some(f) => format!("{}: {}", f.display(), s.toml),
            None => s.toml.to_owned(),
        },
        Source::Default => format!("{} (default)", s.name),
        Source::Generated => {
            let (file, key) = stored_location(s);
            format!("{}: {key}", data_dir.join(file).display())
        }
    }
}

/// A source as shown by `explain`: `from flag --listen`, `from env KOOGATE_LISTEN`, `default`…
fn describe(s: &Setting, source: Source, file: Option<&Path>, data_dir: &Path) -> String {
    match source {
        Source::Flag => format!("from flag {}", s.flag),
        Source::Env => format!("from env {}", s.env),
        Source::File => match file {
            Some(f) => format!("from file {} key {}", f.display(), s.toml),
            None => format!("from file key {}", s.toml),
        },
        Source::Default => "default".to_owned(),
        Source::Generated => {
            let (file, _) = stored_location(s);
            format!("generated, stored in {}", data_dir.join(file).display())
        }
    }
}

/// Where a generated setting is stored in the data directory.
fn stored_location(s: &Setting) -> (&'static str, &'static str) {
    match INTERFACE_KEYS.iter().find(|(k, _)| k.name == s.name) {
        Some((_, key)) => (KEYS_FILE, key),
        None => (DATA_KEY_FILE, "data_key"),
    }
}

type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Resolver<'a> {
    file: Option<&'a Path>,
    env: EnvLookup<'a>,
    sources: BTreeMap<&'static str, Source>,
}

impl Resolver<'_> {
    /// Flag or env: clap merged them, so a value counts as coming from the env when the env var
    /// holds the same value (if a flag repeats the env value, the value is the same anyway).
    fn cli_source<T: EnvValue>(&self, s: &Setting, v: &T) -> Source {
        match (self.env)(s.env) {
            Some(e) if T::from_env(&e).is_some_and(|p| p == *v) => Source::Env,
            _ => Source::Flag,
        }
    }

    /// Resolves one setting: flag/env, then file, then `default`; `check` validates and converts
    /// and its message gets the setting's origin as a prefix. `None` when unset without default.
    fn get<T: EnvValue, U>(
        &mut self,
        s: &'static Setting,
        cli: Option<T>,
        file: Option<T>,
        default: Option<T>,
        check: impl FnOnce(T) -> Result<U, String>,
    ) -> anyhow::Result<Option<U>> {
        let (value, source) = match (cli, file, default) {
            (Some(v), _, _) => {
                let source = self.cli_source(s, &v);
                (v, source)
            }
            (None, Some(v), _) => (v, Source::File),
            (None, None, Some(v)) => (v, Source::Default),
            (None, None, None) => {
                self.sources.insert(s.name, Source::Default);
                return Ok(None);
            }
        };
        self.sources.insert(s.name, source);
        check(value)
            .map(Some)
            .map_err(|m| anyhow!("{}: {m}", self.origin(s, source)))
    }

    /// Like [`Self::get`] for settings with a default.
    fn req<T: EnvValue, U>(
        &mut self,
        s: &'static Setting,
        cli: Option<T>,
        file: Option<T>,
        default: T,
        check: impl FnOnce(T) -> Result<U, String>,
    ) -> anyhow::Result<U> {
        self.get(s, cli, file, Some(default), check)?
            .ok_or_else(|| anyhow!("{}: no value", s.name))
    }

    fn origin(&self, s: &Setting, source: Source) -> String {
        origin(s, source, self.file, Path::new(""))
    }
}

impl Config {
    /// Resolves and validates the configuration: flag > env > config file > default. Reads the
    /// config file (and checks that TLS files exist) but writes nothing. Interface keys that are
    /// not configured stay `None` until [`Config::prepare_data_dir`].
    pub fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
        Self::load_with_env(args, &|name| std::env::var(name).ok())
    }

    fn load_with_env(args: &ConfigArgs, env: EnvLookup<'_>) -> anyhow::Result<Config> {
        // The config file.
        let mut sources = BTreeMap::new();
        let (config_file, config_source) = match &args.config {
            Some(p) => {
                let probe = Resolver {
                    file: None,
                    env,
                    sources: BTreeMap::new(),
                };
                (Some(p.clone()), probe.cli_source(&s::CONFIG, p))
            }
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                (Some(PathBuf::from(DEFAULT_CONFIG_FILE)), Source::Default)
            }
            None => (None, Source::Default),
        };
        sources.insert(s::CONFIG.name, config_source);
        let file = match &config_file {
            Some(path) => {
                let text = fs::read_to_string(path).map_err(|e| {
                    let who = match config_source {
                        Source::Flag => s::CONFIG.flag,
                        Source::Env => s::CONFIG.env,
                        _ => "config file",
                    };
                    anyhow!("{who}: cannot read {}: {e}", path.display())
                })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let mut file = file;
        let mut r = Resolver {
            file: config_file.as_deref(),
            env,
            sources,
        };
        let a = args.clone();

        let listen = r.req(
            &s::LISTEN,
            a.listen,
            file.listen,
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            Ok,
        )?;
        let data_dir = r.req(
            &s::DATA_DIR,
            a.data_dir,
            file.data_dir.take(),
            PathBuf::from(DEFAULT_DATA_DIR),
            |p| {
                if p.as_os_str().is_empty() {
                    Err("must not be empty".to_owned())
                } else {
                    Ok(p)
                }
            },
        )?;
        let default_db = default_database_url(&data_dir);
        let database_url = match default_db {
            Ok(url) => r.req(
                &s::DATABASE_URL,
                a.database_url,
                file.database_url.take(),
                url,
                check_database_url,
            )?,
            Err(m) => r
                .get(
                    &s::DATABASE_URL,
                    a.database_url,
                    file.database_url.take(),
                    None,
                    check_database_url,
                )?
                .ok_or_else(|| anyhow!("database_url (default): {m}"))?,
        };
        let produce_path = r.req(
            &s::PRODUCE_PATH,
            a.produce_path,
            file.produce_path.take(),
            DEFAULT_PRODUCE_PATH.to_owned(),
            check_produce_path,
        )?;

        let fk = &mut file.keys;
        let keys = Keys {
            basic: r.get(&s::BASIC_KEY, a.basic_key, fk.basic.take(), None, check_key)?,
            kit: r.get(&s::KIT_KEY, a.kit_key, fk.kit.take(), None, check_key)?,
            license: r.get(
                &s::LICENSE_KEY,
                a.license_key,
                fk.license.take(),
                None,
                check_key,
            )?,
            generic: r.get(
                &s::GENERIC_KEY,
                a.generic_key,
                fk.generic.take(),
                None,
                check_key,
            )?,
            v1: r.get(&s::V1_KEY, a.v1_key, fk.v1.take(), None, check_key)?,
        };

        let fo = &mut file.openapi;
        let ak = r.get(&s::AK, a.ak, fo.ak.take(), None, check_key)?;
        let sk = r.get(&s::SK, a.sk, fo.sk.take(), None, check_key)?;
        if ak.is_some() != sk.is_some() {
            let (set, unset) = if ak.is_some() {
                (&s::AK, &s::SK)
            } else {
                (&s::SK, &s::AK)
            };
            let source = r.sources.get(set.name).copied().unwrap_or(Source::Default);
            bail!(
                "{}: set without {} ({}); the open APIs need both or neither",
                r.origin(set, source),
                unset.name,
                unset.env
            );
        }
        let openapi_url = r.req(
            &s::OPENAPI_URL,
            a.openapi_url,
            fo.url.take(),
            DEFAULT_OPENAPI_URL.to_owned(),
            check_http_url,
        )?;

        let fp = &mut file.protocol;
        let time_window_ms = r.req(
            &s::TIME_WINDOW_SECS,
            a.time_window_secs,
            fp.time_window_secs,
            DEFAULT_TIME_WINDOW_SECS,
            |v| check_range(v, 1, MAX_WINDOW_SECS).map(|v| v * 1000),
        )?;
        let v1_time_window_ms = r.req(
            &s::V1_TIME_WINDOW_SECS,
            a.v1_time_window_secs,
            fp.v1_time_window_secs,
            DEFAULT_V1_TIME_WINDOW_SECS,
            |v| check_range(v, 1, MAX_WINDOW_SECS).map(|v| v * 1000),
        )?;
        let v1_key_size = r.req(
            &s::V1_ENCRYPT_TYPE,
            a.v1_encrypt_type,
            fp.v1_encrypt_type.take(),
            KeySize::default().encrypt_type().to_owned(),
            |v| {
                KeySize::from_encrypt_type(&v)
                    .map_err(|_| format!("must be \"1\" (AES-256) or \"2\" (AES-128), got {v:?}"))
            },
        )?;
        let v2_encrypt_credentials = r.req(
            &s::V2_ENCRYPT_CREDENTIALS,
            a.v2_encrypt_credentials,
            fp.v2_encrypt_credentials,
            false,
            Ok,
        )?;

        let admin_token = r.get(
            &s::ADMIN_TOKEN,
            a.admin_token,
            file.admin_token.take(),
            None,
            |v| {
                let n = v.chars().count();
                if n < MIN_ADMIN_TOKEN_LEN {
                    Err(format!(
                        "must be at least {MIN_ADMIN_TOKEN_LEN} characters, got {n}"
                    ))
                } else if v.chars().any(char::is_whitespace) {
                    Err("must not contain whitespace".to_owned())
                } else {
                    check_key(v)
                }
            },
        )?;

        let tls_cert = r.get(
            &s::TLS_CERT,
            a.tls_cert,
            file.tls.cert.take(),
            None,
            check_file,
        )?;
        let tls_key = r.get(
            &s::TLS_KEY,
            a.tls_key,
            file.tls.key.take(),
            None,
            check_file,
        )?;
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (cert, _) => {
                let (set, unset) = if cert.is_some() {
                    (&s::TLS_CERT, &s::TLS_KEY)
                } else {
                    (&s::TLS_KEY, &s::TLS_CERT)
                };
                let source = r.sources.get(set.name).copied().unwrap_or(Source::Default);
                bail!(
                    "{}: set without {} ({}); TLS needs both or neither",
                    r.origin(set, source),
                    unset.name,
                    unset.env
                );
            }
        };

        let data_key = r.get(
            &s::DATA_KEY,
            a.data_key,
            file.data_key.take(),
            None,
            decode_data_key,
        )?;
        let max_body_bytes = r.req(
            &s::MAX_BODY_BYTES,
            a.max_body_bytes,
            file.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
            |v| check_range(v, MIN_BODY_BYTES, MAX_BODY_BYTES),
        )?;

        let fv = &mut file.provisioner;
        let front_end_url = r.req(
            &s::FRONT_END_URL,
            a.front_end_url,
            fv.front_end_url.take(),
            DEFAULT_FRONT_END_URL.to_owned(),
            |t| check_template(t, 512, true),
        )?;
        let admin_url = r.get(&s::ADMIN_URL, a.admin_url, fv.admin_url.take(), None, |t| {
            check_template(t, 512, true)
        })?;
        let memo = r.get(&s::MEMO, a.memo, fv.memo.take(), None, |t| {
            check_template(t, 1024, false)
        })?;
        let user_name = r.req(
            &s::USER_NAME,
            a.user_name,
            fv.user_name.take(),
            DEFAULT_USER_NAME.to_owned(),
            |t| check_template(t, 128, false),
        )?;

        let webhooks = webhook_settings(std::mem::take(&mut file.webhooks))?;
        let metering = metering_settings(std::mem::take(&mut file.metering))?;
        let provisioners = std::mem::take(&mut file.provisioners)
            .into_iter()
            .enumerate()
            .map(|(i, rule)| provisioner_rule(rule).map_err(|e| anyhow!("provisioners[{i}]: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;

        let workers = r.req(&s::WORKERS, a.workers, file.workers, DEFAULT_WORKERS, |v| {
            check_range(v, 1, MAX_WORKERS)
        })?;
        let job_lease_secs = r.req(
            &s::JOB_LEASE_SECS,
            a.job_lease_secs,
            file.job_lease_secs,
            DEFAULT_JOB_LEASE_SECS,
            |v| check_range(v, MIN_JOB_LEASE_SECS, MAX_WINDOW_SECS),
        )?;
        let log_format = r.req(
            &s::LOG_FORMAT,
            a.log_format,
            file.log_format.take(),
            LogFormat::default().as_str().to_owned(),
            |v| match v.as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!("must be \"text\" or \"json\", got {v:?}")),
            },
        )?;

        let mut config = Config {
            listen,
            data_dir,
            database_url,
            produce_path,
            keys,
            ak,
            sk,
            openapi_url,
            time_window_ms,
            v1_time_window_ms,
            admin_token,
            tls,
            data_key,
            max_body_bytes,
            v1_key_size,
            v2_encrypt_credentials,
            provisioner: ProvisionerTemplates {
                front_end_url,
                admin_url,
                memo,
                user_name,
            },
            provisioners,
            webhooks,
            metering,
            workers,
            job_lease_ms: job_lease_secs * 1000,
            log_format,
            config_file: config_file.clone(),
            sources: r.sources,
        };
        config.check_distinct_keys()?;
        config.default_v1_key();
        Ok(config)
    }

    /// Creates the data directory (0700 on unix) and fills in what was not configured: each
    /// interface key (basic, kit, license, generic) from `<data_dir>/keys.toml` or generated
    /// (32 alphanumeric characters from the OS CSPRNG), and the data key from
    /// `<data_dir>/data.key` or generated. New values are written atomically with mode 0600.
    /// The V1 key defaults to the basic key afterwards.
    pub fn prepare_data_dir(&mut self) -> anyhow::Result<FirstStart> {
        create_private_dir(&self.data_dir).with_context(|| {
            format!(
                "{}: cannot create {}",
                self.origin(&s::DATA_DIR),
                self.data_dir.display()
            )
        })?;
        let mut generated = Vec::new();
        self.fill_keys(Some(&mut generated))?;
        self.fill_data_key(Some(&mut generated))?;
        Ok(FirstStart { generated })
    }

    /// For a database that already holds data: takes the keys from the configuration and the
    /// data directory, and generates none. A missing key is an error that says what is missing
    /// and how to restore it: a key generated now would not be the one the data was written
    /// with (stored credentials could no longer be opened; every KooGallery call would fail
    /// its signature check).
    pub fn keep_existing_keys(&mut self) -> anyhow::Result<()> {
        create_private_dir(&self.data_dir).with_context(|| {
            format!(
                "{}: cannot create {}",
                self.origin(&s::DATA_DIR),
                self.data_dir.display()
            )
        })?;
        self.read_data_dir()?;
        let mut missing = Vec::new();
        if self.data_key.is_none() {
            missing.push(format!(
                "the data key ({}, or KOOGATE_DATA_KEY)",
                self.data_dir.join(DATA_KEY_FILE).display()
            ));
        }
        let interface = [
            ("basic", self.keys.basic.is_none()),
            ("kit", self.keys.kit.is_none()),
            ("license", self.keys.license.is_none()),
            ("generic", self.keys.generic.is_none()),
        ];
        for (name, absent) in interface {
            if absent {
                missing.push(format!(
                    "the {name} key ({}, or its KOOGATE_*_KEY setting)",
                    self.data_dir.join(KEYS_FILE).display()
                ));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        bail!(
            "the database {} already holds instances, orders or webhook endpoints, but {} {} missing. \
             koogate will not generate new keys for existing data: restore the data directory's key \
             files from your backup (docs/operations.md, backups), or set the keys you configured before",
            self.redacted_database_url(),
            missing.join(" and "),
            if missing.len() == 1 { "is" } else { "are" }
        )
    }

    /// Like [`Config::prepare_data_dir`] but read-only: takes the keys already stored in the
    /// data directory and generates nothing (for `koogate check-config`).
    pub fn read_data_dir(&mut self) -> anyhow::Result<()> {
        self.fill_keys(None)?;
        self.fill_data_key(None)
    }

    fn fill_keys(&mut self, mut generated: Option<&mut Vec<&'static str>>) -> anyhow::Result<()> {
        let path = self.data_dir.join(KEYS_FILE);
        let mut stored = match read_optional(&path)? {
            Some(mut text) => {
                let parsed = toml::from_str::<StoredKeys>(&text)
                    .map_err(|e| anyhow!("{}: {e}", path.display()));
                text.zeroize();
                parsed?
            }
            None => StoredKeys::default(),
        };
        let mut dirty = false;
        for (setting, toml_key) in INTERFACE_KEYS {
            if self.key_slot(setting.name).is_some() {
                continue;
            }
            let Some(entry) = stored.slot(toml_key) else {
                continue;
            };
            let value = match entry {
                Some(v) => check_key(v.clone())
                    .map_err(|m| anyhow!("{}: {toml_key}: {m}", path.display()))?,
                None => {
                    let Some(generated) = generated.as_deref_mut() else {
                        continue;
                    };
                    let key = generate_key();
                    *entry = Some(key.expose_secret().to_owned());
                    generated.push(setting.name);
                    dirty = true;
                    key
                }
            };
            self.sources.insert(setting.name, Source::Generated);
            *self.key_slot_mut(setting.name) = Some(value);
        }
        if dirty {
            let mut text = stored.to_toml();
            let written = write_private_atomic(&path, text.as_bytes());
            text.zeroize();
            written.with_context(|| format!("cannot write {}", path.display()))?;
        }
        self.check_distinct_keys()?;
        self.default_v1_key();
        Ok(())
    }

    fn fill_data_key(&mut self, generated: Option<&mut Vec<&'static str>>) -> anyhow::Result<()> {
        if self.data_key.is_some() {
            return Ok(());
        }
        let path = self.data_dir.join(DATA_KEY_FILE);
        let key = match read_optional(&path)? {
            Some(text) => decode_data_key(text).map_err(|m| anyhow!("{}: {m}", path.display()))?,
            None => {
                let Some(generated) = generated else {
                    return Ok(());
                };
                let mut bytes = [0u8; 32];
                OsRng.fill_bytes(&mut bytes);
                let mut text = BASE64.encode(bytes);
                text.push('\n');
                let key = SecretBox::new(Box::new(bytes));
                bytes.zeroize();
                let written = write_private_atomic(&path, text.as_bytes());
                text.zeroize();
                written.with_context(|| format!("cannot write {}", path.display()))?;
                generated.push(s::DATA_KEY.name);
                key
            }
        };
        self.sources.insert(s::DATA_KEY.name, Source::Generated);
        self.data_key = Some(key);
        Ok(())
    }

    fn key_slot(&self, name: &str) -> &Option<SecretString> {
        match name {
            "basic_key" => &self.keys.basic,
            "kit_key" => &self.keys.kit,
            "license_key" => &self.keys.license,
            "generic_key" => &self.keys.generic,
            _ => &self.keys.v1,
        }
    }

    fn key_slot_mut(&mut self, name: &str) -> &mut Option<SecretString> {
        match name {
            "basic_key" => &mut self.keys.basic,
            "kit_key" => &mut self.keys.kit,
            "license_key" => &mut self.keys.license,
            "generic_key" => &mut self.keys.generic,
            _ => &mut self.keys.v1,
        }
    }

    /// Keys of different interface types must differ (spec README §3).
    fn check_distinct_keys(&self) -> anyhow::Result<()> {
        for (i, (a, _)) in INTERFACE_KEYS.iter().enumerate() {
            for (b, _) in &INTERFACE_KEYS[i + 1..] {
                if let (Some(x), Some(y)) = (self.key_slot(a.name), self.key_slot(b.name))
                    && x.expose_secret() == y.expose_secret()
                {
                    bail!(
                        "{} and {} are equal: KooGallery requires a different key per interface type",
                        self.origin(a),
                        self.origin(b)
                    );
                }
            }
        }
        Ok(())
    }

    fn default_v1_key(&mut self) {
        if self.keys.v1.is_none() {
            self.keys.v1 = self.keys.basic.clone();
        }
    }

    fn source(&self, s: &Setting) -> Source {
        self.sources.get(s.name).copied().unwrap_or(Source::Default)
    }

    fn origin(&self, s: &Setting) -> String {
        origin(
            s,
            self.source(s),
            self.config_file.as_deref(),
            &self.data_dir,
        )
    }

    fn describe(&self, s: &Setting) -> String {
        describe(
            s,
            self.source(s),
            self.config_file.as_deref(),
            &self.data_dir,
        )
    }

    /// The database URL with its password masked, for logs.
    pub fn redacted_database_url(&self) -> String {
        redact_url(&self.database_url)
    }

    /// Warnings about the configuration, for `check-config` and the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.ak.is_none() {
            w.push(
                "no AK/SK (KOOGATE_AK, KOOGATE_SK): orders cannot be fetched from KooGallery \
                 (order query) and usage cannot be pushed"
                    .to_owned(),
            );
        }
        if !self.listen.ip().is_loopback() && self.tls.is_none() {
            w.push(format!(
                "listening on {} without TLS: KooGallery only calls HTTPS, so koogate must be \
                 behind a TLS-terminating proxy",
                self.listen
            ));
        }
        if self.is_sqlite() {
            w.push(
                "SQLite supports a single node only; run several nodes on one PostgreSQL database"
                    .to_owned(),
            );
        } else {
            let local: Vec<&str> = INTERFACE_KEYS
                .iter()
                .map(|(k, _)| k)
                .chain([&s::DATA_KEY])
                .filter(|k| matches!(self.source(k), Source::Default | Source::Generated))
                .map(|k| k.name)
                .collect();
            if !local.is_empty() {
                w.push(format!(
                    "{} generated per node: nodes sharing one PostgreSQL database must share them; \
                     configure the same values on every node",
                    local.join(", ")
                ));
            }
        }
        for setting in SETTINGS.iter().filter(|s| s.secret) {
            if self.source(setting) == Source::Flag {
                w.push(format!(
                    "{} on the command line is visible to other users in the process list; \
                     prefer {} or the config file",
                    setting.flag, setting.env
                ));
            }
        }
        #[cfg(unix)]
        if let Some(path) = &self.config_file {
            use std::os::unix::fs::PermissionsExt as _;
            let has_secret = SETTINGS
                .iter()
                .any(|s| s.secret && self.source(s) == Source::File)
                || (self.source(&s::DATABASE_URL) == Source::File
                    && self.redacted_database_url() != self.database_url);
            if let Ok(meta) = fs::metadata(path)
                && has_secret
                && meta.permissions().mode() & 0o077 != 0
            {
                w.push(format!(
                    "{} holds secrets but is readable by other users (mode {:o}); chmod 600 it",
                    path.display(),
                    meta.permissions().mode() & 0o777
                ));
            }
        }
        w
    }

    fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// Every setting with its effective value and source, then the warnings. Secrets are never
    /// shown, only whether they are set and their length.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let ms_to_secs = |ms: u64| (ms / 1000).to_string();
        for setting in SETTINGS {
            let value: Option<String> = match setting.name {
                "config" => self.config_file.as_ref().map(|p| p.display().to_string()),
                "listen" => Some(self.listen.to_string()),
                "data_dir" => Some(self.data_dir.display().to_string()),
                "database_url" => Some(self.redacted_database_url()),
                "produce_path" => Some(self.produce_path.clone()),
                "openapi_url" => Some(self.openapi_url.clone()),
                "time_window_secs" => Some(ms_to_secs(self.time_window_ms)),
                "v1_time_window_secs" => Some(ms_to_secs(self.v1_time_window_ms)),
                "v1_encrypt_type" => Some(format!(
                    "{} (AES-{})",
                    self.v1_key_size.encrypt_type(),
                    self.v1_key_size.bits()
                )),
                "v2_encrypt_credentials" => Some(self.v2_encrypt_credentials.to_string()),
                "tls_cert" => self.tls.as_ref().map(|t| t.cert.display().to_string()),
                "tls_key" => self.tls.as_ref().map(|t| t.key.display().to_string()),
                "max_body_bytes" => Some(self.max_body_bytes.to_string()),
                "front_end_url" => Some(self.provisioner.front_end_url.clone()),
                "admin_url" => self.provisioner.admin_url.clone(),
                "memo" => self.provisioner.memo.clone(),
                "user_name" => Some(self.provisioner.user_name.clone()),
                "workers" => Some(self.workers.to_string()),
                "job_lease_secs" => Some((self.job_lease_ms / 1000).to_string()),
                "log_format" => Some(self.log_format.as_str().to_owned()),
                _ => None,
            };
            let shown = if setting.secret {
                self.explain_secret(setting)
            } else {
                match value {
                    Some(v) => format!("{v} ({})", self.describe(setting)),
                    None => "not set".to_owned(),
                }
            };
            let _ = writeln!(out, "{:<24}{shown}", format!("{}:", setting.name));
        }
        let warnings = self.warnings();
        if !warnings.is_empty() {
            out.push_str("\nwarnings:\n");
            for w in warnings {
                let _ = writeln!(out, "  - {w}");
            }
        }
        out
    }

    fn explain_secret(&self, setting: &Setting) -> String {
        let len = match setting.name {
            "ak" => self.ak.as_ref().map(|v| v.expose_secret().chars().count()),
            "sk" => self.sk.as_ref().map(|v| v.expose_secret().chars().count()),
            "admin_token" => self
                .admin_token
                .as_ref()
                .map(|v| v.expose_secret().chars().count()),
            "data_key" => {
                return match self.data_key {
                    Some(_) => format!("set (32 bytes, {})", self.describe(setting)),
                    None => format!(
                        "not set (generated on first start into {})",
                        self.data_dir.join(DATA_KEY_FILE).display()
                    ),
                };
            }
            name => self
                .key_slot(name)
                .as_ref()
                .map(|v| v.expose_secret().chars().count()),
        };
        match len {
            Some(n) if setting.name == "v1_key" && self.source(setting) == Source::Default => {
                format!("set ({n} chars, default: the basic key)")
            }
            Some(n) => format!("set ({n} chars, {})", self.describe(setting)),
            None if setting.name == "v1_key" => "not set (defaults to the basic key)".to_owned(),
            None if INTERFACE_KEYS.iter().any(|(k, _)| k.name == setting.name) => format!(
                "not set (generated on first start into {})",
                self.data_dir.join(KEYS_FILE).display()
            ),
            None => "not set".to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

fn check_range<T: PartialOrd + fmt::Display>(v: T, lo: T, hi: T) -> Result<T, String> {
    if v < lo || v > hi {
        Err(format!("must be between {lo} and {hi}, got {v}"))
    } else {
        Ok(v)
    }
}

/// A key, AK, SK or token: non-empty, no surrounding whitespace, no control characters.
fn check_key(v: String) -> Result<SecretString, String> {
    if v.is_empty() {
        Err("must not be empty".to_owned())
    } else if v.trim() != v {
        Err("has leading or trailing whitespace".to_owned())
    } else if v.chars().any(char::is_control) {
        Err("contains a control character".to_owned())
    } else {
        Ok(SecretString::from(v))
    }
}

fn decode_data_key(mut v: String) -> Result<SecretBox<[u8; 32]>, String> {
    let decoded = BASE64_ANY.decode(v.trim());
    v.zeroize();
    let mut bytes = decoded.map_err(|_| "must be base64 of 32 bytes, not valid base64")?;
    let result = <[u8; 32]>::try_from(bytes.as_slice())
        .map(|a| SecretBox::new(Box::new(a)))
        .map_err(|_| format!("must be base64 of 32 bytes, got {} bytes", bytes.len()));
    bytes.zeroize();
    result
}

fn check_database_url(v: String) -> Result<String, String> {
    let rest = ["sqlite://", "postgres://", "postgresql://"]
        .iter()
        .find_map(|p| v.strip_prefix(p));
    match rest {
        None => Err(format!(
            "must start with sqlite://, postgres:// or postgresql://, got {:?}",
            redact_url(&v)
        )),
        Some("") => Err("names no database".to_owned()),
        Some(_) if v.chars().any(char::is_whitespace) => {
            Err("must not contain whitespace".to_owned())
        }
        Some(_) => Ok(v),
    }
}

/// `sqlite://<data_dir>/koogate.db`; sqlx percent-decodes the path, so `%`, `?` and `#` are
/// encoded.
fn default_database_url(data_dir: &Path) -> Result<String, String> {
    let dir = data_dir
        .to_str()
        .ok_or_else(|| "data_dir is not valid UTF-8; set database_url explicitly".to_owned())?;
    let mut url = String::from("sqlite://");
    for c in dir.trim_end_matches('/').chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url.push_str("/koogate.db");
    Ok(url)
}

fn check_produce_path(v: String) -> Result<String, String> {
    if !v.starts_with('/') {
        Err(format!("must start with '/', got {v:?}"))
    } else if v.contains(['?', '#']) {
        Err(format!("must not contain '?' or '#', got {v:?}"))
    } else if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!("must not contain whitespace, got {v:?}"))
    } else if v.len() > 1 && v.ends_with('/') {
        Err(format!("must not end with '/', got {v:?}"))
    } else {
        Ok(v)
    }
}

/// An absolute http(s) URL without query or fragment; returned without a trailing `/`.
fn check_http_url(v: String) -> Result<String, String> {
    let url = url::Url::parse(&v).map_err(|e| format!("not a URL ({e}): {v:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("must be an http:// or https:// URL, got {v:?}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("must not have a query or fragment, got {v:?}"));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

/// Default budget of one provisioning attempt by webhook or command.
const DEFAULT_PROVISION_TIMEOUT_MS: u64 = 10_000;

fn webhook_settings(f: FileWebhooks) -> anyhow::Result<WebhookSettings> {
    let d = Schedule::default();
    let positive = |name: &str, v: Option<i64>, default: i64| match v {
        Some(v) if v <= 0 => Err(anyhow!("webhooks.{name}: must be greater than 0, got {v}")),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let schedule = Schedule {
        first_retry_ms: positive("retry_first_ms", f.retry_first_ms, d.first_retry_ms)?,
        max_retry_ms: positive("retry_max_ms", f.retry_max_ms, d.max_retry_ms)?,
        max_age_ms: positive("max_age_secs", f.max_age_secs, d.max_age_ms / 1000)?
            .saturating_mul(1000),
        timeout_ms: match f.timeout_ms {
            Some(0) => bail!("webhooks.timeout_ms: must be greater than 0"),
            Some(v) => v,
            None => d.timeout_ms,
        },
    };
    let endpoints = f
        .endpoints
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = |e: String| anyhow!("webhooks.endpoints[{i}]: {e}");
            let url = check_http_url(e.url).map_err(|e| at(format!("url {e}")))?;
            crate::events::check_secret(&e.secret).map_err(|e| at(format!("secret {e}")))?;
            let events = e.events.unwrap_or_else(|| vec!["*".to_owned()]);
            crate::events::check_event_types(&events).map_err(|e| at(format!("events: {e}")))?;
            Ok(WebhookEndpointConfig {
                url,
                secret: SecretString::from(e.secret),
                events,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(WebhookSettings {
        schedule,
        endpoints,
    })
}

fn metering_settings(f: FileMetering) -> anyhow::Result<MeteringSettings> {
    let d = MeteringSettings::default();
    let secs = |name: &str, v: Option<i64>, default_ms: i64, min: i64, max: i64| match v {
        Some(v) if !(min..=max).contains(&v) => Err(anyhow!(
            "metering.{name}: must be between {min} and {max}, got {v}"
        )),
        Some(v) => Ok(v * 1000),
        None => Ok(default_ms),
    };
    let batch_size = match f.batch_size {
        Some(n) if !(1..=koogallery::model::openapi::MAX_USAGE_RECORDS).contains(&n) => bail!(
            "metering.batch_size: must be between 1 and {} (KooGallery's limit), got {n}",
            koogallery::model::openapi::MAX_USAGE_RECORDS
        ),
        Some(n) => n,
        None => d.batch_size,
    };
    let dashboard_url = match f.dashboard_url {
        Some(u) => {
            let probe = u.replace("{instance_id}", "x");
            check_http_url(probe).map_err(|e| anyhow!("metering.dashboard_url {e}"))?;
            Some(u)
        }
        None => None,
    };
    Ok(MeteringSettings {
        // At most 15 minutes: KooGallery expects the push 0–15 minutes after the hour.
        grace_ms: secs("grace_secs", f.grace_secs, d.grace_ms, 0, 900)?,
        batch_size,
        daily_products: f.daily_products.unwrap_or_default(),
        retry_first_ms: secs(
            "retry_first_secs",
            f.retry_first_secs,
            d.retry_first_ms,
            1,
            3600,
        )?,
        retry_max_ms: secs("retry_max_secs", f.retry_max_secs, d.retry_max_ms, 1, 3600)?,
        tick_ms: match f.tick_secs {
            Some(v) if !(1..=300).contains(&v) => {
                bail!("metering.tick_secs: must be between 1 and 300, got {v}")
            }
            Some(v) => v * 1000,
            None => d.tick_ms,
        },
        legacy_api: f.legacy_api.unwrap_or(false),
        dashboard_url,
    })
}

fn provisioner_rule(f: FileProvisionerRule) -> Result<ProvisionerRule, String> {
    let kind = match f.kind.as_str() {
        "builtin" => ProvisionerKind::Builtin,
        "webhook" => {
            let url = check_http_url(f.url.ok_or("kind \"webhook\" needs url")?)
                .map_err(|e| format!("url {e}"))?;
            let secret = f.secret.ok_or("kind \"webhook\" needs secret (whsec_…)")?;
            crate::events::check_secret(&secret).map_err(|e| format!("secret {e}"))?;
            ProvisionerKind::Webhook {
                url,
                secret: SecretString::from(secret),
            }
        }
        "exec" => {
            let command = f.command.filter(|c| !c.is_empty()).ok_or(
                "kind \"exec\" needs command, a non-empty list: [\"program\", \"arg\", …]",
            )?;
            ProvisionerKind::Exec { command }
        }
        other => {
            return Err(format!(
                "kind must be \"builtin\", \"webhook\" or \"exec\", got {other:?}"
            ));
        }
    };
    let timeout_ms = match f.timeout_ms {
        Some(0) => return Err("timeout_ms must be greater than 0".to_owned()),
        Some(v) => v,
        None => DEFAULT_PROVISION_TIMEOUT_MS,
    };
    let max_attempts = match f.max_attempts {
        Some(v) if !(1..=100).contains(&v) => {
            return Err(format!("max_attempts must be between 1 and 100, got {v}"));
        }
        Some(v) => v,
        None => JOB_MAX_ATTEMPTS,
    };
    Ok(ProvisionerRule {
        product_id: f.product_id,
        sku_code: f.sku_code,
        kind,
        timeout_ms,
        max_attempts,
    })
}

fn check_file(p: PathBuf) -> Result<PathBuf, String> {
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{} is not a readable file", p.display()))
    }
}

/// Placeholders only from the allowed set; at most `max_chars` characters once rendered with
/// 64-character values; an http(s) URL once rendered if `url`.
fn check_template(t: String, max_chars: usize, url: bool) -> Result<String, String> {
    if t.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let sample = "x".repeat(TEMPLATE_SAMPLE_LEN);
    let rendered = expand(&t, [&sample, &sample, &sample])?;
    let n = rendered.chars().count();
    if n > max_chars {
        return Err(format!(
            "renders to {n} characters with {TEMPLATE_SAMPLE_LEN}-character ids; \
             KooGallery accepts at most {max_chars}"
        ));
    }
    if url {
        check_http_url(rendered).map_err(|m| format!("once rendered: {m}"))?;
    }
    Ok(t)
}

const PLACEHOLDERS: [&str; 3] = ["instance_id", "order_id", "customer_id"];

/// Replaces `{instance_id}`, `{order_id}`, `{customer_id}` by `values` (in that order);
/// `{{` and `}}` are literal braces.
fn expand(template: &str, values: [&str; 3]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err("unmatched '}' (write '}}' for a literal brace)".to_owned());
        } else {
            let end = tail
                .find('}')
                .ok_or("unclosed '{' (write '{{' for a literal brace)")?;
            let name = &tail[1..end];
            let index = PLACEHOLDERS
                .iter()
                .position(|p| *p == name)
                .ok_or_else(|| {
                    format!(
                        "unknown placeholder {{{name}}}; allowed: {{instance_id}}, {{order_id}}, \
                     {{customer_id}}"
                    )
                })?;
            out.push_str(values[index]);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Masks the password of a URL's user info and of `password`-like query parameters.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = head.to_owned();
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let Some(q) = tail.find('?') else {
        out.push_str(tail);
        return out;
    };
    out.push_str(&tail[..=q]);
    let (query, fragment) = match tail[q + 1..].split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (&tail[q + 1..], None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    out.push_str(&params.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Files

fn generate_key() -> SecretString {
    let key: String = OsRng
        .sample_iter(&Alphanumeric)
        .take(GENERATED_KEY_LEN)
        .map(char::from)
        .collect();
    SecretString::from(key)
}

/// The file's text, or `None` if it does not exist.
fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes `contents` to `path` atomically: a temporary file (mode 0600) in the same directory,
/// fsync, rename, then fsync of the directory.
fn write_private_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix: String = OsRng
        .sample_iter(&Alphanumeric)
        .take(8)
        .map(char::from)
        .collect();
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let result = options.open(&tmp).and_then(|mut f| {
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn env_or_flag_is_told_apart_by_comparing_with_the_env() {
        let args = ConfigArgs {
            time_window_secs: Some(0),
            ..ConfigArgs::default()
        };
        let env = |name: &str| (name == "KOOGATE_TIME_WINDOW_SECS").then(|| "0".to_owned());
        let err = Config::load_with_env(&args, &env).unwrap_err().to_string();
        assert_eq!(
            err,
            "KOOGATE_TIME_WINDOW_SECS: must be between 1 and 3600, got 0"
        );
        let other = |name: &str| (name == "KOOGATE_TIME_WINDOW_SECS").then(|| "5".to_owned());
        let err = Config::load_with_env(&args, &other)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "--time-window-secs: must be between 1 and 3600, got 0");

        let args = ConfigArgs {
            v2_encrypt_credentials: Some(true),
            ..ConfigArgs::default()
        };
        let env = |name: &str| (name == "KOOGATE_V2_ENCRYPT_CREDENTIALS").then(|| "Yes".to_owned());
        let c = Config::load_with_env(&args, &env).unwrap();
        assert_eq!(c.sources["v2_encrypt_credentials"], Source::Env);
    }

    #[test]
    fn templates_expand_and_reject_unknown_placeholders() {
        let v = ["I", "O", "C"];
        assert_eq!(
            expand("a/{instance_id}/{order_id}/{customer_id}{{}}", v).unwrap(),
            "a/I/O/C{}"
        );
        assert!(expand("{tenant}", v).unwrap_err().contains("{tenant}"));
        assert!(expand("{instance_id", v).is_err());
        assert!(expand("}", v).is_err());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@h:5432/db?sslmode=require&password=x#f"),
            "postgres://u:***@h:5432/db?sslmode=require&password=***#f"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("sqlite://./koogate-data/koogate.db"),
            "sqlite://./koogate-data/koogate.db"
        );
    }

    #[test]
    fn default_database_url_encodes_special_characters() {
        assert_eq!(
            default_database_url(Path::new("/var/lib/a?b#c%d/")).unwrap(),
            "sqlite:///var/lib/a%3Fb%23c%25d/koogate.db"
        );
    }
}

/// Attempts before a job gives up (with the backoff schedule: about 3 hours).
pub const JOB_MAX_ATTEMPTS: i64 = 16;

/// When deliveries are retried, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Delay after the first failed attempt; doubled after each further one.
    pub first_retry_ms: i64,
    /// The longest delay between two attempts.
    pub max_retry_ms: i64,
    /// A delivery whose event is older than this when an attempt fails is given up.
    pub max_age_ms: i64,
    /// Timeout of one attempt.
    pub timeout_ms: u64,
}

impl Default for Schedule {
    /// 5 s, 10 s, 20 s … at most an hour apart, for up to 3 days; 10 s per attempt.
    fn default() -> Self {
        Self {
            first_retry_ms: 5_000,
            max_retry_ms: 3_600_000,
            max_age_ms: 3 * 24 * 3_600_000,
            timeout_ms: 10_000,
        }
    }
}

/// Metering settings (`[metering]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteringSettings {
    /// A window is sealed (no more events, due for push) this long after it ends.
    pub grace_ms: i64,
    /// Records per usage-push call: 1 to 1000 (openapi.md §8 #4: default 100).
    pub batch_size: usize,
    /// Products billed daily: their usage is aggregated per UTC day instead of per hour.
    pub daily_products: Vec<String>,
    /// First retry delay after a failed push; doubled per attempt up to `retry_max_ms`.
    pub retry_first_ms: i64,
    pub retry_max_ms: i64,
    /// How often the scheduler looks for due windows.
    pub tick_ms: u64,
    /// Push to the old API (`/rest/marketplace/v1/isv/usage-data`, openapi.md §4).
    pub legacy_api: bool,
    /// `dashboardUrl` of `queryInstance`'s usage info; `{instance_id}` is replaced.
    pub dashboard_url: Option<String>,
}

impl Default for MeteringSettings {
    fn default() -> Self {
        Self {
            grace_ms: 5 * 60_000,
            batch_size: koogallery::model::openapi::DEFAULT_USAGE_BATCH,
            daily_products: Vec::new(),
            retry_first_ms: 30_000,
            retry_max_ms: 10 * 60_000,
            tick_ms: 30_000,
            legacy_api: false,
            dashboard_url: None,
        }
    }
}
