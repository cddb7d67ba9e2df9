//! Joint-operation kit cases (`--family kit`, jointop.md §2–§7): `POST <production URL>/produceAPI/
//! v2/<name>` with a JSON body and the `x-sign`/`x-timestamp`/`x-nonce` headers made with the kit
//! key (security.md §10), `Body-Sign` checked when present. The charging mode does not apply.
//!
//! `applicationSync` carries a `clientSecret` RSA-OAEP-encrypted with the merchant's public key
//! (jointop.md §5). With `--kit-public-key` the runner encrypts a secret of its own with that key
//! and sends `applicationSync` where KooGallery does (tenant → application → organisation →
//! users, jointop.md §6); without it, those cases are listed as skipped in the report.

use std::collections::BTreeMap;

use base64::Engine as _;
use koogallery::crypto::rsa_oaep::{self, OaepParams};
use serde_json::{Value, json};

use super::check::{self, SignRule};
use super::http::{Answer, Target};
use super::{Def, Fail, Group, Runner, Seen, Settings, Skipped, Verdict};
use crate::signed_call::{fresh_nonce, now_ms};

/// Offset of the stale and future timestamps: five times the 60 s window.
const SKEW_MS: i64 = 5 * 60 * 1000;

/// A kit call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    TenantAdd,
    TenantModify,
    AllOrg,
    /// `allOrgSync` with `orgInfoList` as a string holding the JSON array (the official example).
    AllOrgString,
    SingleOrgAdd,
    SingleOrgDelete,
    UserAdd,
    UserDelete,
    TenantDelete,
    /// `applicationSync` flag=1 (needs `--kit-public-key`).
    AppAdd,
    /// `applicationSync` flag=2: a new `clientSecret` for the same `appId`.
    AppModify,
    /// `applicationSync` flag=0.
    AppDelete,
}

impl Act {
    pub const fn name(self) -> &'static str {
        match self {
            Self::TenantAdd => "tenantSync.add",
            Self::TenantModify => "tenantSync.modify",
            Self::AllOrg => "allOrgSync",
            Self::AllOrgString => "allOrgSync.string",
            Self::SingleOrgAdd => "singleOrgSync.add",
            Self::SingleOrgDelete => "singleOrgSync.delete",
            Self::UserAdd => "authSync.add",
            Self::UserDelete => "authSync.delete",
            Self::TenantDelete => "tenantSync.delete",
            Self::AppAdd => "applicationSync.add",
            Self::AppModify => "applicationSync.modify",
            Self::AppDelete => "applicationSync.delete",
        }
    }

    /// Whether the call is an `applicationSync` (its `clientSecret` needs the public key).
    pub const fn is_app(self) -> bool {
        matches!(self, Self::AppAdd | Self::AppModify | Self::AppDelete)
    }

    const fn path(self) -> &'static str {
        match self {
            Self::TenantAdd | Self::TenantModify | Self::TenantDelete => "tenantSync",
            Self::AllOrg | Self::AllOrgString => "allOrgSync",
            Self::SingleOrgAdd | Self::SingleOrgDelete => "singleOrgSync",
            Self::UserAdd | Self::UserDelete => "authSync",
            Self::AppAdd | Self::AppModify | Self::AppDelete => "applicationSync",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::TenantAdd => "tenantSync flag=1 (add a tenant)",
            Self::TenantModify => "tenantSync flag=2 (modify name and domainName)",
            Self::AllOrg => "allOrgSync with the whole tree as an orgInfoList array",
            Self::AllOrgString => {
                "allOrgSync with orgInfoList as a JSON string, as in the official example (jointop.md §4.5)"
            }
            Self::SingleOrgAdd => "singleOrgSync flag=1 (add a department)",
            Self::SingleOrgDelete => "singleOrgSync flag=0 (delete the department)",
            Self::UserAdd => "authSync flag=1 (authorise a user)",
            Self::UserDelete => "authSync flag=0 (delete the user)",
            Self::TenantDelete => "tenantSync flag=0 (delete the tenant)",
            Self::AppAdd => {
                "applicationSync flag=1 (add the application credential; clientSecret RSA-OAEP-encrypted with the --kit-public-key key, jointop.md §5)"
            }
            Self::AppModify => {
                "applicationSync flag=2 (modify the credential: a new clientSecret, RSA-OAEP-encrypted with the --kit-public-key key)"
            }
            Self::AppDelete => {
                "applicationSync flag=0 (delete the credential; clientSecret still sent, encrypted, as the field is mandatory)"
            }
        }
    }
}

/// The OAEP parameter set `clientSecret` is encrypted with: KooGallery does not publish it
/// (jointop.md §5, §10 #1), and SHA-256 with MGF1-SHA-256 is the first set jointop.md §5 (and
/// security.md §14) tells a merchant to try. Base64 (standard alphabet, padded), as §5 states.
pub const OAEP: OaepParams = OaepParams::Sha256Mgf1Sha256;

/// The key size jointop.md §5 asks of the merchant's key pair.
pub const MIN_KEY_BITS: usize = 3072;

/// Why `applicationSync` is not sent without `--kit-public-key`.
pub const NO_PUBLIC_KEY: &str = "not sent: applicationSync.clientSecret must be RSA-OAEP-encrypted with the merchant's public key (jointop.md §5), and no --kit-public-key FILE was given";

/// The plaintext `clientSecret` of `act` in the run tagged `tag` (a modification rotates it).
fn plain_secret(tag: &str, act: Act) -> String {
    let rotated = if act == Act::AppModify {
        "-rotated"
    } else {
        ""
    };
    format!("kgc-client-secret-{tag}{rotated}")
}

/// Checks that `pem` is an RSA public key the runner can encrypt its secrets with (a key too
/// small for RSA-OAEP with SHA-256 cannot); returns its size in bits.
pub fn check_public_key(pem: &str) -> Result<usize, String> {
    encrypt_secret(pem, &plain_secret(&super::run_tag(), Act::AppModify)).map(|(_, bits)| bits)
}

/// Encrypts `secret` as `applicationSync.clientSecret` with the public key in `pem` (SPKI or
/// PKCS#1 PEM); returns the Base64 ciphertext and the key size in bits.
pub fn encrypt_secret(pem: &str, secret: &str) -> Result<(String, usize), String> {
    let key = koogallery_emulator::kit::parse_public_key(pem)?;
    let ct = rsa_oaep::encrypt_client_secret(&key, secret, OAEP).map_err(|e| {
        format!(
            "cannot encrypt a clientSecret of {} bytes with {}: {e}",
            secret.len(),
            OAEP.name()
        )
    })?;
    // The ciphertext is as long as the modulus.
    let bits = base64::engine::general_purpose::STANDARD
        .decode(&ct)
        .map_or(0, |b| b.len() * 8);
    Ok((ct, bits))
}

/// The debug cases: what the console sends when the seller applies for a credential (tenant,
/// application, organisation), then the user and department syncs, then the deletion
/// (jointop.md §6). `applicationSync` only with the public key.
fn debug_acts(with_app: bool) -> Vec<Act> {
    let mut acts = vec![Act::TenantAdd, Act::TenantModify];
    if with_app {
        acts.push(Act::AppAdd);
    }
    acts.extend([
        Act::AllOrg,
        Act::AllOrgString,
        Act::SingleOrgAdd,
        Act::UserAdd,
        Act::UserDelete,
        Act::TenantDelete,
    ]);
    acts
}

/// The real (testFlag=0) sequence on a tenant unique to the run, in jointop.md §6 order (tenant →
/// application → organisation → users, deletions in reverse); `true` = a repeat that must
/// succeed without creating anything (jointop.md §7). `applicationSync` only with the public key.
fn real_acts(with_app: bool) -> Vec<(Act, bool)> {
    let mut acts = vec![(Act::TenantAdd, false), (Act::TenantAdd, true)];
    if with_app {
        acts.extend([
            (Act::AppAdd, false),
            (Act::AppAdd, true),
            (Act::AppModify, false),
        ]);
    }
    acts.extend([
        (Act::AllOrg, false),
        (Act::AllOrg, true),
        (Act::SingleOrgAdd, false),
        (Act::UserAdd, false),
        (Act::UserAdd, true),
        (Act::UserDelete, false),
        (Act::UserDelete, true),
        (Act::SingleOrgDelete, false),
    ]);
    if with_app {
        acts.extend([(Act::AppDelete, false), (Act::AppDelete, true)]);
    }
    acts.extend([(Act::TenantDelete, false), (Act::TenantDelete, true)]);
    acts
}

fn debug_what(act: Act) -> String {
    format!("{}, testFlag=1: 000000", act.what())
}

fn real_id(act: Act, again: bool) -> String {
    format!("real.{}{}", act.name(), if again { ".again" } else { "" })
}

fn real_what(act: Act, again: bool) -> String {
    format!(
        "{} on a tenant unique to this run, testFlag=0{}: 000000",
        act.what(),
        if again {
            ", again (idempotent: no duplicate, no failure)"
        } else {
            ""
        }
    )
}

/// A request KooGallery never sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    WrongKey,
    Tampered,
    NoSign,
    NoTimestamp,
    NoNonce,
    Stale,
    Future,
    /// Signed with the basic key instead of the kit key.
    BasicKey,
}

impl Forgery {
    fn id(self) -> &'static str {
        match self {
            Self::WrongKey => "auth.wrong-key",
            Self::Tampered => "auth.tampered-body",
            Self::NoSign => "auth.missing-x-sign",
            Self::NoTimestamp => "auth.missing-x-timestamp",
            Self::NoNonce => "auth.missing-x-nonce",
            Self::Stale => "auth.stale-timestamp",
            Self::Future => "auth.future-timestamp",
            Self::BasicKey => "auth.basic-key",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Self::WrongKey | Self::Tampered | Self::NoSign | Self::BasicKey => "000001",
            Self::NoTimestamp | Self::NoNonce | Self::Stale | Self::Future => "000002",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::WrongKey => {
                "a request whose x-sign was made with another key (a forged signature)"
            }
            Self::Tampered => "a body changed after signing",
            Self::NoSign => "a request without x-sign",
            Self::NoTimestamp => "a request without x-timestamp",
            Self::NoNonce => "a request without x-nonce",
            Self::Stale => "a correctly signed request whose x-timestamp is 5 minutes old",
            Self::Future => "a correctly signed request whose x-timestamp is 5 minutes ahead",
            Self::BasicKey => {
                "a request signed with the basic key instead of the kit key (keys of different interface types must differ)"
            }
        }
    }
}

/// One kit case.
#[derive(Debug, Clone)]
pub enum Action {
    Debug(Act),
    Forged(Forgery),
    Replay,
    Real(Act),
}

/// The cases of a run, in order.
pub fn plan(settings: &Settings) -> Vec<Def<Action>> {
    let mut defs = Vec::new();
    let def = |id: String, group, what: String, action| Def {
        id,
        group,
        what,
        action,
    };
    let with_app = settings.kit_public_key.is_some();
    let debug = debug_acts(with_app);
    for &act in &debug {
        defs.push(def(
            format!("debug.{}", act.name()),
            Group::Debug,
            debug_what(act),
            Action::Debug(act),
        ));
    }
    for (i, act) in super::shuffled(&debug).into_iter().enumerate() {
        defs.push(def(
            format!("shuffled.{}.{}", i + 1, act.name()),
            Group::Shuffled,
            format!(
                "{}, testFlag=1, replayed in shuffled order (calls may arrive out of order, jointop.md §6): 000000",
                act.what()
            ),
            Action::Debug(act),
        ));
    }
    let mut forgeries = vec![
        Forgery::WrongKey,
        Forgery::Tampered,
        Forgery::NoSign,
        Forgery::NoTimestamp,
        Forgery::NoNonce,
        Forgery::Stale,
        Forgery::Future,
    ];
    if settings.kit_key.as_deref() != Some(&settings.key) {
        forgeries.push(Forgery::BasicKey);
    }
    for f in forgeries {
        defs.push(def(
            f.id().to_owned(),
            Group::Auth,
            format!(
                "{}: HTTP 200 and resultCode {}, never 000000",
                f.what(),
                f.expected()
            ),
            Action::Forged(f),
        ));
    }
    defs.push(def(
        "auth.replay".to_owned(),
        Group::Auth,
        "a valid debug tenantSync modify, then the identical signed request again (same x-nonce): the replay is refused with 000002 (security.md §4)".to_owned(),
        Action::Replay,
    ));
    if !settings.debug_only {
        for (act, again) in real_acts(with_app) {
            defs.push(def(
                real_id(act, again),
                Group::Real,
                real_what(act, again),
                Action::Real(act),
            ));
        }
    }
    defs
}

/// The cases left out of the run: the `applicationSync` ones when no public key was given (their
/// shuffled replay is not listed: its place in the order is random).
pub fn skipped(settings: &Settings) -> Vec<Skipped> {
    if settings.kit_public_key.is_some() {
        return Vec::new();
    }
    let mut out: Vec<Skipped> = debug_acts(true)
        .into_iter()
        .filter(|a| a.is_app())
        .map(|act| Skipped {
            id: format!("debug.{}", act.name()),
            group: Group::Debug,
            what: debug_what(act),
            reason: format!("{NO_PUBLIC_KEY} (its shuffled replay is skipped too)"),
        })
        .collect();
    if !settings.debug_only {
        out.extend(
            real_acts(true)
                .into_iter()
                .filter(|(a, _)| a.is_app())
                .map(|(act, again)| Skipped {
                    id: real_id(act, again),
                    group: Group::Real,
                    what: real_what(act, again),
                    reason: NO_PUBLIC_KEY.to_owned(),
                }),
        );
    }
    out
}

/// A compact JSON object with its top-level keys sorted.
fn body(pairs: Vec<(&str, Value)>) -> String {
    let map: BTreeMap<&str, Value> = pairs.into_iter().collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// The state shared by the cases of a run.
pub struct KitRunner {
    target: Target,
    kit_key: String,
    basic_key: String,
    real_tenant: String,
    /// The merchant's public key (PEM) `applicationSync.clientSecret` is encrypted with.
    public_key: Option<String>,
    /// Makes the plaintext secrets of this run unique.
    secret_tag: String,
    seen: Option<Seen>,
}

impl KitRunner {
    pub fn new(settings: &Settings, target: Target) -> KitRunner {
        KitRunner {
            target,
            kit_key: settings
                .kit_key
                .clone()
                .unwrap_or_else(|| settings.key.clone()),
            basic_key: settings.key.clone(),
            real_tenant: super::run_tag().to_ascii_lowercase(),
            public_key: settings.kit_public_key.clone(),
            secret_tag: super::run_tag(),
            seen: None,
        }
    }

    /// The plaintext `clientSecret` of `act`.
    fn plain_secret(&self, act: Act) -> String {
        plain_secret(&self.secret_tag, act)
    }

    /// The body of `act` for `tenant`, with `testFlag` as a number; `client_secret` (already
    /// encrypted) is used by `applicationSync` only.
    fn body(act: Act, tenant: &str, test: bool, client_secret: &str) -> String {
        let stamp = koogallery::time::format_kit_timestamp(time::OffsetDateTime::now_utc());
        let root = format!("{tenant}-root");
        let dept = format!("{tenant}-dev");
        let mut pairs: Vec<(&str, Value)> = vec![
            ("instanceId", json!("")),
            ("tenantId", json!(tenant)),
            ("testFlag", json!(i32::from(test))),
            ("timeStamp", json!(stamp)),
        ];
        let tree = json!([
            {"orgCode": root, "orgName": "koogate conformance"},
            {"orgCode": dept, "orgName": "Development", "parentCode": root}
        ]);
        match act {
            Act::TenantAdd | Act::TenantModify | Act::TenantDelete => {
                let (flag, name) = match act {
                    Act::TenantAdd => (1, "koogate conformance"),
                    Act::TenantModify => (2, "koogate conformance (renamed)"),
                    _ => (0, "koogate conformance"),
                };
                pairs.extend([
                    ("orderId", json!("")),
                    ("tenantCode", json!(tenant)),
                    ("name", json!(name)),
                    ("domainName", json!(format!("https://{tenant}.example.com"))),
                    ("flag", json!(flag)),
                ]);
            }
            Act::AllOrg => pairs.push(("orgInfoList", tree)),
            Act::AllOrgString => pairs.push(("orgInfoList", json!(tree.to_string()))),
            Act::SingleOrgAdd | Act::SingleOrgDelete => pairs.extend([
                ("orgCode", json!(dept)),
                ("orgName", json!("Development")),
                ("parentCode", json!(root)),
                ("flag", json!(i32::from(act == Act::SingleOrgAdd))),
            ]),
            Act::UserAdd | Act::UserDelete => pairs.extend([
                ("appId", json!(format!("{tenant}-app"))),
                ("currentSyncTime", json!(stamp)),
                (
                    "userList",
                    json!([{
                        "userName": "kgc.user",
                        "name": "KGC User",
                        "orgCode": dept,
                        "role": "admin",
                        "enable": "true"
                    }]),
                ),
                ("flag", json!(i32::from(act == Act::UserAdd))),
            ]),
            Act::AppAdd | Act::AppModify | Act::AppDelete => pairs.extend([
                ("appId", json!(format!("{tenant}-app"))),
                ("clientId", json!(format!("{tenant}-client"))),
                ("clientSecret", json!(client_secret)),
                (
                    "flag",
                    json!(match act {
                        Act::AppAdd => 1,
                        Act::AppModify => 2,
                        _ => 0,
                    }),
                ),
            ]),
        }
        body(pairs)
    }

    /// Posts `body` to the kit path of `act` with these headers.
    async fn post_raw(
        &mut self,
        act: Act,
        body: &str,
        headers: Vec<(String, String)>,
    ) -> Result<Answer, Fail> {
        let target = self
            .target
            .path_target(&format!("/produceAPI/v2/{}", act.path()));
        super::send_with(&self.target, &target, Some(body), &headers, &mut self.seen).await
    }

    fn headers(
        sign: Option<String>,
        ts: Option<String>,
        nonce: Option<String>,
    ) -> Vec<(String, String)> {
        let mut h = Vec::new();
        if let Some(s) = sign {
            h.push(("x-sign".to_owned(), s));
        }
        if let Some(t) = ts {
            h.push(("x-timestamp".to_owned(), t));
        }
        if let Some(n) = nonce {
            h.push(("x-nonce".to_owned(), n));
        }
        h
    }

    fn signed_headers(&self, key: &str, ts: &str, body: &str) -> (String, Vec<(String, String)>) {
        let nonce = fresh_nonce().to_ascii_uppercase();
        let sign =
            koogallery::sign::kit::sign(key, &nonce, ts, body.as_bytes()).to_ascii_uppercase();
        (
            nonce.clone(),
            Self::headers(Some(sign), Some(ts.to_owned()), Some(nonce)),
        )
    }

    async fn call(&mut self, act: Act, tenant: &str, test: bool) -> Verdict {
        // applicationSync: a secret of this run, encrypted with the merchant's public key.
        let (secret, bits) = if act.is_app() {
            let Some(pem) = &self.public_key else {
                return Err(Fail::Check(NO_PUBLIC_KEY.to_owned()));
            };
            encrypt_secret(pem, &self.plain_secret(act))
                .map_err(|e| Fail::Check(format!("--kit-public-key: {e}")))?
        } else {
            (String::new(), 0)
        };
        let body = Self::body(act, tenant, test, &secret);
        let (_, headers) = self.signed_headers(&self.kit_key, &now_ms().to_string(), &body);
        let answer = self.post_raw(act, &body, headers).await?;
        let c = self.envelope(&answer)?;
        check::code_in(&c, &["000000"]).map_err(|reason| {
            if act.is_app() && ["000002", "000005", "000101"].contains(&c.code.as_str()) {
                format!("{reason}: {}", undecryptable_hint(bits))
            } else {
                reason
            }
        })?;
        let mut notes = c.notes;
        if act.is_app() && bits < MIN_KEY_BITS {
            notes.push(format!(
                "the --kit-public-key key is {bits} bits; jointop.md §5 asks for at least {MIN_KEY_BITS}"
            ));
        }
        Ok(notes)
    }

    fn envelope(&self, answer: &Answer) -> Result<check::Checked, Fail> {
        check::envelope(answer, &self.kit_key, SignRule::IfPresent).map_err(Fail::Check)
    }

    async fn forged(&mut self, f: Forgery) -> Verdict {
        let act = Act::TenantModify;
        let body = Self::body(act, DEBUG_TENANT, true, "");
        let now = now_ms();
        let ts = match f {
            Forgery::Stale => now - SKEW_MS,
            Forgery::Future => now + SKEW_MS,
            _ => now,
        }
        .to_string();
        let key = match f {
            Forgery::WrongKey => format!("{}-not-the-key", self.kit_key),
            Forgery::BasicKey => self.basic_key.clone(),
            _ => self.kit_key.clone(),
        };
        let nonce = fresh_nonce().to_ascii_uppercase();
        let sign = koogallery::sign::kit::sign(&key, &nonce, &ts, body.as_bytes());
        let headers = match f {
            Forgery::NoSign => Self::headers(None, Some(ts), Some(nonce)),
            Forgery::NoTimestamp => Self::headers(Some(sign), None, Some(nonce)),
            Forgery::NoNonce => Self::headers(Some(sign), Some(ts), None),
            _ => Self::headers(Some(sign), Some(ts), Some(nonce)),
        };
        let sent = if f == Forgery::Tampered {
            body.replace("(renamed)", "(tampered)")
        } else {
            body
        };
        let answer = self.post_raw(act, &sent, headers).await?;
        let c = self.envelope(&answer)?;
        check::refused_with(&c, f.expected(), f.what())?;
        Ok(c.notes)
    }

    async fn replay(&mut self) -> Verdict {
        let act = Act::TenantModify;
        let body = Self::body(act, DEBUG_TENANT, true, "");
        let (_, headers) = self.signed_headers(&self.kit_key, &now_ms().to_string(), &body);
        let first = self.post_raw(act, &body, headers.clone()).await?;
        let c = self.envelope(&first)?;
        if c.code != "000000" {
            return Err(Fail::Check(format!(
                "{} (the original request was refused with {}, so the replay proves nothing)",
                check::WRONG_CODE,
                c.code
            )));
        }
        let again = self.post_raw(act, &body, headers).await?;
        let c = self.envelope(&again)?;
        check::refused_with(
            &c,
            "000002",
            "a replayed request (its x-nonce was already used)",
        )?;
        Ok(c.notes)
    }
}

/// The tenant of the debug cases.
const DEBUG_TENANT: &str = "kgc-debug-tenant";

/// Why an endpoint refuses a correctly signed `applicationSync`, most likely.
fn undecryptable_hint(bits: usize) -> String {
    format!(
        "the endpoint probably could not decrypt clientSecret (jointop.md §5). It was encrypted with RSA-OAEP {} and Base64-encoded, with the {bits}-bit public key given with --kit-public-key: check that it is the public key of the private key the endpoint decrypts with (the one uploaded in the seller console), and that the endpoint tries the three OAEP parameter sets of jointop.md §5 (SHA-256/MGF1-SHA-256 first)",
        OAEP.name()
    )
}

impl Runner for KitRunner {
    type Action = Action;

    async fn exec(&mut self, action: &Action) -> Verdict {
        match *action {
            Action::Debug(act) => self.call(act, DEBUG_TENANT, true).await,
            Action::Forged(f) => self.forged(f).await,
            Action::Replay => self.replay().await,
            Action::Real(act) => {
                let tenant = self.real_tenant.clone();
                self.call(act, &tenant, false).await
            }
        }
    }

    fn take_seen(&mut self) -> Option<Seen> {
        self.seen.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_sorted_and_typed() {
        let b: Value =
            serde_json::from_str(&KitRunner::body(Act::TenantAdd, "t1", true, "")).unwrap();
        assert_eq!(b["flag"], 1);
        assert_eq!(b["testFlag"], 1);
        assert_eq!(b["instanceId"], "");
        assert_eq!(b["domainName"], "https://t1.example.com");
        let s = KitRunner::body(Act::AllOrgString, "t1", false, "");
        let b: Value = serde_json::from_str(&s).unwrap();
        assert!(b["orgInfoList"].is_string());
        assert_eq!(b["testFlag"], 0);
        assert_eq!(
            koogallery::canonical::canonicalize(s.as_bytes()).unwrap(),
            s
        );
    }

    fn settings(public_key: Option<&str>, debug_only: bool) -> Settings {
        Settings {
            url: "http://127.0.0.1:9/produce".to_owned(),
            key: "basic".to_owned(),
            kit_key: Some("kit".to_owned()),
            license_key: None,
            kit_public_key: public_key.map(str::to_owned),
            family: super::super::Family::Kit,
            charging: super::super::Charging::Period,
            debug_only,
            provision_timeout: std::time::Duration::from_secs(60),
            extra_roots: Vec::new(),
        }
    }

    const PUBLIC: &str = include_str!("../../../koogallery/tests/fixtures/rsa3072_test_pub.pem");
    const PRIVATE: &str = include_str!("../../../koogallery/tests/fixtures/rsa3072_test_key.pem");

    fn ids(defs: &[Def<Action>], prefix: &str) -> Vec<String> {
        defs.iter()
            .filter(|d| d.id.starts_with(prefix))
            .map(|d| d.id.clone())
            .collect()
    }

    #[test]
    fn application_sync_follows_the_tenant_with_the_public_key() {
        let defs = plan(&settings(Some(PUBLIC), false));
        assert_eq!(
            ids(&defs, "debug.")[..4],
            [
                "debug.tenantSync.add",
                "debug.tenantSync.modify",
                "debug.applicationSync.add",
                "debug.allOrgSync"
            ]
        );
        assert_eq!(ids(&defs, "shuffled.").len(), 9);
        let real = ids(&defs, "real.");
        assert_eq!(
            real[..6],
            [
                "real.tenantSync.add",
                "real.tenantSync.add.again",
                "real.applicationSync.add",
                "real.applicationSync.add.again",
                "real.applicationSync.modify",
                "real.allOrgSync"
            ]
        );
        assert_eq!(
            real[real.len() - 4..],
            [
                "real.applicationSync.delete",
                "real.applicationSync.delete.again",
                "real.tenantSync.delete",
                "real.tenantSync.delete.again"
            ]
        );
        assert!(skipped(&settings(Some(PUBLIC), false)).is_empty());
    }

    #[test]
    fn without_the_public_key_application_sync_is_skipped() {
        let defs = plan(&settings(None, false));
        assert!(!defs.iter().any(|d| d.id.contains("applicationSync")));
        assert_eq!(ids(&defs, "debug.").len(), 8);
        let skipped_ids: Vec<String> = skipped(&settings(None, false))
            .into_iter()
            .map(|s| {
                assert!(s.reason.starts_with(NO_PUBLIC_KEY), "{}", s.reason);
                s.id
            })
            .collect();
        assert_eq!(
            skipped_ids,
            [
                "debug.applicationSync.add",
                "real.applicationSync.add",
                "real.applicationSync.add.again",
                "real.applicationSync.modify",
                "real.applicationSync.delete",
                "real.applicationSync.delete.again"
            ]
        );
        assert_eq!(skipped(&settings(None, true)).len(), 1);
    }

    #[test]
    fn client_secret_decrypts_with_the_private_key() {
        let (ct, bits) = encrypt_secret(PUBLIC, "kgc-client-secret-X").unwrap();
        assert_eq!(bits, 3072);
        let key = rsa_oaep::private_key_from_pem(PRIVATE).unwrap();
        assert_eq!(
            rsa_oaep::decrypt_client_secret(&key, &ct).unwrap(),
            ("kgc-client-secret-X".to_owned(), OAEP)
        );
        let b: Value =
            serde_json::from_str(&KitRunner::body(Act::AppModify, "t1", false, &ct)).unwrap();
        assert_eq!(b["flag"], 2);
        assert_eq!(b["appId"], "t1-app");
        assert_eq!(b["clientId"], "t1-client");
        assert_eq!(b["clientSecret"], ct.as_str());
        assert!(b.get("orderId").is_none());
        assert!(encrypt_secret("not a key", "x").is_err());
    }
}
