//! Cases of the V1 GET families: `GET`s with every parameter in the query string and an
//! `authToken` (security.md §6), the access key (`--key`), `Body-Sign` mandatory on every answer
//! (security.md §7). Two families share them: `saas-v1` (saas.md §13) and `license-v1`
//! (License 1.0, license.md §3: `getLicense`, `refreshLicense`, `expireLicense`,
//! `releaseLicense`).

use std::time::{Duration, Instant};

use super::check::{self, SignRule};
use super::http::{Answer, Target};
use super::{
    Charging, Def, Fail, Family, Group, MOCK_CHANGE, MOCK_PRODUCT_ID, MOCK_RENEW, MOCK_SKU, Runner,
    Seen, Settings, Verdict,
};
use crate::signed_call::v1_params;

/// Offset of the stale and future `timeStamp`s: an hour, far outside the recommended 300 s
/// window (security.md §3.3).
const SKEW: time::Duration = time::Duration::hours(1);
/// Pause between two polls of a provisioning instance.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A V1 activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    New,
    Query,
    Refresh,
    Expire,
    Upgrade,
    Freeze,
    Normal,
    Release,
    GetLicense,
    RefreshLicense,
    ExpireLicense,
    ReleaseLicense,
}

/// Which V1 family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Saas,
    License,
}

/// The V1 flavour of a family.
pub fn flavor(family: Family) -> Flavor {
    if family == Family::LicenseV1 {
        Flavor::License
    } else {
        Flavor::Saas
    }
}

impl Act {
    pub const fn name(self) -> &'static str {
        match self {
            Self::New => "newInstance",
            Self::Query => "queryInstance",
            Self::Refresh => "refreshInstance",
            Self::Expire => "expireInstance",
            Self::Upgrade => "upgrade",
            Self::Freeze => "instanceStatus.FREEZE",
            Self::Normal => "instanceStatus.NORMAL",
            Self::Release => "releaseInstance",
            Self::GetLicense => "getLicense",
            Self::RefreshLicense => "refreshLicense",
            Self::ExpireLicense => "expireLicense",
            Self::ReleaseLicense => "releaseLicense",
        }
    }

    /// Whether this activity creates (its answer carries the instance).
    fn creates(self) -> bool {
        matches!(self, Self::New | Self::GetLicense)
    }

    fn what(self, order: &str) -> String {
        match self {
            Self::New => format!(
                "newInstance of order {order}: 000000 with instanceId (≤ 64) and appInfo.frontEndUrl (≤ 512)"
            ),
            Self::Query => "queryInstance: 000000 with info[].instanceId (appInfo and usageInfo checked when present)".to_owned(),
            Self::Refresh => "refreshInstance with a new expireTime: 000000".to_owned(),
            Self::Expire => "expireInstance: 000000".to_owned(),
            Self::Upgrade => "upgrade to a new skuCode/productId: 000000".to_owned(),
            Self::Freeze => "instanceStatus FREEZE: 000000".to_owned(),
            Self::Normal => "instanceStatus NORMAL: 000000".to_owned(),
            Self::Release => "releaseInstance: 000000".to_owned(),
            Self::GetLicense => format!(
                "getLicense of order {order}: 000000 with resultMsg, instanceId (≤ 64) and a license"
            ),
            Self::RefreshLicense => "refreshLicense with a new expireTime: 000000".to_owned(),
            Self::ExpireLicense => "expireLicense: 000000".to_owned(),
            Self::ReleaseLicense => "releaseLicense: 000000".to_owned(),
        }
    }
}

/// The debug cases of a charging mode. SaaS: one-time creation, query and release; period adds
/// renewal, expiry and upgrade; on-demand adds the status changes (saas.md §13). License 1.0:
/// `getLicense` and `releaseLicense`; period adds renewal and expiry (license.md §3).
pub fn debug_acts(flavor: Flavor, charging: Charging) -> Vec<Act> {
    use Act::*;
    match (flavor, charging) {
        (Flavor::Saas, Charging::OneTime) => vec![New, Query, Release],
        (Flavor::Saas, Charging::Period) => vec![New, Query, Refresh, Expire, Upgrade, Release],
        (Flavor::Saas, Charging::OnDemand) => vec![New, Query, Freeze, Normal, Release],
        (Flavor::License, Charging::OneTime) => vec![GetLicense, ReleaseLicense],
        (Flavor::License, _) => vec![GetLicense, RefreshLicense, ExpireLicense, ReleaseLicense],
    }
}

/// The real lifecycle after creation (and query), per charging mode (each step then repeated
/// where the spec demands idempotency).
fn real_acts(flavor: Flavor, charging: Charging) -> Vec<(Act, bool)> {
    use Act::*;
    let (mut acts, release) = match (flavor, charging) {
        (Flavor::Saas, Charging::OneTime) => (vec![], Release),
        (Flavor::Saas, Charging::Period) => (
            vec![
                (Refresh, false),
                (Expire, false),
                (Expire, true),
                (Upgrade, false),
            ],
            Release,
        ),
        (Flavor::Saas, Charging::OnDemand) => (
            vec![(Freeze, false), (Freeze, true), (Normal, false)],
            Release,
        ),
        (Flavor::License, Charging::OneTime) => (vec![], ReleaseLicense),
        (Flavor::License, _) => (
            vec![
                (RefreshLicense, false),
                (ExpireLicense, false),
                (ExpireLicense, true),
            ],
            ReleaseLicense,
        ),
    };
    acts.extend([(release, false), (release, true)]);
    acts
}

/// The debug activity whose request the `auth` cases forge: one that touches nothing.
fn probe_act(flavor: Flavor) -> Act {
    match flavor {
        Flavor::Saas => Act::Query,
        Flavor::License => Act::ReleaseLicense,
    }
}

/// A request KooGallery never sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    WrongKey,
    Tampered,
    NoToken,
    NoTimeStamp,
    Stale,
    Future,
}

impl Forgery {
    const ALL: [Forgery; 6] = [
        Self::WrongKey,
        Self::Tampered,
        Self::NoToken,
        Self::NoTimeStamp,
        Self::Stale,
        Self::Future,
    ];

    fn id(self) -> &'static str {
        match self {
            Self::WrongKey => "auth.wrong-key",
            Self::Tampered => "auth.tampered-parameter",
            Self::NoToken => "auth.missing-authToken",
            Self::NoTimeStamp => "auth.missing-timeStamp",
            Self::Stale => "auth.stale-timeStamp",
            Self::Future => "auth.future-timeStamp",
        }
    }

    /// The code security.md §6.3 and §15 assign.
    fn expected(self) -> &'static str {
        match self {
            Self::WrongKey | Self::Tampered | Self::NoToken => "000001",
            Self::NoTimeStamp | Self::Stale | Self::Future => "000002",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::WrongKey => {
                "a request whose authToken was made with another key (a forged token)"
            }
            Self::Tampered => "a parameter changed after signing",
            Self::NoToken => "a request without authToken",
            Self::NoTimeStamp => "a request without timeStamp",
            Self::Stale => "a correctly signed request whose timeStamp is an hour old",
            Self::Future => "a correctly signed request whose timeStamp is an hour ahead",
        }
    }
}

/// One V1 case.
#[derive(Debug, Clone)]
pub enum Action {
    Debug(Act),
    DebugRepeat,
    DebugQueryUnknown,
    Forged(Forgery),
    Replay,
    RealNew,
    RealResend,
    RealQuery,
    Real(Act),
}

/// The cases of a run, in order.
pub fn plan(settings: &Settings) -> Vec<Def<Action>> {
    let charging = settings.charging;
    let flavor = flavor(settings.family);
    let order = charging.mock_order();
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
            format!("{}, testFlag=1", act.what(order)),
            Action::Debug(act),
        ));
        if act.creates() {
            defs.push(def(
                format!("debug.{}.repeat", act.name()),
                Group::Debug,
                format!(
                    "the saved {} again, same parameters, fresh timeStamp: 000000 with the same mandatory fields",
                    act.name()
                ),
                Action::DebugRepeat,
            ));
        }
    }
    if flavor == Flavor::Saas {
        defs.push(def(
            "debug.queryInstance.unknown".to_owned(),
            Group::Debug,
            "queryInstance of an instanceId that never existed, testFlag=1: still 000000 (debug calls always succeed)".to_owned(),
            Action::DebugQueryUnknown,
        ));
    }
    for (i, act) in super::shuffled(&acts).into_iter().enumerate() {
        defs.push(def(
            format!("shuffled.{}.{}", i + 1, act.name()),
            Group::Shuffled,
            format!(
                "{}, testFlag=1 (replayed in shuffled order)",
                act.what(order)
            ),
            Action::Debug(act),
        ));
    }
    for f in Forgery::ALL {
        defs.push(def(
            f.id().to_owned(),
            Group::Auth,
            format!(
                "{}: HTTP 200, resultCode {} and a Body-Sign, never 000000",
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
            "a valid debug {}, then the identical URL again (same authToken): the replay is refused (security.md §3.3)",
            probe_act(flavor).name()
        ),
        Action::Replay,
    ));
    if !settings.debug_only {
        let create = if flavor == Flavor::Saas {
            Act::New
        } else {
            Act::GetLicense
        };
        let name = create.name();
        defs.push(def(
            format!("real.{name}"),
            Group::Real,
            format!(
                "{name} of an order unique to this run, without testFlag: {}",
                if flavor == Flavor::Saas {
                    "000000 with instanceId and appInfo.frontEndUrl"
                } else {
                    "000000 with resultMsg, instanceId and a license"
                }
            ),
            Action::RealNew,
        ));
        defs.push(def(
            format!("real.{name}.resend"),
            Group::Real,
            if flavor == Flavor::Saas {
                "the same order again with a new businessId: the same instanceId (saas.md §13.2)"
                    .to_owned()
            } else {
                "the same order again with a new businessId: the same instanceId and the same license (license.md §2.4)".to_owned()
            },
            Action::RealResend,
        ));
        if flavor == Flavor::Saas {
            defs.push(def(
                "real.queryInstance".to_owned(),
                Group::Real,
                format!(
                    "queryInstance of the real instance until 000000 with its info (within {} s)",
                    settings.provision_timeout.as_secs()
                ),
                Action::RealQuery,
            ));
        }
        for (act, again) in real_acts(flavor, charging) {
            let suffix = if again { ".again" } else { "" };
            defs.push(def(
                format!("real.{}{suffix}", act.name()),
                Group::Real,
                format!(
                    "{} of the real instance{}",
                    act.what(order),
                    if again { ", again (idempotent)" } else { "" }
                ),
                Action::Real(act),
            ));
        }
    }
    defs
}

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The state shared by the cases of a run.
pub struct V1Runner {
    target: Target,
    key: String,
    flavor: Flavor,
    charging: Charging,
    provision_timeout: Duration,
    debug_business_id: String,
    debug_instance: Option<String>,
    /// The order of the real cases: unique to the run (V1 carries the order data in the
    /// request, so no order query is needed and the real lifecycle can end in a release).
    real_order: String,
    real_instance: Option<String>,
    /// The license of the first real `getLicense`.
    real_license: Option<String>,
    expire_time: String,
    unknown_id: String,
    /// The `timeStamp` of the last request sent.
    last_stamp: Option<String>,
    seen: Option<Seen>,
}

const FALLBACK_DEBUG_ID: &str = "koogate-conformance-debug";

impl V1Runner {
    pub fn new(settings: &Settings, target: Target) -> V1Runner {
        V1Runner {
            target,
            key: settings.key.clone(),
            flavor: flavor(settings.family),
            charging: settings.charging,
            provision_timeout: settings.provision_timeout,
            debug_business_id: super::business_id(),
            debug_instance: None,
            real_order: super::run_tag(),
            real_instance: None,
            real_license: None,
            expire_time: super::expire_in_a_year(),
            unknown_id: format!("koogate-conformance-unknown-{}", super::run_tag()),
            last_stamp: None,
            seen: None,
        }
    }

    fn debug_id(&self) -> String {
        self.debug_instance
            .clone()
            .unwrap_or_else(|| FALLBACK_DEBUG_ID.to_owned())
    }

    /// The parameters of `act` on `instance` for purchase order `order`.
    fn params(
        &self,
        act: Act,
        instance: &str,
        order: &str,
        business_id: &str,
    ) -> Vec<(String, String)> {
        let charging_mode = match self.charging {
            Charging::OnDemand => "0",
            Charging::Period => "1",
            Charging::OneTime => "3",
        };
        match act {
            Act::New => {
                let mut v = p(&[
                    ("activity", "newInstance"),
                    ("businessId", business_id),
                    ("chargingMode", charging_mode),
                    ("customerId", "koogate-conformance-customer"),
                    ("customerName", "koogate-conformance"),
                    ("orderId", order),
                    ("productId", MOCK_PRODUCT_ID),
                    ("skuCode", MOCK_SKU),
                ]);
                if self.charging == Charging::Period {
                    v.extend(p(&[
                        ("expireTime", &self.expire_time),
                        ("periodNumber", "1"),
                        ("periodType", "year"),
                    ]));
                }
                v
            }
            Act::Query => p(&[("activity", "queryInstance"), ("instanceId", instance)]),
            Act::Refresh => p(&[
                ("activity", "refreshInstance"),
                ("expireTime", &self.expire_time),
                ("instanceId", instance),
                ("orderId", MOCK_RENEW),
                ("productId", MOCK_PRODUCT_ID),
            ]),
            Act::Expire => p(&[
                ("activity", "expireInstance"),
                ("instanceId", instance),
                ("orderId", order),
            ]),
            Act::Upgrade => p(&[
                ("activity", "upgrade"),
                ("amount", "20"),
                ("instanceId", instance),
                ("orderId", MOCK_CHANGE),
                ("productId", MOCK_PRODUCT_ID),
                ("skuCode", MOCK_SKU),
            ]),
            Act::Freeze | Act::Normal => p(&[
                ("activity", "instanceStatus"),
                ("instanceId", instance),
                (
                    "instanceStatus",
                    if act == Act::Freeze {
                        "FREEZE"
                    } else {
                        "NORMAL"
                    },
                ),
            ]),
            Act::Release => p(&[
                ("activity", "releaseInstance"),
                ("instanceId", instance),
                ("orderId", order),
            ]),
            Act::GetLicense => {
                let mut v = p(&[
                    ("activity", "getLicense"),
                    ("businessId", business_id),
                    ("customerId", "koogate-conformance-customer"),
                    ("customerName", "koogate-conformance"),
                    ("orderId", order),
                    ("productId", MOCK_PRODUCT_ID),
                    ("skuCode", MOCK_SKU),
                ]);
                if self.charging != Charging::OneTime {
                    v.extend(p(&[
                        ("expireTime", &self.expire_time),
                        ("periodNumber", "1"),
                        ("periodType", "year"),
                    ]));
                }
                v
            }
            Act::RefreshLicense => p(&[
                ("activity", "refreshLicense"),
                ("expireTime", &self.expire_time),
                ("instanceId", instance),
                ("orderId", MOCK_RENEW),
                ("periodNumber", "1"),
                ("periodType", "year"),
                ("productId", MOCK_PRODUCT_ID),
            ]),
            Act::ExpireLicense | Act::ReleaseLicense => p(&[
                ("activity", act.name()),
                ("instanceId", instance),
                ("orderId", order),
            ]),
        }
    }

    fn debug_params(&self, act: Act) -> Vec<(String, String)> {
        let mut v = self.params(
            act,
            &self.debug_id(),
            self.charging.mock_order(),
            &self.debug_business_id,
        );
        v.push(("testFlag".to_owned(), "1".to_owned()));
        v
    }

    /// Sends a GET with exactly these (already signed) parameters.
    async fn get_raw(&mut self, params: &[(String, String)]) -> Result<Answer, Fail> {
        let target = self
            .target
            .request_target(&koogallery::query::encode_query(params));
        super::send(&self.target, &target, None, &mut self.seen).await
    }

    fn now_stamp(offset: time::Duration) -> String {
        koogallery::time::format_millis17(time::OffsetDateTime::now_utc() + offset)
    }

    async fn get(&mut self, params: Vec<(String, String)>) -> Result<Answer, Fail> {
        let stamp = self.fresh_stamp().await;
        let signed = v1_params(&self.key, params, stamp);
        self.get_raw(&signed).await
    }

    /// The current `timeStamp`, different from the previous request's: V1 has no nonce, so two
    /// identical calls in the same millisecond would be the same request, which a server that
    /// remembers `authToken`s rightly refuses as a replay (security.md §3.3).
    async fn fresh_stamp(&mut self) -> String {
        loop {
            let stamp = Self::now_stamp(time::Duration::ZERO);
            if self.last_stamp.as_deref() != Some(stamp.as_str()) {
                self.last_stamp = Some(stamp.clone());
                return stamp;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    fn envelope(&self, answer: &Answer) -> Result<check::Checked, Fail> {
        check::envelope(answer, &self.key, SignRule::Required).map_err(Fail::Check)
    }

    /// Checks a creation answer and returns its `instanceId` (and `license` for License 1.0).
    fn created(&self, c: &check::Checked) -> Result<(String, Option<String>), Fail> {
        check::code_in(c, &["000000"])?;
        let id = check::required_str(&c.json, "instanceId", "instanceId", 64)?.to_owned();
        if self.flavor == Flavor::License {
            check::required_str(&c.json, "resultMsg", "resultMsg", 255)?;
            let license = check::required_str(&c.json, "license", "license", usize::MAX)?;
            return Ok((id, Some(license.to_owned())));
        }
        check::encrypt_type(&c.json)?;
        match c.json.get("appInfo") {
            Some(app) if !app.is_null() => check::app_info(app, "appInfo")?,
            _ => {
                return Err(Fail::Check(format!(
                    "{} (no appInfo.frontEndUrl: a V1 creation must return the access information, saas.md §13.2)",
                    check::missing("frontEndUrl")
                )));
            }
        }
        Ok((id, None))
    }

    /// The creating activity of the family.
    fn create_act(&self) -> Act {
        match self.flavor {
            Flavor::Saas => Act::New,
            Flavor::License => Act::GetLicense,
        }
    }

    async fn debug(&mut self, act: Act) -> Verdict {
        let params = self.debug_params(act);
        let answer = self.get(params).await?;
        let c = self.envelope(&answer)?;
        match act {
            Act::New | Act::GetLicense => {
                let (id, _) = self.created(&c)?;
                if self.debug_instance.is_none() {
                    self.debug_instance = Some(id);
                }
            }
            Act::Query => {
                check::code_in(&c, &["000000"])?;
                check::query_info(&c, &self.debug_id(), false)?;
            }
            _ => check::code_in(&c, &["000000"])?,
        }
        Ok(c.notes)
    }

    async fn debug_repeat(&mut self) -> Verdict {
        let params = self.debug_params(self.create_act());
        let answer = self.get(params).await?;
        let mut c = self.envelope(&answer)?;
        let (id, _) = self.created(&c)?;
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
        let params = p(&[
            ("activity", "queryInstance"),
            ("instanceId", &id),
            ("testFlag", "1"),
        ]);
        let answer = self.get(params).await?;
        let c = self.envelope(&answer)?;
        check::code_in(&c, &["000000"])?;
        check::query_info(&c, &id, false)?;
        Ok(c.notes)
    }

    async fn forged(&mut self, f: Forgery) -> Verdict {
        let params = self.debug_params(probe_act(self.flavor));
        let offset = match f {
            Forgery::Stale => -SKEW,
            Forgery::Future => SKEW,
            _ => time::Duration::ZERO,
        };
        let key = if f == Forgery::WrongKey {
            format!("{}-not-the-key", self.key)
        } else {
            self.key.clone()
        };
        let mut signed = v1_params(&key, params, Self::now_stamp(offset));
        match f {
            Forgery::NoToken => signed.retain(|(k, _)| k != "authToken"),
            Forgery::NoTimeStamp => signed.retain(|(k, _)| k != "timeStamp"),
            Forgery::Tampered => {
                for (k, v) in &mut signed {
                    if k == "instanceId" {
                        v.push('X');
                    }
                }
            }
            _ => {}
        }
        let answer = self.get_raw(&signed).await?;
        let c = self.envelope(&answer)?;
        check::refused_with(&c, f.expected(), f.what())?;
        Ok(c.notes)
    }

    async fn replay(&mut self) -> Verdict {
        let params = self.debug_params(probe_act(self.flavor));
        let stamp = self.fresh_stamp().await;
        let signed = v1_params(&self.key, params, stamp);
        let first = self.get_raw(&signed).await?;
        let c = self.envelope(&first)?;
        if c.code != "000000" {
            return Err(Fail::Check(format!(
                "{} (the original request was refused with {}, so the replay proves nothing)",
                check::WRONG_CODE,
                c.code
            )));
        }
        let again = self.get_raw(&signed).await?;
        let c = self.envelope(&again)?;
        if c.code == "000000" || c.code == "000004" {
            return Err(Fail::Check(format!(
                "{} (the endpoint accepted the identical request twice with resultCode {}; remember accepted authTokens for the window and refuse exact replays, security.md §3.3)",
                check::WRONG_CODE,
                c.code
            )));
        }
        Ok(c.notes)
    }

    fn real_id(&self) -> Result<String, Fail> {
        self.real_instance.clone().ok_or_else(|| {
            Fail::Check("not run: real.newInstance returned no instanceId".to_owned())
        })
    }

    async fn real_new(&mut self, resend: bool) -> Verdict {
        let first = if resend { Some(self.real_id()?) } else { None };
        let order = self.real_order.clone();
        let params = self.params(self.create_act(), "", &order, &super::business_id());
        let answer = self.get(params).await?;
        let c = self.envelope(&answer)?;
        let (id, license) = self.created(&c)?;
        match first {
            None => {
                self.real_instance = Some(id);
                self.real_license = license;
            }
            Some(first) if first != id => {
                return Err(Fail::Check(format!(
                    "the same order got instanceId {id:?} on a resend with a new businessId, {first:?} the first time: creation must be idempotent on orderId, never keyed on businessId (saas.md §13.2, license.md §2.4)"
                )));
            }
            Some(_) => {
                if license.is_some() && license != self.real_license {
                    return Err(Fail::Check(format!(
                        "the same order got another license on a resend ({:?}, {:?} the first time): getLicense must return the same instance and the same license (license.md §2.4)",
                        license.unwrap_or_default(),
                        self.real_license.clone().unwrap_or_default()
                    )));
                }
            }
        }
        Ok(c.notes)
    }

    async fn real_query(&mut self) -> Verdict {
        let id = self.real_id()?;
        let started = Instant::now();
        let deadline = started + self.provision_timeout;
        loop {
            let answer = self
                .get(p(&[("activity", "queryInstance"), ("instanceId", &id)]))
                .await?;
            let c = self.envelope(&answer)?;
            if c.code == "000004" && Instant::now() < deadline {
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
            check::code_in(&c, &["000000"])?;
            check::query_info(&c, &id, false)?;
            return Ok(c.notes);
        }
    }

    async fn real(&mut self, act: Act) -> Verdict {
        let id = self.real_id()?;
        let order = self.real_order.clone();
        let mut params = self.params(act, &id, &order, "");
        // Renewals and upgrades come with orders of their own.
        for (k, v) in &mut params {
            if k == "orderId" {
                match act {
                    Act::Refresh | Act::RefreshLicense => *v = format!("{order}R"),
                    Act::Upgrade => *v = format!("{order}U"),
                    _ => {}
                }
            }
        }
        let answer = self.get(params).await?;
        let c = self.envelope(&answer)?;
        check::code_in(&c, &["000000"])?;
        Ok(c.notes)
    }
}

impl Runner for V1Runner {
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
            Action::Real(act) => self.real(act).await,
        }
    }

    fn take_seen(&mut self) -> Option<Seen> {
        self.seen.take()
    }
}
