//! Cases of the V2 POST basic interfaces: signed `POST`s with a JSON body and the URL signature
//! (security.md §9), `Body-Sign` checked when present (V2 does not mandate it, saas.md §14 #1).
//! Three families share them:
//! * `saas-v2` (saas.md §5), basic key;
//! * `license-online` (license.md §4): the SaaS V2 instance lifecycle plus `getLicenseAsync`,
//!   basic key;
//! * `license-code` (license.md §5.2): `refreshLicenseCode`, `updateLicenseCodeStatus`,
//!   `releaseLicenseCode`, signed with the license-code key.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::check::{self, SignRule};
use super::http::{Answer, Target};
use super::{
    Charging, Def, Fail, Family, Group, MOCK_CHANGE, MOCK_PRODUCT_ID, MOCK_RENEW, MOCK_SKU,
    MOCK_UNSUBSCRIBE, Runner, Seen, Settings, Verdict, line_of,
};
use crate::signed_call::{fresh_nonce, now_ms, v2_query};

/// Offset of the stale and future timestamps: five times the 60 s window (security.md §3.2).
const SKEW_MS: i64 = 5 * 60 * 1000;
/// Pause between two polls of a provisioning instance.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A debug activity (one saved console case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    New,
    Query,
    Refresh,
    Freeze,
    Unfreeze,
    Upgrade,
    ChangeCheck,
    Release,
    GetLicenseAsync,
    RefreshCode,
    FreezeCode,
    UnfreezeCode,
    ReleaseCode,
}

/// Which V2 family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Saas,
    OnlineLicense,
    LicenseCode,
}

impl Act {
    pub const fn name(self) -> &'static str {
        match self {
            Self::New => "newInstance",
            Self::Query => "queryInstance",
            Self::Refresh => "refreshInstance",
            Self::Freeze => "updateInstanceStatus.FREEZE",
            Self::Unfreeze => "updateInstanceStatus.UNFREEZE",
            Self::Upgrade => "upgradeInstance",
            Self::ChangeCheck => "changeInstanceCheck",
            Self::Release => "releaseInstance",
            Self::GetLicenseAsync => "getLicenseAsync",
            Self::RefreshCode => "refreshLicenseCode",
            Self::FreezeCode => "updateLicenseCodeStatus.FREEZE",
            Self::UnfreezeCode => "updateLicenseCodeStatus.UNFREEZE",
            Self::ReleaseCode => "releaseLicenseCode",
        }
    }

    /// The codes a debug call of this activity may answer: `getLicenseAsync` may deliver
    /// asynchronously (license.md §4.1).
    fn debug_codes(self) -> &'static [&'static str] {
        if self == Self::GetLicenseAsync {
            &["000000", "000004"]
        } else {
            &["000000"]
        }
    }

    fn what(self, charging: Charging) -> String {
        let order = charging.mock_order();
        match self {
            Self::New => format!(
                "newInstance of mock order {order}, testFlag=1: 000000 with an instanceId of at most 64 characters"
            ),
            Self::Query => "queryInstance of the debug instance, testFlag=1: 000000 with info[].instanceId (appInfo and usageInfo checked when present)".to_owned(),
            Self::Refresh => format!("refreshInstance RENEWAL with mock order {MOCK_RENEW}, testFlag=1: 000000"),
            Self::Freeze => "updateInstanceStatus FREEZE, testFlag=1: 000000".to_owned(),
            Self::Unfreeze => "updateInstanceStatus UNFREEZE, testFlag=1: 000000".to_owned(),
            Self::Upgrade => format!("upgradeInstance with mock order {MOCK_CHANGE}, testFlag=1: 000000"),
            Self::ChangeCheck => "changeInstanceCheck with a productInfo object, testFlag=1: 000000".to_owned(),
            Self::Release => format!("releaseInstance with mock order {MOCK_UNSUBSCRIBE}, testFlag=1: 000000"),
            Self::GetLicenseAsync => "getLicenseAsync for the debug instance with a device fingerprint, testFlag=1: 000000 or 000004 (delivered later by upload)".to_owned(),
            Self::RefreshCode => format!("refreshLicenseCode RENEWAL with mock order {MOCK_RENEW}, testFlag=1: 000000"),
            Self::FreezeCode => "updateLicenseCodeStatus FREEZE, testFlag=1: 000000".to_owned(),
            Self::UnfreezeCode => "updateLicenseCodeStatus UNFREEZE, testFlag=1: 000000".to_owned(),
            Self::ReleaseCode => format!("releaseLicenseCode with mock order {MOCK_UNSUBSCRIBE}, testFlag=1: 000000"),
        }
    }
}

/// The saved debug cases the console requires for a charging mode (saas.md §4, §10): one-time
/// `newInstance`, `queryInstance`, `releaseInstance`; period adds renewal, freeze/unfreeze,
/// upgrade and the change check; on-demand adds renewal and freeze/unfreeze (the spec's
/// recommended handling of the unclear on-demand column). Online License: create, query,
/// refresh, status, release and `getLicenseAsync` (license.md §4.4); License code 2.0: renewal
/// and status for period codes, release for every code (license.md §5.2).
pub fn debug_acts(flavor: Flavor, charging: Charging) -> Vec<Act> {
    use Act::*;
    match (flavor, charging) {
        (Flavor::Saas, Charging::OneTime) => vec![New, Query, Release],
        (Flavor::Saas, Charging::Period) => vec![
            New,
            Query,
            Refresh,
            Freeze,
            Unfreeze,
            Upgrade,
            ChangeCheck,
            Release,
        ],
        (Flavor::Saas, Charging::OnDemand) => vec![New, Query, Refresh, Freeze, Unfreeze, Release],
        (Flavor::OnlineLicense, Charging::OneTime) => vec![New, Query, GetLicenseAsync, Release],
        (Flavor::OnlineLicense, _) => vec![
            New,
            Query,
            Refresh,
            Freeze,
            Unfreeze,
            GetLicenseAsync,
            Release,
        ],
        (Flavor::LicenseCode, Charging::OneTime) => vec![ReleaseCode],
        (Flavor::LicenseCode, _) => vec![RefreshCode, FreezeCode, UnfreezeCode, ReleaseCode],
    }
}

/// A request KooGallery never sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    WrongKey,
    Tampered,
    NoSignature,
    NoTimestamp,
    NoNonce,
    Stale,
    Future,
    /// Signed with the key of another interface type (the basic key for license-code calls).
    OtherKeyType,
}

impl Forgery {
    const ALL: [Forgery; 7] = [
        Self::WrongKey,
        Self::Tampered,
        Self::NoSignature,
        Self::NoTimestamp,
        Self::NoNonce,
        Self::Stale,
        Self::Future,
    ];

    fn id(self) -> &'static str {
        match self {
            Self::WrongKey => "auth.wrong-key",
            Self::Tampered => "auth.tampered-body",
            Self::NoSignature => "auth.missing-signature",
            Self::NoTimestamp => "auth.missing-timestamp",
            Self::NoNonce => "auth.missing-nonce",
            Self::Stale => "auth.stale-timestamp",
            Self::Future => "auth.future-timestamp",
            Self::OtherKeyType => "auth.basic-key",
        }
    }

    /// The code security.md §15 assigns.
    fn expected(self) -> &'static str {
        match self {
            Self::WrongKey | Self::Tampered | Self::NoSignature | Self::OtherKeyType => "000001",
            Self::NoTimestamp | Self::NoNonce | Self::Stale | Self::Future => "000002",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::WrongKey => "a request signed with another key (a forged signature)",
            Self::Tampered => "a body changed after signing",
            Self::NoSignature => "a request without signature",
            Self::NoTimestamp => "a request without timestamp",
            Self::NoNonce => "a request without nonce",
            Self::Stale => "a correctly signed request whose timestamp is 5 minutes old",
            Self::Future => "a correctly signed request whose timestamp is 5 minutes ahead",
            Self::OtherKeyType => {
                "a request signed with the basic key instead of the license-code key (keys of different interface types must differ)"
            }
        }
    }
}

/// One V2 case.
#[derive(Debug, Clone)]
pub enum Action {
    Debug(Act),
    /// The saved `newInstance` again, parameters unchanged.
    DebugRepeat,
    /// A debug `queryInstance` of an id that never existed.
    DebugQueryUnknown,
    Forged(Forgery),
    /// A valid debug call, then exactly the same signed request again.
    Replay,
    RealNew,
    RealResend,
    RealQuery,
    RealRefresh,
    RealStatus {
        freeze: bool,
        again: bool,
    },
    /// `getLicenseAsync` of the real instance (again: same `eventId` and fingerprint).
    RealLicense {
        again: bool,
    },
}

/// The V2 flavour of a family.
pub fn flavor(family: Family) -> Flavor {
    match family {
        Family::LicenseOnline => Flavor::OnlineLicense,
        Family::LicenseCode => Flavor::LicenseCode,
        _ => Flavor::Saas,
    }
}

/// The cases of a run, in order.
pub fn plan(settings: &Settings) -> Vec<Def<Action>> {
    let charging = settings.charging;
    let flavor = flavor(settings.family);
    let mut defs = Vec::new();
    let def = |id: String, group, what: String, action| Def {
        id,
        group,
        what,
        action,
    };
    let acts = debug_acts(flavor, charging);
    for &act in &acts {
        defs.push(def(
            format!("debug.{}", act.name()),
            Group::Debug,
            act.what(charging),
            Action::Debug(act),
        ));
        if act == Act::New {
            defs.push(def(
                "debug.newInstance.repeat".to_owned(),
                Group::Debug,
                "the saved newInstance again, same parameters, fresh signature: 000000 with an instanceId".to_owned(),
                Action::DebugRepeat,
            ));
        }
    }
    if acts.contains(&Act::Query) {
        defs.push(def(
            "debug.queryInstance.unknown".to_owned(),
            Group::Debug,
            "queryInstance of an instanceId that never existed, testFlag=1: still 000000 (debug calls always succeed, saas.md §2.4)".to_owned(),
            Action::DebugQueryUnknown,
        ));
    }
    for (i, act) in super::shuffled(&acts).into_iter().enumerate() {
        defs.push(def(
            format!("shuffled.{}.{}", i + 1, act.name()),
            Group::Shuffled,
            format!("{} (replayed in shuffled order)", act.what(charging)),
            Action::Debug(act),
        ));
    }
    let mut forgeries = Forgery::ALL.to_vec();
    if flavor == Flavor::LicenseCode && settings.license_key.as_deref() != Some(&settings.key) {
        forgeries.push(Forgery::OtherKeyType);
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
        format!(
            "a valid debug {}, then the identical signed request again (same nonce): the replay is refused with 000002 (security.md §4)",
            probe_act(flavor).name()
        ),
        Action::Replay,
    ));
    // License codes are made by KooGallery: without a real one there is no real traffic.
    if !settings.debug_only && flavor != Flavor::LicenseCode {
        let order = charging.mock_order();
        defs.push(def(
            "real.newInstance".to_owned(),
            Group::Real,
            format!("newInstance of mock order {order} without testFlag: 000000 or 000004 with an instanceId of at most 64 characters"),
            Action::RealNew,
        ));
        defs.push(def(
            "real.newInstance.resend".to_owned(),
            Group::Real,
            "the same order line again with a new businessId: the same instanceId (saas.md §5.1, §7)".to_owned(),
            Action::RealResend,
        ));
        defs.push(def(
            "real.queryInstance".to_owned(),
            Group::Real,
            format!(
                "queryInstance of the real instance, polled while 000004, until 000000 with its info (within {} s)",
                settings.provision_timeout.as_secs()
            ),
            Action::RealQuery,
        ));
        if flavor == Flavor::OnlineLicense {
            defs.push(def(
                "real.getLicenseAsync".to_owned(),
                Group::Real,
                "getLicenseAsync for the real instance with a new eventId and a device fingerprint: 000000 or 000004".to_owned(),
                Action::RealLicense { again: false },
            ));
            defs.push(def(
                "real.getLicenseAsync.again".to_owned(),
                Group::Real,
                "the same getLicenseAsync again (same eventId and fingerprint, as after an interrupted transfer): 000000 or 000004 (license.md §4.1)".to_owned(),
                Action::RealLicense { again: true },
            ));
        }
        if charging != Charging::OneTime {
            defs.push(def(
                "real.refreshInstance".to_owned(),
                Group::Real,
                format!("refreshInstance RENEWAL of the real instance with mock order {MOCK_RENEW}: 000000"),
                Action::RealRefresh,
            ));
            for (id, freeze, again) in [
                ("real.updateInstanceStatus.FREEZE", true, false),
                ("real.updateInstanceStatus.FREEZE.again", true, true),
                ("real.updateInstanceStatus.UNFREEZE", false, false),
            ] {
                defs.push(def(
                    id.to_owned(),
                    Group::Real,
                    format!(
                        "updateInstanceStatus {} of the real instance{}: 000000",
                        if freeze { "FREEZE" } else { "UNFREEZE" },
                        if again {
                            ", again (state-based, idempotent)"
                        } else {
                            ""
                        }
                    ),
                    Action::RealStatus { freeze, again },
                ));
            }
        }
    }
    defs
}

/// The debug activity whose request the `auth` cases forge: one that touches nothing.
fn probe_act(flavor: Flavor) -> Act {
    match flavor {
        Flavor::Saas | Flavor::OnlineLicense => Act::Query,
        Flavor::LicenseCode => Act::ReleaseCode,
    }
}

/// A compact JSON object with its top-level keys sorted, as KooGallery sends bodies.
fn body(pairs: &[(&str, Value)]) -> String {
    let map: BTreeMap<&str, &Value> = pairs.iter().map(|(k, v)| (*k, v)).collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// The state shared by the cases of a run.
pub struct V2Runner {
    target: Target,
    /// The signing key: the basic key, or the license-code key for `license-code`.
    key: String,
    /// The basic key when it is not the signing key (for `auth.basic-key`).
    basic_key: String,
    flavor: Flavor,
    charging: Charging,
    provision_timeout: Duration,
    /// The `businessId` of the saved debug `newInstance`.
    debug_business_id: String,
    debug_instance: Option<String>,
    real_instance: Option<String>,
    expire_time: String,
    unknown_id: String,
    /// The `eventId` of the saved debug `getLicenseAsync`, and of the real ones.
    debug_event_id: String,
    real_event_id: String,
    seen: Option<Seen>,
}

/// The license code of the debug license-code cases.
const DEBUG_LICENSE_CODE: &str = "PLKOOGATECONFORMANCE";
/// The device fingerprint of `getLicenseAsync` (license.md §7.2 form).
const FINGERPRINT: &str = "00-16-3E-2A-4B-5C|KGCDISK0001|KGCBOARD0001|KGCCPU0001";

/// The instance id the debug cases use when the debug `newInstance` returned none.
const FALLBACK_DEBUG_ID: &str = "koogate-conformance-debug";

impl V2Runner {
    pub fn new(settings: &Settings, target: Target) -> V2Runner {
        let flavor = flavor(settings.family);
        let key = match flavor {
            Flavor::LicenseCode => settings
                .license_key
                .clone()
                .unwrap_or_else(|| settings.key.clone()),
            _ => settings.key.clone(),
        };
        V2Runner {
            target,
            key,
            basic_key: settings.key.clone(),
            flavor,
            charging: settings.charging,
            provision_timeout: settings.provision_timeout,
            debug_business_id: super::business_id(),
            debug_instance: None,
            real_instance: None,
            expire_time: super::expire_in_a_year(),
            unknown_id: format!("koogate-conformance-unknown-{}", super::run_tag()),
            debug_event_id: format!("KGCDEBUG{}", super::run_tag()),
            real_event_id: format!("KGCREAL{}", super::run_tag()),
            seen: None,
        }
    }

    fn debug_id(&self) -> &str {
        self.debug_instance.as_deref().unwrap_or(FALLBACK_DEBUG_ID)
    }

    fn debug_body(&self, act: Act) -> String {
        let id = Value::from(self.debug_id());
        let t = || Value::from("1");
        let s = Value::from;
        match act {
            Act::New => {
                let order = self.charging.mock_order();
                body(&[
                    ("activity", s("newInstance")),
                    ("businessId", s(self.debug_business_id.as_str())),
                    ("orderId", s(order)),
                    ("orderLineId", s(line_of(order).as_str())),
                    ("testFlag", t()),
                ])
            }
            Act::Query => body(&[
                ("activity", s("queryInstance")),
                ("instanceId", id),
                ("testFlag", t()),
            ]),
            Act::Refresh => body(&[
                ("activity", s("refreshInstance")),
                ("expireTime", s(self.expire_time.as_str())),
                ("instanceId", id),
                ("orderId", s(MOCK_RENEW)),
                ("orderLineId", s(line_of(MOCK_RENEW).as_str())),
                ("productId", s(MOCK_PRODUCT_ID)),
                ("scene", s("RENEWAL")),
                ("testFlag", t()),
            ]),
            Act::Freeze | Act::Unfreeze => body(&[
                ("activity", s("updateInstanceStatus")),
                ("instanceId", id),
                (
                    "status",
                    s(if act == Act::Freeze {
                        "FREEZE"
                    } else {
                        "UNFREEZE"
                    }),
                ),
                ("testFlag", t()),
            ]),
            Act::Upgrade => body(&[
                ("activity", s("upgradeInstance")),
                ("instanceId", id),
                ("orderId", s(MOCK_CHANGE)),
                ("orderLineId", s(line_of(MOCK_CHANGE).as_str())),
                ("testFlag", t()),
            ]),
            Act::ChangeCheck => body(&[
                ("activity", s("changeInstanceCheck")),
                ("instanceId", id),
                (
                    "productInfo",
                    json!({"productId": MOCK_PRODUCT_ID, "skuCode": MOCK_SKU, "linearValue": 20, "productName": "koogate conformance"}),
                ),
                ("testFlag", t()),
            ]),
            Act::Release => body(&[
                ("activity", s("releaseInstance")),
                ("instanceId", id),
                ("orderId", s(MOCK_UNSUBSCRIBE)),
                ("orderLineId", s(line_of(MOCK_UNSUBSCRIBE).as_str())),
                ("testFlag", t()),
            ]),
            Act::GetLicenseAsync => self.license_body(self.debug_id(), &self.debug_event_id, true),
            Act::RefreshCode => body(&[
                ("activity", s("refreshLicenseCode")),
                ("expireTime", s(self.expire_time.as_str())),
                ("license", s(DEBUG_LICENSE_CODE)),
                ("orderId", s(MOCK_RENEW)),
                ("orderLineId", s(line_of(MOCK_RENEW).as_str())),
                ("productId", s(MOCK_PRODUCT_ID)),
                ("scene", s("RENEWAL")),
                ("testFlag", t()),
            ]),
            Act::FreezeCode | Act::UnfreezeCode => body(&[
                ("activity", s("updateLicenseCodeStatus")),
                ("license", s(DEBUG_LICENSE_CODE)),
                (
                    "status",
                    s(if act == Act::FreezeCode {
                        "FREEZE"
                    } else {
                        "UNFREEZE"
                    }),
                ),
                ("testFlag", t()),
            ]),
            Act::ReleaseCode => body(&[
                ("activity", s("releaseLicenseCode")),
                ("license", s(DEBUG_LICENSE_CODE)),
                ("orderId", s(MOCK_UNSUBSCRIBE)),
                ("orderLineId", s(line_of(MOCK_UNSUBSCRIBE).as_str())),
                ("testFlag", t()),
            ]),
        }
    }

    /// A `getLicenseAsync` body (license.md §4.1): from now, for a year on period products.
    fn license_body(&self, instance: &str, event_id: &str, test: bool) -> String {
        let now = time::OffsetDateTime::now_utc();
        let mut pairs = vec![
            ("activity", Value::from("getLicenseAsync")),
            ("deviceFingerprint", Value::from(FINGERPRINT)),
            (
                "effectiveTime",
                Value::from(koogallery::time::format_license_datetime(now)),
            ),
            ("eventId", Value::from(event_id)),
            ("instanceId", Value::from(instance)),
        ];
        if self.charging != Charging::OneTime {
            pairs.push((
                "expireTime",
                Value::from(koogallery::time::format_license_datetime(
                    now + time::Duration::days(365),
                )),
            ));
        }
        if test {
            pairs.push(("testFlag", Value::from("1")));
        }
        body(&pairs)
    }

    /// The body of the `auth.tampered-body` case: `instanceId` (or `license`) changed after
    /// signing.
    fn tamper(&self, body: &str) -> String {
        let field = match self.flavor {
            Flavor::LicenseCode => "license",
            _ => "instanceId",
        };
        let Ok(mut map) = serde_json::from_str::<serde_json::Map<String, Value>>(body) else {
            return format!("{body} ");
        };
        let changed = match map.get(field).and_then(Value::as_str) {
            Some(v) => format!("{v}X"),
            None => "X".to_owned(),
        };
        map.insert(field.to_owned(), Value::from(changed));
        serde_json::to_string(&map).unwrap_or_else(|_| format!("{body} "))
    }

    /// Posts `body` with `query` appended to the URL.
    async fn post_raw(&mut self, query: &str, body: &str) -> Result<Answer, Fail> {
        let target = self.target.request_target(query);
        super::send(&self.target, &target, Some(body), &mut self.seen).await
    }

    /// Posts `body` signed with the key at the current time, with a fresh nonce.
    async fn post(&mut self, body: &str) -> Result<Answer, Fail> {
        let query = v2_query(
            &self.key,
            &fresh_nonce(),
            &now_ms().to_string(),
            body.as_bytes(),
        );
        self.post_raw(&query, body).await
    }

    fn envelope(&self, answer: &Answer) -> Result<check::Checked, Fail> {
        check::envelope(answer, &self.key, SignRule::IfPresent).map_err(Fail::Check)
    }

    async fn debug(&mut self, act: Act) -> Verdict {
        let body = self.debug_body(act);
        let answer = self.post(&body).await?;
        let c = self.envelope(&answer)?;
        check::code_in(&c, act.debug_codes())?;
        match act {
            Act::New => {
                let id = check::required_str(&c.json, "instanceId", "instanceId", 64)?;
                if self.debug_instance.is_none() {
                    self.debug_instance = Some(id.to_owned());
                }
            }
            Act::Query => check::query_info(&c, self.debug_id(), false)?,
            _ => {}
        }
        Ok(c.notes)
    }

    async fn debug_repeat(&mut self) -> Verdict {
        let body = self.debug_body(Act::New);
        let answer = self.post(&body).await?;
        let mut c = self.envelope(&answer)?;
        check::code_in(&c, &["000000"])?;
        let id = check::required_str(&c.json, "instanceId", "instanceId", 64)?.to_owned();
        if let Some(first) = &self.debug_instance
            && *first != id
        {
            c.notes.push(format!(
                "instanceId {id:?} differs from the first answer's {first:?} (allowed for debug calls; real orders must keep theirs)"
            ));
        }
        Ok(c.notes)
    }

    async fn debug_query_unknown(&mut self) -> Verdict {
        let id = self.unknown_id.clone();
        let body = body(&[
            ("activity", Value::from("queryInstance")),
            ("instanceId", Value::from(id.as_str())),
            ("testFlag", Value::from("1")),
        ]);
        let answer = self.post(&body).await?;
        let c = self.envelope(&answer)?;
        check::code_in(&c, &["000000"])?;
        check::query_info(&c, &id, false)?;
        Ok(c.notes)
    }

    async fn forged(&mut self, f: Forgery) -> Verdict {
        let body = self.debug_body(probe_act(self.flavor));
        let nonce = fresh_nonce();
        let now = now_ms();
        let ts = match f {
            Forgery::Stale => now - SKEW_MS,
            Forgery::Future => now + SKEW_MS,
            _ => now,
        }
        .to_string();
        let sig_key = match f {
            Forgery::WrongKey => format!("{}-not-the-key", self.key),
            Forgery::OtherKeyType => self.basic_key.clone(),
            _ => self.key.clone(),
        };
        let sig = koogallery::sign::v2::sign(&sig_key, &nonce, &ts, body.as_bytes());
        let query = match f {
            Forgery::NoSignature => format!("timestamp={ts}&nonce={nonce}"),
            Forgery::NoTimestamp => format!("signature={sig}&nonce={nonce}"),
            Forgery::NoNonce => format!("signature={sig}&timestamp={ts}"),
            _ => format!("signature={sig}&timestamp={ts}&nonce={nonce}"),
        };
        let sent = if f == Forgery::Tampered {
            self.tamper(&body)
        } else {
            body
        };
        let answer = self.post_raw(&query, &sent).await?;
        let c = self.envelope(&answer)?;
        check::refused_with(&c, f.expected(), f.what())?;
        Ok(c.notes)
    }

    async fn replay(&mut self) -> Verdict {
        let body = self.debug_body(probe_act(self.flavor));
        let query = v2_query(
            &self.key,
            &fresh_nonce(),
            &now_ms().to_string(),
            body.as_bytes(),
        );
        let first = self.post_raw(&query, &body).await?;
        let c = self.envelope(&first)?;
        if c.code != "000000" {
            return Err(Fail::Check(format!(
                "{} (the original request was refused with {}, so the replay proves nothing)",
                check::WRONG_CODE,
                c.code
            )));
        }
        let again = self.post_raw(&query, &body).await?;
        let c = self.envelope(&again)?;
        check::refused_with(
            &c,
            "000002",
            "a replayed request (its nonce was already used)",
        )?;
        Ok(c.notes)
    }

    fn real_id(&self) -> Result<String, Fail> {
        self.real_instance.clone().ok_or_else(|| {
            Fail::Check("not run: real.newInstance returned no instanceId".to_owned())
        })
    }

    fn real_new_body(&self) -> String {
        let order = self.charging.mock_order();
        body(&[
            ("activity", Value::from("newInstance")),
            ("businessId", Value::from(super::business_id())),
            ("orderId", Value::from(order)),
            ("orderLineId", Value::from(line_of(order))),
        ])
    }

    async fn real_new(&mut self, resend: bool) -> Verdict {
        let first = if resend { Some(self.real_id()?) } else { None };
        let answer = self.post(&self.real_new_body()).await?;
        let c = self.envelope(&answer)?;
        check::code_in(&c, &["000000", "000004"])?;
        let id = check::required_str(&c.json, "instanceId", "instanceId", 64)?.to_owned();
        match first {
            None => self.real_instance = Some(id),
            Some(first) if first != id => {
                return Err(Fail::Check(format!(
                    "the same order line got instanceId {id:?} on a resend with a new businessId, {first:?} the first time: creation must be idempotent on (orderId, orderLineId), never keyed on businessId (saas.md §5.1, §7)"
                )));
            }
            Some(_) => {}
        }
        Ok(c.notes)
    }

    async fn real_query(&mut self) -> Verdict {
        let id = self.real_id()?;
        let body = body(&[
            ("activity", Value::from("queryInstance")),
            ("instanceId", Value::from(id.as_str())),
        ]);
        let started = Instant::now();
        let deadline = started + self.provision_timeout;
        let mut polls = 0u32;
        loop {
            polls += 1;
            let answer = self.post(&body).await?;
            let mut c = self.envelope(&answer)?;
            if c.code == "000004" {
                if Instant::now() >= deadline {
                    return Err(Fail::Check(format!(
                        "{} (queryInstance still answers 000004 after {} s and {polls} polls: the instance was never provisioned)",
                        check::WRONG_CODE,
                        self.provision_timeout.as_secs()
                    )));
                }
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
            check::code_in(&c, &["000000"])?;
            check::query_info(&c, &id, self.charging == Charging::OnDemand)?;
            if polls > 1 {
                c.notes.push(format!(
                    "provisioned after {polls} polls ({} ms)",
                    started.elapsed().as_millis()
                ));
            }
            return Ok(c.notes);
        }
    }

    async fn real_simple(&mut self, body: String) -> Verdict {
        let answer = self.post(&body).await?;
        let c = self.envelope(&answer)?;
        check::code_in(&c, &["000000"])?;
        Ok(c.notes)
    }
}

impl Runner for V2Runner {
    type Action = Action;

    async fn exec(&mut self, action: &Action) -> Verdict {
        match *action {
            Action::Debug(act) => self.debug(act).await,
            Action::DebugRepeat => self.debug_repeat().await,
            Action::DebugQueryUnknown => self.debug_query_unknown().await,
            Action::Forged(f) => self.forged(f).await,
            Action::Replay => self.replay().await,
            Action::RealNew => self.real_new(false).await,
            Action::RealResend => self.real_new(true).await,
            Action::RealQuery => self.real_query().await,
            Action::RealRefresh => {
                let id = self.real_id()?;
                let b = body(&[
                    ("activity", Value::from("refreshInstance")),
                    ("expireTime", Value::from(self.expire_time.as_str())),
                    ("instanceId", Value::from(id)),
                    ("orderId", Value::from(MOCK_RENEW)),
                    ("orderLineId", Value::from(line_of(MOCK_RENEW))),
                    ("scene", Value::from("RENEWAL")),
                ]);
                self.real_simple(b).await
            }
            Action::RealLicense { .. } => {
                let id = self.real_id()?;
                let b = self.license_body(&id, &self.real_event_id, false);
                let answer = self.post(&b).await?;
                let c = self.envelope(&answer)?;
                check::code_in(&c, &["000000", "000004"])?;
                Ok(c.notes)
            }
            Action::RealStatus { freeze, .. } => {
                let id = self.real_id()?;
                let b = body(&[
                    ("activity", Value::from("updateInstanceStatus")),
                    ("instanceId", Value::from(id)),
                    (
                        "status",
                        Value::from(if freeze { "FREEZE" } else { "UNFREEZE" }),
                    ),
                ]);
                self.real_simple(b).await
            }
        }
    }

    fn take_seen(&mut self) -> Option<Seen> {
        self.seen.take()
    }
}
