//! Open-API bodies, merchant → KooGallery (openapi.md): the APIG gateway error (§2), usage push
//! (§3) and its old form (§4), order query (§5), license-code activate and query (heartbeat)
//! (§6), and market-event upload (§7).
//!
//! Every type is `Serialize` and `Deserialize`: the emulator serves them and koogate parses
//! them. Responses are parsed tolerantly (openapi.md §1): unknown fields are ignored, and `null`
//! is accepted wherever the order query may send it.

use serde::{Deserialize, Deserializer, Serialize};

use super::{
    Decimal, JsonOrString, Validate, each, is_decimal, java_len, one_of, optional, required,
};
use crate::error::FieldError;

// ---------------------------------------------------------------------------------------------
// §2 APIG gateway errors
// ---------------------------------------------------------------------------------------------

/// Error body of the API gateway (openapi.md §2). The table gives only the codes; the body shape
/// is Huawei APIG's usual `{"error_code","error_msg","request_id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApigError {
    /// `APIGW.*`.
    #[serde(default)]
    pub error_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApigError {
    /// The documented code, if it is one.
    pub fn code(&self) -> Option<GatewayErrorCode> {
        GatewayErrorCode::parse(&self.error_code)
    }
}

impl Validate for ApigError {
    fn validate(&self) -> Result<(), FieldError> {
        required("error_code", &self.error_code, 64)
    }
}

/// The gateway's documented error codes (openapi.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewayErrorCode {
    /// `APIGW.0101`, HTTP 404: API not found.
    ApiNotFound,
    /// `APIGW.0201`, HTTP 400 (also 413 for a body over 12 MB, 414, 494, 502, 504): bad request.
    BadRequest,
    /// `APIGW.0301`, HTTP 401: bad AK/SK signature.
    IamAuthFailed,
    /// `APIGW.0302`, HTTP 403: forbidden.
    Forbidden,
    /// `APIGW.0303`, HTTP 401: incorrect app-authentication information.
    AppAuthFailed,
}

impl GatewayErrorCode {
    pub const ALL: [Self; 5] = [
        Self::ApiNotFound,
        Self::BadRequest,
        Self::IamAuthFailed,
        Self::Forbidden,
        Self::AppAuthFailed,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Self::ApiNotFound => "APIGW.0101",
            Self::BadRequest => "APIGW.0201",
            Self::IamAuthFailed => "APIGW.0301",
            Self::Forbidden => "APIGW.0302",
            Self::AppAuthFailed => "APIGW.0303",
        }
    }
    /// The usual HTTP status.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::ApiNotFound => 404,
            Self::BadRequest => 400,
            Self::IamAuthFailed | Self::AppAuthFailed => 401,
            Self::Forbidden => 403,
        }
    }
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
    /// An authentication failure: after 5 in a row the AK is locked for 5 minutes, so never
    /// retry these in a loop (openapi.md §2).
    pub const fn is_auth_failure(self) -> bool {
        matches!(self, Self::IamAuthFailed | Self::AppAuthFailed)
    }
}

// ---------------------------------------------------------------------------------------------
// §3 Usage push and §4 its old form
// ---------------------------------------------------------------------------------------------

/// At most this many records per usage push (openapi.md §3.4 #8, `MKT.9003`).
pub const MAX_USAGE_RECORDS: usize = 1000;
/// Recommended batch size: one page says the limit is 100 (openapi.md §8 #4).
pub const DEFAULT_USAGE_BATCH: usize = 100;

/// Usage push body, `POST …/global/v1/isv/usage-data` (openapi.md §3.2). Members are declared in
/// sorted order, so `serde_json::to_string` gives the compact sorted form that is signed and sent
/// (security.md §11).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsagePushRequest {
    /// 1 to 1000 records.
    #[serde(default)]
    pub usage_records: Vec<UsageRecord>,
}

impl Validate for UsagePushRequest {
    fn validate(&self) -> Result<(), FieldError> {
        check_record_count(self.usage_records.len())?;
        each("usage_records", &self.usage_records)
    }
}

/// One `UsagePushData` record (openapi.md §3.2). Times are UTC `yyyyMMdd'T'HHmmss'Z'`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Start of the usage period; within the last 21 days (`MKT.9004`).
    #[serde(default)]
    pub begin_time: String,
    /// End of the usage period; not before `begin_time`.
    #[serde(default)]
    pub end_time: String,
    /// The on-demand instance (from `newInstance`).
    #[serde(default)]
    pub instance_id: String,
    /// Unique per record and stable across retries of the same record.
    #[serde(default)]
    pub metering_sn: String,
    /// When the record was produced.
    #[serde(default)]
    pub record_time: String,
    /// Mandatory for use-until-exhausted package products: the package instance deducted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relate_pkg_instance: Option<String>,
    /// Amount used, > 0 with at most 4 decimals, sent as a JSON string.
    #[serde(default)]
    pub usage_value: String,
}

impl Validate for UsageRecord {
    fn validate(&self) -> Result<(), FieldError> {
        required("instance_id", &self.instance_id, 64)?;
        check_usage_times(&self.record_time, &self.begin_time, &self.end_time)?;
        check_usage_value(&self.usage_value)?;
        required("metering_sn", &self.metering_sn, 64)?;
        optional(
            "relate_pkg_instance",
            self.relate_pkg_instance.as_deref(),
            64,
        )
    }
}

/// Body of the old usage API, `POST /rest/marketplace/v1/isv/usage-data` (openapi.md §4): the
/// same records plus `product_id`, without `metering_sn`; APIG-signed only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OldUsagePushRequest {
    #[serde(default)]
    pub usage_records: Vec<OldUsageRecord>,
}

impl Validate for OldUsagePushRequest {
    /// The 1000-record limit of the new API is assumed (not stated for the old one).
    fn validate(&self) -> Result<(), FieldError> {
        check_record_count(self.usage_records.len())?;
        each("usage_records", &self.usage_records)
    }
}

/// A record of the old usage API (openapi.md §4); `product_id` is assumed mandatory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OldUsageRecord {
    #[serde(default)]
    pub begin_time: String,
    #[serde(default)]
    pub end_time: String,
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub product_id: String,
    #[serde(default)]
    pub record_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relate_pkg_instance: Option<String>,
    #[serde(default)]
    pub usage_value: String,
}

impl Validate for OldUsageRecord {
    fn validate(&self) -> Result<(), FieldError> {
        required("instance_id", &self.instance_id, 64)?;
        required("product_id", &self.product_id, 64)?;
        check_usage_times(&self.record_time, &self.begin_time, &self.end_time)?;
        check_usage_value(&self.usage_value)?;
        optional(
            "relate_pkg_instance",
            self.relate_pkg_instance.as_deref(),
            64,
        )
    }
}

/// Usage push response (openapi.md §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsagePushResponse {
    /// `MKT.0000` on success; see [`UsagePushCode`].
    #[serde(default)]
    pub error_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
    /// Rejected records; the element fields are not published, so kept as raw JSON to log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abnormal_usage_data: Option<Vec<serde_json::Value>>,
}

impl UsagePushResponse {
    /// The documented code, if it is one.
    pub fn code(&self) -> Option<UsagePushCode> {
        UsagePushCode::parse(&self.error_code)
    }
    pub fn is_success(&self) -> bool {
        self.code() == Some(UsagePushCode::Success)
    }
}

impl Validate for UsagePushResponse {
    fn validate(&self) -> Result<(), FieldError> {
        required("error_code", &self.error_code, 64)
    }
}

/// `error_code` values of the usage push (openapi.md §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsagePushCode {
    /// `MKT.0000` (200): accepted.
    Success,
    /// `MKT.0999` (500): system internal error.
    SystemError,
    /// `MKT.0100` (500): input parameter failure.
    InputParameterFailure,
    /// `MKT.0101` (400): invalid parameter.
    InvalidParameter,
    /// `MKT.0102` (400): the `signature` header is wrong.
    InvalidBodySign,
    /// `MKT.0199` (400): request parameter error.
    RequestParameterError,
    /// `MKT.0150` (401): illegal operation, e.g. someone else's instance.
    IllegalOperation,
    /// `MKT.0151` (401): no authority.
    NoAuthority,
    /// `MKT.0154` (401): illegal token.
    IllegalToken,
    /// `MKT.9001` (500): instance ID not found.
    InstanceNotFound,
    /// `MKT.9002` (500): invalid usage entities.
    InvalidUsageEntities,
    /// `MKT.9003` (500): too many records.
    TooManyRecords,
    /// `MKT.9004` (500): `begin_time` older than 21 days.
    BeginTimeTooOld,
}

impl UsagePushCode {
    pub const ALL: [Self; 13] = [
        Self::Success,
        Self::SystemError,
        Self::InputParameterFailure,
        Self::InvalidParameter,
        Self::InvalidBodySign,
        Self::RequestParameterError,
        Self::IllegalOperation,
        Self::NoAuthority,
        Self::IllegalToken,
        Self::InstanceNotFound,
        Self::InvalidUsageEntities,
        Self::TooManyRecords,
        Self::BeginTimeTooOld,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Self::Success => "MKT.0000",
            Self::SystemError => "MKT.0999",
            Self::InputParameterFailure => "MKT.0100",
            Self::InvalidParameter => "MKT.0101",
            Self::InvalidBodySign => "MKT.0102",
            Self::RequestParameterError => "MKT.0199",
            Self::IllegalOperation => "MKT.0150",
            Self::NoAuthority => "MKT.0151",
            Self::IllegalToken => "MKT.0154",
            Self::InstanceNotFound => "MKT.9001",
            Self::InvalidUsageEntities => "MKT.9002",
            Self::TooManyRecords => "MKT.9003",
            Self::BeginTimeTooOld => "MKT.9004",
        }
    }
    /// The documented HTTP status.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::Success => 200,
            Self::InvalidParameter | Self::InvalidBodySign | Self::RequestParameterError => 400,
            Self::IllegalOperation | Self::NoAuthority | Self::IllegalToken => 401,
            _ => 500,
        }
    }
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
    /// Whether resending the same records (same `metering_sn`) with back-off may succeed: the
    /// 5xx codes, except `MKT.9001`/`MKT.9002`/`MKT.9004` (permanent for the records) and
    /// `MKT.9003` (the batch must be split) (openapi.md §3.3).
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::SystemError | Self::InputParameterFailure)
    }
}

// ---------------------------------------------------------------------------------------------
// §5 Order query
// ---------------------------------------------------------------------------------------------

/// `orderType` values (openapi.md §5).
pub const ORDER_TYPES: &[&str] = &[
    "NEW",
    "TRIAL",
    "TRIAL_TO_FORMAL",
    "UNSUBSCRIBE",
    "RENEW",
    "CHANGE",
];
/// `chargingMode` values (openapi.md §5).
pub const CHARGING_MODES: &[&str] = &["ON_DEMAND", "ONE_TIME", "PERIOD", "ON_DEMAND_PKG"];
/// `resultCode` of a successful order query.
pub const ORDER_QUERY_SUCCESS: &str = "MKT.0000";

/// Query parameters of `GET …/global/v1/order/query` (openapi.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderQueryParams {
    #[serde(default)]
    pub order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_line_id: Option<String>,
}

impl OrderQueryParams {
    /// The parameters as name/value pairs, `orderId` first.
    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut params = vec![("orderId".to_owned(), self.order_id.clone())];
        if let Some(line) = &self.order_line_id {
            params.push(("orderLineId".to_owned(), line.clone()));
        }
        params
    }
}

impl Validate for OrderQueryParams {
    fn validate(&self) -> Result<(), FieldError> {
        required("orderId", &self.order_id, 64)?;
        optional("orderLineId", self.order_line_id.as_deref(), 64)
    }
}

/// Order query response (openapi.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderQueryResponse {
    /// `MKT.0000` on success.
    #[serde(default, deserialize_with = "null_as_default")]
    pub result_code: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub result_msg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_info: Option<OrderInfo>,
}

impl OrderQueryResponse {
    pub fn is_success(&self) -> bool {
        self.result_code == ORDER_QUERY_SUCCESS
    }
}

impl Validate for OrderQueryResponse {
    fn validate(&self) -> Result<(), FieldError> {
        required("resultCode", &self.result_code, 16)?;
        required("resultMsg", &self.result_msg, 1024)?;
        match &self.order_info {
            Some(info) => info.validate().map_err(|e| e.nested("orderInfo")),
            None => Ok(()),
        }
    }
}

/// `orderInfo` (openapi.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderInfo {
    #[serde(default, deserialize_with = "null_as_default")]
    pub order_id: String,
    /// One of [`ORDER_TYPES`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub order_type: String,
    /// `yyyyMMddHHmmss`: when the order was placed, not when it took effect.
    #[serde(default, deserialize_with = "null_as_default")]
    pub create_time: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub order_line: Vec<OrderLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_info: Option<BuyerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend_params: Option<Vec<ExtendParam>>,
}

impl Validate for OrderInfo {
    fn validate(&self) -> Result<(), FieldError> {
        required("orderId", &self.order_id, 64)?;
        required("orderType", &self.order_type, 32)?;
        one_of("orderType", &self.order_type, ORDER_TYPES)?;
        required("createTime", &self.create_time, usize::MAX)?;
        if self.order_line.is_empty() {
            return Err(FieldError::missing("orderLine"));
        }
        each("orderLine", &self.order_line)
    }
}

/// One `orderLine` (openapi.md §5). The table is incomplete; the names seen in the nested V2
/// `newInstance` example (saas.md §12) are accepted too, and anything else is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    #[serde(default, deserialize_with = "null_as_default")]
    pub order_line_id: String,
    /// One of [`CHARGING_MODES`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub charging_mode: String,
    /// e.g. `year`, `month`, `day` (not a closed set in the documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_number: Option<Decimal>,
    /// `yyyyMMddHHmmss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_info: Option<Vec<OrderProduct>>,
    /// e.g. `emailDomainName`, `ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend_params: Option<Vec<ExtendParam>>,
    /// Amount, as a string.
    #[serde(
        default,
        deserialize_with = "opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub currency: Option<String>,
    /// Amount after discount, as a string.
    #[serde(
        default,
        deserialize_with = "opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub currency_after_discount: Option<String>,
    /// Not in the table (saas.md §12 example): `"1"` = trial.
    #[serde(
        default,
        deserialize_with = "opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub trial_flag: Option<String>,
    /// Not in the table (saas.md §12 example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_amount: Option<Decimal>,
    /// Not in the table (saas.md §12 example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision_type: Option<Decimal>,
    /// Not in the table (saas.md §12 example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
}

impl Validate for OrderLine {
    fn validate(&self) -> Result<(), FieldError> {
        required("orderLineId", &self.order_line_id, 64)?;
        required("chargingMode", &self.charging_mode, 25)?;
        one_of("chargingMode", &self.charging_mode, CHARGING_MODES)
    }
}

/// One `productInfo` entry of an order line (openapi.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderProduct {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_code: Option<String>,
    /// A number (quantity of a linear specification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_value: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
}

/// A `{name, value}` extension parameter (openapi.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExtendParam {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<String>,
}

/// `buyerInfo` (openapi.md §5); any field may be `null`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuyerInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_real_name: Option<String>,
    /// An integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_type: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// §6 License code: activate and query (heartbeat)
// ---------------------------------------------------------------------------------------------

/// `status` of a license code (openapi.md §6.2).
pub const LICENSE_CODE_STATES: &[&str] = &["ALIVE", "EXPIRED", "RELEASED"];

/// Activate request, `POST …/global/v1/license/activate` (openapi.md §6.1). The v2 batch shape is
/// not published; use v1 (openapi.md §8 #7).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LicenseActivateRequest {
    /// The license code.
    #[serde(default)]
    pub license: String,
    /// Actual delivery time, UTC `yyyyMMddHHmmss`, not earlier than the order time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_effect_time: Option<String>,
}

impl Validate for LicenseActivateRequest {
    fn validate(&self) -> Result<(), FieldError> {
        required("license", &self.license, 64)?;
        if let Some(t) = self.real_effect_time.as_deref() {
            optional("real_effect_time", Some(t), 16)?;
            if t.len() != 14 || crate::time::parse_expire_time(t).is_err() {
                return Err(FieldError::invalid(
                    "real_effect_time",
                    "must be yyyyMMddHHmmss (UTC)",
                ));
            }
        }
        Ok(())
    }
}

/// Activate response (openapi.md §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LicenseActivateResponse {
    /// `92020000` on success; see [`LicenseApiCode`].
    #[serde(default)]
    pub error_code: String,
    #[serde(default)]
    pub error_msg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<LicenseActivateData>,
}

impl LicenseActivateResponse {
    pub fn code(&self) -> Option<LicenseApiCode> {
        LicenseApiCode::parse(&self.error_code)
    }
}

impl Validate for LicenseActivateResponse {
    fn validate(&self) -> Result<(), FieldError> {
        required("error_code", &self.error_code, 16)?;
        required("error_msg", &self.error_msg, 1024)?;
        match &self.data {
            Some(data) => data.validate().map_err(|e| e.nested("data")),
            None => Ok(()),
        }
    }
}

/// `data` of the activate response (openapi.md §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LicenseActivateData {
    /// A JSON string holding the code's state; an object is accepted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_code_info: Option<JsonOrString<LicenseCodeInfo>>,
}

impl Validate for LicenseActivateData {
    fn validate(&self) -> Result<(), FieldError> {
        const FIELD: &str = "license_code_info";
        let info = self
            .license_code_info
            .as_ref()
            .ok_or_else(|| FieldError::missing(FIELD))?;
        if info.was_string {
            let text = serde_json::to_string(&info.value)
                .map_err(|e| FieldError::invalid(FIELD, e.to_string()))?;
            if java_len(&text) > 1024 {
                return Err(FieldError::too_long(FIELD, 1024));
            }
        }
        info.value.validate().map_err(|e| e.nested(FIELD))
    }
}

/// The content of `license_code_info` (openapi.md §6.1); tolerant of further fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LicenseCodeInfo {
    /// `ALIVE` after activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `yyyyMMddHHmmss`, an estimate: query for the truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl Validate for LicenseCodeInfo {
    fn validate(&self) -> Result<(), FieldError> {
        match self.status.as_deref() {
            Some(status) => one_of("status", status, LICENSE_CODE_STATES),
            None => Ok(()),
        }
    }
}

/// Query (heartbeat) request, `POST …/global/v1/license/heartbeat` (openapi.md §6.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseHeartbeatRequest {
    /// The license code (legacy online-License products may pass their `instanceId`).
    #[serde(default)]
    pub license: String,
    /// Being phased out in favour of the usage-statistics interface; still accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_info: Option<HeartbeatInfo>,
}

impl Validate for LicenseHeartbeatRequest {
    fn validate(&self) -> Result<(), FieldError> {
        required("license", &self.license, 64)?;
        match &self.heartbeat_info {
            Some(info) => info.validate().map_err(|e| e.nested("heartbeatInfo")),
            None => Ok(()),
        }
    }
}

/// `heartbeatInfo` of the query request (openapi.md §6.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatInfo {
    /// Unique end-user or device identifier in the merchant's software.
    #[serde(default)]
    pub third_party_account: String,
    /// Client IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl Validate for HeartbeatInfo {
    fn validate(&self) -> Result<(), FieldError> {
        required("thirdPartyAccount", &self.third_party_account, 256)?;
        optional("ip", self.ip.as_deref(), 32)
    }
}

/// Query (heartbeat) response (openapi.md §6.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LicenseHeartbeatResponse {
    #[serde(default)]
    pub error_code: String,
    #[serde(default)]
    pub error_msg: String,
    /// Mandatory on success only (an error carries none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<LicenseInfo>,
}

impl LicenseHeartbeatResponse {
    pub fn code(&self) -> Option<LicenseApiCode> {
        LicenseApiCode::parse(&self.error_code)
    }
}

impl Validate for LicenseHeartbeatResponse {
    fn validate(&self) -> Result<(), FieldError> {
        required("error_code", &self.error_code, 16)?;
        required("error_msg", &self.error_msg, 1024)?;
        match &self.data {
            Some(data) => data.validate().map_err(|e| e.nested("data")),
            None if self.error_code == LicenseApiCode::Success.code() => {
                Err(FieldError::missing("data"))
            }
            None => Ok(()),
        }
    }
}

/// `LicenseInfo` of the query response (openapi.md §6.2); extensible, unknown fields ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LicenseInfo {
    #[serde(default)]
    pub license_code: String,
    /// One of [`LICENSE_CODE_STATES`].
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub activate_time: String,
    /// The expiry; its name is not published, `expire_time` as in `license_code_info` is assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
}

impl Validate for LicenseInfo {
    fn validate(&self) -> Result<(), FieldError> {
        required("license_code", &self.license_code, 64)?;
        required("status", &self.status, 10)?;
        one_of("status", &self.status, LICENSE_CODE_STATES)?;
        required("activate_time", &self.activate_time, usize::MAX)
    }
}

/// `error_code` values of the license-code and market-event APIs (openapi.md §6.3). Branch on
/// the code, not on the HTTP status: the tables disagree for `92020001`/`92020002`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LicenseApiCode {
    /// `92020000`.
    Success,
    /// `92020001`: internal error (one table: authentication failure).
    InternalError,
    /// `92020002`.
    InvalidParam,
    /// `92020003`: the code's state does not allow this (e.g. activated twice).
    IllegalState,
    /// `92020004`: the buyer has not received the code yet.
    NotReceived,
    /// `92020005`.
    LicenseCodeNotExist,
    /// `92020011`.
    NotActivated,
    /// `92020020`: the batch contains an invalid code.
    InvalidCodeInBatch,
    /// `95000001` (400): regex / required / length failure.
    ReqParamInvalid,
    /// `95000002` (405).
    MethodNotSupported,
    /// `95000003` (415): `Content-Type` must be `application/json`.
    ContentTypeNotSupported,
    /// `95000004` (400): the body is not JSON.
    MessageNotReadable,
}

impl LicenseApiCode {
    pub const ALL: [Self; 12] = [
        Self::Success,
        Self::InternalError,
        Self::InvalidParam,
        Self::IllegalState,
        Self::NotReceived,
        Self::LicenseCodeNotExist,
        Self::NotActivated,
        Self::InvalidCodeInBatch,
        Self::ReqParamInvalid,
        Self::MethodNotSupported,
        Self::ContentTypeNotSupported,
        Self::MessageNotReadable,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Self::Success => "92020000",
            Self::InternalError => "92020001",
            Self::InvalidParam => "92020002",
            Self::IllegalState => "92020003",
            Self::NotReceived => "92020004",
            Self::LicenseCodeNotExist => "92020005",
            Self::NotActivated => "92020011",
            Self::InvalidCodeInBatch => "92020020",
            Self::ReqParamInvalid => "95000001",
            Self::MethodNotSupported => "95000002",
            Self::ContentTypeNotSupported => "95000003",
            Self::MessageNotReadable => "95000004",
        }
    }
    /// The documented `error_msg`.
    pub const fn message(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::InternalError => "internal error",
            Self::InvalidParam => "invalid param",
            Self::IllegalState => "illegal state",
            Self::NotReceived => "can not active before user received.",
            Self::LicenseCodeNotExist => "license code notexist",
            Self::NotActivated => "license code has been not activated.",
            Self::InvalidCodeInBatch => "Invalid license code exists.",
            Self::ReqParamInvalid => "req param is invalid",
            Self::MethodNotSupported => "Request method not supported",
            Self::ContentTypeNotSupported => "Content type not supported",
            Self::MessageNotReadable => "req message is not readable",
        }
    }
    /// The HTTP status of the main table (200 for every `9202xxxx` code).
    pub const fn http_status(self) -> u16 {
        match self {
            Self::ReqParamInvalid | Self::MessageNotReadable => 400,
            Self::MethodNotSupported => 405,
            Self::ContentTypeNotSupported => 415,
            _ => 200,
        }
    }
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

// ---------------------------------------------------------------------------------------------
// §7 Market-event upload
// ---------------------------------------------------------------------------------------------

/// `type` values of the market-event upload (openapi.md §7).
pub const UPLOAD_TYPES: &[&str] = &["CHARACTERS", "FILE"];

/// Checks the `{event_id}` path parameter of the upload: the `eventId` of `getLicenseAsync`.
pub fn check_event_id(event_id: &str) -> Result<(), FieldError> {
    required("event_id", event_id, 64)
}

/// The `isvUpdateFileReq` JSON part of `POST …/global/v1/market-event/{event_id}/file`
/// (openapi.md §7); the license file itself travels in the `file` part.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MarketEventFileRequest {
    /// `CHARACTERS` (license string) or `FILE` (license file).
    #[serde(rename = "type", default)]
    pub upload_type: String,
    /// Required for `FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// SHA-256 of the file, lower-case hex; required for `FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The license string; required for `CHARACTERS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub characters: Option<String>,
}

impl Validate for MarketEventFileRequest {
    fn validate(&self) -> Result<(), FieldError> {
        required("type", &self.upload_type, 10)?;
        one_of("type", &self.upload_type, UPLOAD_TYPES)?;
        optional("file_name", self.file_name.as_deref(), 1024)?;
        optional("sha256", self.sha256.as_deref(), 1024)?;
        optional("characters", self.characters.as_deref(), 1024)?;
        if self.upload_type == "FILE" {
            required(
                "file_name",
                self.file_name.as_deref().unwrap_or_default(),
                1024,
            )?;
            required("sha256", self.sha256.as_deref().unwrap_or_default(), 1024)
        } else {
            required(
                "characters",
                self.characters.as_deref().unwrap_or_default(),
                1024,
            )
        }
    }
}

/// Market-event upload response (openapi.md §7): `92020000` on success, codes of §6.3.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MarketEventUploadResponse {
    #[serde(default)]
    pub error_code: String,
    #[serde(default)]
    pub error_msg: String,
}

impl MarketEventUploadResponse {
    pub fn code(&self) -> Option<LicenseApiCode> {
        LicenseApiCode::parse(&self.error_code)
    }
}

impl Validate for MarketEventUploadResponse {
    fn validate(&self) -> Result<(), FieldError> {
        required("error_code", &self.error_code, 16)?;
        required("error_msg", &self.error_msg, 1024)
    }
}

// ---------------------------------------------------------------------------------------------
// Field checks and tolerant decoding
// ---------------------------------------------------------------------------------------------

fn check_record_count(count: usize) -> Result<(), FieldError> {
    if count == 0 {
        return Err(FieldError::missing("usage_records"));
    }
    if count > MAX_USAGE_RECORDS {
        return Err(FieldError::invalid(
            "usage_records",
            format!("must hold at most {MAX_USAGE_RECORDS} records"),
        ));
    }
    Ok(())
}

/// `record_time`, `begin_time`, `end_time`: String(17), `yyyyMMdd'T'HHmmss'Z'`, and
/// `begin_time` ≤ `end_time` (openapi.md §3.4 #4).
fn check_usage_times(
    record_time: &str,
    begin_time: &str,
    end_time: &str,
) -> Result<(), FieldError> {
    let mut parsed = Vec::with_capacity(3);
    for (field, value) in [
        ("record_time", record_time),
        ("begin_time", begin_time),
        ("end_time", end_time),
    ] {
        required(field, value, 17)?;
        let t = crate::time::parse_sdk_date(value).map_err(|e| {
            FieldError::invalid(field, format!("must be yyyyMMdd'T'HHmmss'Z' ({e})"))
        })?;
        parsed.push(t);
    }
    if parsed[1] > parsed[2] {
        return Err(FieldError::invalid(
            "end_time",
            "must not be earlier than begin_time",
        ));
    }
    Ok(())
}

/// `usage_value`: String(20), decimal text > 0 with at most 4 decimals (openapi.md §3.2).
fn check_usage_value(value: &str) -> Result<(), FieldError> {
    required("usage_value", value, 20)?;
    let decimals = value.split_once('.').map_or(0, |(_, frac)| frac.len());
    let positive = value.bytes().any(|b| (b'1'..=b'9').contains(&b));
    if !is_decimal(value) || value.starts_with('-') || decimals > 4 || !positive {
        return Err(FieldError::invalid(
            "usage_value",
            "must be a number greater than 0 with at most 4 decimals",
        ));
    }
    Ok(())
}

/// `null` (or absence) as the type's default, for mandatory response fields.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Text that may arrive as a string, a number or a boolean; `null` is absent.
fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Ok(Some(v.to_string()))
        }
        Some(_) => Err(serde::de::Error::custom("must be text")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decode_json;

    /// Body of vector `usage-001` (compact and sorted, as signed).
    const USAGE_PUSH: &str = r#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"9b7a1c2e-0c1d-4d3e-8f00-000000000001","record_time":"20220809T091000Z","usage_value":"99"}]}"#;

    /// The sample order-query response of openapi.md §5.
    const ORDER_QUERY: &str = r#"{"resultCode":"MKT.0000","resultMsg":"Success","orderInfo":{"orderId":"MOCKPERIODYEARNEW","orderType":"NEW","createTime":"20241121090846","orderLine":[{"orderLineId":"MOCKPERIODYEARNEW-000001","chargingMode":"PERIOD","periodType":"year","periodNumber":1,"expireTime":"20251121235959","productInfo":[{"productId":"OFFI846204237451911168","skuCode":"0a4d1578-5295-46a7-92d4-7c803dccc51d","linearValue":50,"productName":"MOCK测试商品,测试规格,基础版,包周期"}],"extendParams":[{"name":"emailDomainName","value":"test.xxxx.com"},{"name":"ip","value":"127.0.0.1"}],"currency":"100","currencyAfterDiscount":"100"}],"buyerInfo":{"mobilePhone":"18688888888","email":null,"customerId":"459bbbec25d24749b2eb83be37b602a8","customerName":"mock_user_01","customerRealName":"测试用户1","customerType":0,"userId":null,"userName":null},"extendParams":[]}}"#;

    const ACTIVATE_RESPONSE: &str = r#"{"error_code":"92020000","error_msg":"success","data":{"license_code_info":"{\"status\":\"ALIVE\",\"expire_time\":\"20230726121646\",\"product_id\":\"12345\",\"amount\":2,\"order_id\":\"CS123\"}"}}"#;

    const HEARTBEAT: &str = r#"{"license":"PLXXXXXX","heartbeatInfo":{"thirdPartyAccount":"myaccount1","ip":"192.168.1.51"}}"#;

    fn record(i: usize) -> UsageRecord {
        UsageRecord {
            begin_time: "20220809T080000Z".to_owned(),
            end_time: "20220809T090000Z".to_owned(),
            instance_id: "7f141bf1-aec8-4859-8323-fb3a8ad50721".to_owned(),
            metering_sn: format!("sn-{i}"),
            record_time: "20220809T091000Z".to_owned(),
            relate_pkg_instance: None,
            usage_value: "99".to_owned(),
        }
    }

    fn usage_err(edit: impl Fn(&mut serde_json::Value)) -> String {
        let mut v: serde_json::Value = serde_json::from_str(USAGE_PUSH).unwrap();
        edit(&mut v["usage_records"][0]);
        decode_json::<UsagePushRequest>(v.to_string().as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn usage_push_vector_decodes_and_serialises_sorted() {
        let r: UsagePushRequest = decode_json(USAGE_PUSH.as_bytes()).unwrap();
        let rec = &r.usage_records[0];
        assert_eq!(rec.instance_id, "7f141bf1-aec8-4859-8323-fb3a8ad50721");
        assert_eq!(rec.metering_sn, "9b7a1c2e-0c1d-4d3e-8f00-000000000001");
        assert_eq!(
            (rec.begin_time.as_str(), rec.end_time.as_str()),
            ("20220809T080000Z", "20220809T090000Z")
        );
        assert_eq!(rec.record_time, "20220809T091000Z");
        assert_eq!(rec.usage_value, "99");
        assert_eq!(rec.relate_pkg_instance, None);
        assert_eq!(serde_json::to_string(&r).unwrap(), USAGE_PUSH);
        let mut with_pkg = r.clone();
        with_pkg.usage_records[0].relate_pkg_instance = Some("pkg-1".to_owned());
        let text = serde_json::to_string(&with_pkg).unwrap();
        assert!(text.contains(
            r#""record_time":"20220809T091000Z","relate_pkg_instance":"pkg-1","usage_value":"99""#
        ));
    }

    #[test]
    fn usage_push_record_limits() {
        let ok = UsagePushRequest {
            usage_records: (0..1000).map(record).collect(),
        };
        assert!(ok.validate().is_ok());
        let too_many = UsagePushRequest {
            usage_records: (0..1001).map(record).collect(),
        };
        assert_eq!(
            too_many.validate().unwrap_err().to_string(),
            "usage_records must hold at most 1000 records"
        );
        let e = decode_json::<UsagePushRequest>(br#"{"usage_records":[]}"#).unwrap_err();
        assert_eq!(e.to_string(), "usage_records is required");
        let e = decode_json::<UsagePushRequest>(b"{}").unwrap_err();
        assert_eq!(e.to_string(), "usage_records is required");
    }

    #[test]
    fn usage_push_rejects_bad_records() {
        for field in [
            "instance_id",
            "metering_sn",
            "begin_time",
            "end_time",
            "record_time",
            "usage_value",
        ] {
            let e = usage_err(|r| {
                r.as_object_mut().unwrap().remove(field);
            });
            assert_eq!(e, format!("usage_records[0].{field} is required"));
        }
        let long =
            |field: &'static str, n: usize| usage_err(move |r| r[field] = "1".repeat(n).into());
        assert_eq!(
            long("instance_id", 65),
            "usage_records[0].instance_id is longer than 64 characters"
        );
        assert_eq!(
            long("metering_sn", 65),
            "usage_records[0].metering_sn is longer than 64 characters"
        );
        assert_eq!(
            long("relate_pkg_instance", 65),
            "usage_records[0].relate_pkg_instance is longer than 64 characters"
        );
        assert_eq!(
            long("usage_value", 21),
            "usage_records[0].usage_value is longer than 20 characters"
        );
        assert_eq!(
            long("begin_time", 18),
            "usage_records[0].begin_time is longer than 17 characters"
        );
        for bad in ["0", "0.0000", "-1", "1.23456", "1e3", "abc", " 1"] {
            let e = usage_err(|r| r["usage_value"] = bad.into());
            assert!(
                e.starts_with("usage_records[0].usage_value must be"),
                "{bad}: {e}"
            );
        }
        for good in ["0.0001", "12.5", "99"] {
            let mut v: serde_json::Value = serde_json::from_str(USAGE_PUSH).unwrap();
            v["usage_records"][0]["usage_value"] = good.into();
            assert!(
                decode_json::<UsagePushRequest>(v.to_string().as_bytes()).is_ok(),
                "{good}"
            );
        }
        // usage_value must be a JSON string.
        assert!(
            usage_err(|r| r["usage_value"] = 99.into()).starts_with("usage_records[0].usage_value")
        );
        assert!(
            usage_err(|r| r["record_time"] = "20220809091000".into())
                .starts_with("usage_records[0].record_time must be")
        );
        assert!(
            usage_err(|r| r["begin_time"] = "20221309T080000Z".into())
                .starts_with("usage_records[0].begin_time")
        );
        let e = usage_err(|r| r["begin_time"] = "20220809T100000Z".into());
        assert_eq!(
            e,
            "usage_records[0].end_time must not be earlier than begin_time"
        );
        assert_eq!(
            usage_err(|r| r["usage_value"] = "".into()),
            "usage_records[0].usage_value is required"
        );
        // Unknown fields are ignored.
        let mut v: serde_json::Value = serde_json::from_str(USAGE_PUSH).unwrap();
        v["usage_records"][0]["region"] = "cn-north-4".into();
        assert!(decode_json::<UsagePushRequest>(v.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn old_usage_push() {
        let body = r#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"i-1","product_id":"OFFI1","record_time":"20220809T091000Z","usage_value":"1.5"}]}"#;
        let r: OldUsagePushRequest = decode_json(body.as_bytes()).unwrap();
        assert_eq!(r.usage_records[0].product_id, "OFFI1");
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
        let e = decode_json::<OldUsagePushRequest>(
            body.replace(r#""product_id":"OFFI1","#, "").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "usage_records[0].product_id is required");
        let long = body.replace("OFFI1", &"P".repeat(65));
        let e = decode_json::<OldUsagePushRequest>(long.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "usage_records[0].product_id is longer than 64 characters"
        );
    }

    #[test]
    fn usage_push_responses() {
        let ok: UsagePushResponse =
            decode_json(br#"{"error_code":"MKT.0000","error_msg":"success"}"#).unwrap();
        assert!(ok.is_success());
        let bad: UsagePushResponse = decode_json(
            br#"{"error_code":"MKT.9002","error_msg":"invalid usage entities","abnormal_usage_data":[{"metering_sn":"x","reason":"?"}]}"#,
        )
        .unwrap();
        assert_eq!(bad.code(), Some(UsagePushCode::InvalidUsageEntities));
        assert_eq!(bad.abnormal_usage_data.as_ref().map(Vec::len), Some(1));
        assert!(!bad.code().unwrap().is_retryable());
        assert!(UsagePushCode::SystemError.is_retryable());
        assert!(!UsagePushCode::InvalidBodySign.is_retryable());
        assert_eq!(UsagePushCode::InvalidBodySign.http_status(), 400);
        assert_eq!(UsagePushCode::NoAuthority.http_status(), 401);
        assert_eq!(UsagePushCode::BeginTimeTooOld.http_status(), 500);
        for c in UsagePushCode::ALL {
            assert_eq!(UsagePushCode::parse(c.code()), Some(c));
        }
        assert_eq!(UsagePushCode::parse("MKT.1234"), None);
        let e = decode_json::<UsagePushResponse>(br#"{"error_msg":"x"}"#).unwrap_err();
        assert_eq!(e.to_string(), "error_code is required");
    }

    #[test]
    fn apig_errors() {
        let body = r#"{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information","request_id":"abc"}"#;
        let e: ApigError = decode_json(body.as_bytes()).unwrap();
        assert_eq!(e.code(), Some(GatewayErrorCode::IamAuthFailed));
        assert!(e.code().unwrap().is_auth_failure());
        assert_eq!(serde_json::to_string(&e).unwrap(), body);
        assert!(!GatewayErrorCode::BadRequest.is_auth_failure());
        assert_eq!(GatewayErrorCode::ApiNotFound.http_status(), 404);
        for c in GatewayErrorCode::ALL {
            assert_eq!(GatewayErrorCode::parse(c.code()), Some(c));
        }
        assert_eq!(
            decode_json::<ApigError>(b"{}").unwrap_err().to_string(),
            "error_code is required"
        );
    }

    #[test]
    fn order_query_sample() {
        let r: OrderQueryResponse = decode_json(ORDER_QUERY.as_bytes()).unwrap();
        assert!(r.is_success());
        let info = r.order_info.as_ref().unwrap();
        assert_eq!(info.order_id, "MOCKPERIODYEARNEW");
        assert_eq!(info.order_type, "NEW");
        assert_eq!(info.create_time, "20241121090846");
        assert_eq!(info.extend_params.as_deref(), Some(&[][..]));
        let line = &info.order_line[0];
        assert_eq!(line.order_line_id, "MOCKPERIODYEARNEW-000001");
        assert_eq!(line.charging_mode, "PERIOD");
        assert_eq!(line.period_type.as_deref(), Some("year"));
        assert_eq!(
            line.period_number.as_ref().and_then(Decimal::as_i64),
            Some(1)
        );
        assert_eq!(line.expire_time.as_deref(), Some("20251121235959"));
        assert_eq!(
            (
                line.currency.as_deref(),
                line.currency_after_discount.as_deref()
            ),
            (Some("100"), Some("100"))
        );
        let product = &line.product_info.as_ref().unwrap()[0];
        assert_eq!(
            product.product_id.as_deref(),
            Some("OFFI846204237451911168")
        );
        assert_eq!(
            product.sku_code.as_deref(),
            Some("0a4d1578-5295-46a7-92d4-7c803dccc51d")
        );
        assert_eq!(
            product.linear_value.as_ref().map(Decimal::as_str),
            Some("50")
        );
        assert_eq!(
            product.product_name.as_deref(),
            Some("MOCK测试商品,测试规格,基础版,包周期")
        );
        let params = line.extend_params.as_ref().unwrap();
        assert_eq!(
            (params[1].name.as_str(), params[1].value.as_deref()),
            ("ip", Some("127.0.0.1"))
        );
        let buyer = info.buyer_info.as_ref().unwrap();
        assert_eq!(
            buyer.customer_id.as_deref(),
            Some("459bbbec25d24749b2eb83be37b602a8")
        );
        assert_eq!(buyer.customer_real_name.as_deref(), Some("测试用户1"));
        assert_eq!(
            buyer.customer_type.as_ref().and_then(Decimal::as_i64),
            Some(0)
        );
        assert_eq!((buyer.email.as_ref(), buyer.user_id.as_ref()), (None, None));

        // Round trip: the same JSON apart from the nulls, which are omitted.
        let out: serde_json::Value = serde_json::to_value(&r).unwrap();
        let mut expected: serde_json::Value = serde_json::from_str(ORDER_QUERY).unwrap();
        let buyer = expected["orderInfo"]["buyerInfo"].as_object_mut().unwrap();
        buyer.retain(|_, v| !v.is_null());
        assert_eq!(out, expected);
    }

    #[test]
    fn order_query_is_tolerant_but_checks_enums() {
        let mut v: serde_json::Value = serde_json::from_str(ORDER_QUERY).unwrap();
        v["orderInfo"]["orderLine"][0]["trialFlag"] = "0".into();
        v["orderInfo"]["orderLine"][0]["orderAmount"] = serde_json::json!(12.78);
        v["orderInfo"]["orderLine"][0]["currency"] = serde_json::json!(100);
        v["orderInfo"]["orderLine"][0]["somethingNew"] = serde_json::json!({"a": [1]});
        v["orderInfo"]["extendParams"] = serde_json::Value::Null;
        v["orderInfo"]["buyerInfo"]["customerType"] = serde_json::Value::Null;
        let r: OrderQueryResponse = decode_json(v.to_string().as_bytes()).unwrap();
        let line = &r.order_info.as_ref().unwrap().order_line[0];
        assert_eq!(line.trial_flag.as_deref(), Some("0"));
        assert_eq!(
            line.order_amount.as_ref().map(Decimal::as_str),
            Some("12.78")
        );
        assert_eq!(line.currency.as_deref(), Some("100"));

        let err = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(ORDER_QUERY).unwrap();
            edit(&mut v);
            decode_json::<OrderQueryResponse>(v.to_string().as_bytes())
                .unwrap_err()
                .to_string()
        };
        let e = err(&|v| v["orderInfo"]["orderType"] = "REFUND".into());
        assert!(
            e.starts_with("orderInfo.orderType must be one of NEW, TRIAL"),
            "{e}"
        );
        let e = err(&|v| v["orderInfo"]["orderLine"][0]["chargingMode"] = "MONTHLY".into());
        assert!(
            e.starts_with("orderInfo.orderLine[0].chargingMode must be one of"),
            "{e}"
        );
        assert_eq!(
            err(&|v| v["orderInfo"]["orderId"] = serde_json::Value::Null),
            "orderInfo.orderId is required"
        );
        assert_eq!(
            err(&|v| v["orderInfo"]["orderLine"] = serde_json::json!([])),
            "orderInfo.orderLine is required"
        );
        assert_eq!(
            err(&|v| v["orderInfo"]["orderLine"][0]["orderLineId"] = "L".repeat(65).into()),
            "orderInfo.orderLine[0].orderLineId is longer than 64 characters"
        );
        assert_eq!(
            err(&|v| v["resultMsg"] = serde_json::Value::Null),
            "resultMsg is required"
        );
        assert_eq!(
            err(&|v| v["resultCode"] = "R".repeat(17).into()),
            "resultCode is longer than 16 characters"
        );
        // A failure without orderInfo.
        let r: OrderQueryResponse =
            decode_json(br#"{"resultCode":"MKT.0101","resultMsg":"invalid parameter"}"#).unwrap();
        assert!(!r.is_success() && r.order_info.is_none());
    }

    #[test]
    fn order_query_params() {
        let p = OrderQueryParams {
            order_id: "MOCKPERIODYEARNEW".to_owned(),
            order_line_id: Some("MOCKPERIODYEARNEW-000001".to_owned()),
        };
        let pairs = p.to_params();
        assert_eq!(
            pairs[0],
            ("orderId".to_owned(), "MOCKPERIODYEARNEW".to_owned())
        );
        assert_eq!(pairs[1].0, "orderLineId");
        assert_eq!(
            crate::model::decode_params::<OrderQueryParams>(&pairs).unwrap(),
            p
        );
        let e = crate::model::decode_params::<OrderQueryParams>(&[]).unwrap_err();
        assert_eq!(e.to_string(), "orderId is required");
        let long = vec![("orderId".to_owned(), "o".repeat(65))];
        let e = crate::model::decode_params::<OrderQueryParams>(&long).unwrap_err();
        assert_eq!(e.to_string(), "orderId is longer than 64 characters");
    }

    #[test]
    fn license_activate() {
        let body = r#"{"license":"PLXXXXXX","real_effect_time":"20230726121646"}"#;
        let r: LicenseActivateRequest = decode_json(body.as_bytes()).unwrap();
        assert_eq!(r.real_effect_time.as_deref(), Some("20230726121646"));
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
        assert_eq!(
            decode_json::<LicenseActivateRequest>(b"{}")
                .unwrap_err()
                .to_string(),
            "license is required"
        );
        let long = format!(r#"{{"license":"{}"}}"#, "L".repeat(65));
        assert_eq!(
            decode_json::<LicenseActivateRequest>(long.as_bytes())
                .unwrap_err()
                .to_string(),
            "license is longer than 64 characters"
        );
        for bad in ["2023-07-26", "20230726121646000", "20231326121646"] {
            let b = format!(r#"{{"license":"L","real_effect_time":"{bad}"}}"#);
            let e = decode_json::<LicenseActivateRequest>(b.as_bytes()).unwrap_err();
            assert!(e.to_string().starts_with("real_effect_time"), "{bad}: {e}");
        }

        let resp: LicenseActivateResponse = decode_json(ACTIVATE_RESPONSE.as_bytes()).unwrap();
        assert_eq!(resp.code(), Some(LicenseApiCode::Success));
        let info = resp
            .data
            .as_ref()
            .unwrap()
            .license_code_info
            .as_ref()
            .unwrap();
        assert!(info.was_string);
        assert_eq!(info.value.status.as_deref(), Some("ALIVE"));
        assert_eq!(info.value.expire_time.as_deref(), Some("20230726121646"));
        assert_eq!(
            info.value.amount.as_ref().and_then(Decimal::as_i64),
            Some(2)
        );
        assert_eq!(info.value.order_id.as_deref(), Some("CS123"));
        assert_eq!(serde_json::to_string(&resp).unwrap(), ACTIVATE_RESPONSE);

        let bad_status = ACTIVATE_RESPONSE.replace("ALIVE", "DEAD");
        let e = decode_json::<LicenseActivateResponse>(bad_status.as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("data.license_code_info.status must be one of"),
            "{e}"
        );
        let e = decode_json::<LicenseActivateResponse>(
            br#"{"error_code":"92020000","error_msg":"success","data":{}}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "data.license_code_info is required");
        let e =
            decode_json::<LicenseActivateResponse>(br#"{"error_code":"92020003"}"#).unwrap_err();
        assert_eq!(e.to_string(), "error_msg is required");
        let twice: LicenseActivateResponse =
            decode_json(br#"{"error_code":"92020003","error_msg":"illegal state"}"#).unwrap();
        assert_eq!(twice.code(), Some(LicenseApiCode::IllegalState));
    }

    #[test]
    fn license_heartbeat() {
        let r: LicenseHeartbeatRequest = decode_json(HEARTBEAT.as_bytes()).unwrap();
        let info = r.heartbeat_info.as_ref().unwrap();
        assert_eq!(
            (info.third_party_account.as_str(), info.ip.as_deref()),
            ("myaccount1", Some("192.168.1.51"))
        );
        assert_eq!(serde_json::to_string(&r).unwrap(), HEARTBEAT);
        assert!(decode_json::<LicenseHeartbeatRequest>(br#"{"license":"PLXXXXXX"}"#).is_ok());
        let e = decode_json::<LicenseHeartbeatRequest>(
            br#"{"license":"L","heartbeatInfo":{"ip":"1.2.3.4"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "heartbeatInfo.thirdPartyAccount is required");
        let long = HEARTBEAT.replace("192.168.1.51", &"1".repeat(33));
        let e = decode_json::<LicenseHeartbeatRequest>(long.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "heartbeatInfo.ip is longer than 32 characters"
        );
        let long = HEARTBEAT.replace("myaccount1", &"a".repeat(257));
        let e = decode_json::<LicenseHeartbeatRequest>(long.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "heartbeatInfo.thirdPartyAccount is longer than 256 characters"
        );

        let body = r#"{"error_code":"92020000","error_msg":"Success","data":{"license_code":"PLXXXXXX","status":"EXPIRED","activate_time":"20230726121646","expire_time":"20240726121646","future_field":1}}"#;
        let resp: LicenseHeartbeatResponse = decode_json(body.as_bytes()).unwrap();
        let data = resp.data.as_ref().unwrap();
        assert_eq!(
            (data.license_code.as_str(), data.status.as_str()),
            ("PLXXXXXX", "EXPIRED")
        );
        assert_eq!(data.expire_time.as_deref(), Some("20240726121646"));
        assert!(
            !serde_json::to_string(&resp)
                .unwrap()
                .contains("future_field")
        );
        let e =
            decode_json::<LicenseHeartbeatResponse>(body.replace("EXPIRED", "FROZEN").as_bytes())
                .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("data.status must be one of ALIVE, EXPIRED, RELEASED"),
            "{e}"
        );
        let e = decode_json::<LicenseHeartbeatResponse>(
            body.replace(r#""activate_time":"20230726121646","#, "")
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "data.activate_time is required");
        let e = decode_json::<LicenseHeartbeatResponse>(
            br#"{"error_code":"92020000","error_msg":"Success"}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "data is required");
        let missing: LicenseHeartbeatResponse =
            decode_json(br#"{"error_code":"92020005","error_msg":"license code notexist"}"#)
                .unwrap();
        assert_eq!(missing.code(), Some(LicenseApiCode::LicenseCodeNotExist));
        assert_eq!(
            LicenseApiCode::LicenseCodeNotExist.message(),
            "license code notexist"
        );
        assert_eq!(LicenseApiCode::ContentTypeNotSupported.http_status(), 415);
        for c in LicenseApiCode::ALL {
            assert_eq!(LicenseApiCode::parse(c.code()), Some(c));
        }
    }

    #[test]
    fn market_event_upload() {
        let chars =
            r#"{"type":"CHARACTERS","characters":"0078369f54-a3ce-4dc7-8a62-904555416f9000"}"#;
        let r: MarketEventFileRequest = decode_json(chars.as_bytes()).unwrap();
        assert_eq!(r.upload_type, "CHARACTERS");
        assert_eq!(serde_json::to_string(&r).unwrap(), chars);
        let file = r#"{"type":"FILE","file_name":"license.lic","sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#;
        assert!(decode_json::<MarketEventFileRequest>(file.as_bytes()).is_ok());
        let err = |b: &str| {
            decode_json::<MarketEventFileRequest>(b.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(r#"{"characters":"x"}"#), "type is required");
        assert!(
            err(r#"{"type":"TEXT","characters":"x"}"#)
                .starts_with("type must be one of CHARACTERS, FILE")
        );
        assert_eq!(err(r#"{"type":"CHARACTERS"}"#), "characters is required");
        assert_eq!(
            err(r#"{"type":"FILE","sha256":"ab"}"#),
            "file_name is required"
        );
        assert_eq!(
            err(r#"{"type":"FILE","file_name":"a.lic"}"#),
            "sha256 is required"
        );
        assert_eq!(
            err(&format!(
                r#"{{"type":"CHARACTERS","characters":"{}"}}"#,
                "c".repeat(1025)
            )),
            "characters is longer than 1024 characters"
        );
        assert!(check_event_id("8****e5694*****c8").is_ok());
        assert_eq!(
            check_event_id("").unwrap_err().to_string(),
            "event_id is required"
        );
        assert_eq!(
            check_event_id(&"e".repeat(65)).unwrap_err().to_string(),
            "event_id is longer than 64 characters"
        );

        let resp: MarketEventUploadResponse =
            decode_json(br#"{"error_code":"92020000","error_msg":"Success"}"#).unwrap();
        assert_eq!(resp.code(), Some(LicenseApiCode::Success));
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"error_code":"92020000","error_msg":"Success"}"#
        );
        let e =
            decode_json::<MarketEventUploadResponse>(br#"{"error_code":"92020000"}"#).unwrap_err();
        assert_eq!(e.to_string(), "error_msg is required");
    }
}
