//! Joint-operation kit cases (`--family kit`, jointop.md §2–§7): `POST <production URL>/produceAPI/
//! v2/<name>` with a JSON body and the `x-sign`/`x-timestamp`/`x-nonce` headers made with the kit
//! key (security.md §10), `Body-Sign` checked when present. The charging mode does not apply.
//!
//! `applicationSync` is not sent: its `clientSecret` must be RSA-encrypted with the merchant's
//! public key (jointop.md §5), which the runner does not have.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::check::{self, SignRule};
use super::http::{Answer, Target};
use super::{Def, Fail, Group, Runner, Seen, Settings, Verdict};
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
        }
    }

    const fn path(self) -> &'static str {
        match self {
            Self::TenantAdd | Self::TenantModify | Self::TenantDelete => "tenantSync",
            Self::AllOrg | Self::AllOrgString => "allOrgSync",
            Self::SingleOrgAdd | Self::SingleOrgDelete => "singleOrgSync",
            Self::UserAdd | Self::UserDelete => "authSync",
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
        }
    }
}

/// The debug cases: what the console sends when the seller applies for a credential, then the
/// user and department syncs, then the deletion (jointop.md §6).
const DEBUG_ACTS: [Act; 8] = [
    Act::TenantAdd,
    Act::TenantModify,
    Act::AllOrg,
    Act::AllOrgString,
    Act::SingleOrgAdd,
    Act::UserAdd,
    Act::UserDelete,
    Act::TenantDelete,
];

/// The real (testFlag=0) sequence on a tenant unique to the run; `true` = a repeat that must
/// succeed without creating anything (jointop.md §7).
const REAL_ACTS: [(Act, bool); 12] = [
    (Act::TenantAdd, false),
    (Act::TenantAdd, true),
    (Act::AllOrg, false),
    (Act::AllOrg, true),
    (Act::SingleOrgAdd, false),
    (Act::UserAdd, false),
    (Act::UserAdd, true),
    (Act::UserDelete, false),
    (Act::UserDelete, true),
    (Act::SingleOrgDelete, false),
    (Act::TenantDelete, false),
    (Act::TenantDelete, true),
];

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
    for act in DEBUG_ACTS {
        defs.push(def(
            format!("debug.{}", act.name()),
            Group::Debug,
            format!("{}, testFlag=1: 000000", act.what()),
            Action::Debug(act),
        ));
    }
    for (i, act) in super::shuffled(&DEBUG_ACTS).into_iter().enumerate() {
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
        for (act, again) in REAL_ACTS {
            let suffix = if again { ".again" } else { "" };
            defs.push(def(
                format!("real.{}{suffix}", act.name()),
                Group::Real,
                format!(
                    "{} on a tenant unique to this run, testFlag=0{}: 000000",
                    act.what(),
                    if again {
                        ", again (idempotent: no duplicate, no failure)"
                    } else {
                        ""
                    }
                ),
                Action::Real(act),
            ));
        }
    }
    defs
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
            seen: None,
        }
    }

    /// The body of `act` for `tenant`, with `testFlag` as a number.
    fn body(act: Act, tenant: &str, test: bool) -> String {
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
        let body = Self::body(act, tenant, test);
        let (_, headers) = self.signed_headers(&self.kit_key, &now_ms().to_string(), &body);
        let answer = self.post_raw(act, &body, headers).await?;
        let c = self.envelope(&answer)?;
        check::code_in(&c, &["000000"])?;
        Ok(c.notes)
    }

    fn envelope(&self, answer: &Answer) -> Result<check::Checked, Fail> {
        check::envelope(answer, &self.kit_key, SignRule::IfPresent).map_err(Fail::Check)
    }

    async fn forged(&mut self, f: Forgery) -> Verdict {
        let act = Act::TenantModify;
        let body = Self::body(act, DEBUG_TENANT, true);
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
        let body = Self::body(act, DEBUG_TENANT, true);
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
        let b: Value = serde_json::from_str(&KitRunner::body(Act::TenantAdd, "t1", true)).unwrap();
        assert_eq!(b["flag"], 1);
        assert_eq!(b["testFlag"], 1);
        assert_eq!(b["instanceId"], "");
        assert_eq!(b["domainName"], "https://t1.example.com");
        let s = KitRunner::body(Act::AllOrgString, "t1", false);
        let b: Value = serde_json::from_str(&s).unwrap();
        assert!(b["orgInfoList"].is_string());
        assert_eq!(b["testFlag"], 0);
        assert_eq!(
            koogallery::canonical::canonicalize(s.as_bytes()).unwrap(),
            s
        );
    }
}
