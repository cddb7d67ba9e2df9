//! Joint-operation kit (jointop.md): the five V2 sync bodies (§4), the common kit response (§3)
//! and the OAuth2 token and user-information bodies of the tenant's identity provider (§9).
//!
//! Kit bodies carry JSON numbers (`flag`, `testFlag`, `employeeType`) and keep them numbers when
//! serialised. `instanceId` and `orderId` are mandatory but may be **empty** when the seller
//! applies for an application credential (jointop.md §4); only their length is checked. Only the
//! V2 body forms are modelled (the legacy V1 forms of jointop.md §8 differ).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    Decimal, JsonOrString, ResultEnvelope, TestFlag, Validate, decode_json, each, max_len, one_of,
    optional, required,
};
use crate::error::{Error, FieldError};

/// `role` of a synced user and of the user information (jointop.md §4.3, §9.4).
pub const USER_ROLES: &[&str] = &["user", "admin"];
/// `enable` of a synced user: a string, not a boolean (jointop.md §4.3).
pub const USER_ENABLE_VALUES: &[&str] = &["true", "false"];
/// `employeeType` of a synced user (jointop.md §4.3).
pub const EMPLOYEE_TYPES: &[&str] = &["1", "2", "3", "4"];

/// `flag` of a kit body: what happened to the record (jointop.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncFlag {
    /// `0`: delete.
    Delete,
    /// `1`: add.
    Add,
    /// `2`: modify.
    Modify,
    /// `3` (`authSync` only): cancel the authorisation; the user stays in the organisation.
    CancelAuthorization,
}

impl SyncFlag {
    /// The wire number.
    pub const fn value(self) -> u8 {
        match self {
            Self::Delete => 0,
            Self::Add => 1,
            Self::Modify => 2,
            Self::CancelAuthorization => 3,
        }
    }
    /// The flag with this wire number.
    pub const fn from_value(n: i64) -> Option<Self> {
        match n {
            0 => Some(Self::Delete),
            1 => Some(Self::Add),
            2 => Some(Self::Modify),
            3 => Some(Self::CancelAuthorization),
            _ => None,
        }
    }
}

impl Serialize for SyncFlag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.value())
    }
}

impl<'de> Deserialize<'de> for SyncFlag {
    /// A JSON number; decimal text is tolerated.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let n = match Raw::deserialize(d)? {
            Raw::Number(n) => Some(n),
            Raw::Text(s) => s.trim().parse().ok(),
        };
        n.and_then(Self::from_value)
            .ok_or_else(|| serde::de::Error::custom("must be one of 0, 1, 2, 3"))
    }
}

/// `flag` values other than `authSync`'s: `0`, `1`, `2`.
const FLAGS_WITHOUT_CANCEL: &[&str] = &["0", "1", "2"];

/// `tenantSync`: enterprise / tenant sync (jointop.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSync {
    /// Empty when the seller applies for a credential.
    #[serde(default)]
    pub instance_id: String,
    /// Empty when the seller applies for a credential.
    #[serde(default)]
    pub order_id: String,
    /// The tenant's primary key in the IDaaS.
    #[serde(default)]
    pub tenant_id: String,
    /// Used in the `userName@tenantCode` form.
    #[serde(default)]
    pub tenant_code: String,
    /// Enterprise name.
    #[serde(default)]
    pub name: String,
    /// The IdP base URL, scheme included (`https://xxx.example.com`).
    #[serde(default)]
    pub domain_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<SyncFlag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    /// `yyyyMMddHHmmssSSS`, UTC+8.
    #[serde(default)]
    pub time_stamp: String,
}

impl Validate for TenantSync {
    fn validate(&self) -> Result<(), FieldError> {
        max_len("instanceId", &self.instance_id, 64)?;
        max_len("orderId", &self.order_id, 64)?;
        required("tenantId", &self.tenant_id, 64)?;
        required("tenantCode", &self.tenant_code, 64)?;
        required("name", &self.name, 255)?;
        required("domainName", &self.domain_name, 255)?;
        let lower = self.domain_name.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(FieldError::invalid(
                "domainName",
                "must include the scheme (https://…)",
            ));
        }
        check_flag(self.flag, FLAGS_WITHOUT_CANCEL)?;
        check_common(self.test_flag, &self.time_stamp)
    }
}

/// `applicationSync`: the tenant's OAuth2 client credential (jointop.md §4.2). Unique key
/// (`tenantId`, `appId`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSync {
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub tenant_id: String,
    #[serde(default)]
    pub app_id: String,
    /// OAuth2 `client_id`.
    #[serde(default)]
    pub client_id: String,
    /// OAuth2 `client_secret`, RSA-OAEP-encrypted with the merchant's public key (jointop.md §5).
    #[serde(default)]
    pub client_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<SyncFlag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
}

impl Validate for ApplicationSync {
    fn validate(&self) -> Result<(), FieldError> {
        max_len("instanceId", &self.instance_id, 64)?;
        required("tenantId", &self.tenant_id, 64)?;
        required("appId", &self.app_id, 64)?;
        required("clientId", &self.client_id, 64)?;
        required("clientSecret", &self.client_secret, usize::MAX)?;
        check_flag(self.flag, FLAGS_WITHOUT_CANCEL)?;
        check_common(self.test_flag, &self.time_stamp)
    }
}

/// `authSync`: a batch of authorised users (jointop.md §4.3). No hard batch limit (V1 used 500,
/// jointop.md §10 #7).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSync {
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub tenant_id: String,
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub user_list: Vec<KitUser>,
    /// `yyyyMMddHHmmssSSS`, assumed UTC+8 like `timeStamp` (jointop.md §10 #6); ignore updates
    /// older than the last one applied for a user.
    #[serde(default)]
    pub current_sync_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<SyncFlag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
}

impl Validate for AuthSync {
    fn validate(&self) -> Result<(), FieldError> {
        max_len("instanceId", &self.instance_id, 64)?;
        required("tenantId", &self.tenant_id, 64)?;
        required("appId", &self.app_id, 64)?;
        if self.user_list.is_empty() {
            return Err(FieldError::missing("userList"));
        }
        each("userList", &self.user_list)?;
        required("currentSyncTime", &self.current_sync_time, usize::MAX)?;
        check_kit_time("currentSyncTime", &self.current_sync_time)?;
        check_flag(self.flag, &["0", "1", "2", "3"])?;
        check_common(self.test_flag, &self.time_stamp)
    }
}

/// One user of `authSync` (jointop.md §4.3); key (`tenantId`, `userName`). Personal data is
/// sent only with the buyer's privacy authorisation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KitUser {
    /// Login account, unique per tenant.
    #[serde(default)]
    pub user_name: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Department code, as in the organisation sync.
    #[serde(default)]
    pub org_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_code: Option<String>,
    /// `1` regular, `2` intern, `3` agency dispatch, `4` labour outsourcing; a JSON number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_type: Option<Decimal>,
    /// `user` or `admin`.
    #[serde(default)]
    pub role: String,
    /// `"true"` or `"false"`, as a string.
    #[serde(default)]
    pub enable: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_place: Option<String>,
    /// Hire date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_date: Option<String>,
}

impl KitUser {
    /// Whether `enable` is `"true"`.
    pub fn is_enabled(&self) -> bool {
        self.enable == "true"
    }
}

impl Validate for KitUser {
    fn validate(&self) -> Result<(), FieldError> {
        required("userName", &self.user_name, 64)?;
        required("name", &self.name, 64)?;
        required("orgCode", &self.org_code, 64)?;
        optional("position", self.position.as_deref(), 64)?;
        optional("employeeCode", self.employee_code.as_deref(), 64)?;
        if let Some(t) = &self.employee_type {
            max_len("employeeType", t.as_str(), 11)?;
            one_of("employeeType", t.as_str(), EMPLOYEE_TYPES)?;
        }
        required("role", &self.role, 32)?;
        one_of("role", &self.role, USER_ROLES)?;
        required("enable", &self.enable, 8)?;
        one_of("enable", &self.enable, USER_ENABLE_VALUES)?;
        optional("mobile", self.mobile.as_deref(), 32)?;
        optional("email", self.email.as_deref(), 128)?;
        optional("workPlace", self.work_place.as_deref(), 256)?;
        optional("entryDate", self.entry_date.as_deref(), 20)
    }
}

/// `singleOrgSync`: one department, incremental (jointop.md §4.4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SingleOrgSync {
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub tenant_id: String,
    /// Unique within the tenant.
    #[serde(default)]
    pub org_code: String,
    /// Unique among siblings.
    #[serde(default)]
    pub org_name: String,
    /// Empty, absent or `null` for a top-level department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<SyncFlag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
}

impl Validate for SingleOrgSync {
    fn validate(&self) -> Result<(), FieldError> {
        max_len("instanceId", &self.instance_id, 64)?;
        required("tenantId", &self.tenant_id, 64)?;
        required("orgCode", &self.org_code, 64)?;
        required("orgName", &self.org_name, 128)?;
        optional("parentCode", self.parent_code.as_deref(), 64)?;
        check_flag(self.flag, FLAGS_WITHOUT_CANCEL)?;
        check_common(self.test_flag, &self.time_stamp)
    }
}

/// `allOrgSync`: the whole organisation tree as a flat list (jointop.md §4.5).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllOrgSync {
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub tenant_id: String,
    /// A JSON array, or a string holding one as in the official example (jointop.md §10 #2);
    /// serialised in the form received. An empty tree is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_info_list: Option<JsonOrString<Vec<OrgInfo>>>,
    /// Not in the table but present in the official example: kept as received, otherwise ignored
    /// (jointop.md §10 #2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
}

impl AllOrgSync {
    /// The departments, whichever form `orgInfoList` arrived in.
    pub fn departments(&self) -> &[OrgInfo] {
        self.org_info_list
            .as_ref()
            .map_or(&[], |list| list.value.as_slice())
    }
}

impl Validate for AllOrgSync {
    fn validate(&self) -> Result<(), FieldError> {
        max_len("instanceId", &self.instance_id, 64)?;
        required("tenantId", &self.tenant_id, 64)?;
        let list = self
            .org_info_list
            .as_ref()
            .ok_or_else(|| FieldError::missing("orgInfoList"))?;
        each("orgInfoList", &list.value)?;
        check_common(self.test_flag, &self.time_stamp)
    }
}

/// One department of `allOrgSync` (jointop.md §4.5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgInfo {
    #[serde(default)]
    pub org_code: String,
    #[serde(default)]
    pub org_name: String,
    /// Empty, absent or `null` for a top-level department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_code: Option<String>,
}

impl Validate for OrgInfo {
    fn validate(&self) -> Result<(), FieldError> {
        required("orgCode", &self.org_code, 64)?;
        required("orgName", &self.org_name, 128)?;
        optional("parentCode", self.parent_code.as_deref(), 64)
    }
}

/// A V2 kit request, selected by the last segment of its path (jointop.md §1).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum KitRequest {
    TenantSync(TenantSync),
    ApplicationSync(ApplicationSync),
    AuthSync(AuthSync),
    SingleOrgSync(SingleOrgSync),
    AllOrgSync(AllOrgSync),
}

impl KitRequest {
    /// The interface names, as the last path segment (`/produceAPI/v2/<name>`).
    pub const NAMES: [&'static str; 5] = [
        "tenantSync",
        "applicationSync",
        "authSync",
        "singleOrgSync",
        "allOrgSync",
    ];

    /// Decodes and validates the body of the kit interface `name` (`tenantSync`, …).
    pub fn decode(name: &str, body: &[u8]) -> Result<Self, Error> {
        match name {
            "tenantSync" => decode_json(body).map(Self::TenantSync),
            "applicationSync" => decode_json(body).map(Self::ApplicationSync),
            "authSync" => decode_json(body).map(Self::AuthSync),
            "singleOrgSync" => decode_json(body).map(Self::SingleOrgSync),
            "allOrgSync" => decode_json(body).map(Self::AllOrgSync),
            other => Err(Error::UnknownActivity(other.to_owned())),
        }
    }

    /// The interface name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TenantSync(_) => "tenantSync",
            Self::ApplicationSync(_) => "applicationSync",
            Self::AuthSync(_) => "authSync",
            Self::SingleOrgSync(_) => "singleOrgSync",
            Self::AllOrgSync(_) => "allOrgSync",
        }
    }

    /// Whether `testFlag` marks a debugging call.
    pub fn is_test(&self) -> bool {
        super::is_test(match self {
            Self::TenantSync(r) => r.test_flag,
            Self::ApplicationSync(r) => r.test_flag,
            Self::AuthSync(r) => r.test_flag,
            Self::SingleOrgSync(r) => r.test_flag,
            Self::AllOrgSync(r) => r.test_flag,
        })
    }

    /// The tenant the body is about.
    pub fn tenant_id(&self) -> &str {
        match self {
            Self::TenantSync(r) => &r.tenant_id,
            Self::ApplicationSync(r) => &r.tenant_id,
            Self::AuthSync(r) => &r.tenant_id,
            Self::SingleOrgSync(r) => &r.tenant_id,
            Self::AllOrgSync(r) => &r.tenant_id,
        }
    }

    /// The purchased instance; empty when the seller applies for a credential.
    pub fn instance_id(&self) -> &str {
        match self {
            Self::TenantSync(r) => &r.instance_id,
            Self::ApplicationSync(r) => &r.instance_id,
            Self::AuthSync(r) => &r.instance_id,
            Self::SingleOrgSync(r) => &r.instance_id,
            Self::AllOrgSync(r) => &r.instance_id,
        }
    }
}

/// The kit response: `resultCode` and optional `resultMsg` (jointop.md §3). A `clientSecret`
/// that cannot be decrypted is answered `000005`, not the sample's `000101` (jointop.md §10 #4).
pub type KitResponse = ResultEnvelope;

/// `flag`: mandatory and one of `allowed`.
fn check_flag(flag: Option<SyncFlag>, allowed: &'static [&'static str]) -> Result<(), FieldError> {
    let flag = flag.ok_or_else(|| FieldError::missing("flag"))?;
    one_of("flag", &flag.value().to_string(), allowed)
}

/// `testFlag` and `timeStamp`, mandatory in every kit body (jointop.md §4).
fn check_common(test_flag: Option<TestFlag>, time_stamp: &str) -> Result<(), FieldError> {
    if test_flag.is_none() {
        return Err(FieldError::missing("testFlag"));
    }
    required("timeStamp", time_stamp, usize::MAX)?;
    check_kit_time("timeStamp", time_stamp)
}

/// `yyyyMMddHHmmssSSS` in UTC+8: 17 digits forming a valid date-time.
fn check_kit_time(field: &str, value: &str) -> Result<(), FieldError> {
    crate::time::parse_kit_timestamp(value)
        .map(drop)
        .map_err(|e| FieldError::invalid(field, format!("must be yyyyMMddHHmmssSSS, UTC+8 ({e})")))
}

// ---------------------------------------------------------------------------------------------
// OAuth2 through the tenant's IdP (jointop.md §9)
// ---------------------------------------------------------------------------------------------

/// `token_type` of a token response.
pub const BEARER: &str = "Bearer";

/// 200 body of `POST {domainName}/api/v1/oauth2/token`, for both the authorization-code and the
/// refresh grant (jointop.md §9.2, §9.3). `Debug` hides the tokens.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OAuthToken {
    #[serde(default)]
    pub access_token: String,
    /// `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Lifetime in seconds, typically 7200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// `get_user_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Valid 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |present: bool| if present { "<hidden>" } else { "<none>" };
        f.debug_struct("OAuthToken")
            .field("access_token", &hidden(!self.access_token.is_empty()))
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("refresh_token", &hidden(self.refresh_token.is_some()))
            .finish()
    }
}

impl Validate for OAuthToken {
    fn validate(&self) -> Result<(), FieldError> {
        required("access_token", &self.access_token, usize::MAX)?;
        match self.token_type.as_deref() {
            // OAuth2 token types compare without regard to case (RFC 6749 §5.1).
            Some(t) if !t.eq_ignore_ascii_case(BEARER) => {
                Err(FieldError::not_allowed("token_type", &[BEARER]))
            }
            _ => Ok(()),
        }
    }
}

/// Error body of the IdP endpoints, e.g. `{"error":"invalid_grant","error_description":"Invalid
/// authorization code"}` (jointop.md §9.2–§9.4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OAuthError {
    #[serde(default)]
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl Validate for OAuthError {
    fn validate(&self) -> Result<(), FieldError> {
        required("error", &self.error, usize::MAX)
    }
}

/// Body of `GET {domainName}/api/v1/oauth2/userinfo` (jointop.md §9.4). No field is marked
/// mandatory there; `userName` is required here because it is the key to the `authSync` user.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// User ID in the IdP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Matches `userName` in `authSync`.
    #[serde(default)]
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// `user` or `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    /// Matches `orgCode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_code: Option<String>,
    /// Tenant (enterprise) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// Tenant ID; matches `tenantId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// aPaaS variant only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc_name: Option<String>,
    /// aPaaS variant only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_name: Option<String>,
}

impl Validate for UserInfo {
    fn validate(&self) -> Result<(), FieldError> {
        required("userName", &self.user_name, usize::MAX)?;
        match self.role.as_deref() {
            Some(role) => one_of("role", role, USER_ROLES),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Body of vector `kit-sig-001` (tenantSync, documentation key order).
    const TENANT_SYNC: &str = r#"{"instanceId":"huaweitest123456","orderId":"CS1906666666ABCDE","tenantId":"68cbc86abc2018ab880d92f36422fa0e","tenantCode":"huaweitest","name":"huaweitest","domainName":"https://huaweitest.example.com","flag":1,"testFlag":1,"timeStamp":"20220413093539534"}"#;
    /// Body of vector `kit-sig-002` (allOrgSync, `orgInfoList` as a string, stray `flag`).
    const ALL_ORG_SYNC: &str = r#"{"instanceId":"huaweitest123456","tenantId":"68cbc86abc2018ab880d92f36422fa0e","orgInfoList":"[{\"orgCode\":\"dept01\",\"orgName\":\"R&D\",\"parentCode\":\"\"},{\"orgCode\":\"dept02\",\"orgName\":\"Sales/EMEA\",\"parentCode\":\"dept01\"}]","flag":1,"testFlag":1,"timeStamp":"20220413093539534"}"#;
    /// Parameters of vector `v1-post-001` (tenantSync with an empty `orderId` and a null `remark`).
    const TENANT_SYNC_EMPTY_ORDER: &str = r#"{"instanceId":"huaweitest123456","orderId":"","tenantId":"68cbc86abc2018ab880d92f36422fa0e","tenantCode":"huaweitest","name":"huaweitest","domainName":"https://huaweitest.example.com","flag":1,"testFlag":1,"remark":null,"timeStamp":"20220413093539534"}"#;
    const APPLICATION_SYNC: &str = r#"{"instanceId":"huaweitest123456","tenantId":"68cbc86abc2018ab880d92f36422fa0e","appId":"app-01","clientId":"client-01","clientSecret":"c2VjcmV0","flag":1,"testFlag":0,"timeStamp":"20220413093539534"}"#;
    const AUTH_SYNC: &str = r#"{"instanceId":"huaweitest123456","tenantId":"68cbc86abc2018ab880d92f36422fa0e","appId":"app-01","userList":[{"userName":"zhangsan","name":"Zhang San","orgCode":"dept01","position":"engineer","employeeCode":"E001","employeeType":1,"role":"admin","enable":"true","mobile":"13800000000","email":"zs@example.com","workPlace":"Shenzhen","entryDate":"2021-07-01"},{"userName":"lisi","name":"Li Si","orgCode":"dept02","role":"user","enable":"false"}],"currentSyncTime":"20220413093539000","flag":3,"testFlag":1,"timeStamp":"20220413093539534"}"#;
    const SINGLE_ORG_SYNC: &str = r#"{"instanceId":"huaweitest123456","tenantId":"68cbc86abc2018ab880d92f36422fa0e","orgCode":"dept02","orgName":"Sales/EMEA","parentCode":"dept01","flag":2,"testFlag":0,"timeStamp":"20220413093539534"}"#;

    fn err(name: &str, body: &str) -> String {
        KitRequest::decode(name, body.as_bytes())
            .unwrap_err()
            .to_string()
    }

    fn edit(body: &str, name: &str, value: Option<serde_json::Value>) -> String {
        let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
        match value {
            Some(x) => v[name] = x,
            None => {
                v.as_object_mut().unwrap().remove(name);
            }
        }
        v.to_string()
    }

    #[test]
    fn tenant_sync_vector_round_trips_with_numbers() {
        let req = KitRequest::decode("tenantSync", TENANT_SYNC.as_bytes()).unwrap();
        let KitRequest::TenantSync(t) = &req else {
            panic!("wrong variant")
        };
        assert_eq!(t.tenant_id, "68cbc86abc2018ab880d92f36422fa0e");
        assert_eq!(t.tenant_code, "huaweitest");
        assert_eq!(t.domain_name, "https://huaweitest.example.com");
        assert_eq!(t.flag, Some(SyncFlag::Add));
        assert!(req.is_test());
        assert_eq!(req.name(), "tenantSync");
        assert_eq!(req.instance_id(), "huaweitest123456");
        // Numbers stay numbers, wire names and order are kept.
        assert_eq!(serde_json::to_string(&req).unwrap(), TENANT_SYNC);
    }

    #[test]
    fn tenant_sync_with_empty_order_and_unknown_null() {
        let KitRequest::TenantSync(t) =
            KitRequest::decode("tenantSync", TENANT_SYNC_EMPTY_ORDER.as_bytes()).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(t.order_id, "");
        let out = serde_json::to_string(&t).unwrap();
        assert!(
            out.contains(r#""orderId":"""#) && !out.contains("remark"),
            "{out}"
        );
    }

    #[test]
    fn tenant_sync_rejects_bad_fields() {
        for field in [
            "tenantId",
            "tenantCode",
            "name",
            "domainName",
            "flag",
            "testFlag",
            "timeStamp",
        ] {
            assert_eq!(
                err("tenantSync", &edit(TENANT_SYNC, field, None)),
                format!("{field} is required")
            );
        }
        assert_eq!(
            err(
                "tenantSync",
                &edit(TENANT_SYNC, "tenantId", Some("t".repeat(65).into()))
            ),
            "tenantId is longer than 64 characters"
        );
        assert_eq!(
            err(
                "tenantSync",
                &edit(TENANT_SYNC, "instanceId", Some("i".repeat(65).into()))
            ),
            "instanceId is longer than 64 characters"
        );
        assert!(
            err("tenantSync", &edit(TENANT_SYNC, "flag", Some(3.into())))
                .starts_with("flag must be one of 0, 1, 2")
        );
        assert!(err("tenantSync", &edit(TENANT_SYNC, "flag", Some(9.into()))).starts_with("flag"));
        assert!(
            err("tenantSync", &edit(TENANT_SYNC, "testFlag", Some(2.into())))
                .starts_with("testFlag")
        );
        assert!(
            err(
                "tenantSync",
                &edit(TENANT_SYNC, "domainName", Some("example.com".into()))
            )
            .starts_with("domainName")
        );
        let e = err(
            "tenantSync",
            &edit(TENANT_SYNC, "timeStamp", Some("2022041309353953".into())),
        );
        assert!(e.starts_with("timeStamp must be yyyyMMddHHmmssSSS"), "{e}");
        assert!(
            err(
                "tenantSync",
                &edit(TENANT_SYNC, "timeStamp", Some("2022-04-13 09:35".into()))
            )
            .starts_with("timeStamp")
        );
        // Decimal text for a number is tolerated; it goes out as a number.
        let KitRequest::TenantSync(t) = KitRequest::decode(
            "tenantSync",
            edit(TENANT_SYNC, "flag", Some("0".into())).as_bytes(),
        )
        .unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(t.flag, Some(SyncFlag::Delete));
        assert!(serde_json::to_string(&t).unwrap().contains(r#""flag":0"#));
    }

    #[test]
    fn application_sync() {
        let req = KitRequest::decode("applicationSync", APPLICATION_SYNC.as_bytes()).unwrap();
        let KitRequest::ApplicationSync(a) = &req else {
            panic!("wrong variant")
        };
        assert_eq!(
            (
                a.app_id.as_str(),
                a.client_id.as_str(),
                a.client_secret.as_str()
            ),
            ("app-01", "client-01", "c2VjcmV0")
        );
        assert!(!req.is_test());
        assert_eq!(serde_json::to_string(&req).unwrap(), APPLICATION_SYNC);
        for field in [
            "tenantId",
            "appId",
            "clientId",
            "clientSecret",
            "flag",
            "testFlag",
            "timeStamp",
        ] {
            assert_eq!(
                err("applicationSync", &edit(APPLICATION_SYNC, field, None)),
                format!("{field} is required")
            );
        }
        assert_eq!(
            err(
                "applicationSync",
                &edit(APPLICATION_SYNC, "clientId", Some("c".repeat(65).into()))
            ),
            "clientId is longer than 64 characters"
        );
        assert!(
            err(
                "applicationSync",
                &edit(APPLICATION_SYNC, "flag", Some(3.into()))
            )
            .starts_with("flag")
        );
    }

    #[test]
    fn auth_sync_users() {
        let req = KitRequest::decode("authSync", AUTH_SYNC.as_bytes()).unwrap();
        let KitRequest::AuthSync(a) = &req else {
            panic!("wrong variant")
        };
        assert_eq!(a.flag, Some(SyncFlag::CancelAuthorization));
        assert_eq!(a.current_sync_time, "20220413093539000");
        assert_eq!(a.user_list.len(), 2);
        let first = &a.user_list[0];
        assert_eq!(first.user_name, "zhangsan");
        assert_eq!(
            first.employee_type.as_ref().and_then(Decimal::as_i64),
            Some(1)
        );
        assert_eq!(first.work_place.as_deref(), Some("Shenzhen"));
        assert!(first.is_enabled() && !a.user_list[1].is_enabled());
        assert_eq!(a.user_list[1].mobile, None);
        // employeeType stays a number.
        assert_eq!(serde_json::to_string(&req).unwrap(), AUTH_SYNC);

        for field in [
            "tenantId",
            "appId",
            "userList",
            "currentSyncTime",
            "flag",
            "testFlag",
            "timeStamp",
        ] {
            assert_eq!(
                err("authSync", &edit(AUTH_SYNC, field, None)),
                format!("{field} is required")
            );
        }
        assert_eq!(
            err(
                "authSync",
                &edit(AUTH_SYNC, "userList", Some(serde_json::json!([])))
            ),
            "userList is required"
        );
        assert!(
            err(
                "authSync",
                &edit(AUTH_SYNC, "currentSyncTime", Some("2022".into()))
            )
            .starts_with("currentSyncTime")
        );

        let user = |edit_user: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(AUTH_SYNC).unwrap();
            edit_user(&mut v["userList"][1]);
            err("authSync", &v.to_string())
        };
        for field in ["userName", "name", "orgCode", "role", "enable"] {
            let e = user(&|u| {
                u.as_object_mut().unwrap().remove(field);
            });
            assert_eq!(e, format!("userList[1].{field} is required"));
        }
        assert!(
            user(&|u| u["role"] = "owner".into())
                .starts_with("userList[1].role must be one of user, admin")
        );
        assert!(
            user(&|u| u["enable"] = "yes".into())
                .starts_with("userList[1].enable must be one of true, false")
        );
        assert!(user(&|u| u["enable"] = true.into()).starts_with("userList[1].enable"));
        assert!(
            user(&|u| u["employeeType"] = 5.into())
                .starts_with("userList[1].employeeType must be one of")
        );
        assert_eq!(
            user(&|u| u["email"] = "e".repeat(129).into()),
            "userList[1].email is longer than 128 characters"
        );
        assert_eq!(
            user(&|u| u["workPlace"] = "w".repeat(257).into()),
            "userList[1].workPlace is longer than 256 characters"
        );
        assert_eq!(
            user(&|u| u["userName"] = "u".repeat(65).into()),
            "userList[1].userName is longer than 64 characters"
        );
    }

    #[test]
    fn single_org_sync() {
        let req = KitRequest::decode("singleOrgSync", SINGLE_ORG_SYNC.as_bytes()).unwrap();
        let KitRequest::SingleOrgSync(o) = &req else {
            panic!("wrong variant")
        };
        assert_eq!(
            (o.org_code.as_str(), o.org_name.as_str()),
            ("dept02", "Sales/EMEA")
        );
        assert_eq!(o.parent_code.as_deref(), Some("dept01"));
        assert_eq!(serde_json::to_string(&req).unwrap(), SINGLE_ORG_SYNC);
        // A top-level department: parentCode null.
        let top = edit(SINGLE_ORG_SYNC, "parentCode", Some(serde_json::Value::Null));
        let KitRequest::SingleOrgSync(o) =
            KitRequest::decode("singleOrgSync", top.as_bytes()).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(o.parent_code, None);
        for field in [
            "tenantId",
            "orgCode",
            "orgName",
            "flag",
            "testFlag",
            "timeStamp",
        ] {
            assert_eq!(
                err("singleOrgSync", &edit(SINGLE_ORG_SYNC, field, None)),
                format!("{field} is required")
            );
        }
        assert_eq!(
            err(
                "singleOrgSync",
                &edit(SINGLE_ORG_SYNC, "orgName", Some("n".repeat(129).into()))
            ),
            "orgName is longer than 128 characters"
        );
        assert_eq!(
            err(
                "singleOrgSync",
                &edit(SINGLE_ORG_SYNC, "parentCode", Some("p".repeat(65).into()))
            ),
            "parentCode is longer than 64 characters"
        );
    }

    #[test]
    fn all_org_sync_list_as_string_and_as_array() {
        let req = KitRequest::decode("allOrgSync", ALL_ORG_SYNC.as_bytes()).unwrap();
        let KitRequest::AllOrgSync(a) = &req else {
            panic!("wrong variant")
        };
        assert!(a.org_info_list.as_ref().unwrap().was_string);
        assert_eq!(a.departments().len(), 2);
        assert_eq!(a.departments()[0].org_name, "R&D");
        assert_eq!(a.departments()[0].parent_code.as_deref(), Some(""));
        assert_eq!(a.departments()[1].parent_code.as_deref(), Some("dept01"));
        assert_eq!(a.flag, Some(serde_json::json!(1)));
        // The string form and the stray flag go out as received.
        assert_eq!(serde_json::to_string(&req).unwrap(), ALL_ORG_SYNC);

        let array = r#"{"instanceId":"","tenantId":"t1","orgInfoList":[{"orgCode":"dept01","orgName":"R&D"},{"orgCode":"dept02","orgName":"Sales","parentCode":"dept01"}],"testFlag":0,"timeStamp":"20220413093539534"}"#;
        let req = KitRequest::decode("allOrgSync", array.as_bytes()).unwrap();
        let KitRequest::AllOrgSync(b) = &req else {
            panic!("wrong variant")
        };
        assert!(!b.org_info_list.as_ref().unwrap().was_string);
        assert_eq!(b.departments()[0].parent_code, None);
        assert_eq!(b.departments()[1].org_code, "dept02");
        assert_eq!(serde_json::to_string(&req).unwrap(), array);

        for field in ["tenantId", "orgInfoList", "testFlag", "timeStamp"] {
            assert_eq!(
                err("allOrgSync", &edit(ALL_ORG_SYNC, field, None)),
                format!("{field} is required")
            );
        }
        let e = err(
            "allOrgSync",
            &edit(
                array,
                "orgInfoList",
                Some(serde_json::json!([{"orgCode": "d"}])),
            ),
        );
        assert_eq!(e, "orgInfoList[0].orgName is required");
        let e = err(
            "allOrgSync",
            &edit(
                array,
                "orgInfoList",
                Some(r#"[{"orgCode":"d","orgName":5}]"#.into()),
            ),
        );
        assert!(e.starts_with("orgInfoList"), "{e}");
        let e = err(
            "allOrgSync",
            &edit(array, "orgInfoList", Some("not json".into())),
        );
        assert!(e.starts_with("orgInfoList"), "{e}");
        // An empty tree is accepted.
        assert!(
            KitRequest::decode(
                "allOrgSync",
                edit(array, "orgInfoList", Some("[]".into())).as_bytes()
            )
            .is_ok()
        );
    }

    #[test]
    fn unknown_interface_and_bad_bodies() {
        assert_eq!(
            KitRequest::decode("userSync", TENANT_SYNC.as_bytes()).unwrap_err(),
            Error::UnknownActivity("userSync".to_owned())
        );
        assert!(matches!(
            KitRequest::decode("tenantSync", b"[]"),
            Err(Error::Json(_))
        ));
        let e = err("tenantSync", &edit(TENANT_SYNC, "tenantId", Some(5.into())));
        assert!(e.starts_with("tenantId"), "{e}");
    }

    #[test]
    fn kit_response_is_the_envelope() {
        let r = KitResponse::new(crate::ResultCode::Success);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"resultCode":"000000","resultMsg":"success."}"#
        );
    }

    #[test]
    fn oauth_token_response() {
        let body = r#"{"access_token":"at-123","token_type":"Bearer","expires_in":7200,"scope":"get_user_info","refresh_token":"rt-456"}"#;
        let t: OAuthToken = decode_json(body.as_bytes()).unwrap();
        assert_eq!(t.access_token, "at-123");
        assert_eq!(t.expires_in, Some(7200));
        assert_eq!(t.refresh_token.as_deref(), Some("rt-456"));
        assert_eq!(serde_json::to_string(&t).unwrap(), body);
        let debug = format!("{t:?}");
        assert!(
            !debug.contains("at-123") && !debug.contains("rt-456"),
            "{debug}"
        );
        let e = decode_json::<OAuthToken>(br#"{"token_type":"Bearer"}"#).unwrap_err();
        assert_eq!(e.to_string(), "access_token is required");
        let e =
            decode_json::<OAuthToken>(br#"{"access_token":"a","token_type":"mac"}"#).unwrap_err();
        assert!(e.to_string().starts_with("token_type"), "{e}");
        assert!(
            decode_json::<OAuthToken>(br#"{"access_token":"a","token_type":"bearer"}"#).is_ok()
        );
    }

    #[test]
    fn oauth_error_bodies() {
        for body in [
            r#"{"error":"invalid_grant","error_description":"Invalid authorization code"}"#,
            r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#,
            r#"{"error":"unauthorized","error_description":"Full authentication is required to access this resource"}"#,
        ] {
            let e: OAuthError = decode_json(body.as_bytes()).unwrap();
            assert!(e.error_description.is_some());
            assert_eq!(serde_json::to_string(&e).unwrap(), body);
        }
        let e = decode_json::<OAuthError>(br#"{"error_description":"x"}"#).unwrap_err();
        assert_eq!(e.to_string(), "error is required");
    }

    #[test]
    fn user_info() {
        let body = r#"{"id":"u-1","userId":"20001","userName":"zhangsan","name":"Zhang San","role":"admin","organizationName":"R&D","organizationCode":"dept01","projectName":"huaweitest","tenant":"68cbc86abc2018ab880d92f36422fa0e","extra":1}"#;
        let u: UserInfo = decode_json(body.as_bytes()).unwrap();
        assert_eq!(u.user_name, "zhangsan");
        assert_eq!(u.organization_code.as_deref(), Some("dept01"));
        assert_eq!(
            u.tenant.as_deref(),
            Some("68cbc86abc2018ab880d92f36422fa0e")
        );
        assert_eq!(u.email, None);
        let out = serde_json::to_string(&u).unwrap();
        assert!(
            out.contains(r#""organizationName":"R&D""#) && !out.contains("extra"),
            "{out}"
        );
        let e = decode_json::<UserInfo>(br#"{"name":"x"}"#).unwrap_err();
        assert_eq!(e.to_string(), "userName is required");
        let e = decode_json::<UserInfo>(br#"{"userName":"x","role":"root"}"#).unwrap_err();
        assert!(e.to_string().starts_with("role"), "{e}");
    }
}
