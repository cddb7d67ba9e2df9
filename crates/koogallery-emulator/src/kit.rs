//! The joint-operation kit (联营kit, jointop.md): the buyer's directory KooGallery pushes to the
//! merchant — tenant, application credential, organisation and users — and the bodies of the five
//! V2 sync interfaces, built with the [`koogallery::model::kit`] models.
//!
//! Calls go to the production URL with `/produceAPI/v2/<name>` appended (jointop.md §1), the
//! body in its canonical form (top-level keys sorted, security.md §8.1), signed over those bytes
//! with the kit key in the `x-sign`/`x-timestamp`/`x-nonce` headers (security.md §10) by
//! [`crate::dispatch::prepare_kit`].
//! `applicationSync.clientSecret` is encrypted with the merchant's RSA public key at each
//! attempt (jointop.md §5), so a key configured after a failure is used by the restart.

use std::fmt;

use koogallery::crypto::rsa_oaep::{self, OaepParams};
use koogallery::model::TestFlag;
use koogallery::model::kit::{
    AllOrgSync, ApplicationSync, AuthSync, KitUser, OrgInfo, SingleOrgSync, SyncFlag, TenantSync,
};
use koogallery::model::{Decimal, JsonOrString};
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The five kit interfaces, in KooGallery's processing order (jointop.md §6: tenant →
/// application → full organisation → users; `singleOrgSync` for later department changes).
pub const INTERFACES: [&str; 5] = [
    "tenantSync",
    "applicationSync",
    "allOrgSync",
    "authSync",
    "singleOrgSync",
];

/// The sub-path appended to the production URL (jointop.md §1).
pub const PATH_PREFIX: &str = "/produceAPI/v2/";

/// The OAEP parameter set `clientSecret` is encrypted with. Unpublished (jointop.md §5, §10 #1):
/// the emulator uses Java's `RSA/ECB/OAEPWithSHA-256AndMGF1Padding` default, SHA-256 with
/// MGF1-SHA-1 — the second set a merchant tries (security.md §14).
pub const OAEP: OaepParams = OaepParams::Sha256Mgf1Sha1;

/// Whether `activity` is a kit interface (sent as [`crate::dispatch::Transport::KitPost`]).
pub fn is_kit(activity: &str) -> bool {
    INTERFACES.contains(&activity)
}

/// `{production URL}/produceAPI/v2/{name}`; a query in the production URL stays at the end.
pub fn url(production_url: &str, name: &str) -> String {
    let (base, query) = match production_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (production_url, None),
    };
    let mut out = format!("{}{PATH_PREFIX}{name}", base.trim_end_matches('/'));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Reads the merchant's RSA public key: SPKI (`BEGIN PUBLIC KEY`, what the seller console takes)
/// or PKCS#1 (`BEGIN RSA PUBLIC KEY`) PEM.
pub fn parse_public_key(pem: &str) -> Result<RsaPublicKey, String> {
    let pem = pem.trim();
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("not an RSA public key in PEM (SPKI or PKCS#1): {e}"))
}

/// Encrypts `secret` for the merchant, as `applicationSync.clientSecret` (Base64).
pub fn encrypt_secret(public_key_pem: &str, secret: &str) -> Result<String, String> {
    let key = parse_public_key(public_key_pem)?;
    rsa_oaep::encrypt_client_secret(&key, secret, OAEP).map_err(|e| e.to_string())
}

/// The buyer's directory as KooGallery's joint-operation side keeps it for one instance: the
/// tenant (the buyer's enterprise in its IDaaS), the application credential, the departments and
/// the users authorised for the application. `Debug` and [`redacted`](Self::redacted) hide the
/// client secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub tenant_id: String,
    pub tenant_code: String,
    /// The enterprise name.
    pub tenant_name: String,
    /// The tenant's IdP base URL, scheme included.
    pub domain_name: String,
    pub app_id: String,
    pub client_id: String,
    /// The plaintext OAuth2 client secret (sent encrypted).
    pub client_secret: String,
    pub orgs: Vec<OrgInfo>,
    pub users: Vec<KitUser>,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("tenant_id", &self.tenant_id)
            .field("tenant_code", &self.tenant_code)
            .field("domain_name", &self.domain_name)
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("orgs", &self.orgs.len())
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

fn hex_digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

impl Directory {
    /// The directory of a new joint-operation instance. The tenant is derived from the buyer
    /// (the same buyer is the same tenant); the application credential is new per instance.
    /// Two departments and two users (an administrator and a user), all enabled.
    pub fn new(customer_id: &str, customer_name: &str) -> Self {
        let tenant = hex_digest(&["tenant", customer_id]);
        let tenant_id = tenant.get(..32).unwrap_or(&tenant).to_owned();
        let tenant_code = format!("t{}", tenant.get(32..42).unwrap_or_default());
        let app = uuid::Uuid::new_v4().simple().to_string();
        let root = format!("{tenant_code}-root");
        let rd = format!("{tenant_code}-rd");
        let user = |user_name: &str, name: &str, org: &str, role: &str| KitUser {
            user_name: user_name.to_owned(),
            name: name.to_owned(),
            org_code: org.to_owned(),
            employee_type: Some(Decimal("1".to_owned())),
            role: role.to_owned(),
            enable: "true".to_owned(),
            ..KitUser::default()
        };
        Self {
            tenant_id,
            domain_name: format!("https://{tenant_code}.idaas.emulator.example.com"),
            tenant_code,
            tenant_name: if customer_name.trim().is_empty() {
                "emulated enterprise".to_owned()
            } else {
                customer_name.chars().take(255).collect()
            },
            app_id: format!("app-{}", app.get(..16).unwrap_or(&app)),
            client_id: format!("client-{}", app.get(16..).unwrap_or(&app)),
            client_secret: format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
            orgs: vec![
                OrgInfo {
                    org_code: root.clone(),
                    org_name: "Head office".to_owned(),
                    parent_code: None,
                },
                OrgInfo {
                    org_code: rd.clone(),
                    org_name: "R&D".to_owned(),
                    parent_code: Some(root.clone()),
                },
            ],
            users: vec![
                user("admin", "Administrator", &root, "admin"),
                user("zhangsan", "Zhang San", &rd, "user"),
            ],
        }
    }

    /// The same, secret replaced by `<redacted>` (for listings).
    pub fn redacted(&self) -> Self {
        Self {
            client_secret: "<redacted>".to_owned(),
            ..self.clone()
        }
    }
}

/// Where a kit call comes from: the purchased instance and its order (empty strings when the
/// seller applies for a credential, which the emulator does not do).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub instance_id: &'a str,
    pub order_id: &'a str,
    /// Emulated time of the change, for `timeStamp` (renewed at every attempt) and
    /// `currentSyncTime`.
    pub at_ms: i64,
}

/// `yyyyMMddHHmmssSSS` in UTC+8.
pub fn timestamp(ms: i64) -> String {
    koogallery::time::from_epoch_millis(ms)
        .map(koogallery::time::format_kit_timestamp)
        .unwrap_or_default()
}

fn real() -> Option<TestFlag> {
    Some(TestFlag::REAL.numeric())
}

fn body<T: Serialize>(model: &T) -> serde_json::Value {
    serde_json::to_value(model).unwrap_or(serde_json::Value::Null)
}

/// `tenantSync` (jointop.md §4.1); `flag` `0` deletes the tenant (the buyer dissolved the
/// organisation, or the instance is released).
pub fn tenant_sync(dir: &Directory, origin: Origin<'_>, flag: SyncFlag) -> serde_json::Value {
    body(&TenantSync {
        instance_id: origin.instance_id.to_owned(),
        order_id: origin.order_id.to_owned(),
        tenant_id: dir.tenant_id.clone(),
        tenant_code: dir.tenant_code.clone(),
        name: dir.tenant_name.clone(),
        domain_name: dir.domain_name.clone(),
        flag: Some(flag),
        test_flag: real(),
        time_stamp: timestamp(origin.at_ms),
    })
}

/// `applicationSync` (jointop.md §4.2) with an empty `clientSecret`: it is encrypted for the
/// merchant when the call is sent.
pub fn application_sync(dir: &Directory, origin: Origin<'_>, flag: SyncFlag) -> serde_json::Value {
    body(&ApplicationSync {
        instance_id: origin.instance_id.to_owned(),
        tenant_id: dir.tenant_id.clone(),
        app_id: dir.app_id.clone(),
        client_id: dir.client_id.clone(),
        client_secret: String::new(),
        flag: Some(flag),
        test_flag: real(),
        time_stamp: timestamp(origin.at_ms),
    })
}

/// `allOrgSync` (jointop.md §4.5): the whole tree as a JSON array, no `flag`.
pub fn all_org_sync(dir: &Directory, origin: Origin<'_>) -> serde_json::Value {
    body(&AllOrgSync {
        instance_id: origin.instance_id.to_owned(),
        tenant_id: dir.tenant_id.clone(),
        org_info_list: Some(JsonOrString::new(dir.orgs.clone())),
        flag: None,
        test_flag: real(),
        time_stamp: timestamp(origin.at_ms),
    })
}

/// `authSync` (jointop.md §4.3) for `users`.
pub fn auth_sync(
    dir: &Directory,
    origin: Origin<'_>,
    users: Vec<KitUser>,
    flag: SyncFlag,
) -> serde_json::Value {
    let at = timestamp(origin.at_ms);
    body(&AuthSync {
        instance_id: origin.instance_id.to_owned(),
        tenant_id: dir.tenant_id.clone(),
        app_id: dir.app_id.clone(),
        user_list: users,
        current_sync_time: at.clone(),
        flag: Some(flag),
        test_flag: real(),
        time_stamp: at,
    })
}

/// `singleOrgSync` (jointop.md §4.4) for one department.
pub fn single_org_sync(
    dir: &Directory,
    origin: Origin<'_>,
    org: &OrgInfo,
    flag: SyncFlag,
) -> serde_json::Value {
    body(&SingleOrgSync {
        instance_id: origin.instance_id.to_owned(),
        tenant_id: dir.tenant_id.clone(),
        org_code: org.org_code.clone(),
        org_name: org.org_name.clone(),
        parent_code: org.parent_code.clone(),
        flag: Some(flag),
        test_flag: real(),
        time_stamp: timestamp(origin.at_ms),
    })
}

/// A directory change asked for through the control API (`POST
/// /control/instances/{resourceId}/sync`): the buyer's administrator authorises or changes a
/// user (`authSync`), a department changes (`singleOrgSync`), or the whole tree is pushed again
/// (`allOrgSync`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    /// `auth`, `org` or `all-org`.
    pub kind: String,
    /// `add` (default), `modify`, `delete`, or (`auth` only) `cancel`.
    #[serde(default)]
    pub flag: Option<String>,
    /// `auth`: the user (login account).
    #[serde(default)]
    pub user_name: Option<String>,
    /// `auth`: display name (default: the user name); `org`: ignored.
    #[serde(default)]
    pub name: Option<String>,
    /// `auth`: `user` (default) or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// `auth`: the user's department (default: the first); `org`: the department.
    #[serde(default)]
    pub org_code: Option<String>,
    /// `org`: the department's name (default: the code).
    #[serde(default)]
    pub org_name: Option<String>,
    /// `org`: the parent department (none: top level).
    #[serde(default)]
    pub parent_code: Option<String>,
}

/// Parses a flag name.
pub fn parse_flag(flag: Option<&str>, cancel_allowed: bool) -> Result<SyncFlag, String> {
    match flag.unwrap_or("add") {
        "add" | "1" => Ok(SyncFlag::Add),
        "modify" | "2" => Ok(SyncFlag::Modify),
        "delete" | "0" => Ok(SyncFlag::Delete),
        "cancel" | "3" if cancel_allowed => Ok(SyncFlag::CancelAuthorization),
        other => Err(format!(
            "flag must be add, modify, delete{}; not {other:?}",
            if cancel_allowed { " or cancel" } else { "" }
        )),
    }
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

/// Applies `request` to `dir` and returns the call it causes (interface name and body).
pub fn apply(
    dir: &mut Directory,
    origin: Origin<'_>,
    request: &SyncRequest,
) -> Result<(&'static str, serde_json::Value), String> {
    use koogallery::model::Validate;
    match request.kind.as_str() {
        "auth" => {
            let flag = parse_flag(request.flag.as_deref(), true)?;
            let user_name = nonempty(&request.user_name).ok_or("auth needs userName")?;
            let existing = dir.users.iter().position(|u| u.user_name == user_name);
            let mut user = existing
                .and_then(|i| dir.users.get(i).cloned())
                .unwrap_or_else(|| KitUser {
                    user_name: user_name.to_owned(),
                    name: user_name.to_owned(),
                    org_code: dir
                        .orgs
                        .first()
                        .map(|o| o.org_code.clone())
                        .unwrap_or_default(),
                    employee_type: Some(Decimal("1".to_owned())),
                    role: "user".to_owned(),
                    enable: "true".to_owned(),
                    ..KitUser::default()
                });
            if let Some(n) = nonempty(&request.name) {
                n.clone_into(&mut user.name);
            }
            if let Some(r) = nonempty(&request.role) {
                r.clone_into(&mut user.role);
            }
            if let Some(o) = nonempty(&request.org_code) {
                o.clone_into(&mut user.org_code);
            }
            user.validate().map_err(|e| e.to_string())?;
            let removed = matches!(flag, SyncFlag::Delete | SyncFlag::CancelAuthorization);
            match (removed, existing) {
                (true, Some(i)) => {
                    dir.users.remove(i);
                }
                (true, None) => {}
                (_, Some(i)) => {
                    if let Some(slot) = dir.users.get_mut(i) {
                        *slot = user.clone();
                    }
                }
                (_, None) => dir.users.push(user.clone()),
            }
            Ok(("authSync", auth_sync(dir, origin, vec![user], flag)))
        }
        "org" => {
            let flag = parse_flag(request.flag.as_deref(), false)?;
            let code = nonempty(&request.org_code).ok_or("org needs orgCode")?;
            let existing = dir.orgs.iter().position(|o| o.org_code == code);
            let mut org = existing
                .and_then(|i| dir.orgs.get(i).cloned())
                .unwrap_or_else(|| OrgInfo {
                    org_code: code.to_owned(),
                    org_name: code.to_owned(),
                    parent_code: None,
                });
            if let Some(n) = nonempty(&request.org_name) {
                n.clone_into(&mut org.org_name);
            }
            if request.parent_code.is_some() {
                org.parent_code = nonempty(&request.parent_code).map(str::to_owned);
            }
            org.validate().map_err(|e| e.to_string())?;
            match (flag == SyncFlag::Delete, existing) {
                (true, Some(i)) => {
                    dir.orgs.remove(i);
                }
                (true, None) => {}
                (_, Some(i)) => {
                    if let Some(slot) = dir.orgs.get_mut(i) {
                        *slot = org.clone();
                    }
                }
                (_, None) => dir.orgs.push(org.clone()),
            }
            Ok(("singleOrgSync", single_org_sync(dir, origin, &org, flag)))
        }
        "all-org" => Ok(("allOrgSync", all_org_sync(dir, origin))),
        other => Err(format!("kind must be auth, org or all-org, not {other:?}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use koogallery::model::kit::KitRequest;

    fn origin() -> Origin<'static> {
        Origin {
            instance_id: "inst-1",
            order_id: "CS1",
            at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn urls_append_the_kit_path() {
        assert_eq!(
            url("https://isv.example.com/produce", "tenantSync"),
            "https://isv.example.com/produce/produceAPI/v2/tenantSync"
        );
        assert_eq!(
            url("http://h/p/?x=1", "authSync"),
            "http://h/p/produceAPI/v2/authSync?x=1"
        );
        assert!(is_kit("allOrgSync") && !is_kit("newInstance"));
    }

    #[test]
    fn bodies_decode_with_the_models() {
        let mut dir = Directory::new("buyer", "ACME");
        assert_eq!(Directory::new("buyer", "x").tenant_id, dir.tenant_id);
        assert!(!format!("{dir:?}").contains(&dir.client_secret));
        let mut app = application_sync(&dir, origin(), SyncFlag::Add);
        app["clientSecret"] = "c2VjcmV0".into();
        for (name, body) in [
            ("tenantSync", tenant_sync(&dir, origin(), SyncFlag::Add)),
            ("applicationSync", app),
            ("allOrgSync", all_org_sync(&dir, origin())),
            (
                "authSync",
                auth_sync(&dir, origin(), dir.users.clone(), SyncFlag::Add),
            ),
            (
                "singleOrgSync",
                single_org_sync(&dir, origin(), &dir.orgs[1], SyncFlag::Modify),
            ),
        ] {
            let text = serde_json::to_vec(&body).unwrap();
            let decoded = KitRequest::decode(name, &text).unwrap();
            assert_eq!(decoded.tenant_id(), dir.tenant_id);
            assert_eq!(decoded.instance_id(), "inst-1");
        }
        let tenant = tenant_sync(&dir, origin(), SyncFlag::Delete);
        assert_eq!(tenant["flag"], 0);
        assert_eq!(tenant["testFlag"], 0);
        assert_eq!(tenant["timeStamp"], "20231115061320000");

        let (name, body) = apply(
            &mut dir,
            origin(),
            &SyncRequest {
                kind: "auth".to_owned(),
                user_name: Some("lisi".to_owned()),
                ..SyncRequest::default()
            },
        )
        .unwrap();
        assert_eq!(name, "authSync");
        assert_eq!(body["userList"][0]["userName"], "lisi");
        assert_eq!(dir.users.len(), 3);
        let rd = dir.orgs[1].org_code.clone();
        let (name, _) = apply(
            &mut dir,
            origin(),
            &SyncRequest {
                kind: "org".to_owned(),
                org_code: Some(rd),
                flag: Some("delete".to_owned()),
                ..SyncRequest::default()
            },
        )
        .unwrap();
        assert_eq!((name, dir.orgs.len()), ("singleOrgSync", 1));
        let bad = SyncRequest {
            kind: "auth".to_owned(),
            user_name: Some("x".to_owned()),
            role: Some("root".to_owned()),
            ..SyncRequest::default()
        };
        assert!(apply(&mut dir, origin(), &bad).is_err());
        assert!(parse_flag(Some("cancel"), false).is_err());
        assert!(parse_public_key("nope").is_err());
    }

    #[test]
    fn secret_encrypts_for_the_public_key() {
        let pem = include_str!("../../koogallery/tests/fixtures/rsa3072_test_pub.pem");
        let private = rsa_oaep::private_key_from_pem(include_str!(
            "../../koogallery/tests/fixtures/rsa3072_test_key.pem"
        ))
        .unwrap();
        let ct = encrypt_secret(pem, "s3cret").unwrap();
        assert_eq!(
            rsa_oaep::decrypt_client_secret(&private, &ct).unwrap(),
            ("s3cret".to_owned(), OAEP)
        );
        assert!(encrypt_secret("garbage", "s").is_err());
    }
}
