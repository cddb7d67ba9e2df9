//! SaaS V1 production interface (saas.md §13): the legacy `GET` activities, whose parameters
//! arrive as URL query text, and the merchant's answers.
//!
//! Every request field is text, numbers included, exactly as decoded from the query string.
//! Encrypted values (`mobilePhone`, `email`) stay encrypted here; decryption lives in `crypto`.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::saas_v2::{
    self, AppInfo, check_activity, check_encrypt_type, check_expire_time, check_instance_ids,
    check_result, is_accepted, split_instance_ids,
};
use super::{
    ResultEnvelope, TestFlag, Validate, decode_params, is_decimal, is_test, max_len, one_of,
    optional, required,
};
use crate::ResultCode;
use crate::error::{Error, FieldError};

/// Limit for `newInstance` fields whose length is not documented (saas.md §13.2).
const UNDOCUMENTED_MAX: usize = 2048;

/// At most this many `saasExtendParams` entries (saas.md §13.9).
pub const MAX_EXTEND_PARAMS: usize = 3;

/// `timeStamp` (M, 20) and `authToken` (M, 50), the V1 authentication parameters (saas.md §13.1).
fn check_auth(time_stamp: &str, auth_token: &str) -> Result<(), FieldError> {
    required("timeStamp", time_stamp, 20)?;
    required("authToken", auth_token, 50)
}

/// An optional parameter that is present and not empty (`periodType=` counts as absent).
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// Decimal digits only, when present.
fn check_whole_number(field: &str, value: &Option<String>) -> Result<(), FieldError> {
    match present(value) {
        Some(v) if !v.bytes().all(|b| b.is_ascii_digit()) => {
            Err(FieldError::invalid(field, "must be a whole number"))
        }
        _ => Ok(()),
    }
}

/// `-?digits(.digits)?`, when present.
fn check_decimal(field: &str, value: &Option<String>) -> Result<(), FieldError> {
    match present(value) {
        Some(v) if !is_decimal(v) => Err(FieldError::invalid(field, "must be a decimal number")),
        _ => Ok(()),
    }
}

/// `instanceStatus` of the V1 `instanceStatus` activity (saas.md §13.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceStatus {
    /// `FREEZE`: freeze, keep the data.
    Freeze,
    /// `NORMAL`: back to normal.
    Normal,
}

impl ResourceStatus {
    pub const ALL: [ResourceStatus; 2] = [Self::Freeze, Self::Normal];
    /// The wire values, in the order of [`ResourceStatus::ALL`].
    pub const NAMES: &'static [&'static str] = &["FREEZE", "NORMAL"];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Freeze => "FREEZE",
            Self::Normal => "NORMAL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// V1 `newInstance` (saas.md §13.2): a new purchase, with the order data in the request.
/// Fields not marked M are optional and limited to 2048 characters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInstance {
    /// Always `newInstance`.
    #[serde(default)]
    pub activity: String,
    /// Buyer's Huawei Cloud account ID.
    #[serde(default)]
    pub customer_id: String,
    /// Buyer's account name; mandatory except on the international site, so optional here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// IAM sub-user ID (product option "based on IAM user name").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// IAM sub-user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Encrypted mobile number (security.md §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    /// Encrypted e-mail address (security.md §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Different on every request.
    #[serde(default)]
    pub business_id: String,
    /// The idempotency key (on-demand: with `productId`).
    #[serde(default)]
    pub order_id: String,
    /// Specification ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_code: Option<String>,
    #[serde(default)]
    pub product_id: String,
    /// `1` = trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_flag: Option<String>,
    /// `yyyyMMddHHmmss`, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    /// `0` on-demand, `1` period, `3` one-off, `5` on-demand package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_mode: Option<String>,
    /// `year` or `month`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_type: Option<String>,
    /// Number of periods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_number: Option<String>,
    /// Order amount, decimal text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_amount: Option<String>,
    /// Quantity-type attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_width: Option<String>,
    /// `urlEncode(base64(JSON array))`, still encoded; see [`Self::extend_params`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saas_extend_params: Option<String>,
    /// `1` = test data (saas.md §13.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    /// `yyyyMMddHHmmssSSS`, UTC (security.md §6).
    #[serde(default)]
    pub time_stamp: String,
    /// Base64 HMAC over the other parameters (security.md §6).
    #[serde(default)]
    pub auth_token: String,
}

impl NewInstance {
    pub const ACTIVITY: &'static str = "newInstance";
    /// Documented `chargingMode` values.
    pub const CHARGING_MODES: &'static [&'static str] = &["0", "1", "3", "5"];

    /// The decoded `saasExtendParams` (none when absent).
    pub fn extend_params(&self) -> Result<Vec<ExtendParam>, FieldError> {
        present(&self.saas_extend_params).map_or(Ok(Vec::new()), decode_saas_extend_params)
    }
}

impl Validate for NewInstance {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 20)?;
        required("customerId", &self.customer_id, 100)?;
        optional("customerName", self.customer_name.as_deref(), 64)?;
        required("businessId", &self.business_id, 64)?;
        required("orderId", &self.order_id, 64)?;
        required("productId", &self.product_id, 64)?;
        for (field, value) in [
            ("userId", &self.user_id),
            ("userName", &self.user_name),
            ("mobilePhone", &self.mobile_phone),
            ("email", &self.email),
            ("skuCode", &self.sku_code),
            ("trialFlag", &self.trial_flag),
            ("expireTime", &self.expire_time),
            ("chargingMode", &self.charging_mode),
            ("periodType", &self.period_type),
            ("periodNumber", &self.period_number),
            ("orderAmount", &self.order_amount),
            ("amount", &self.amount),
            ("diskSize", &self.disk_size),
            ("bandWidth", &self.band_width),
            ("saasExtendParams", &self.saas_extend_params),
        ] {
            optional(field, value.as_deref(), UNDOCUMENTED_MAX)?;
        }
        if let Some(expire) = present(&self.expire_time) {
            check_expire_time("expireTime", expire)?;
        }
        if let Some(mode) = present(&self.charging_mode) {
            one_of("chargingMode", mode, Self::CHARGING_MODES)?;
        }
        check_whole_number("periodNumber", &self.period_number)?;
        check_decimal("orderAmount", &self.order_amount)?;
        check_whole_number("amount", &self.amount)?;
        check_whole_number("diskSize", &self.disk_size)?;
        check_whole_number("bandWidth", &self.band_width)?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// V1 `refreshInstance` (saas.md §13.3): renewal, trial conversion or renewal refund.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshInstance {
    /// Always `refreshInstance`.
    #[serde(default)]
    pub activity: String,
    /// The new (renewal) order.
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    /// The new absolute expiry, `yyyyMMddHHmmss`, UTC.
    #[serde(default)]
    pub expire_time: String,
    /// `1` = trial converted to a paid period; absent = no.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_to_formal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_number: Option<String>,
    /// Decimal text; negative on a renewal refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub auth_token: String,
}

impl RefreshInstance {
    pub const ACTIVITY: &'static str = "refreshInstance";

    /// Whether this converts a trial into a paid period (`trialToFormal=1`).
    pub fn is_trial_to_formal(&self) -> bool {
        self.trial_to_formal.as_deref() == Some("1")
    }
}

impl Validate for RefreshInstance {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 20)?;
        required("orderId", &self.order_id, 64)?;
        required("instanceId", &self.instance_id, 64)?;
        optional("productId", self.product_id.as_deref(), 64)?;
        required("expireTime", &self.expire_time, 20)?;
        check_expire_time("expireTime", &self.expire_time)?;
        optional("trialToFormal", self.trial_to_formal.as_deref(), 2)?;
        optional("periodType", self.period_type.as_deref(), 10)?;
        optional("periodNumber", self.period_number.as_deref(), 2)?;
        check_whole_number("periodNumber", &self.period_number)?;
        optional("orderAmount", self.order_amount.as_deref(), 20)?;
        check_decimal("orderAmount", &self.order_amount)?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// V1 `expireInstance` (saas.md §13.4): the instance expired; freeze it and keep the data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpireInstance {
    /// Always `expireInstance`.
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub instance_id: String,
    /// The purchase order.
    #[serde(default)]
    pub order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub auth_token: String,
}

impl ExpireInstance {
    pub const ACTIVITY: &'static str = "expireInstance";
}

impl Validate for ExpireInstance {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 20)?;
        required("instanceId", &self.instance_id, 64)?;
        required("orderId", &self.order_id, 64)?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// V1 `releaseInstance` (saas.md §13.5): delete the instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseInstance {
    /// Always `releaseInstance`.
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub instance_id: String,
    /// The purchase order.
    #[serde(default)]
    pub order_id: String,
    /// Decimal text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub auth_token: String,
}

impl ReleaseInstance {
    pub const ACTIVITY: &'static str = "releaseInstance";
}

impl Validate for ReleaseInstance {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 20)?;
        required("instanceId", &self.instance_id, 64)?;
        required("orderId", &self.order_id, 64)?;
        optional("orderAmount", self.order_amount.as_deref(), 20)?;
        check_decimal("orderAmount", &self.order_amount)?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// V1 `upgrade` (saas.md §13.6): a new specification or quantity for an existing instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upgrade {
    /// Always `upgrade`.
    #[serde(default)]
    pub activity: String,
    /// Unchanged by the upgrade.
    #[serde(default)]
    pub instance_id: String,
    /// The new order; the idempotency key.
    #[serde(default)]
    pub order_id: String,
    /// The new specification (unchanged when only a quantity grows).
    #[serde(default)]
    pub sku_code: String,
    #[serde(default)]
    pub product_id: String,
    /// Quantity-type attributes, whole numbers of at most 7 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_width: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub auth_token: String,
}

impl Upgrade {
    pub const ACTIVITY: &'static str = "upgrade";
}

impl Validate for Upgrade {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 20)?;
        required("instanceId", &self.instance_id, 64)?;
        required("orderId", &self.order_id, 64)?;
        required("skuCode", &self.sku_code, 64)?;
        required("productId", &self.product_id, 64)?;
        for (field, value) in [
            ("amount", &self.amount),
            ("diskSize", &self.disk_size),
            ("bandWidth", &self.band_width),
        ] {
            optional(field, value.as_deref(), 7)?;
            check_whole_number(field, value)?;
        }
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// V1 `instanceStatus` (saas.md §13.7): freeze or restore an on-demand instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// Always `instanceStatus`.
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub instance_id: String,
    /// `FREEZE` or `NORMAL`; see [`Self::status`].
    #[serde(default)]
    pub instance_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub auth_token: String,
}

impl InstanceStatus {
    pub const ACTIVITY: &'static str = "instanceStatus";

    /// The requested status, if it is a documented one (always, after validation).
    pub fn status(&self) -> Option<ResourceStatus> {
        ResourceStatus::parse(&self.instance_status)
    }
}

impl Validate for InstanceStatus {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 32)?;
        required("instanceId", &self.instance_id, 64)?;
        required("instanceStatus", &self.instance_status, 32)?;
        one_of(
            "instanceStatus",
            &self.instance_status,
            ResourceStatus::NAMES,
        )?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// V1 `queryInstance` (saas.md §13.8): access information and usage of one or more instances.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryInstance {
    /// Always `queryInstance`.
    #[serde(default)]
    pub activity: String,
    /// One ID or a comma-separated list of at most 100; see [`Self::instance_ids`].
    #[serde(default)]
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    #[serde(default)]
    pub time_stamp: String,
    #[serde(default)]
    pub auth_token: String,
}

impl QueryInstance {
    pub const ACTIVITY: &'static str = "queryInstance";

    /// The requested IDs: split on `,`, trimmed, empty entries dropped.
    pub fn instance_ids(&self) -> Vec<&str> {
        split_instance_ids(&self.instance_id)
    }
}

impl Validate for QueryInstance {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 20)?;
        check_instance_ids(&self.instance_id)?;
        check_auth(&self.time_stamp, &self.auth_token)
    }
}

/// Any V1 request, selected by its `activity` parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SaasV1Request {
    /// Boxed: it carries the whole order and is far larger than the other requests.
    NewInstance(Box<NewInstance>),
    RefreshInstance(RefreshInstance),
    ExpireInstance(ExpireInstance),
    ReleaseInstance(ReleaseInstance),
    Upgrade(Upgrade),
    InstanceStatus(InstanceStatus),
    QueryInstance(QueryInstance),
}

impl SaasV1Request {
    /// Decodes and validates already URL-decoded query parameters (a repeated name keeps its
    /// first value, as in [`decode_params`]); an unknown `activity` is
    /// [`Error::UnknownActivity`].
    pub fn decode(params: &[(String, String)]) -> Result<Self, Error> {
        let activity = params
            .iter()
            .find(|(name, _)| name == "activity")
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| FieldError::missing("activity"))?;
        match activity {
            NewInstance::ACTIVITY => decode_params(params).map(|r| Self::NewInstance(Box::new(r))),
            RefreshInstance::ACTIVITY => decode_params(params).map(Self::RefreshInstance),
            ExpireInstance::ACTIVITY => decode_params(params).map(Self::ExpireInstance),
            ReleaseInstance::ACTIVITY => decode_params(params).map(Self::ReleaseInstance),
            Upgrade::ACTIVITY => decode_params(params).map(Self::Upgrade),
            InstanceStatus::ACTIVITY => decode_params(params).map(Self::InstanceStatus),
            QueryInstance::ACTIVITY => decode_params(params).map(Self::QueryInstance),
            other => Err(Error::UnknownActivity(other.to_owned())),
        }
    }

    /// The wire name of the activity.
    pub fn activity(&self) -> &'static str {
        match self {
            Self::NewInstance(_) => NewInstance::ACTIVITY,
            Self::RefreshInstance(_) => RefreshInstance::ACTIVITY,
            Self::ExpireInstance(_) => ExpireInstance::ACTIVITY,
            Self::ReleaseInstance(_) => ReleaseInstance::ACTIVITY,
            Self::Upgrade(_) => Upgrade::ACTIVITY,
            Self::InstanceStatus(_) => InstanceStatus::ACTIVITY,
            Self::QueryInstance(_) => QueryInstance::ACTIVITY,
        }
    }

    /// Whether this is test data (`testFlag=1`, saas.md §13.1).
    pub fn test_flag(&self) -> bool {
        is_test(match self {
            Self::NewInstance(r) => r.test_flag,
            Self::RefreshInstance(r) => r.test_flag,
            Self::ExpireInstance(r) => r.test_flag,
            Self::ReleaseInstance(r) => r.test_flag,
            Self::Upgrade(r) => r.test_flag,
            Self::InstanceStatus(r) => r.test_flag,
            Self::QueryInstance(r) => r.test_flag,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// saasExtendParams
// ---------------------------------------------------------------------------------------------

/// One product extension parameter of `saasExtendParams` (saas.md §13.9).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExtendParam {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// Decodes a `saasExtendParams` value taken from the already-decoded query (saas.md §13.9):
/// URL-decode once more only if it still contains `%`, restore `+` for spaces, Base64-decode
/// (standard alphabet), parse a JSON array of `{name, value}` of at most three entries.
/// An empty value has no parameters.
pub fn decode_saas_extend_params(value: &str) -> Result<Vec<ExtendParam>, FieldError> {
    const FIELD: &str = "saasExtendParams";
    let url_decoded = if value.contains('%') {
        percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| FieldError::invalid(FIELD, "is not valid URL-encoded UTF-8"))?
    } else {
        value.into()
    };
    let base64_text = url_decoded.replace(' ', "+");
    if base64_text.is_empty() {
        return Ok(Vec::new());
    }
    let json = base64::engine::general_purpose::STANDARD
        .decode(base64_text.as_bytes())
        .map_err(|_| FieldError::invalid(FIELD, "is not valid Base64"))?;
    let params: Vec<ExtendParam> = serde_json::from_slice(&json)
        .map_err(|_| FieldError::invalid(FIELD, "is not a JSON array of {name, value}"))?;
    if params.len() > MAX_EXTEND_PARAMS {
        return Err(FieldError::invalid(
            FIELD,
            format!(
                "has {} entries, more than {MAX_EXTEND_PARAMS}",
                params.len()
            ),
        ));
    }
    if let Some(i) = params.iter().position(|p| p.name.is_empty()) {
        return Err(FieldError::missing(format!("{FIELD}[{i}].name")));
    }
    Ok(params)
}

/// The inverse of [`decode_saas_extend_params`]: `urlEncode(base64(compact JSON))`. Putting the
/// result into a query string through a form serialiser encodes it a second time, as KooGallery
/// does in practice.
pub fn encode_saas_extend_params(params: &[ExtendParam]) -> String {
    // Serialising plain strings into a Vec cannot fail.
    let json = serde_json::to_vec(params).unwrap_or_default();
    let base64_text = base64::engine::general_purpose::STANDARD.encode(json);
    form_urlencoded::byte_serialize(base64_text.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// Answer to V1 `queryInstance` (saas.md §13.8): the V2 shape, credentials encrypted when
/// `encryptType` is set.
pub type QueryInstanceResponse = saas_v2::QueryInstanceResponse;
/// Answer to V1 `refreshInstance` (saas.md §13.3).
pub type RefreshInstanceResponse = ResultEnvelope;
/// Answer to V1 `expireInstance` (saas.md §13.4).
pub type ExpireInstanceResponse = ResultEnvelope;
/// Answer to V1 `releaseInstance` (saas.md §13.5).
pub type ReleaseInstanceResponse = ResultEnvelope;
/// Answer to V1 `upgrade` (saas.md §13.6).
pub type UpgradeResponse = ResultEnvelope;
/// Answer to V1 `instanceStatus` (saas.md §13.7).
pub type InstanceStatusResponse = ResultEnvelope;

/// Answer to V1 `newInstance` (saas.md §13.2): the instance and its access information.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInstanceResponse {
    #[serde(default)]
    pub result_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_msg: Option<String>,
    /// Key size of the encrypted `appInfo` credentials: `1` AES-256, `2` AES-128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_type: Option<String>,
    /// Mandatory when the order is accepted.
    #[serde(default)]
    pub instance_id: String,
    /// Access information; `userName` and `password` encrypted (security.md §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info: Option<AppInfo>,
}

impl NewInstanceResponse {
    /// An answer with the code's standard message.
    pub fn new(
        code: ResultCode,
        instance_id: impl Into<String>,
        app_info: Option<AppInfo>,
    ) -> Self {
        Self {
            result_code: code.code().to_owned(),
            result_msg: Some(code.message().to_owned()),
            encrypt_type: None,
            instance_id: instance_id.into(),
            app_info,
        }
    }
}

impl Validate for NewInstanceResponse {
    fn validate(&self) -> Result<(), FieldError> {
        check_result(&self.result_code, self.result_msg.as_deref())?;
        check_encrypt_type(self.encrypt_type.as_deref())?;
        if is_accepted(&self.result_code) {
            required("instanceId", &self.instance_id, 64)?;
        } else {
            max_len("instanceId", &self.instance_id, 64)?;
        }
        match &self.app_info {
            Some(app) => app.validate().map_err(|e| e.nested("appInfo")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::decode_json;

    /// A fixed list of decoded query parameters.
    type Params = &'static [(&'static str, &'static str)];

    const TOKEN: &str = "pqlrW7+PHC/1JE+MEjKxC94GGJreoS6PZHd982auw2o=";
    const TIME: &str = "20230327070251713";

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn with(base: &[(&str, &str)], name: &str, value: &str) -> Vec<(String, String)> {
        let mut p = without(base, name);
        p.push((name.to_owned(), value.to_owned()));
        p
    }

    fn without(base: &[(&str, &str)], name: &str) -> Vec<(String, String)> {
        params(base)
            .into_iter()
            .filter(|(k, _)| k != name)
            .collect()
    }

    /// Published example (vectors.json `fx-v1-refreshInstance`, authToken elided there).
    const FX_REFRESH: Params = &[
        ("activity", "refreshInstance"),
        ("expireTime", "20180725000000"),
        ("instanceId", "03pf80c2bae96vc49b80b917bea776d7"),
        ("orderId", "HWS001014ED483AA1E8"),
        ("timeStamp", "20170725025113409"),
        ("testFlag", "1"),
        ("authToken", "1cfewIawt2crcGIwzEtA3Q/McDUE/JYiLs3Ha86tm5A="),
    ];
    /// Vector `v1-get-001` (newInstance) plus its token.
    const NEW: Params = &[
        ("activity", "newInstance"),
        ("businessId", "61e834ba-7b97-4418-b8f7-e5345137278c"),
        ("customerId", "68cbc86abc2018ab880d92f36422fa0e"),
        ("expireTime", "20200727153156"),
        ("orderId", "CS1906666666ABCDE"),
        ("productId", "00301-666666-0--0"),
        ("testFlag", "1"),
        ("timeStamp", "20200727073711903"),
        ("authToken", "Um9kyMKbWxNAa3UfesBylJw3ZG2/fiobjENiAHjtau8="),
    ];
    /// Vector `query-001` (instanceStatus), decoded.
    const STATUS: Params = &[
        ("activity", "instanceStatus"),
        ("instanceId", "huaweitest123456"),
        ("instanceStatus", "FREEZE"),
        ("testFlag", "1"),
        ("timeStamp", TIME),
        ("authToken", TOKEN),
    ];
    const EXPIRE: Params = &[
        ("activity", "expireInstance"),
        ("instanceId", "i-1"),
        ("orderId", "o-1"),
        ("timeStamp", TIME),
        ("authToken", TOKEN),
    ];
    const RELEASE: Params = &[
        ("activity", "releaseInstance"),
        ("instanceId", "i-1"),
        ("orderId", "o-1"),
        ("orderAmount", "-12.5"),
        ("timeStamp", TIME),
        ("authToken", TOKEN),
    ];
    const UPGRADE: Params = &[
        ("activity", "upgrade"),
        ("instanceId", "i-1"),
        ("orderId", "o-2"),
        ("skuCode", "sku-2"),
        ("productId", "p-2"),
        ("amount", "25"),
        ("timeStamp", TIME),
        ("authToken", TOKEN),
    ];
    const QUERY: Params = &[
        ("activity", "queryInstance"),
        ("instanceId", "a,b,c"),
        ("timeStamp", TIME),
        ("authToken", TOKEN),
    ];

    fn all_requests() -> Vec<Params> {
        vec![NEW, FX_REFRESH, EXPIRE, RELEASE, UPGRADE, STATUS, QUERY]
    }

    fn decode(p: &[(String, String)]) -> Result<SaasV1Request, Error> {
        SaasV1Request::decode(p)
    }

    #[test]
    fn published_refresh_instance() {
        let req = decode(&params(FX_REFRESH)).unwrap();
        assert_eq!(req.activity(), "refreshInstance");
        assert!(req.test_flag());
        let SaasV1Request::RefreshInstance(r) = req else {
            panic!()
        };
        assert_eq!(r.expire_time, "20180725000000");
        assert_eq!(r.instance_id, "03pf80c2bae96vc49b80b917bea776d7");
        assert_eq!(r.order_id, "HWS001014ED483AA1E8");
        assert_eq!(r.time_stamp, "20170725025113409");
        assert!(!r.is_trial_to_formal());
        assert_eq!(r.order_amount, None);
    }

    #[test]
    fn new_instance_fields() {
        let mut p = params(NEW);
        p.extend(params(&[
            ("customerName", "John Smith"),
            ("mobilePhone", "Ab3dE5gH7jK9mN1p/iWS9wcSzrYj2aMMOYB+Lw=="),
            ("chargingMode", "1"),
            ("periodType", "month"),
            ("periodNumber", "5"),
            ("orderAmount", "12.78"),
            ("skuCode", "a63ee5c9-4f86-11ed-9f95-fa163e8cb3b2"),
        ]));
        let SaasV1Request::NewInstance(r) = decode(&p).unwrap() else {
            panic!()
        };
        assert_eq!(r.customer_id, "68cbc86abc2018ab880d92f36422fa0e");
        assert_eq!(r.business_id, "61e834ba-7b97-4418-b8f7-e5345137278c");
        assert_eq!(r.product_id, "00301-666666-0--0");
        assert_eq!(r.expire_time.as_deref(), Some("20200727153156"));
        assert_eq!(r.customer_name.as_deref(), Some("John Smith"));
        // Encrypted values stay encrypted.
        assert_eq!(
            r.mobile_phone.as_deref(),
            Some("Ab3dE5gH7jK9mN1p/iWS9wcSzrYj2aMMOYB+Lw==")
        );
        assert_eq!(r.charging_mode.as_deref(), Some("1"));
        assert_eq!(r.period_number.as_deref(), Some("5"));
        assert_eq!(r.order_amount.as_deref(), Some("12.78"));
        assert_eq!(r.auth_token, "Um9kyMKbWxNAa3UfesBylJw3ZG2/fiobjENiAHjtau8=");
        assert_eq!(r.extend_params().unwrap(), vec![]);
    }

    #[test]
    fn other_published_shapes() {
        let SaasV1Request::InstanceStatus(r) = decode(&params(STATUS)).unwrap() else {
            panic!()
        };
        assert_eq!(r.instance_id, "huaweitest123456");
        assert_eq!(r.status(), Some(ResourceStatus::Freeze));
        assert_eq!(r.auth_token, TOKEN);
        let SaasV1Request::InstanceStatus(r) =
            decode(&with(STATUS, "instanceStatus", "NORMAL")).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.status(), Some(ResourceStatus::Normal));
        let SaasV1Request::ExpireInstance(r) = decode(&params(EXPIRE)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.instance_id.as_str(), r.order_id.as_str()),
            ("i-1", "o-1")
        );
        let SaasV1Request::ReleaseInstance(r) = decode(&params(RELEASE)).unwrap() else {
            panic!()
        };
        assert_eq!(r.order_amount.as_deref(), Some("-12.5"));
        let SaasV1Request::Upgrade(r) = decode(&params(UPGRADE)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.sku_code.as_str(), r.amount.as_deref()),
            ("sku-2", Some("25"))
        );
        let SaasV1Request::QueryInstance(r) = decode(&params(QUERY)).unwrap() else {
            panic!()
        };
        assert_eq!(r.instance_ids(), vec!["a", "b", "c"]);
    }

    #[test]
    fn missing_mandatory_parameters_are_named() {
        let cases: &[(Params, &[&str])] = &[
            (NEW, &["customerId", "businessId", "orderId", "productId"]),
            (FX_REFRESH, &["orderId", "instanceId", "expireTime"]),
            (EXPIRE, &["instanceId", "orderId"]),
            (RELEASE, &["instanceId", "orderId"]),
            (UPGRADE, &["instanceId", "orderId", "skuCode", "productId"]),
            (STATUS, &["instanceId", "instanceStatus"]),
            (QUERY, &["instanceId"]),
        ];
        for &(base, fields) in cases {
            for &field in fields.iter().chain(&["activity", "timeStamp", "authToken"]) {
                for p in [without(base, field), with(base, field, "")] {
                    let e = decode(&p).unwrap_err();
                    assert!(matches!(e, Error::Field(_)), "{field}: {e:?}");
                    assert_eq!(e.to_string(), format!("{field} is required"));
                }
            }
        }
    }

    #[test]
    fn over_long_parameters_are_named() {
        let cases: &[(Params, &str, usize)] = &[
            (NEW, "customerId", 100),
            (NEW, "customerName", 64),
            (NEW, "businessId", 64),
            (NEW, "orderId", 64),
            (NEW, "productId", 64),
            (NEW, "userId", 2048),
            (NEW, "email", 2048),
            (NEW, "saasExtendParams", 2048),
            (NEW, "timeStamp", 20),
            (NEW, "authToken", 50),
            (FX_REFRESH, "orderId", 64),
            (FX_REFRESH, "instanceId", 64),
            (FX_REFRESH, "productId", 64),
            (FX_REFRESH, "expireTime", 20),
            (FX_REFRESH, "trialToFormal", 2),
            (FX_REFRESH, "periodType", 10),
            (FX_REFRESH, "periodNumber", 2),
            (FX_REFRESH, "orderAmount", 20),
            (EXPIRE, "instanceId", 64),
            (EXPIRE, "orderId", 64),
            (RELEASE, "orderAmount", 20),
            (UPGRADE, "skuCode", 64),
            (UPGRADE, "amount", 7),
            (UPGRADE, "diskSize", 7),
            (UPGRADE, "bandWidth", 7),
            (STATUS, "instanceStatus", 32),
            (STATUS, "instanceId", 64),
        ];
        for &(base, field, max) in cases {
            let e = decode(&with(base, field, &"1".repeat(max + 1))).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{field} is longer than {max} characters")
            );
        }
        // Undocumented newInstance lengths are not limited below 2048.
        assert!(decode(&with(NEW, "userName", &"u".repeat(2048))).is_ok());
        let e = decode(&with(QUERY, "instanceId", &format!("a,{}", "x".repeat(65)))).unwrap_err();
        assert_eq!(e.to_string(), "instanceId[1] is longer than 64 characters");
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases: &[(Params, &str, &str)] = &[
            (STATUS, "instanceStatus", "UNFREEZE"),
            (NEW, "chargingMode", "2"),
            (NEW, "periodNumber", "five"),
            (NEW, "orderAmount", "12,78"),
            (NEW, "expireTime", "2020-07-27"),
            (NEW, "amount", "-1"),
            (NEW, "testFlag", "yes"),
            (FX_REFRESH, "expireTime", "202007271531"),
            (FX_REFRESH, "periodNumber", "1x"),
            (FX_REFRESH, "orderAmount", "abc"),
            (RELEASE, "orderAmount", "1e3"),
            (UPGRADE, "diskSize", "1.5"),
        ];
        for &(base, field, value) in cases {
            let e = decode(&with(base, field, value)).unwrap_err();
            assert!(matches!(e, Error::Field(_)), "{field}: {e:?}");
            assert!(e.to_string().starts_with(field), "{field}={value}: {e}");
        }
        for mode in NewInstance::CHARGING_MODES {
            assert!(decode(&with(NEW, "chargingMode", mode)).is_ok());
        }
        // Present but empty optional parameters count as absent.
        assert!(decode(&with(NEW, "periodNumber", "")).is_ok());
        assert!(decode(&with(FX_REFRESH, "periodType", "")).is_ok());
    }

    #[test]
    fn activity_dispatch() {
        let e = decode(&without(NEW, "activity")).unwrap_err();
        assert_eq!(e, Error::Field(FieldError::missing("activity")));
        let e = decode(&with(NEW, "activity", "changeInstanceCheck")).unwrap_err();
        assert_eq!(e, Error::UnknownActivity("changeInstanceCheck".to_owned()));
        // A repeated name keeps its first value, as in decode_params.
        let mut p = params(EXPIRE);
        p.push(("activity".to_owned(), "bogus".to_owned()));
        assert_eq!(decode(&p).unwrap().activity(), "expireInstance");
        let e = decode_params::<ExpireInstance>(&params(RELEASE)).unwrap_err();
        assert!(e.to_string().starts_with("activity"));
    }

    #[test]
    fn unknown_parameters_are_ignored_and_test_flag_is_optional() {
        for base in all_requests() {
            let plain = decode(&params(base)).unwrap();
            let mut p = params(base);
            p.push(("someNewParameter".to_owned(), "x".to_owned()));
            assert_eq!(decode(&p).unwrap(), plain);
            assert!(decode(&with(base, "testFlag", "1")).unwrap().test_flag());
            assert!(!decode(&with(base, "testFlag", "0")).unwrap().test_flag());
            assert!(!decode(&without(base, "testFlag")).unwrap().test_flag());
        }
    }

    #[test]
    fn query_instance_id_lists() {
        let ids = |n: usize| {
            (0..n)
                .map(|i| format!("id-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(decode(&with(QUERY, "instanceId", &ids(100))).is_ok());
        let e = decode(&with(QUERY, "instanceId", &ids(101))).unwrap_err();
        assert!(e.to_string().starts_with("instanceId lists 101 IDs"), "{e}");
        let e = decode(&with(QUERY, "instanceId", ",,")).unwrap_err();
        assert_eq!(e.to_string(), "instanceId is required");
        let SaasV1Request::QueryInstance(r) =
            decode(&with(QUERY, "instanceId", " x , y ")).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.instance_ids(), vec!["x", "y"]);
    }

    fn sample_params() -> Vec<ExtendParam> {
        vec![
            ExtendParam {
                name: "identificationCode".into(),
                value: "id~9".into(),
            },
            ExtendParam {
                name: "emailDomainName".into(),
                value: "test.xxxx.com".into(),
            },
        ]
    }

    #[test]
    fn extend_params_round_trip() {
        let encoded = encode_saas_extend_params(&sample_params());
        // Base64 `+`, `/` and `=` are URL-encoded.
        assert!(!encoded.contains(['+', '/', '=']), "{encoded}");
        assert!(encoded.contains("%2B"), "{encoded}");
        assert_eq!(
            decode_saas_extend_params(&encoded).unwrap(),
            sample_params()
        );
        assert_eq!(decode_saas_extend_params("").unwrap(), vec![]);
        assert_eq!(encode_saas_extend_params(&[]), "W10%3D");
        assert_eq!(decode_saas_extend_params("W10%3D").unwrap(), vec![]);
    }

    #[test]
    fn extend_params_documented_example() {
        // base64 of [{"name":"identificationCode","value":"*****"}]
        let b64 = "W3sibmFtZSI6ImlkZW50aWZpY2F0aW9uQ29kZSIsInZhbHVlIjoiKioqKioifV0=";
        let expected = vec![ExtendParam {
            name: "identificationCode".into(),
            value: "*****".into(),
        }];
        // Decoded once by the query parser (no `%` left), or still URL-encoded.
        assert_eq!(decode_saas_extend_params(b64).unwrap(), expected);
        assert_eq!(
            decode_saas_extend_params(&b64.replace('=', "%3D")).unwrap(),
            expected
        );
    }

    #[test]
    fn extend_params_double_encoded_and_plus_as_space() {
        let once = encode_saas_extend_params(&sample_params());
        let twice: String = form_urlencoded::byte_serialize(once.as_bytes()).collect();
        // The query parser removes one layer; the value then still contains `%`.
        let after_query: String = form_urlencoded::parse(format!("p={twice}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(after_query, once);
        assert_eq!(
            decode_saas_extend_params(&after_query).unwrap(),
            sample_params()
        );
        // Sent with a raw `+` that the query parser turned into a space.
        let b64 = "W3sibmFtZSI6ImlkZW50aWZpY2F0aW9uQ29kZSIsInZhbHVlIjoiaWR+OSJ9XQ==";
        let mangled = b64.replace('+', " ");
        let expected = vec![ExtendParam {
            name: "identificationCode".into(),
            value: "id~9".into(),
        }];
        assert_eq!(decode_saas_extend_params(&mangled).unwrap(), expected);
        assert_eq!(
            decode_saas_extend_params(&mangled.replace('=', "%3D")).unwrap(),
            expected
        );
    }

    #[test]
    fn extend_params_rejects_more_than_three_and_garbage() {
        let four: Vec<ExtendParam> = (0..4)
            .map(|i| ExtendParam {
                name: format!("n{i}"),
                value: format!("v{i}"),
            })
            .collect();
        let e = decode_saas_extend_params(&encode_saas_extend_params(&four)).unwrap_err();
        assert_eq!(e.to_string(), "saasExtendParams has 4 entries, more than 3");
        assert!(decode_saas_extend_params(&encode_saas_extend_params(&four[..3])).is_ok());
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for garbage in [
            "%%%".to_owned(),
            "%FF%FE".to_owned(),
            "not base64!".to_owned(),
            "W3".to_owned(),
            b64("not json"),
            b64(r#"{"name":"a","value":"b"}"#),
            b64(r#"[{"name":1,"value":"b"}]"#),
            b64(r#"[{"value":"b"}]"#),
            b64("[1,2]"),
        ] {
            let e = decode_saas_extend_params(&garbage).unwrap_err();
            assert!(e.field.starts_with("saasExtendParams"), "{garbage}: {e}");
        }
        let mut p = params(NEW);
        p.push(("saasExtendParams".to_owned(), "garbage".to_owned()));
        let SaasV1Request::NewInstance(r) = decode(&p).unwrap() else {
            panic!()
        };
        assert!(r.extend_params().is_err());
    }

    #[test]
    fn responses_serialise_with_wire_names() {
        let app = AppInfo {
            front_end_url: "https://x.example".into(),
            user_name: Some("3LQvu8363e5O4zqwYnXyJGWz8y+GAcu0rpM0wQ==".into()),
            ..Default::default()
        };
        let mut r = NewInstanceResponse::new(ResultCode::Success, "i-1", Some(app));
        r.encrypt_type = Some("1".into());
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"resultCode":"000000","resultMsg":"success.","encryptType":"1","instanceId":"i-1","#,
                r#""appInfo":{"frontEndUrl":"https://x.example","userName":"3LQvu8363e5O4zqwYnXyJGWz8y+GAcu0rpM0wQ=="}}"#
            )
        );
        let back: NewInstanceResponse = decode_json(json.as_bytes()).unwrap();
        assert_eq!(back, r);
        let bare = NewInstanceResponse::new(ResultCode::Processing, "i-2", None);
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"resultCode":"000004","resultMsg":"request is processing","instanceId":"i-2"}"#
        );
        let q = QueryInstanceResponse::new(ResultCode::Success, vec![]);
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"resultCode":"000000","resultMsg":"success.","info":[]}"#
        );
    }

    #[test]
    fn response_validation() {
        let decode_response = |body: &str| decode_json::<NewInstanceResponse>(body.as_bytes());
        // The Huawei sample lacks frontEndUrl, which the debugging tool requires.
        let e = decode_response(
            r#"{"resultCode":"000000","resultMsg":"ok","encryptType":"1","instanceId":"000bd4e1-5726-4ce9-8fe4-fd081a179304","appInfo":{"userName":"3LQvu8363e5O4zqwYnXyJGWz8y+GAcu0rpM0wQ==","password":"RY31aEnR5GMCFmt3iG1hW7UF1HK09MuAL2sgxA=="}}"#,
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "appInfo.frontEndUrl is required"
        );
        let e = decode_response(r#"{"resultCode":"000000","appInfo":{"frontEndUrl":"f"}}"#);
        assert_eq!(e.unwrap_err().to_string(), "instanceId is required");
        let e = decode_response(r#"{"resultCode":"000000","instanceId":"i","encryptType":"9"}"#);
        assert!(e.unwrap_err().to_string().starts_with("encryptType"));
        assert!(
            decode_response(r#"{"resultCode":"000005","resultMsg":"other inner error"}"#).is_ok()
        );
        assert!(decode_response(r#"{"resultCode":"000000","instanceId":"i","x":[1]}"#).is_ok());
    }
}
