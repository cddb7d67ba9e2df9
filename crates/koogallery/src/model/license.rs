//! License products (license.md): License 1.0 (§3, V1 GET), online License (§4, V2 POST) and the
//! License code 2.0 merchant interfaces (§5.2, V2 POST), with their responses.
//!
//! V1 parameters are text, as decoded from the query string; `authToken`/`timeStamp` are
//! modelled like SaaS V1's, and verified by the V1 signature check (security.md §6).
//!
//! Online-License instance lifecycle (§4.3): `newInstance`, `queryInstance`,
//! `updateInstanceStatus` and `releaseInstance` are identical to SaaS V2 (saas.md §5) and are
//! decoded by [`SaasV2Request`](super::saas_v2::SaasV2Request). `refreshInstance` differs only in
//! its `scene` set, which lacks SaaS V2's `RENEWAL_CHANGE`: check it with
//! [`check_online_license_refresh`]. Instance upgrade is listed but not specified for online
//! License.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::saas_v1::{ExtendParam, decode_saas_extend_params};
use super::saas_v2::{self, check_activity};
use super::{
    ResultEnvelope, TestFlag, Validate, decode_json, decode_params, one_of, optional,
    peek_activity, required,
};
use crate::error::{Error, FieldError, TimeError};
use crate::fingerprint::{DeviceInfo, MAX_FINGERPRINT_LEN};

/// `periodType` values of License 1.0 (license.md §3.1, §3.2).
pub const PERIOD_TYPES: &[&str] = &["year", "month"];
/// `scene` of the online-License `refreshInstance` (license.md §4.3): SaaS V2's set without `RENEWAL_CHANGE`.
pub const ONLINE_LICENSE_REFRESH_SCENES: &[&str] =
    &["TRIAL_TO_FORMAL", "RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD"];
/// `scene` of `refreshLicenseCode` (license.md §5.2).
pub const LICENSE_CODE_REFRESH_SCENES: &[&str] = &["RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD"];
/// `status` of `updateLicenseCodeStatus` (license.md §5.2).
pub const LICENSE_CODE_STATUSES: &[&str] = &["FREEZE", "UNFREEZE"];
/// Length limit for the undocumented tail of the `getLicense` table (license.md §3.1, as saas.md §13.2).
const UNDOCUMENTED_MAX: usize = 2048;

/// Validates an online-License `refreshInstance` (license.md §4.3): SaaS V2's checks, then the
/// narrower `scene` set.
pub fn check_online_license_refresh(request: &saas_v2::RefreshInstance) -> Result<(), FieldError> {
    request.validate()?;
    one_of("scene", &request.scene, ONLINE_LICENSE_REFRESH_SCENES)
}

// ---------------------------------------------------------------------------------------------
// License 1.0: V1 GET (license.md §3)
// ---------------------------------------------------------------------------------------------

/// `getLicense` query parameters (license.md §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLicenseRequest {
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// Different on every request; the first one is the recommended `instanceId` (license.md §2.4).
    #[serde(default)]
    pub business_id: String,
    #[serde(default)]
    pub order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_code: Option<String>,
    #[serde(default)]
    pub product_id: String,
    /// `yyyyMMddHHmmss`, an estimate; period products only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    /// `year` / `month`; absent for one-off purchases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_type: Option<String>,
    /// Integer(7) quantity attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Undocumented tail (license.md §8 #1): accepted, limited to 2048 characters only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<String>,
    /// Undocumented tail (license.md §8 #1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_width: Option<String>,
    /// Undocumented tail (license.md §8 #1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_number: Option<String>,
    /// Undocumented tail: Integer(1), `1` = test data (license.md §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    /// Undocumented tail: `urlEncode(base64(JSON array))` of `{name, value}` (saas.md §13.9),
    /// still encoded; see [`Self::extend_params`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saas_extend_params: Option<String>,
    /// UTC `yyyyMMddHHmmssSSS` (security.md §6).
    #[serde(default)]
    pub time_stamp: String,
    /// Base64 HMAC over the other parameters (security.md §6).
    #[serde(default)]
    pub auth_token: String,
}

impl GetLicenseRequest {
    /// The decoded `saasExtendParams` (none when absent or empty).
    pub fn extend_params(&self) -> Result<Vec<ExtendParam>, FieldError> {
        present(self.saas_extend_params.as_deref())
            .map_or(Ok(Vec::new()), decode_saas_extend_params)
    }
    /// The buyer's hardware / system identification code, from `saasExtendParams` (license.md §3.1).
    pub fn identification_code(&self) -> Result<Option<String>, FieldError> {
        Ok(self
            .extend_params()?
            .into_iter()
            .find(|p| p.name == "identificationCode")
            .map(|p| p.value))
    }
}

impl Validate for GetLicenseRequest {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &["getLicense"], 20)?;
        required("customerId", &self.customer_id, 100)?;
        optional("customerName", self.customer_name.as_deref(), 64)?;
        required("businessId", &self.business_id, 64)?;
        required("orderId", &self.order_id, 64)?;
        optional("skuCode", self.sku_code.as_deref(), 64)?;
        required("productId", &self.product_id, 64)?;
        optional_expire_time("expireTime", self.expire_time.as_deref())?;
        optional_enum("periodType", self.period_type.as_deref(), 10, PERIOD_TYPES)?;
        optional_integer("amount", self.amount.as_deref(), 7)?;
        optional("diskSize", self.disk_size.as_deref(), UNDOCUMENTED_MAX)?;
        optional("bandWidth", self.band_width.as_deref(), UNDOCUMENTED_MAX)?;
        optional(
            "periodNumber",
            self.period_number.as_deref(),
            UNDOCUMENTED_MAX,
        )?;
        optional(
            "saasExtendParams",
            self.saas_extend_params.as_deref(),
            UNDOCUMENTED_MAX,
        )?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// `getLicense` response (license.md §3.1); answered with `Body-Sign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLicenseResponse {
    #[serde(default)]
    pub result_code: String,
    /// Mandatory here, unlike most responses.
    #[serde(default)]
    pub result_msg: String,
    /// The license string (授权码) delivered to the buyer.
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub instance_id: String,
}

impl GetLicenseResponse {
    /// A `000000` answer carrying the instance and its license.
    pub fn success(instance_id: impl Into<String>, license: impl Into<String>) -> Self {
        let code = crate::ResultCode::Success;
        Self {
            result_code: code.code().to_owned(),
            result_msg: code.message().to_owned(),
            license: license.into(),
            instance_id: instance_id.into(),
        }
    }
}

impl Validate for GetLicenseResponse {
    /// `instanceId` and `license` are required on success only: a failure carries no license.
    fn validate(&self) -> Result<(), FieldError> {
        required("resultCode", &self.result_code, 6)?;
        required("resultMsg", &self.result_msg, 255)?;
        if self.result_code == crate::ResultCode::Success.code() {
            required("instanceId", &self.instance_id, 64)?;
            required("license", &self.license, usize::MAX)
        } else {
            optional("instanceId", Some(&self.instance_id), 64)
        }
    }
}

/// `refreshLicense` query parameters: renewal (license.md §3.2). Answered with a [`LicenseResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshLicenseRequest {
    #[serde(default)]
    pub activity: String,
    /// The renewal order, not the purchase order.
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub instance_id: String,
    /// The new product when the period type changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    /// New expiry, `yyyyMMddHHmmss` (17 digits accepted too).
    #[serde(default)]
    pub expire_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_type: Option<String>,
    /// Integer(2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_number: Option<String>,
    /// Not in the table; accepted as in every V1 activity (license.md §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub auth_token: String,
}

impl Validate for RefreshLicenseRequest {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &["refreshLicense"], 20)?;
        required("orderId", &self.order_id, 64)?;
        required("instanceId", &self.instance_id, 64)?;
        optional("productId", self.product_id.as_deref(), 64)?;
        required_expire_time("expireTime", &self.expire_time, 20)?;
        optional_enum("periodType", self.period_type.as_deref(), 10, PERIOD_TYPES)?;
        optional_integer("periodNumber", self.period_number.as_deref(), 2)?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// `expireLicense` query parameters (license.md §3.3). The table is not published; implemented
/// as its recommended handling says (like `releaseLicense`), tolerant of extra parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpireLicenseRequest {
    #[serde(default)]
    pub activity: String,
    /// The purchase order.
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub auth_token: String,
}

impl Validate for ExpireLicenseRequest {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &["expireLicense"], 20)?;
        required("orderId", &self.order_id, 64)?;
        required("instanceId", &self.instance_id, 64)?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// `releaseLicense` query parameters (license.md §3.4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseLicenseRequest {
    #[serde(default)]
    pub activity: String,
    /// The original purchase order.
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub instance_id: String,
    /// Not in the table; accepted as in every V1 activity (license.md §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub auth_token: String,
}

impl Validate for ReleaseLicenseRequest {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &["releaseLicense"], 20)?;
        required("orderId", &self.order_id, 64)?;
        required("instanceId", &self.instance_id, 64)?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// A License 1.0 request (license.md §3), selected by its `activity` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenseV1Request {
    GetLicense(GetLicenseRequest),
    RefreshLicense(RefreshLicenseRequest),
    ExpireLicense(ExpireLicenseRequest),
    ReleaseLicense(ReleaseLicenseRequest),
}

impl LicenseV1Request {
    /// The License 1.0 activities (license.md §1).
    pub const ACTIVITIES: [&'static str; 4] = [
        "getLicense",
        "refreshLicense",
        "expireLicense",
        "releaseLicense",
    ];

    /// Decodes and validates decoded query parameters. Like [`decode_params`], a repeated name
    /// keeps its first value; unknown parameters are ignored.
    pub fn decode(params: &[(String, String)]) -> Result<Self, Error> {
        match crate::query::param(params, "activity").unwrap_or_default() {
            "" => Err(FieldError::missing("activity").into()),
            "getLicense" => decode_params(params).map(Self::GetLicense),
            "refreshLicense" => decode_params(params).map(Self::RefreshLicense),
            "expireLicense" => decode_params(params).map(Self::ExpireLicense),
            "releaseLicense" => decode_params(params).map(Self::ReleaseLicense),
            other => Err(Error::UnknownActivity(other.to_owned())),
        }
    }

    /// The wire name of the activity.
    pub fn activity(&self) -> &'static str {
        match self {
            Self::GetLicense(_) => "getLicense",
            Self::RefreshLicense(_) => "refreshLicense",
            Self::ExpireLicense(_) => "expireLicense",
            Self::ReleaseLicense(_) => "releaseLicense",
        }
    }

    /// Whether `testFlag` marks a debugging call (license.md §2.2).
    pub fn is_test(&self) -> bool {
        super::is_test(match self {
            Self::GetLicense(r) => r.test_flag,
            Self::RefreshLicense(r) => r.test_flag,
            Self::ExpireLicense(r) => r.test_flag,
            Self::ReleaseLicense(r) => r.test_flag,
        })
    }

    /// The parameters as name/value pairs in field order, for building a request.
    pub fn to_params(&self) -> Vec<(String, String)> {
        let value = match self {
            Self::GetLicense(r) => serde_json::to_value(r),
            Self::RefreshLicense(r) => serde_json::to_value(r),
            Self::ExpireLicense(r) => serde_json::to_value(r),
            Self::ReleaseLicense(r) => serde_json::to_value(r),
        };
        match value {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter_map(|(k, v)| match v {
                    serde_json::Value::String(s) => Some((k, s)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Online License and License code 2.0: V2 POST (license.md §4.1, §5.2)
// ---------------------------------------------------------------------------------------------

/// `getLicenseAsync` body: apply for a license, delivered later by upload (license.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLicenseAsyncRequest {
    #[serde(default)]
    pub activity: String,
    /// KooGallery's serial number; with the fingerprint it identifies one application.
    #[serde(default)]
    pub event_id: String,
    #[serde(default)]
    pub instance_id: String,
    /// License start, UTC, `yyyy-MM-dd HH:mm:ss` and an optional `z`/`Z`/`UTC` marker.
    #[serde(default)]
    pub effective_time: String,
    /// License end, same form; needed for period products (`000902`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    /// Device fingerprint / hardware ID (license.md §7.2); up to 5 KB accepted (license.md §8 #7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl GetLicenseAsyncRequest {
    /// `effectiveTime` as a UTC date-time.
    pub fn effective_time(&self) -> Result<OffsetDateTime, TimeError> {
        crate::time::parse_license_datetime(&self.effective_time)
    }
    /// `expireTime` as a UTC date-time, if present.
    pub fn expire_time(&self) -> Option<Result<OffsetDateTime, TimeError>> {
        self.expire_time
            .as_deref()
            .map(crate::time::parse_license_datetime)
    }
    /// `deviceFingerprint` split into its parts, if it has the §7.2 form.
    pub fn device_info(&self) -> Option<Result<DeviceInfo, FieldError>> {
        self.device_fingerprint.as_deref().map(DeviceInfo::parse)
    }
}

impl Validate for GetLicenseAsyncRequest {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &["getLicenseAsync"], 20)?;
        required("instanceId", &self.instance_id, 64)?;
        required("effectiveTime", &self.effective_time, 32)?;
        check_time(
            "effectiveTime",
            &self.effective_time,
            "yyyy-MM-dd HH:mm:ss",
            crate::time::parse_license_datetime,
        )?;
        if let Some(expire) = self.expire_time.as_deref() {
            optional("expireTime", Some(expire), 32)?;
            check_time(
                "expireTime",
                expire,
                "yyyy-MM-dd HH:mm:ss",
                crate::time::parse_license_datetime,
            )?;
        }
        required("eventId", &self.event_id, 64)?;
        optional(
            "deviceFingerprint",
            self.device_fingerprint.as_deref(),
            MAX_FINGERPRINT_LEN,
        )
    }
}

/// `refreshLicenseCode` body: new validity of a license code (license.md §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshLicenseCodeRequest {
    #[serde(default)]
    pub activity: String,
    /// Absolute expiry, `yyyyMMddHHmmss` (17 digits accepted too).
    #[serde(default)]
    pub expire_time: String,
    /// The license code.
    #[serde(default)]
    pub license: String,
    /// The renewal order or the renewal-refund order; the idempotency key.
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub order_line_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    /// `RENEWAL` or `UNSUBSCRIBE_RENEWAL_PERIOD`.
    #[serde(default)]
    pub scene: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl Validate for RefreshLicenseCodeRequest {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &["refreshLicenseCode"], 20)?;
        required("scene", &self.scene, 64)?;
        one_of("scene", &self.scene, LICENSE_CODE_REFRESH_SCENES)?;
        required("orderId", &self.order_id, 64)?;
        required("orderLineId", &self.order_line_id, 64)?;
        required("license", &self.license, 64)?;
        optional("productId", self.product_id.as_deref(), 64)?;
        required_expire_time("expireTime", &self.expire_time, 20)
    }
}

/// `updateLicenseCodeStatus` body: freeze or unfreeze a license code (license.md §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateLicenseCodeStatusRequest {
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub license: String,
    /// `FREEZE` or `UNFREEZE`.
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl Validate for UpdateLicenseCodeStatusRequest {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &["updateLicenseCodeStatus"], 32)?;
        required("license", &self.license, 64)?;
        required("status", &self.status, 32)?;
        one_of("status", &self.status, LICENSE_CODE_STATUSES)
    }
}

/// `releaseLicenseCode` body: release the resources behind a code (license.md §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseLicenseCodeRequest {
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub license: String,
    /// The unsubscribe order, when an unsubscription triggered the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_line_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl Validate for ReleaseLicenseCodeRequest {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &["releaseLicenseCode"], 32)?;
        required("license", &self.license, 64)?;
        optional("orderId", self.order_id.as_deref(), 64)?;
        optional("orderLineId", self.order_line_id.as_deref(), 64)
    }
}

/// Response of `refreshLicense`, `expireLicense`, `releaseLicense`, `getLicenseAsync` and the
/// License code 2.0 activities: `resultCode` and `resultMsg` only (license.md §2.1; for
/// `getLicenseAsync` no further fields are sent, license.md §8 #3).
pub type LicenseResponse = ResultEnvelope;

/// A V2 License request (license.md §4.1, §5.2), selected by the body's `activity`.
///
/// The online-License instance activities ([`LicenseV2Request::INSTANCE_ACTIVITIES`]) share the
/// production URL but are SaaS V2 messages: they are not decoded here and give
/// [`Error::UnknownActivity`]; route them to the SaaS V2 decoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LicenseV2Request {
    GetLicenseAsync(GetLicenseAsyncRequest),
    RefreshLicenseCode(RefreshLicenseCodeRequest),
    UpdateLicenseCodeStatus(UpdateLicenseCodeStatusRequest),
    ReleaseLicenseCode(ReleaseLicenseCodeRequest),
}

impl LicenseV2Request {
    /// The activities decoded here.
    pub const ACTIVITIES: [&'static str; 4] = [
        "getLicenseAsync",
        "refreshLicenseCode",
        "updateLicenseCodeStatus",
        "releaseLicenseCode",
    ];
    /// Online-License lifecycle activities, identical to SaaS V2 (license.md §4.3).
    pub const INSTANCE_ACTIVITIES: [&'static str; 5] = [
        "newInstance",
        "queryInstance",
        "refreshInstance",
        "updateInstanceStatus",
        "releaseInstance",
    ];

    /// Decodes and validates a JSON body.
    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        match peek_activity(body)?.as_str() {
            "getLicenseAsync" => decode_json(body).map(Self::GetLicenseAsync),
            "refreshLicenseCode" => decode_json(body).map(Self::RefreshLicenseCode),
            "updateLicenseCodeStatus" => decode_json(body).map(Self::UpdateLicenseCodeStatus),
            "releaseLicenseCode" => decode_json(body).map(Self::ReleaseLicenseCode),
            other => Err(Error::UnknownActivity(other.to_owned())),
        }
    }

    /// The wire name of the activity.
    pub fn activity(&self) -> &'static str {
        match self {
            Self::GetLicenseAsync(_) => "getLicenseAsync",
            Self::RefreshLicenseCode(_) => "refreshLicenseCode",
            Self::UpdateLicenseCodeStatus(_) => "updateLicenseCodeStatus",
            Self::ReleaseLicenseCode(_) => "releaseLicenseCode",
        }
    }

    /// Whether `testFlag` marks a debugging call (license.md §2.2).
    pub fn is_test(&self) -> bool {
        super::is_test(match self {
            Self::GetLicenseAsync(r) => r.test_flag,
            Self::RefreshLicenseCode(r) => r.test_flag,
            Self::UpdateLicenseCodeStatus(r) => r.test_flag,
            Self::ReleaseLicenseCode(r) => r.test_flag,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Field checks shared by this module
// ---------------------------------------------------------------------------------------------

/// `timeStamp` (M, String(20)) and `authToken` (M, String(50)) of every V1 request (license.md §3).
fn check_auth(time_stamp: &str, auth_token: &str) -> Result<(), FieldError> {
    required("timeStamp", time_stamp, 20)?;
    required("authToken", auth_token, 50)
}

/// An optional V1 value; an empty query value counts as absent.
fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

fn optional_enum(
    field: &str,
    value: Option<&str>,
    max: usize,
    allowed: &'static [&'static str],
) -> Result<(), FieldError> {
    match present(value) {
        Some(v) => {
            optional(field, Some(v), max)?;
            one_of(field, v, allowed)
        }
        None => Ok(()),
    }
}

/// `Integer(n)`: at most `digits` decimal digits.
fn optional_integer(field: &str, value: Option<&str>, digits: usize) -> Result<(), FieldError> {
    match present(value) {
        Some(v) if v.len() > digits || !v.bytes().all(|b| b.is_ascii_digit()) => {
            Err(FieldError::invalid(
                field,
                format!("must be an integer of at most {digits} digits"),
            ))
        }
        _ => Ok(()),
    }
}

fn check_time(
    field: &str,
    value: &str,
    format: &str,
    parse: fn(&str) -> Result<OffsetDateTime, TimeError>,
) -> Result<(), FieldError> {
    parse(value)
        .map(drop)
        .map_err(|e| FieldError::invalid(field, format!("must be {format} ({e})")))
}

/// `expireTime`: `yyyyMMddHHmmss`, 17 digits accepted too (license.md §2.3).
fn required_expire_time(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    required(field, value, max)?;
    check_time(
        field,
        value,
        "yyyyMMddHHmmss",
        crate::time::parse_expire_time,
    )
}

fn optional_expire_time(field: &str, value: Option<&str>) -> Result<(), FieldError> {
    present(value).map_or(Ok(()), |v| required_expire_time(field, v, 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn without(pairs: &[(&str, &str)], name: &str) -> Vec<(String, String)> {
        params(
            &pairs
                .iter()
                .copied()
                .filter(|(k, _)| *k != name)
                .collect::<Vec<_>>(),
        )
    }

    fn with(pairs: &[(&str, &str)], name: &str, value: &str) -> Vec<(String, String)> {
        let mut p = without(pairs, name);
        p.push((name.to_owned(), value.to_owned()));
        p
    }

    fn v1_err(p: &[(String, String)]) -> String {
        LicenseV1Request::decode(p).unwrap_err().to_string()
    }

    fn v2_err(body: &str) -> String {
        LicenseV2Request::decode(body.as_bytes())
            .unwrap_err()
            .to_string()
    }

    const GET_LICENSE: &[(&str, &str)] = &[
        ("activity", "getLicense"),
        ("authToken", "5N6puG/zAFC8VdIK+QxPqd+qn2TwByc3bugfY5Xroy0="),
        ("timeStamp", "20170725025113409"),
        ("customerId", "68cbc86abc2018ab880d92f36422fa0e"),
        ("customerName", "huaweitest"),
        ("businessId", "61e834ba-7b97-4418-b8f7-e5345137278c"),
        ("orderId", "CS1906666666ABCDE"),
        ("skuCode", "sku-1"),
        ("productId", "00301-666666-0--0"),
        ("expireTime", "20200727153156"),
        ("periodType", "year"),
        ("amount", "3"),
        ("testFlag", "1"),
        (
            "saasExtendParams",
            "W3sibmFtZSI6ImlkZW50aWZpY2F0aW9uQ29kZSIsInZhbHVlIjoiKioqKioifV0=",
        ),
        ("somethingNew", "ignored"),
    ];

    #[test]
    fn get_license_decodes() {
        let LicenseV1Request::GetLicense(r) =
            LicenseV1Request::decode(&params(GET_LICENSE)).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(r.customer_id, "68cbc86abc2018ab880d92f36422fa0e");
        assert_eq!(r.business_id, "61e834ba-7b97-4418-b8f7-e5345137278c");
        assert_eq!(r.order_id, "CS1906666666ABCDE");
        assert_eq!(r.product_id, "00301-666666-0--0");
        assert_eq!(r.expire_time.as_deref(), Some("20200727153156"));
        assert_eq!(r.period_type.as_deref(), Some("year"));
        assert_eq!(r.amount.as_deref(), Some("3"));
        assert_eq!(r.time_stamp, "20170725025113409");
        assert_eq!(r.auth_token, "5N6puG/zAFC8VdIK+QxPqd+qn2TwByc3bugfY5Xroy0=");
        assert_eq!(r.identification_code().unwrap().as_deref(), Some("*****"));
        let req = LicenseV1Request::GetLicense(r);
        assert!(req.is_test());
        assert_eq!(req.activity(), "getLicense");
        let out = req.to_params();
        assert!(out.contains(&(
            "customerId".to_owned(),
            "68cbc86abc2018ab880d92f36422fa0e".to_owned()
        )));
        assert!(out.contains(&("testFlag".to_owned(), "1".to_owned())));
        assert!(out.iter().all(|(k, _)| k != "somethingNew"));
        assert_eq!(LicenseV1Request::decode(&out).unwrap(), req);
        // saasExtendParams is decoded on demand only.
        let p = with(GET_LICENSE, "saasExtendParams", "not base64!");
        let LicenseV1Request::GetLicense(r) = LicenseV1Request::decode(&p).unwrap() else {
            panic!("wrong variant")
        };
        assert!(
            r.identification_code()
                .unwrap_err()
                .to_string()
                .starts_with("saasExtendParams")
        );
        let LicenseV1Request::GetLicense(r) =
            LicenseV1Request::decode(&without(GET_LICENSE, "saasExtendParams")).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(r.identification_code().unwrap(), None);
    }

    #[test]
    fn get_license_rejects_bad_fields() {
        for field in [
            "customerId",
            "businessId",
            "orderId",
            "productId",
            "timeStamp",
            "authToken",
        ] {
            let e = v1_err(&without(GET_LICENSE, field));
            assert_eq!(e, format!("{field} is required"));
        }
        assert_eq!(
            v1_err(&with(GET_LICENSE, "orderId", &"x".repeat(65))),
            "orderId is longer than 64 characters"
        );
        assert_eq!(
            v1_err(&with(GET_LICENSE, "customerId", &"x".repeat(101))),
            "customerId is longer than 100 characters"
        );
        assert_eq!(
            v1_err(&with(GET_LICENSE, "authToken", &"a".repeat(51))),
            "authToken is longer than 50 characters"
        );
        assert!(
            v1_err(&with(GET_LICENSE, "periodType", "week"))
                .starts_with("periodType must be one of year, month")
        );
        assert!(v1_err(&with(GET_LICENSE, "amount", "12345678")).starts_with("amount"));
        assert!(v1_err(&with(GET_LICENSE, "amount", "1a")).starts_with("amount"));
        assert!(v1_err(&with(GET_LICENSE, "expireTime", "2020-07-27")).starts_with("expireTime"));
        assert!(v1_err(&with(GET_LICENSE, "testFlag", "2")).starts_with("testFlag"));
        // Empty optional values are absent; 17-digit expiry accepted.
        assert!(LicenseV1Request::decode(&with(GET_LICENSE, "periodType", "")).is_ok());
        assert!(
            LicenseV1Request::decode(&with(GET_LICENSE, "expireTime", "20200727153156000")).is_ok()
        );
    }

    const REFRESH: &[(&str, &str)] = &[
        ("activity", "refreshLicense"),
        ("expireTime", "20180725000000"),
        ("instanceId", "03pf80c2bae96vc49b80b917bea776d7"),
        ("orderId", "HWS001014ED483AA1E8"),
        ("timeStamp", "20170725025113409"),
        ("testFlag", "1"),
        ("authToken", "Um9kyMKbWxNAa3UfesBylJw3ZG2/fiobjENiAHjtau8="),
        ("periodType", "month"),
        ("periodNumber", "12"),
    ];

    #[test]
    fn refresh_license() {
        let LicenseV1Request::RefreshLicense(r) =
            LicenseV1Request::decode(&params(REFRESH)).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(r.order_id, "HWS001014ED483AA1E8");
        assert_eq!(r.instance_id, "03pf80c2bae96vc49b80b917bea776d7");
        assert_eq!(r.expire_time, "20180725000000");
        assert_eq!(r.period_number.as_deref(), Some("12"));
        for field in [
            "orderId",
            "instanceId",
            "expireTime",
            "timeStamp",
            "authToken",
        ] {
            assert_eq!(
                v1_err(&without(REFRESH, field)),
                format!("{field} is required")
            );
        }
        assert_eq!(
            v1_err(&with(REFRESH, "productId", &"p".repeat(65))),
            "productId is longer than 64 characters"
        );
        assert!(v1_err(&with(REFRESH, "periodNumber", "123")).starts_with("periodNumber"));
        assert!(v1_err(&with(REFRESH, "periodType", "day")).starts_with("periodType"));
        assert!(v1_err(&with(REFRESH, "expireTime", "20181325000000")).starts_with("expireTime"));
    }

    #[test]
    fn expire_and_release_license() {
        let base: &[(&str, &str)] = &[
            ("activity", "expireLicense"),
            ("orderId", "CS1"),
            ("instanceId", "i-1"),
            ("timeStamp", "20170725025113409"),
            ("authToken", "token"),
        ];
        assert!(matches!(
            LicenseV1Request::decode(&params(base)).unwrap(),
            LicenseV1Request::ExpireLicense(_)
        ));
        assert_eq!(
            v1_err(&without(base, "instanceId")),
            "instanceId is required"
        );
        assert_eq!(
            v1_err(&with(base, "orderId", &"o".repeat(65))),
            "orderId is longer than 64 characters"
        );

        let base: &[(&str, &str)] = &[
            ("activity", "releaseLicense"),
            ("orderId", "CS1"),
            ("instanceId", "i-1"),
            ("timeStamp", "20170725025113409"),
            ("authToken", "token"),
        ];
        let req = LicenseV1Request::decode(&params(base)).unwrap();
        assert!(matches!(&req, LicenseV1Request::ReleaseLicense(r) if r.instance_id == "i-1"));
        assert!(!req.is_test());
        assert_eq!(v1_err(&without(base, "orderId")), "orderId is required");
        assert_eq!(v1_err(&without(base, "timeStamp")), "timeStamp is required");
        assert_eq!(
            v1_err(&with(base, "instanceId", &"i".repeat(65))),
            "instanceId is longer than 64 characters"
        );
    }

    #[test]
    fn v1_activity_dispatch() {
        assert_eq!(v1_err(&params(&[("orderId", "x")])), "activity is required");
        let e = LicenseV1Request::decode(&params(&[("activity", "getLicenses")])).unwrap_err();
        assert_eq!(e, Error::UnknownActivity("getLicenses".to_owned()));
        // The first value wins, as in decode_params.
        let p = params(&[
            ("activity", "releaseLicense"),
            ("orderId", "CS1"),
            ("instanceId", "i-1"),
            ("timeStamp", "20170725025113409"),
            ("authToken", "token"),
            ("activity", "getLicense"),
        ]);
        assert!(matches!(
            LicenseV1Request::decode(&p),
            Ok(LicenseV1Request::ReleaseLicense(_))
        ));
        // A struct decoded directly checks its own activity.
        let e = decode_params::<ReleaseLicenseRequest>(&params(REFRESH)).unwrap_err();
        assert!(e.to_string().starts_with("activity"), "{e}");
    }

    #[test]
    fn get_license_response() {
        let example = r#"{"resultCode":"000000","resultMsg":"success.","license":"*****","instanceId":"4ef28f-312d3d-gad335f-3132hkf"}"#;
        let r: GetLicenseResponse = decode_json(example.as_bytes()).unwrap();
        assert_eq!(r.license, "*****");
        assert_eq!(r.instance_id, "4ef28f-312d3d-gad335f-3132hkf");
        assert_eq!(serde_json::to_string(&r).unwrap(), example);
        assert_eq!(
            r,
            GetLicenseResponse::success("4ef28f-312d3d-gad335f-3132hkf", "*****")
        );
        let e = decode_json::<GetLicenseResponse>(
            br#"{"resultCode":"000000","resultMsg":"ok","license":"x"}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "instanceId is required");
        let e = decode_json::<GetLicenseResponse>(
            br#"{"resultCode":"000000","instanceId":"i","license":"x"}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "resultMsg is required");
        // A failure carries no license.
        assert!(
            decode_json::<GetLicenseResponse>(
                br#"{"resultCode":"000005","resultMsg":"other inner error"}"#
            )
            .is_ok()
        );
    }

    const GET_LICENSE_ASYNC: &str = r#"{"activity":"getLicenseAsync","eventId":"8****e5694*****c8","instanceId":"RA2****4LVS","effectiveTime":"2023-10-27 10:30:15 z","expireTime":"2024-10-27 10:30:15 z","deviceFingerprint":"8******6034e2*****60e1"}"#;

    #[test]
    fn get_license_async_example() {
        let LicenseV2Request::GetLicenseAsync(r) =
            LicenseV2Request::decode(GET_LICENSE_ASYNC.as_bytes()).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(r.event_id, "8****e5694*****c8");
        assert_eq!(r.instance_id, "RA2****4LVS");
        assert_eq!(r.effective_time, "2023-10-27 10:30:15 z");
        assert_eq!(
            r.device_fingerprint.as_deref(),
            Some("8******6034e2*****60e1")
        );
        assert_eq!(r.effective_time().unwrap().unix_timestamp(), 1_698_402_615);
        assert!(r.expire_time().unwrap().is_ok());
        // Not the §7.2 form: the raw value is still accepted.
        assert!(r.device_info().unwrap().is_err());
        assert!(r.test_flag.is_none());
        assert_eq!(serde_json::to_string(&r).unwrap(), GET_LICENSE_ASYNC);
    }

    #[test]
    fn get_license_async_rejects_bad_fields() {
        let body: serde_json::Value = serde_json::from_str(GET_LICENSE_ASYNC).unwrap();
        let edit = |name: &str, value: Option<serde_json::Value>| {
            let mut b = body.clone();
            match value {
                Some(v) => b[name] = v,
                None => {
                    b.as_object_mut().unwrap().remove(name);
                }
            }
            b.to_string()
        };
        for field in ["instanceId", "effectiveTime", "eventId"] {
            assert_eq!(v2_err(&edit(field, None)), format!("{field} is required"));
        }
        assert_eq!(
            v2_err(&edit("eventId", Some("e".repeat(65).into()))),
            "eventId is longer than 64 characters"
        );
        assert_eq!(
            v2_err(&edit(
                "effectiveTime",
                Some("2023-10-27 10:30:15 z".repeat(2).into())
            )),
            "effectiveTime is longer than 32 characters"
        );
        assert!(
            v2_err(&edit("effectiveTime", Some("20231027103015".into())))
                .starts_with("effectiveTime must be")
        );
        assert!(v2_err(&edit("expireTime", Some("tomorrow".into()))).starts_with("expireTime"));
        assert!(v2_err(&edit("testFlag", Some("3".into()))).starts_with("testFlag"));
        // Up to 5 KB of fingerprint is accepted (license.md §8 #7), not more.
        assert!(
            LicenseV2Request::decode(
                edit("deviceFingerprint", Some("A".repeat(5120).into())).as_bytes()
            )
            .is_ok()
        );
        assert_eq!(
            v2_err(&edit("deviceFingerprint", Some("A".repeat(5121).into()))),
            "deviceFingerprint is longer than 5120 characters"
        );
        let r = LicenseV2Request::decode(edit("testFlag", Some("1".into())).as_bytes()).unwrap();
        assert!(r.is_test());
    }

    const REFRESH_CODE: &str = r#"{"activity":"refreshLicenseCode","expireTime":"20230523201932","license":"******","orderId":"******","orderLineId":"******","productId":"******","scene":"RENEWAL","testFlag":"1"}"#;

    #[test]
    fn refresh_license_code_example() {
        let req = LicenseV2Request::decode(REFRESH_CODE.as_bytes()).unwrap();
        assert!(req.is_test());
        assert_eq!(req.activity(), "refreshLicenseCode");
        let LicenseV2Request::RefreshLicenseCode(r) = &req else {
            panic!("wrong variant")
        };
        assert_eq!(r.scene, "RENEWAL");
        assert_eq!(r.expire_time, "20230523201932");
        assert_eq!(r.license, "******");
        assert_eq!(r.product_id.as_deref(), Some("******"));
        // The example is canonical (sorted) and round-trips byte for byte.
        assert_eq!(serde_json::to_string(&req).unwrap(), REFRESH_CODE);

        let body: serde_json::Value = serde_json::from_str(REFRESH_CODE).unwrap();
        for field in ["scene", "orderId", "orderLineId", "license", "expireTime"] {
            let mut b = body.clone();
            b.as_object_mut().unwrap().remove(field);
            assert_eq!(v2_err(&b.to_string()), format!("{field} is required"));
        }
        let mut b = body.clone();
        b["scene"] = "RENEWAL_CHANGE".into();
        assert!(
            v2_err(&b.to_string())
                .starts_with("scene must be one of RENEWAL, UNSUBSCRIBE_RENEWAL_PERIOD")
        );
        let mut b = body.clone();
        b["license"] = "L".repeat(65).into();
        assert_eq!(
            v2_err(&b.to_string()),
            "license is longer than 64 characters"
        );
        let mut b = body;
        b["expireTime"] = "2023-05-23".into();
        assert!(v2_err(&b.to_string()).starts_with("expireTime"));
    }

    #[test]
    fn update_license_code_status() {
        let body = r#"{"activity":"updateLicenseCodeStatus","license":"PLXXXXXX","status":"FREEZE","testFlag":"0","extra":{"a":[1]}}"#;
        let LicenseV2Request::UpdateLicenseCodeStatus(r) =
            LicenseV2Request::decode(body.as_bytes()).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(
            (r.license.as_str(), r.status.as_str()),
            ("PLXXXXXX", "FREEZE")
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"activity":"updateLicenseCodeStatus","license":"PLXXXXXX","status":"FREEZE","testFlag":"0"}"#
        );
        assert_eq!(
            v2_err(r#"{"activity":"updateLicenseCodeStatus","status":"FREEZE"}"#),
            "license is required"
        );
        assert_eq!(
            v2_err(r#"{"activity":"updateLicenseCodeStatus","license":"L"}"#),
            "status is required"
        );
        assert!(
            v2_err(r#"{"activity":"updateLicenseCodeStatus","license":"L","status":"NORMAL"}"#)
                .starts_with("status must be one of FREEZE, UNFREEZE")
        );
        let long = format!(
            r#"{{"activity":"updateLicenseCodeStatus","license":"{}","status":"FREEZE"}}"#,
            "L".repeat(65)
        );
        assert_eq!(v2_err(&long), "license is longer than 64 characters");
    }

    #[test]
    fn release_license_code() {
        let body = r#"{"activity":"releaseLicenseCode","license":"PLXXXXXX","orderId":"CS1","orderLineId":"CS1-000001"}"#;
        let LicenseV2Request::ReleaseLicenseCode(r) =
            LicenseV2Request::decode(body.as_bytes()).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(r.order_line_id.as_deref(), Some("CS1-000001"));
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
        assert_eq!(
            v2_err(r#"{"activity":"releaseLicenseCode"}"#),
            "license is required"
        );
        let long = format!(
            r#"{{"activity":"releaseLicenseCode","license":"L","orderLineId":"{}"}}"#,
            "o".repeat(65)
        );
        assert_eq!(v2_err(&long), "orderLineId is longer than 64 characters");
    }

    #[test]
    fn v2_activity_dispatch() {
        assert_eq!(
            LicenseV2Request::decode(br#"{"activity":"newInstance","orderId":"x"}"#).unwrap_err(),
            Error::UnknownActivity("newInstance".to_owned())
        );
        assert_eq!(v2_err(r#"{"license":"x"}"#), "activity is required");
        assert!(matches!(
            LicenseV2Request::decode(b"{"),
            Err(Error::Json(_))
        ));
        // A directly decoded struct checks its activity too.
        let e = decode_json::<ReleaseLicenseCodeRequest>(REFRESH_CODE.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("activity"), "{e}");
    }

    #[test]
    fn online_license_refresh_lacks_renewal_change() {
        // Published SaaS V2 example (fixture fx-v2-refreshInstance).
        let body = r#"{"activity":"refreshInstance","expireTime":"20221124023618256","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","productId":"OFFI461867333479178240","scene":"RENEWAL","testFlag":"1"}"#;
        let mut r: saas_v2::RefreshInstance = decode_json(body.as_bytes()).unwrap();
        assert!(check_online_license_refresh(&r).is_ok());
        r.scene = "RENEWAL_CHANGE".to_owned();
        assert!(r.validate().is_ok());
        let e = check_online_license_refresh(&r).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("scene must be one of TRIAL_TO_FORMAL"),
            "{e}"
        );
        r.order_line_id.clear();
        assert_eq!(
            check_online_license_refresh(&r).unwrap_err().to_string(),
            "orderLineId is required"
        );
    }

    #[test]
    fn license_response_is_the_envelope() {
        let r = LicenseResponse::new(crate::ResultCode::Processing);
        assert_eq!(r.result_code, "000004");
        let back: LicenseResponse =
            decode_json(serde_json::to_string(&r).unwrap().as_bytes()).unwrap();
        assert_eq!(back, r);
    }
}
