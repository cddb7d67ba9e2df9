//! `koogate emulator`: run an emulated KooGallery that calls a production interface
//! (`serve`), and drive a running one through its control API (every other verb).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use koogallery_emulator::catalog::MerchantKeys;
use koogallery_emulator::server::{self, Config};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    #[command(subcommand)]
    pub command: EmulatorCommand,
}

#[derive(Debug, Subcommand)]
pub enum EmulatorCommand {
    /// Run the emulator: KooGallery's open API (order query) and the marketplace, which calls
    /// the production interface with signed requests, retries and lifecycle automation, plus
    /// the control API the other verbs use. Prints "listening on URL" first.
    Serve(ServeArgs),
    /// Place an order (new, on-demand, trial, trial-to-formal, renew, unsubscribe-renewal,
    /// renewal-change, upgrade, unsubscribe) and show the calls it caused.
    Order(OrderArgs),
    /// Move the emulated clock forward (e.g. 90s, 15m, 3h, 16d) and perform what fell due.
    Advance(AdvanceArgs),
    /// Show the emulated clock.
    Clock(ClientArgs),
    /// List the calls made to the production interface, with KooGallery's verdicts.
    Calls(CallsArgs),
    /// List the production-interface messages (生产接口消息): failed calls being retried or
    /// waiting for a manual restart.
    Messages(ClientArgs),
    /// Restart a failed call by hand (重新启动), by its message ID.
    Restart(RestartArgs),
    /// Ask for a license of an online-License instance, as the buyer's software does: the
    /// emulator calls getLicenseAsync with a new eventId.
    License(LicenseArgs),
    /// Freeze an instance for a rule violation, or unfreeze it (updateInstanceStatus; V1
    /// instanceStatus; License code updateLicenseCodeStatus).
    Status(StatusArgs),
    /// Sync a change in the buyer's directory of a joint-operation instance: authorise, change
    /// or remove a user (authSync), change a department (singleOrgSync), or push the whole
    /// organisation again (allOrgSync).
    Sync(SyncArgs),
    /// List the orders.
    Orders(ClientArgs),
    /// List the instances (purchased resources).
    Instances(ClientArgs),
    /// List the catalog.
    Products(ClientArgs),
    /// List the bills: usage the merchant pushed and the emulator accepted, rated at the
    /// product's price per unit; and what was deducted from packages.
    Bills(ClientArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(
        long,
        env = "KOOGATE_EMULATOR_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,
    /// The merchant account's access key the open API accepts (APIG AK/SK)
    #[arg(long, env = "KOOGATE_EMULATOR_AK")]
    pub ak: String,
    /// The merchant account's secret key
    #[arg(long, env = "KOOGATE_EMULATOR_SK", hide_env_values = true)]
    pub sk: String,
    /// Key of the basic interfaces (基础接口): signs SaaS V2 and V1 calls, checks Body-Sign
    #[arg(long, env = "KOOGATE_EMULATOR_BASIC_KEY", hide_env_values = true)]
    pub basic_key: Option<String>,
    /// Key of the joint-operation kit interfaces (联营SaaS同步接口)
    #[arg(long, env = "KOOGATE_EMULATOR_KIT_KEY", hide_env_values = true)]
    pub kit_key: Option<String>,
    /// Key of the License code 2.0 interfaces (License授权码交付接口)
    #[arg(long, env = "KOOGATE_EMULATOR_LICENSE_KEY", hide_env_values = true)]
    pub license_key: Option<String>,
    /// Key of the generic interfaces (通用接口, orderNotify)
    #[arg(long, env = "KOOGATE_EMULATOR_GENERIC_KEY", hide_env_values = true)]
    pub generic_key: Option<String>,
    /// Emulated seconds per real second (3600: an hour passes every second; 0: the clock moves
    /// only with `advance`)
    #[arg(long, env = "KOOGATE_EMULATOR_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,
    /// Persist orders, instances, calls and messages in this SQLite file (in memory otherwise)
    #[arg(long, env = "KOOGATE_EMULATOR_STATE", value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// The production URL the catalog's products are bound to (e.g. https://host/produce)
    #[arg(long, env = "KOOGATE_EMULATOR_MERCHANT_URL", value_name = "URL")]
    pub merchant_url: Option<String>,
    /// The merchant's RSA public key (PEM file, SPKI or PKCS#1): joint-operation
    /// applicationSync encrypts clientSecret with it (without one, applicationSync is not sent)
    #[arg(long, env = "KOOGATE_EMULATOR_KIT_PUBLIC_KEY", value_name = "FILE")]
    pub kit_public_key: Option<PathBuf>,
}

impl std::fmt::Debug for ServeArgs {
    /// Never prints the SK or the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |k: &Option<String>| if k.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("ServeArgs")
            .field("listen", &self.listen)
            .field("ak", &self.ak)
            .field("sk", &"<redacted>")
            .field("basic_key", &set(&self.basic_key))
            .field("kit_key", &set(&self.kit_key))
            .field("license_key", &set(&self.license_key))
            .field("generic_key", &set(&self.generic_key))
            .field("time_scale", &self.time_scale)
            .field("state", &self.state)
            .field("merchant_url", &self.merchant_url)
            .field("kit_public_key", &self.kit_public_key)
            .finish()
    }
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Base URL of the running emulator
    #[arg(
        long,
        env = "KOOGATE_EMULATOR_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    pub url: String,
    /// Print the control API's JSON answer instead of a summary
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OrderArgs {
    /// new | on-demand | trial | trial-to-formal | renew | unsubscribe-renewal |
    /// renewal-change | upgrade | unsubscribe
    pub kind: String,
    /// The product bought (new, on-demand, trial)
    #[arg(long)]
    pub product: Option<String>,
    /// The resource the order is about (every other kind), as listed by `instances`
    #[arg(long)]
    pub resource: Option<String>,
    /// upgrade, renewal-change: the product moved to (default: the product's upgradeTo)
    #[arg(long)]
    pub target: Option<String>,
    /// upgrade: the new quantity of the linear attribute
    #[arg(long)]
    pub linear_value: Option<i64>,
    /// Periods bought, renewed or refunded
    #[arg(long)]
    pub periods: Option<u32>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AdvanceArgs {
    /// How far: 90s, 15m, 3h, 16d, 1d12h (a bare number is seconds)
    pub by: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct CallsArgs {
    /// Only the calls of this order
    #[arg(long)]
    pub order: Option<String>,
    /// Only the calls about this resource
    #[arg(long)]
    pub resource: Option<String>,
    /// Only this activity
    #[arg(long)]
    pub activity: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The message (call) ID, as listed by `messages`
    pub id: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct LicenseArgs {
    /// The online-License resource, as listed by `instances`
    #[arg(long)]
    pub resource: String,
    /// The device fingerprint (MAC|DISK|BOARD|CPU, upper case)
    #[arg(long)]
    pub fingerprint: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// FREEZE or UNFREEZE
    #[arg(value_parser = ["FREEZE", "UNFREEZE"])]
    pub status: String,
    /// The resource, as listed by `instances`
    #[arg(long)]
    pub resource: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// auth (a user), org (a department) or all-org (the whole organisation)
    #[arg(value_parser = ["auth", "org", "all-org"])]
    pub kind: String,
    /// The joint-operation resource, as listed by `instances`
    #[arg(long)]
    pub resource: String,
    /// add (default), modify, delete, or (auth) cancel the authorisation
    #[arg(long)]
    pub flag: Option<String>,
    /// auth: the user's login account
    #[arg(long)]
    pub user: Option<String>,
    /// auth: the user's display name
    #[arg(long)]
    pub name: Option<String>,
    /// auth: user or admin
    #[arg(long)]
    pub role: Option<String>,
    /// auth: the user's department; org: the department's code
    #[arg(long)]
    pub org: Option<String>,
    /// org: the department's name
    #[arg(long)]
    pub org_name: Option<String>,
    /// org: the parent department's code
    #[arg(long)]
    pub parent: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs an `emulator` verb.
pub async fn run(args: EmulatorArgs) -> Result<String> {
    match args.command {
        EmulatorCommand::Serve(a) => serve(a).await,
        EmulatorCommand::Order(a) => order(a).await,
        EmulatorCommand::Advance(a) => {
            let v = call(
                &a.client,
                "POST",
                "/control/clock/advance",
                Some(json!({"by": a.by})),
            )
            .await?;
            Ok(render(&a.client, &v, || {
                format!(
                    "now {} ({} steps performed)",
                    text(&v["clock"]["now"]),
                    v["steps"]
                )
            }))
        }
        EmulatorCommand::Clock(c) => {
            let v = call(&c, "GET", "/control/clock", None).await?;
            Ok(render(&c, &v, || {
                format!("now {} (scale {})", text(&v["now"]), v["scale"])
            }))
        }
        EmulatorCommand::Calls(a) => {
            let mut query = Vec::new();
            for (k, v) in [
                ("orderId", &a.order),
                ("resourceId", &a.resource),
                ("activity", &a.activity),
            ] {
                if let Some(v) = v {
                    query.push((k, v.as_str()));
                }
            }
            let path = if query.is_empty() {
                "/control/calls".to_owned()
            } else {
                format!("/control/calls?{}", koogallery::query::encode_query(&query))
            };
            let v = call(&a.client, "GET", &path, None).await?;
            Ok(render(&a.client, &v, || lines(&v, call_line)))
        }
        EmulatorCommand::Messages(c) => {
            let v = call(&c, "GET", "/control/messages", None).await?;
            Ok(render(&c, &v, || {
                lines(&v, |m| {
                    format!(
                        "#{} {} {} {} attempts={} restartable={} {}",
                        m["id"],
                        text(&m["activity"]),
                        text(&m["resourceId"]),
                        text(&m["state"]),
                        m["attempts"],
                        m["restartable"],
                        text(&m["message"])
                    )
                })
            }))
        }
        EmulatorCommand::Restart(a) => {
            let path = format!("/control/messages/{}/restart", a.id);
            let v = call(&a.client, "POST", &path, None).await?;
            Ok(render(&a.client, &v, || {
                with_last_call(format!("call #{}: {}", a.id, text(&v["job"]["state"])), &v)
            }))
        }
        EmulatorCommand::License(a) => {
            let path = format!("/control/instances/{}/license", a.resource);
            let body = json!({ "deviceFingerprint": a.fingerprint });
            let v = call(&a.client, "POST", &path, Some(body)).await?;
            Ok(render(&a.client, &v, || {
                let headline = format!(
                    "getLicenseAsync #{} eventId {}: {}",
                    v["job"]["id"],
                    text(&v["job"]["body"]["eventId"]),
                    text(&v["job"]["state"])
                );
                with_last_call(headline, &v)
            }))
        }
        EmulatorCommand::Status(a) => {
            let path = format!("/control/instances/{}/status", a.resource);
            let body = json!({ "status": a.status });
            let v = call(&a.client, "POST", &path, Some(body)).await?;
            Ok(render(&a.client, &v, || job_summary(&v)))
        }
        EmulatorCommand::Sync(a) => {
            let path = format!("/control/instances/{}/sync", a.resource);
            let body = json!({
                "kind": a.kind,
                "flag": a.flag,
                "userName": a.user,
                "name": a.name,
                "role": a.role,
                "orgCode": a.org,
                "orgName": a.org_name,
                "parentCode": a.parent,
            });
            let v = call(&a.client, "POST", &path, Some(body)).await?;
            Ok(render(&a.client, &v, || job_summary(&v)))
        }
        EmulatorCommand::Orders(c) => {
            let v = call(&c, "GET", "/control/orders", None).await?;
            Ok(render(&c, &v, || lines(&v, order_line)))
        }
        EmulatorCommand::Instances(c) => {
            let v = call(&c, "GET", "/control/instances", None).await?;
            Ok(render(&c, &v, || {
                lines(&v, |i| {
                    format!(
                        "{} {} {} {} expires {}",
                        text(&i["resourceId"]),
                        text(&i["instanceId"]),
                        text(&i["productId"]),
                        text(&i["status"]),
                        time_text(&i["expireMs"])
                    )
                })
            }))
        }
        EmulatorCommand::Bills(c) => bills(c).await,
        EmulatorCommand::Products(c) => {
            let v = call(&c, "GET", "/control/products", None).await?;
            Ok(render(&c, &v, || {
                lines(&v, |p| {
                    let period = match (&p["period"]["number"], &p["period"]["unit"]) {
                        (Value::Number(n), Value::String(u)) => format!(" {n} {u}"),
                        _ => String::new(),
                    };
                    format!(
                        "{} {} {}{} ({})",
                        text(&p["productId"]),
                        text(&p["family"]),
                        text(&p["chargingMode"]),
                        period,
                        text(&p["name"])
                    )
                })
            }))
        }
    }
}

async fn bills(c: ClientArgs) -> Result<String> {
    let v = call(&c, "GET", "/control/bills", None).await?;
    Ok(render(&c, &v, || {
        let mut out = lines(&v["bills"], |b| {
            format!(
                "{} {} {}..{} usage {} x {} = {}{}",
                text(&b["instance_id"]),
                text(&b["metering_sn"]),
                text(&b["begin_time"]),
                text(&b["end_time"]),
                text(&b["usage_value"]),
                text(&b["unit_price"]),
                text(&b["amount"]),
                b["package"]
                    .as_str()
                    .map(|p| format!(" (package {p})"))
                    .unwrap_or_default()
            )
        });
        if let Some(packages) = v["packages"].as_object() {
            for (package, used) in packages {
                out.push_str(&format!("\npackage {package}: {} used", text(used)));
            }
        }
        out
    }))
}

async fn serve(args: ServeArgs) -> Result<String> {
    init_tracing();
    let kit_public_key = args
        .kit_public_key
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --kit-public-key {}", path.display()))
        })
        .transpose()?;
    let config = Config {
        listen: Some(args.listen),
        ak: args.ak,
        sk: args.sk,
        keys: MerchantKeys {
            basic: args.basic_key,
            kit: args.kit_key,
            license: args.license_key,
            generic: args.generic_key,
        },
        time_scale: args.time_scale,
        state: args.state.clone(),
        merchant_url: args.merchant_url.clone(),
        kit_public_key,
    };
    let running = server::start(config).await?;
    let url = running.url();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "koogate emulator listening on {url}")?;
        writeln!(
            out,
            "open API: {url}/api/mkp-openapi-public/global/v1/order/query"
        )?;
        writeln!(out, "control API: {url}/control")?;
        writeln!(
            out,
            "production URL: {}",
            args.merchant_url
                .as_deref()
                .unwrap_or("(none; set --merchant-url)")
        )?;
        match &args.state {
            Some(path) => writeln!(out, "state: {}", path.display())?,
            None => writeln!(out, "state: in memory")?,
        }
        out.flush()?;
    }
    let marketplace = running.emulator.marketplace.clone();
    tokio::select! {
        () = shutdown_signal() => {}
        () = running.wait() => {}
    }
    marketplace.persist().await?;
    Ok(String::new())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KOOGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn order(args: OrderArgs) -> Result<String> {
    let kinds = koogallery_emulator::state::OrderKind::ALL.map(|k| k.as_str());
    if !kinds.contains(&args.kind.as_str()) {
        bail!(
            "unknown order kind {:?}: use one of {}",
            args.kind,
            kinds.join(", ")
        );
    }
    let body = json!({
        "kind": args.kind,
        "productId": args.product,
        "resourceId": args.resource,
        "targetProductId": args.target,
        "linearValue": args.linear_value,
        "periods": args.periods,
    });
    let v = call(&args.client, "POST", "/control/orders", Some(body)).await?;
    Ok(render(&args.client, &v, || {
        let mut out = order_line(&v["order"]);
        if let Some(calls) = v["calls"].as_array() {
            for c in calls {
                out.push('\n');
                out.push_str("  ");
                out.push_str(&call_line(c));
            }
        }
        out
    }))
}

/// Calls the control API; a non-2xx answer is an error carrying its `error` text.
async fn call(client: &ClientArgs, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let url = format!("{}{path}", client.url.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let request = match method {
        "POST" => http.post(&url).json(&body.unwrap_or_else(|| json!({}))),
        _ => http.get(&url),
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the emulator at {}", client.url))?;
    let status = response.status();
    let value: Value = response
        .json()
        .await
        .with_context(|| format!("the emulator answered {status} without JSON"))?;
    if !status.is_success() {
        bail!(
            "the emulator refused ({status}): {}",
            value["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(value)
}

fn render(client: &ClientArgs, value: &Value, summary: impl FnOnce() -> String) -> String {
    if client.json {
        serde_json::to_string_pretty(value).unwrap_or_default()
    } else {
        summary()
    }
}

fn lines(value: &Value, f: impl Fn(&Value) -> String) -> String {
    value
        .as_array()
        .map(|items| items.iter().map(f).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn time_text(v: &Value) -> String {
    v.as_i64()
        .and_then(koogallery::time::from_epoch_millis)
        .map_or_else(|| "-".to_owned(), koogallery::time::format_expire_time)
}

fn order_line(o: &Value) -> String {
    let mut line = format!(
        "{} {} {} {} {}",
        text(&o["orderId"]),
        text(&o["kind"]),
        text(&o["resourceId"]),
        text(&o["productId"]),
        text(&o["status"])
    );
    if o["refunded"].as_bool() == Some(true) {
        line.push_str(" (refunded)");
    }
    if let Some(m) = o["message"].as_str() {
        line.push(' ');
        line.push_str(m);
    }
    line
}

/// `{"job", "calls"}` as a line: the call's activity, id and state, then its last attempt.
fn job_summary(v: &Value) -> String {
    let headline = format!(
        "{} #{}: {}",
        text(&v["job"]["activity"]),
        v["job"]["id"],
        text(&v["job"]["state"])
    );
    with_last_call(headline, v)
}

/// `headline`, then the last call of `{"calls"}`, if any.
fn with_last_call(headline: String, v: &Value) -> String {
    match v["calls"].as_array().and_then(|c| c.last()) {
        Some(last) => format!("{headline}\n{}", call_line(last)),
        None => headline,
    }
}

fn call_line(c: &Value) -> String {
    let mut line = format!(
        "#{} {} {} {} {} http={} resultCode={}",
        c["id"],
        time_text(&c["atMs"]),
        text(&c["activity"]),
        text(&c["resourceId"]),
        text(&c["verdict"]),
        text(&c["httpStatus"]),
        text(&c["resultCode"])
    );
    if let Some(m) = c["message"].as_str() {
        line.push(' ');
        line.push_str(m);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(subcommand)]
        command: EmulatorCommand,
    }

    #[test]
    fn debug_never_shows_secrets() {
        let parsed = Wrapper::try_parse_from([
            "x",
            "serve",
            "--ak",
            "AK1",
            "--sk",
            "SECRET-SK",
            "--basic-key",
            "SECRET-BASIC",
        ]);
        let text = format!("{parsed:?}");
        assert!(text.contains("AK1"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn sync_takes_a_kind_and_the_change() {
        let parsed = Wrapper::try_parse_from([
            "x",
            "sync",
            "auth",
            "--resource",
            "RES000002",
            "--user",
            "lisi",
            "--flag",
            "cancel",
        ])
        .unwrap();
        let EmulatorCommand::Sync(a) = parsed.command else {
            panic!("not sync: {parsed:?}");
        };
        assert_eq!(
            (a.kind.as_str(), a.resource.as_str(), a.user.as_deref()),
            ("auth", "RES000002", Some("lisi"))
        );
        assert!(Wrapper::try_parse_from(["x", "sync", "users", "--resource", "R"]).is_err());
    }
}
