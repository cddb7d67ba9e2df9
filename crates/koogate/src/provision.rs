//! Provisioners: what turns a new instance into access information (`appInfo`).
//!
//! * built-in: from configured templates (validated by [`crate::config`]), with a generated
//!   administrator password; touches no external system, so it is instant and safe to repeat;
//! * `webhook`: POSTs the request to the merchant's application, signed per Standard Webhooks;
//!   it answers `appInfo` at once (200) or later through the REST API (202);
//! * `exec`: runs a command with the request on stdin and reads `appInfo` from stdout.
//!
//! docs/integration.md describes the request and the answers.

use std::process::Stdio;
use std::time::Duration;

use koogallery::model::Validate;
use koogallery::model::saas_v2::AppInfo;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub use crate::config::{ProvisionerTemplates as Templates, TemplateVars as Vars};
use rand::Rng;
use rand::seq::SliceRandom;

/// A 20-character password with upper case, lower case, digits and symbols, from the OS CSPRNG.
/// Symbols avoid characters that break URLs, shells or JSON (`"`, `\`, `'`, `&`, `%`, `+`).
pub fn generate_password() -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!@#$*-_=?";
    let mut rng = rand::rngs::OsRng;
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL]
        .iter()
        .map(|set| set[rng.gen_range(0..set.len())])
        .collect();
    while chars.len() < 20 {
        chars.push(all[rng.gen_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    chars.into_iter().map(char::from).collect()
}

/// Provisions: the access information for an instance.
pub fn provision(t: &Templates, v: Vars<'_>) -> AppInfo {
    AppInfo {
        front_end_url: Templates::render(&t.front_end_url, &v),
        admin_url: t.admin_url.as_deref().map(|u| Templates::render(u, &v)),
        user_name: Some(Templates::render(&t.user_name, &v)),
        password: Some(generate_password()),
        memo: t.memo.as_deref().map(|m| Templates::render(m, &v)),
    }
}

/// What a `webhook` or `exec` provisioner receives.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub instance_id: String,
    pub order_id: String,
    pub order_line_id: Option<String>,
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub charging_mode: Option<String>,
    pub quantity: Option<String>,
    pub customer_id: Option<String>,
    pub trial: bool,
    /// Expiry, RFC 3339 UTC.
    pub expires_at: Option<String>,
    /// Where an asynchronous provisioner reports the outcome (relative to koogate's base URL).
    pub complete_path: String,
    pub fail_path: String,
}

/// The request for an instance.
pub fn request(inst: &crate::store::instances::Instance) -> Request {
    let expires_at = inst
        .expire_at
        .and_then(koogallery::time::from_epoch_millis)
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    Request {
        kind: "provision.request",
        instance_id: inst.instance_id.clone(),
        order_id: inst.order_id.clone(),
        order_line_id: inst.order_line_id.clone(),
        product_id: inst.product_id.clone(),
        sku_code: inst.sku_code.clone(),
        charging_mode: inst.charging_mode.clone(),
        quantity: inst.quantity.clone(),
        customer_id: inst.customer_id.clone(),
        trial: inst.trial,
        expires_at,
        complete_path: format!("/api/v1/instances/{}/complete", inst.instance_id),
        fail_path: format!("/api/v1/instances/{}/fail", inst.instance_id),
    }
}

/// The outcome of an external provisioner.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Provisioned: the access information.
    Ready(AppInfo),
    /// Accepted; the application completes or fails it later through the REST API.
    Accepted,
}

/// Why an external provisioner did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    /// Worth another attempt later: unreachable, timeout, 5xx, non-zero exit.
    #[error("{0}")]
    Transient(String),
    /// Retrying would not help: a refusal (4xx) or an answer that is not valid `appInfo`.
    #[error("{0}")]
    Permanent(String),
}

/// At most this many characters of an answer are kept in an error message.
const EXCERPT: usize = 300;

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(EXCERPT)
        .collect()
}

/// Reads `{"appInfo": {...}}` (or a bare `AppInfo` object) and validates it.
pub fn parse_app_info(body: &[u8]) -> Result<AppInfo, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON ({e}): {}", excerpt(body)))?;
    let inner = value.get("appInfo").cloned().unwrap_or(value);
    let app: AppInfo = serde_json::from_value(inner)
        .map_err(|e| format!("not an appInfo object ({e}): {}", excerpt(body)))?;
    app.validate()
        .map_err(|e| format!("invalid appInfo: {e}"))?;
    Ok(app)
}

/// Calls the merchant's provisioner of a rule (`webhook` or `exec`) for an instance.
pub async fn call(
    rule: &crate::config::ProvisionerRule,
    client: &reqwest::Client,
    inst: &crate::store::instances::Instance,
    now_ms: i64,
) -> Result<Outcome, ProvisionError> {
    use secrecy::ExposeSecret as _;
    let request = request(inst);
    let timeout = Duration::from_millis(rule.timeout_ms);
    match &rule.kind {
        crate::config::ProvisionerKind::Webhook { url, secret } => {
            call_webhook(
                client,
                url,
                secret.expose_secret(),
                &request,
                now_ms,
                timeout,
            )
            .await
        }
        crate::config::ProvisionerKind::Exec { command } => {
            run_command(command, &request, timeout).await
        }
        crate::config::ProvisionerKind::Builtin => Err(ProvisionError::Permanent(
            "the built-in provisioner is not called".to_owned(),
        )),
    }
}

/// Calls a `webhook` provisioner.
pub async fn call_webhook(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    request: &Request,
    now_ms: i64,
    timeout: Duration,
) -> Result<Outcome, ProvisionError> {
    let body =
        serde_json::to_string(request).map_err(|e| ProvisionError::Permanent(e.to_string()))?;
    let message_id = format!("prov_{}", request.instance_id);
    let (status, response, _, error) =
        crate::webhooks::send(client, url, secret, &message_id, &body, now_ms, timeout).await;
    let response = response.unwrap_or_default();
    match status {
        Some(202) => Ok(Outcome::Accepted),
        Some(200 | 201) => parse_app_info(response.as_bytes())
            .map(Outcome::Ready)
            .map_err(|e| ProvisionError::Permanent(format!("the provisioner answered {e}"))),
        Some(s @ (408 | 429)) | Some(s @ 500..=599) => Err(ProvisionError::Transient(format!(
            "the provisioner answered HTTP {s}: {}",
            excerpt(response.as_bytes())
        ))),
        Some(s) => Err(ProvisionError::Permanent(format!(
            "the provisioner refused with HTTP {s}: {}",
            excerpt(response.as_bytes())
        ))),
        None => Err(ProvisionError::Transient(format!(
            "the provisioner cannot be reached: {}",
            error.unwrap_or_default()
        ))),
    }
}

/// Runs an `exec` provisioner: `command[0]` with the rest as arguments, the request as JSON on
/// stdin; exit 0 with `appInfo` JSON on stdout is success. The process is killed at `timeout`.
pub async fn run_command(
    command: &[String],
    request: &Request,
    timeout: Duration,
) -> Result<Outcome, ProvisionError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| ProvisionError::Permanent("empty command".to_owned()))?;
    let input =
        serde_json::to_vec(request).map_err(|e| ProvisionError::Permanent(e.to_string()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ProvisionError::Transient(format!("cannot start {program}: {e}")))?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let run = async {
        if let Some(mut stdin) = stdin.take() {
            // A command that does not read its input is not an error.
            let _ = stdin.write_all(&input).await;
        }
        // Both pipes at once: a command filling one while we wait on the other would hang.
        let (out, err) = tokio::join!(read_all(stdout.as_mut()), read_all(stderr.as_mut()));
        let (out, err) = (out?, err?);
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out, err))
    };
    let (status, out, err) = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(ProvisionError::Transient(format!("{program}: {e}"))),
        Err(_) => {
            return Err(ProvisionError::Transient(format!(
                "{program} did not finish within {} ms and was killed",
                timeout.as_millis()
            )));
        }
    };
    if !status.success() {
        return Err(ProvisionError::Transient(format!(
            "{program} exited with {status}: {}",
            excerpt(&err)
        )));
    }
    parse_app_info(&out)
        .map(Outcome::Ready)
        .map_err(|e| ProvisionError::Permanent(format!("{program} printed {e}")))
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<&mut R>,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        p.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_strong_and_different() {
        let a = generate_password();
        assert_eq!(a.len(), 20);
        assert!(a.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(a.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(a.bytes().any(|b| b.is_ascii_digit()));
        assert!(a.bytes().any(|b| !b.is_ascii_alphanumeric()));
        assert_ne!(a, generate_password());
    }

    #[test]
    fn templates_render() {
        let t = Templates {
            front_end_url: "https://app.example.com/t/{instance_id}".into(),
            admin_url: Some("https://admin.example.com/{order_id}".into()),
            memo: None,
            user_name: "admin".into(),
        };
        let app = provision(
            &t,
            Vars {
                instance_id: "i-1",
                order_id: "CS1",
                customer_id: "c",
            },
        );
        assert_eq!(app.front_end_url, "https://app.example.com/t/i-1");
        assert_eq!(
            app.admin_url.as_deref(),
            Some("https://admin.example.com/CS1")
        );
        assert_eq!(app.user_name.as_deref(), Some("admin"));
    }
}
