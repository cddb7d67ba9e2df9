//! SaaS V2 production interface (saas.md §5): the JSON bodies KooGallery `POST`s to the
//! merchant's production URL, and the merchant's answers.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    Decimal, JsonOrString, ResultEnvelope, TestFlag, Validate, decode_json, each, is_decimal,
    is_test, max_len, one_of, optional, peek_activity, required,
};
use crate::ResultCode;
use crate::error::{Error, FieldError};

/// At most this many IDs in one `queryInstance` (saas.md §5.2, §13.8).
pub const MAX_QUERY_IDS: usize = 100;

// ---------------------------------------------------------------------------------------------
// Checks shared with SaaS V1
// ---------------------------------------------------------------------------------------------

/// `activity` is present, at most `max` characters and names the expected activity.
pub(super) fn check_activity(
    value: &str,
    expected: &'static [&'static str],
    max: usize,
) -> Result<(), FieldError> {
    required("activity", value, max)?;
    one_of("activity", value, expected)
}

/// `yyyyMMddHHmmss`, optionally followed by milliseconds: 14 or 17 digits (saas.md §5.3).
pub(super) fn check_expire_time(field: &str, value: &str) -> Result<(), FieldError> {
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    if digits && matches!(value.len(), 14 | 17) {
        Ok(())
    } else {
        Err(FieldError::invalid(
            field,
            "must be 14 or 17 digits (yyyyMMddHHmmss[SSS])",
        ))
    }
}

/// The IDs of a comma-separated `instanceId` list, trimmed, empty entries dropped.
pub(super) fn split_instance_ids(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .collect()
}

/// 1 to [`MAX_QUERY_IDS`] IDs of at most 64 characters each; the total length is not limited
/// (saas.md §5.2: String(100) contradicts the 100-ID batch).
pub(super) fn check_instance_ids(value: &str) -> Result<(), FieldError> {
    let ids = split_instance_ids(value);
    if ids.is_empty() {
        return Err(FieldError::missing("instanceId"));
    }
    if ids.len() > MAX_QUERY_IDS {
        return Err(FieldError::invalid(
            "instanceId",
            format!("lists {} IDs, more than {MAX_QUERY_IDS}", ids.len()),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        max_len("instanceId", id, 64)
            .map_err(|_| FieldError::too_long(format!("instanceId[{i}]"), 64))?;
    }
    Ok(())
}

/// `resultCode` (M, 6) and `resultMsg` (O, 255) of a response (saas.md §2.3).
pub(super) fn check_result(code: &str, msg: Option<&str>) -> Result<(), FieldError> {
    required("resultCode", code, 6)?;
    optional("resultMsg", msg, 255)
}

/// `encryptType`: `1` = AES-256, `2` = AES-128 (security.md §13.3).
pub(super) fn check_encrypt_type(value: Option<&str>) -> Result<(), FieldError> {
    value.map_or(Ok(()), |v| one_of("encryptType", v, &["1", "2"]))
}

/// Whether a create answer accepted the order (`000000`, or `000004` asynchronously), so that it
/// must carry an `instanceId`.
pub(super) fn is_accepted(code: &str) -> bool {
    code == ResultCode::Success.code() || code == ResultCode::Processing.code()
}

// ---------------------------------------------------------------------------------------------
// Enumerated values
// ---------------------------------------------------------------------------------------------

/// `scene` of `refreshInstance` (saas.md §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scene {
    /// `TRIAL_TO_FORMAL`: trial converted to a paid period.
    TrialToFormal,
    /// `RENEWAL`: renewal.
    Renewal,
    /// `UNSUBSCRIBE_RENEWAL_PERIOD`: refund of a renewal period; the expiry moves back.
    UnsubscribeRenewalPeriod,
    /// `RENEWAL_CHANGE`: renewal with a specification change.
    RenewalChange,
}

impl Scene {
    pub const ALL: [Scene; 4] = [
        Self::TrialToFormal,
        Self::Renewal,
        Self::UnsubscribeRenewalPeriod,
        Self::RenewalChange,
    ];
    /// The wire values, in the order of [`Scene::ALL`].
    pub const NAMES: &'static [&'static str] = &[
        "TRIAL_TO_FORMAL",
        "RENEWAL",
        "UNSUBSCRIBE_RENEWAL_PERIOD",
        "RENEWAL_CHANGE",
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TrialToFormal => "TRIAL_TO_FORMAL",
            Self::Renewal => "RENEWAL",
            Self::UnsubscribeRenewalPeriod => "UNSUBSCRIBE_RENEWAL_PERIOD",
            Self::RenewalChange => "RENEWAL_CHANGE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `status` of `updateInstanceStatus` (saas.md §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusChange {
    /// `FREEZE`: expiry or rule violation; keep the data.
    Freeze,
    /// `UNFREEZE`: renewal or violation cleared.
    Unfreeze,
}

impl StatusChange {
    pub const ALL: [StatusChange; 2] = [Self::Freeze, Self::Unfreeze];
    /// The wire values, in the order of [`StatusChange::ALL`].
    pub const NAMES: &'static [&'static str] = &["FREEZE", "UNFREEZE"];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Freeze => "FREEZE",
            Self::Unfreeze => "UNFREEZE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// `newInstance` (saas.md §5.1): provision a paid purchase. Carries only IDs; the order itself is
/// read with the query-order API (§11).
///
/// One documentation page shows a body with nested `buyerInfo`/`orderInfo` and no top-level IDs
/// (§12). Such a body is accepted: `orderId` and `businessId` are taken from the first
/// `orderInfo` entry, and `orderLineId`, which it lacks, may stay empty.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "NewInstanceWire")]
pub struct NewInstance {
    /// Always `newInstance`.
    pub activity: String,
    /// KooGallery order ID.
    pub order_id: String,
    /// Order line ID (`<orderId>-000001` in examples); empty only for the nested body shape.
    pub order_line_id: String,
    /// Different on every call, retries included; never an idempotency key.
    pub business_id: String,
    /// `1` = seller-console debugging or dial test (saas.md §2.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
    /// The body had the nested `buyerInfo`/`orderInfo` shape of saas.md §12.
    #[serde(skip)]
    pub nested_order_data: bool,
}

/// `newInstance` as received, before the IDs of the nested shape are lifted.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewInstanceWire {
    #[serde(default)]
    activity: String,
    #[serde(default)]
    order_id: String,
    #[serde(default)]
    order_line_id: String,
    #[serde(default)]
    business_id: String,
    #[serde(default)]
    test_flag: Option<TestFlag>,
    /// Kept untyped: only its IDs are read, and nothing in it may fail decoding.
    #[serde(default)]
    order_info: Option<serde_json::Value>,
}

impl From<NewInstanceWire> for NewInstance {
    fn from(wire: NewInstanceWire) -> Self {
        let first_order = match &wire.order_info {
            Some(serde_json::Value::Array(orders)) => orders.first(),
            Some(order @ serde_json::Value::Object(_)) => Some(order),
            _ => None,
        };
        let lift = |top: String, key: &str| {
            if !top.is_empty() {
                return top;
            }
            first_order
                .and_then(|order| order.get(key))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .unwrap_or_default()
        };
        Self {
            activity: wire.activity,
            order_id: lift(wire.order_id, "orderId"),
            order_line_id: lift(wire.order_line_id, "orderLineId"),
            business_id: lift(wire.business_id, "businessId"),
            test_flag: wire.test_flag,
            nested_order_data: first_order.is_some(),
        }
    }
}

impl NewInstance {
    pub const ACTIVITY: &'static str = "newInstance";
}

impl Validate for NewInstance {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 20)?;
        required("orderId", &self.order_id, 64)?;
        if self.nested_order_data {
            max_len("orderLineId", &self.order_line_id, 64)?;
        } else {
            required("orderLineId", &self.order_line_id, 64)?;
        }
        required("businessId", &self.business_id, 64)
    }
}

/// `queryInstance` (saas.md §5.2): access information and usage of one or more instances.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryInstance {
    /// Always `queryInstance`.
    #[serde(default)]
    pub activity: String,
    /// One instance ID or a comma-separated batch of at most 100; see [`Self::instance_ids`].
    #[serde(default)]
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
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
        check_instance_ids(&self.instance_id)
    }
}

/// `refreshInstance` (saas.md §5.3): set a new expiry after a renewal, trial conversion, renewal
/// refund or renewal change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshInstance {
    /// Always `refreshInstance`.
    #[serde(default)]
    pub activity: String,
    /// One of [`Scene::NAMES`]; see [`Self::scene`].
    #[serde(default)]
    pub scene: String,
    /// The new (conversion, renewal or refund) order, not the purchase order.
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub order_line_id: String,
    #[serde(default)]
    pub instance_id: String,
    /// The new product ID when the period type changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    /// The new absolute expiry, UTC, 14 or 17 digits.
    #[serde(default)]
    pub expire_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl RefreshInstance {
    pub const ACTIVITY: &'static str = "refreshInstance";

    /// The scene, if it is a documented one (always, after validation).
    pub fn scene(&self) -> Option<Scene> {
        Scene::parse(&self.scene)
    }
}

impl Validate for RefreshInstance {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 20)?;
        required("scene", &self.scene, 64)?;
        one_of("scene", &self.scene, Scene::NAMES)?;
        required("orderId", &self.order_id, 64)?;
        required("orderLineId", &self.order_line_id, 64)?;
        required("instanceId", &self.instance_id, 64)?;
        optional("productId", self.product_id.as_deref(), 64)?;
        required("expireTime", &self.expire_time, 20)?;
        check_expire_time("expireTime", &self.expire_time)
    }
}

/// `updateInstanceStatus` (saas.md §5.4): freeze or unfreeze an instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInstanceStatus {
    /// Always `updateInstanceStatus`.
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub instance_id: String,
    /// `FREEZE` or `UNFREEZE`; see [`Self::status`].
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl UpdateInstanceStatus {
    pub const ACTIVITY: &'static str = "updateInstanceStatus";

    /// The requested status, if it is a documented one (always, after validation).
    pub fn status(&self) -> Option<StatusChange> {
        StatusChange::parse(&self.status)
    }
}

impl Validate for UpdateInstanceStatus {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 32)?;
        required("instanceId", &self.instance_id, 64)?;
        required("status", &self.status, 32)?;
        one_of("status", &self.status, StatusChange::NAMES)
    }
}

/// `releaseInstance` (saas.md §5.5): delete an instance and its data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseInstance {
    /// Always `releaseInstance`.
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub instance_id: String,
    /// The unsubscription order, when an unsubscription triggered the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_line_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl ReleaseInstance {
    pub const ACTIVITY: &'static str = "releaseInstance";
}

impl Validate for ReleaseInstance {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 32)?;
        required("instanceId", &self.instance_id, 64)?;
        optional("orderId", self.order_id.as_deref(), 64)?;
        optional("orderLineId", self.order_line_id.as_deref(), 64)
    }
}

/// `upgradeInstance` (saas.md §5.6): a paid upgrade or scale-out; the new SKU comes from the
/// query-order API.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeInstance {
    /// Always `upgradeInstance`.
    #[serde(default)]
    pub activity: String,
    /// Unchanged by the upgrade.
    #[serde(default)]
    pub instance_id: String,
    /// The new upgrade order; the idempotency key.
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub order_line_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl UpgradeInstance {
    pub const ACTIVITY: &'static str = "upgradeInstance";
}

impl Validate for UpgradeInstance {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 32)?;
        required("instanceId", &self.instance_id, 64)?;
        required("orderId", &self.order_id, 64)?;
        required("orderLineId", &self.order_line_id, 64)
    }
}

/// `changeInstanceCheck` (saas.md §5.7): may the instance change to `productInfo` on renewal?
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeInstanceCheck {
    /// Always `changeInstanceCheck`.
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub instance_id: String,
    /// The target product, sent as a JSON object or as a JSON-encoded string (mandatory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_info: Option<JsonOrString<ProductInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl ChangeInstanceCheck {
    pub const ACTIVITY: &'static str = "changeInstanceCheck";
}

impl Validate for ChangeInstanceCheck {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 32)?;
        required("instanceId", &self.instance_id, 64)?;
        let product = self
            .product_info
            .as_ref()
            .ok_or_else(|| FieldError::missing("productInfo"))?;
        product
            .value
            .validate()
            .map_err(|e| e.nested("productInfo"))
    }
}

/// The target product of `changeInstanceCheck` (saas.md §5.7).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductInfo {
    /// One per period type under a `skuCode`.
    #[serde(default)]
    pub product_id: String,
    /// Specification ID, stable across period-type changes.
    #[serde(default)]
    pub sku_code: String,
    /// Quantity of the linear attribute, if any; a whole number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_value: Option<Decimal>,
    #[serde(default)]
    pub product_name: String,
}

impl Validate for ProductInfo {
    fn validate(&self) -> Result<(), FieldError> {
        required("productId", &self.product_id, 64)?;
        required("skuCode", &self.sku_code, 64)?;
        if self
            .linear_value
            .as_ref()
            .is_some_and(|v| v.as_i64().is_none())
        {
            return Err(FieldError::invalid("linearValue", "must be a whole number"));
        }
        required("productName", &self.product_name, 64)
    }
}

/// `orderNotify` (saas.md §5.8): an order was placed for a product with order notification on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderNotify {
    /// Always `orderNotify`.
    #[serde(default)]
    pub activity: String,
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub order_line_id: String,
    /// Marked M in §5.8 but "default `0`"; absent is accepted as real traffic (§2.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flag: Option<TestFlag>,
}

impl OrderNotify {
    pub const ACTIVITY: &'static str = "orderNotify";
}

impl Validate for OrderNotify {
    fn validate(&self) -> Result<(), FieldError> {
        check_activity(&self.activity, &[Self::ACTIVITY], 20)?;
        required("orderId", &self.order_id, 64)?;
        required("orderLineId", &self.order_line_id, 64)
    }
}

/// Any V2 request, selected by its `activity`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SaasV2Request {
    NewInstance(NewInstance),
    QueryInstance(QueryInstance),
    RefreshInstance(RefreshInstance),
    UpdateInstanceStatus(UpdateInstanceStatus),
    ReleaseInstance(ReleaseInstance),
    UpgradeInstance(UpgradeInstance),
    ChangeInstanceCheck(ChangeInstanceCheck),
    OrderNotify(OrderNotify),
}

impl SaasV2Request {
    /// Decodes and validates a request body; an unknown `activity` is
    /// [`Error::UnknownActivity`].
    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        let activity = peek_activity(body)?;
        match activity.as_str() {
            NewInstance::ACTIVITY => decode_json(body).map(Self::NewInstance),
            QueryInstance::ACTIVITY => decode_json(body).map(Self::QueryInstance),
            RefreshInstance::ACTIVITY => decode_json(body).map(Self::RefreshInstance),
            UpdateInstanceStatus::ACTIVITY => decode_json(body).map(Self::UpdateInstanceStatus),
            ReleaseInstance::ACTIVITY => decode_json(body).map(Self::ReleaseInstance),
            UpgradeInstance::ACTIVITY => decode_json(body).map(Self::UpgradeInstance),
            ChangeInstanceCheck::ACTIVITY => decode_json(body).map(Self::ChangeInstanceCheck),
            OrderNotify::ACTIVITY => decode_json(body).map(Self::OrderNotify),
            _ => Err(Error::UnknownActivity(activity)),
        }
    }

    /// The wire name of the activity.
    pub fn activity(&self) -> &'static str {
        match self {
            Self::NewInstance(_) => NewInstance::ACTIVITY,
            Self::QueryInstance(_) => QueryInstance::ACTIVITY,
            Self::RefreshInstance(_) => RefreshInstance::ACTIVITY,
            Self::UpdateInstanceStatus(_) => UpdateInstanceStatus::ACTIVITY,
            Self::ReleaseInstance(_) => ReleaseInstance::ACTIVITY,
            Self::UpgradeInstance(_) => UpgradeInstance::ACTIVITY,
            Self::ChangeInstanceCheck(_) => ChangeInstanceCheck::ACTIVITY,
            Self::OrderNotify(_) => OrderNotify::ACTIVITY,
        }
    }

    /// Whether this is a debugging or dial-test call (`testFlag` = 1, saas.md §2.4).
    pub fn test_flag(&self) -> bool {
        is_test(match self {
            Self::NewInstance(r) => r.test_flag,
            Self::QueryInstance(r) => r.test_flag,
            Self::RefreshInstance(r) => r.test_flag,
            Self::UpdateInstanceStatus(r) => r.test_flag,
            Self::ReleaseInstance(r) => r.test_flag,
            Self::UpgradeInstance(r) => r.test_flag,
            Self::ChangeInstanceCheck(r) => r.test_flag,
            Self::OrderNotify(r) => r.test_flag,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// Answer to `refreshInstance` (saas.md §5.3).
pub type RefreshInstanceResponse = ResultEnvelope;
/// Answer to `updateInstanceStatus` (saas.md §5.4).
pub type UpdateInstanceStatusResponse = ResultEnvelope;
/// Answer to `releaseInstance` (saas.md §5.5).
pub type ReleaseInstanceResponse = ResultEnvelope;
/// Answer to `upgradeInstance` (saas.md §5.6).
pub type UpgradeInstanceResponse = ResultEnvelope;
/// Answer to `changeInstanceCheck` (saas.md §5.7): `000000` allows the change.
pub type ChangeInstanceCheckResponse = ResultEnvelope;
/// Answer to `orderNotify` (saas.md §5.8).
pub type OrderNotifyResponse = ResultEnvelope;

/// Answer to `newInstance` (saas.md §5.1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInstanceResponse {
    /// `000000` provisioned, `000004` provisioning asynchronously, other codes refuse (§3).
    #[serde(default)]
    pub result_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_msg: Option<String>,
    /// The merchant's instance ID, the same for every call of an order line; mandatory when the
    /// order is accepted.
    #[serde(default)]
    pub instance_id: String,
}

impl NewInstanceResponse {
    /// An answer with the code's standard message.
    pub fn new(code: ResultCode, instance_id: impl Into<String>) -> Self {
        Self {
            result_code: code.code().to_owned(),
            result_msg: Some(code.message().to_owned()),
            instance_id: instance_id.into(),
        }
    }
}

impl Validate for NewInstanceResponse {
    fn validate(&self) -> Result<(), FieldError> {
        check_result(&self.result_code, self.result_msg.as_deref())?;
        if is_accepted(&self.result_code) {
            required("instanceId", &self.instance_id, 64)
        } else {
            max_len("instanceId", &self.instance_id, 64)
        }
    }
}

/// Answer to `queryInstance` (saas.md §5.2, also V1 §13.8).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryInstanceResponse {
    #[serde(default)]
    pub result_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_msg: Option<String>,
    /// Only when `appInfo` credentials are encrypted: `1` AES-256, `2` AES-128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_type: Option<String>,
    /// One entry per known requested ID; always sent, possibly empty.
    #[serde(default)]
    pub info: Vec<InstanceInfo>,
}

impl QueryInstanceResponse {
    /// An answer with the code's standard message and plain-text credentials.
    pub fn new(code: ResultCode, info: Vec<InstanceInfo>) -> Self {
        Self {
            result_code: code.code().to_owned(),
            result_msg: Some(code.message().to_owned()),
            encrypt_type: None,
            info,
        }
    }
}

impl Validate for QueryInstanceResponse {
    fn validate(&self) -> Result<(), FieldError> {
        check_result(&self.result_code, self.result_msg.as_deref())?;
        check_encrypt_type(self.encrypt_type.as_deref())?;
        each("info", &self.info)
    }
}

/// One instance in a `queryInstance` answer (saas.md §5.2).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    #[serde(default)]
    pub instance_id: String,
    /// Access information shown to the buyer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info: Option<AppInfo>,
    /// Usage of on-demand and on-demand-package instances (one revision spells it `usageInfos`).
    #[serde(default, alias = "usageInfos", skip_serializing_if = "Option::is_none")]
    pub usage_info: Option<Vec<UsageInfo>>,
}

impl Validate for InstanceInfo {
    fn validate(&self) -> Result<(), FieldError> {
        required("instanceId", &self.instance_id, 64)?;
        if let Some(app) = &self.app_info {
            app.validate().map_err(|e| e.nested("appInfo"))?;
        }
        self.usage_info
            .as_deref()
            .map_or(Ok(()), |usage| each("usageInfo", usage))
    }
}

/// Access information of an instance (saas.md §5.2; V1 §13.2, where `userName` and `password`
/// are encrypted).
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    /// The site URL for the customer.
    #[serde(default)]
    pub front_end_url: String,
    /// Administration console URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    /// Administrator account, typically an e-mail address or phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Initial administrator password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Usage notes; non-ASCII goes out as `\uXXXX` (saas.md §2.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

impl fmt::Debug for AppInfo {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppInfo")
            .field("front_end_url", &self.front_end_url)
            .field("admin_url", &self.admin_url)
            .field("user_name", &self.user_name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("memo", &self.memo)
            .finish()
    }
}

impl Validate for AppInfo {
    fn validate(&self) -> Result<(), FieldError> {
        required("frontEndUrl", &self.front_end_url, 512)?;
        optional("adminUrl", self.admin_url.as_deref(), 512)?;
        optional("userName", self.user_name.as_deref(), 128)?;
        optional("password", self.password.as_deref(), 128)?;
        optional("memo", self.memo.as_deref(), 1024)
    }
}

/// Usage of one billing item of an instance (saas.md §5.2).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageInfo {
    /// For package instances: the on-demand instance this usage belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_instance_id: Option<String>,
    /// Decimal text, at most 4 decimals: the cumulative total (on-demand) or the amount used
    /// (package).
    #[serde(default)]
    pub usage_value: String,
    /// `yyyyMMddHHmmssSSS`, UTC.
    #[serde(default)]
    pub statistical_time: String,
    /// Page where the customer sees detailed usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
}

impl Validate for UsageInfo {
    fn validate(&self) -> Result<(), FieldError> {
        optional("relatedInstanceId", self.related_instance_id.as_deref(), 64)?;
        required("usageValue", &self.usage_value, 20)?;
        let decimals = self
            .usage_value
            .split_once('.')
            .map_or(0, |(_, frac)| frac.len());
        if !is_decimal(&self.usage_value) || decimals > 4 {
            return Err(FieldError::invalid(
                "usageValue",
                "must be a decimal number with at most 4 decimals",
            ));
        }
        required("statisticalTime", &self.statistical_time, 20)?;
        optional("dashboardUrl", self.dashboard_url.as_deref(), 512)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    // Published request examples (vectors.json `format_fixtures`, saas.md §12).
    const FX_NEW_INSTANCE: &str = r#"{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;
    const FX_QUERY_INSTANCE: &str = r#"{"activity":"queryInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","testFlag":"0"}"#;
    const FX_REFRESH_INSTANCE: &str = r#"{"activity":"refreshInstance","expireTime":"20221124023618256","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","productId":"OFFI461867333479178240","scene":"RENEWAL","testFlag":"1"}"#;
    const FX_UPDATE_INSTANCE_STATUS: &str = r#"{"activity":"updateInstanceStatus","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","status":"FREEZE","testFlag":"1"}"#;
    const FX_RELEASE_INSTANCE: &str = r#"{"activity":"releaseInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;
    const FX_UPGRADE_INSTANCE: &str = r#"{"activity":"upgradeInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;
    const FX_ORDER_NOTIFY: &str = r#"{"activity":"orderNotify","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;
    const FX_NEW_INSTANCE_NESTED: &str = r#"{"activity":"newInstance","buyerInfo":{"customerId":"688055390f3049f283fe9f1aa90f1858","customerName":"CBC_marketplace_mwx616072_01","userId":"1e86066c22754361933f607df834e4fe","userName":"CBC_marketplace_mwx616072_01","mobilePhone":"18652996659","email":"mapengfei8@huawei.com"},"orderInfo":[{"businessId":"8a2c4e6f-405a-4f8d-8e24-f41090522646","orderId":"CS2210101920BWXLK","trialFlag":"0","orderAmount":12.78,"chargingMode":"PERIOD","periodType":"month","periodNumber":5,"provisionType":1,"productInfo":[{"skuCode":"a63ee5c9-4f86-11ed-9f95-fa163e8cb3b2","productId":"OFFI788963615933718528","linearValue":20}],"createTime":"20221024194509","expireTime":"20221224194509","extendParams":[{"name":"emailDomainName","value":"test.xxxx.com"},{"name":"extendParamName","value":"extendParamValue"}]}],"testFlag":"1"}"#;
    // changeInstanceCheck bodies of vectors `v2-sig-005` (object) and `v2-sig-006` (string).
    const CHANGE_CHECK_OBJECT: &str = r#"{"testFlag":"1","productInfo":{"skuCode":"a63ee5c9-4f86-11ed-9f95-fa163e8cb3b2","productId":"OFFI788963615933718528","linearValue":20,"productName":"Basic"},"instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","activity":"changeInstanceCheck"}"#;
    const CHANGE_CHECK_STRING: &str = r#"{"activity":"changeInstanceCheck","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","productInfo":"{\"productId\":\"OFFI788963615933718528\",\"skuCode\":\"a63ee5c9-4f86-11ed-9f95-fa163e8cb3b2\",\"linearValue\":20,\"productName\":\"Basic\"}","testFlag":"1"}"#;

    const INSTANCE: &str = "10e758d0-31ad-4c4b-8f1b-81d03469a10e";
    const ORDER: &str = "CS2211181819B4LVS";
    const ORDER_LINE: &str = "CS2211181819B4LVS-000001";

    fn decode(body: &str) -> Result<SaasV2Request, Error> {
        SaasV2Request::decode(body.as_bytes())
    }

    fn decode_value(body: &Value) -> Result<SaasV2Request, Error> {
        decode(&body.to_string())
    }

    fn with(body: &str, field: &str, value: Value) -> Value {
        let mut v: Value = serde_json::from_str(body).unwrap();
        v[field] = value;
        v
    }

    fn without(body: &str, field: &str) -> Value {
        let mut v: Value = serde_json::from_str(body).unwrap();
        v.as_object_mut().unwrap().remove(field);
        v
    }

    #[test]
    fn published_new_instance() {
        let SaasV2Request::NewInstance(r) = decode(FX_NEW_INSTANCE).unwrap() else {
            panic!()
        };
        assert_eq!(r.activity, "newInstance");
        assert_eq!(r.business_id, "87b94795-0603-4e24-8ae5-69420d60e3c8");
        assert_eq!(r.order_id, ORDER);
        assert_eq!(r.order_line_id, ORDER_LINE);
        assert_eq!(r.test_flag, Some(TestFlag::TEST));
        assert!(!r.nested_order_data);
    }

    #[test]
    fn published_query_instance() {
        let req = decode(FX_QUERY_INSTANCE).unwrap();
        assert_eq!(req.activity(), "queryInstance");
        assert!(!req.test_flag());
        let SaasV2Request::QueryInstance(r) = req else {
            panic!()
        };
        assert_eq!(r.instance_ids(), vec![INSTANCE]);
        assert_eq!(r.test_flag, Some(TestFlag::REAL));
    }

    #[test]
    fn published_refresh_instance() {
        let SaasV2Request::RefreshInstance(r) = decode(FX_REFRESH_INSTANCE).unwrap() else {
            panic!()
        };
        assert_eq!(r.scene(), Some(Scene::Renewal));
        assert_eq!(r.expire_time, "20221124023618256");
        assert_eq!(r.instance_id, INSTANCE);
        assert_eq!(
            (r.order_id.as_str(), r.order_line_id.as_str()),
            (ORDER, ORDER_LINE)
        );
        assert_eq!(r.product_id.as_deref(), Some("OFFI461867333479178240"));
        assert!(is_test(r.test_flag));
    }

    #[test]
    fn published_update_instance_status() {
        let SaasV2Request::UpdateInstanceStatus(r) = decode(FX_UPDATE_INSTANCE_STATUS).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.instance_id, INSTANCE);
        assert_eq!(r.status(), Some(StatusChange::Freeze));
    }

    #[test]
    fn published_release_upgrade_and_order_notify() {
        let SaasV2Request::ReleaseInstance(r) = decode(FX_RELEASE_INSTANCE).unwrap() else {
            panic!()
        };
        assert_eq!(r.instance_id, INSTANCE);
        assert_eq!(r.order_id.as_deref(), Some(ORDER));
        assert_eq!(r.order_line_id.as_deref(), Some(ORDER_LINE));

        let SaasV2Request::UpgradeInstance(r) = decode(FX_UPGRADE_INSTANCE).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.instance_id.as_str(), r.order_id.as_str()),
            (INSTANCE, ORDER)
        );
        assert_eq!(r.order_line_id, ORDER_LINE);

        let req = decode(FX_ORDER_NOTIFY).unwrap();
        assert!(req.test_flag());
        let SaasV2Request::OrderNotify(r) = req else {
            panic!()
        };
        assert_eq!(
            (r.order_id.as_str(), r.order_line_id.as_str()),
            (ORDER, ORDER_LINE)
        );
    }

    #[test]
    fn release_without_order_ids_is_valid() {
        let body = json!({"activity": "releaseInstance", "instanceId": INSTANCE});
        let SaasV2Request::ReleaseInstance(r) = decode_value(&body).unwrap() else {
            panic!()
        };
        assert_eq!((r.order_id, r.order_line_id), (None, None));
    }

    #[test]
    fn nested_new_instance_lifts_the_ids() {
        let req = decode(FX_NEW_INSTANCE_NESTED).unwrap();
        assert!(req.test_flag());
        let SaasV2Request::NewInstance(r) = req else {
            panic!()
        };
        assert!(r.nested_order_data);
        assert_eq!(r.order_id, "CS2210101920BWXLK");
        assert_eq!(r.business_id, "8a2c4e6f-405a-4f8d-8e24-f41090522646");
        assert_eq!(r.order_line_id, "");
        // Serialises in the documented flat shape.
        let out = serde_json::to_value(&r).unwrap();
        assert_eq!(out["orderId"], "CS2210101920BWXLK");
        assert!(out.get("orderInfo").is_none() && out.get("nestedOrderData").is_none());
        // Top-level IDs win over nested ones; a nested shape without IDs is still rejected.
        let body = with(FX_NEW_INSTANCE_NESTED, "orderId", json!("TOP"));
        let SaasV2Request::NewInstance(r) = decode_value(&body).unwrap() else {
            panic!()
        };
        assert_eq!(r.order_id, "TOP");
        let body = json!({"activity": "newInstance", "orderInfo": [{"trialFlag": "0"}]});
        assert_eq!(
            decode_value(&body).unwrap_err().to_string(),
            "orderId is required"
        );
        let body = json!({"activity": "newInstance", "orderId": "o", "businessId": "b",
                          "orderInfo": "not an order"});
        assert_eq!(
            decode_value(&body).unwrap_err().to_string(),
            "orderLineId is required"
        );
    }

    #[test]
    fn change_instance_check_accepts_object_and_string_product_info() {
        for (body, was_string) in [(CHANGE_CHECK_OBJECT, false), (CHANGE_CHECK_STRING, true)] {
            let SaasV2Request::ChangeInstanceCheck(r) = decode(body).unwrap() else {
                panic!()
            };
            assert_eq!(r.instance_id, INSTANCE);
            let product = r.product_info.as_ref().unwrap();
            assert_eq!(product.was_string, was_string);
            assert_eq!(product.value.product_id, "OFFI788963615933718528");
            assert_eq!(
                product.value.sku_code,
                "a63ee5c9-4f86-11ed-9f95-fa163e8cb3b2"
            );
            assert_eq!(product.value.product_name, "Basic");
            assert_eq!(
                product
                    .value
                    .linear_value
                    .as_ref()
                    .and_then(Decimal::as_i64),
                Some(20)
            );
            // The received form is kept when serialising.
            let out = serde_json::to_value(&r).unwrap();
            assert_eq!(out["productInfo"].is_string(), was_string);
        }
        // linearValue as text, or absent.
        let body = with(
            CHANGE_CHECK_OBJECT,
            "productInfo",
            json!({"productId": "p", "skuCode": "s", "productName": "n", "linearValue": "7"}),
        );
        let SaasV2Request::ChangeInstanceCheck(r) = decode_value(&body).unwrap() else {
            panic!()
        };
        assert_eq!(
            r.product_info.unwrap().value.linear_value,
            Some(Decimal("7".into()))
        );
        let body = with(
            CHANGE_CHECK_OBJECT,
            "productInfo",
            json!({"productId": "p", "skuCode": "s", "productName": "n"}),
        );
        assert!(decode_value(&body).is_ok());
    }

    #[test]
    fn change_instance_check_product_info_errors_name_the_nested_field() {
        let product = |p: Value| with(CHANGE_CHECK_OBJECT, "productInfo", p);
        let e = decode_value(&product(json!({"productId": "p", "productName": "n"}))).unwrap_err();
        assert_eq!(e.to_string(), "productInfo.skuCode is required");
        let e = decode_value(&product(json!("{\"productId\":\"p\",\"skuCode\":\"s\"}")));
        assert_eq!(
            e.unwrap_err().to_string(),
            "productInfo.productName is required"
        );
        let long = "x".repeat(65);
        let e = decode_value(&product(
            json!({"productId": long, "skuCode": "s", "productName": "n"}),
        ));
        assert_eq!(
            e.unwrap_err().to_string(),
            "productInfo.productId is longer than 64 characters"
        );
        let e = decode_value(&product(
            json!({"productId": "p", "skuCode": "s", "productName": "n", "linearValue": 2.5}),
        ));
        assert!(
            e.unwrap_err()
                .to_string()
                .starts_with("productInfo.linearValue")
        );
        let e = decode_value(&product(json!("{not json")));
        assert!(e.unwrap_err().to_string().starts_with("productInfo"));
        let e = decode_value(&product(json!(["array"])));
        assert!(e.unwrap_err().to_string().starts_with("productInfo"));
    }

    /// Each activity's example body and its mandatory fields (other than `activity`).
    fn mandatory_fields() -> Vec<(&'static str, Vec<&'static str>)> {
        vec![
            (
                FX_NEW_INSTANCE,
                vec!["orderId", "orderLineId", "businessId"],
            ),
            (FX_QUERY_INSTANCE, vec!["instanceId"]),
            (
                FX_REFRESH_INSTANCE,
                vec![
                    "scene",
                    "orderId",
                    "orderLineId",
                    "instanceId",
                    "expireTime",
                ],
            ),
            (FX_UPDATE_INSTANCE_STATUS, vec!["instanceId", "status"]),
            (FX_RELEASE_INSTANCE, vec!["instanceId"]),
            (
                FX_UPGRADE_INSTANCE,
                vec!["instanceId", "orderId", "orderLineId"],
            ),
            (CHANGE_CHECK_OBJECT, vec!["instanceId", "productInfo"]),
            (FX_ORDER_NOTIFY, vec!["orderId", "orderLineId"]),
        ]
    }

    #[test]
    fn missing_or_empty_mandatory_fields_are_named() {
        for (body, fields) in mandatory_fields() {
            for field in fields.into_iter().chain(["activity"]) {
                let e = decode_value(&without(body, field)).unwrap_err();
                assert!(matches!(e, Error::Field(_)), "{field}: {e:?}");
                assert_eq!(e.to_string(), format!("{field} is required"), "{body}");
                if field != "productInfo" {
                    let e = decode_value(&with(body, field, json!(""))).unwrap_err();
                    assert_eq!(e.to_string(), format!("{field} is required"), "{body}");
                }
            }
        }
    }

    #[test]
    fn over_long_fields_are_named() {
        let cases: &[(&str, &str, usize)] = &[
            (FX_NEW_INSTANCE, "orderId", 64),
            (FX_NEW_INSTANCE, "orderLineId", 64),
            (FX_NEW_INSTANCE, "businessId", 64),
            (FX_QUERY_INSTANCE, "instanceId", 64),
            (FX_REFRESH_INSTANCE, "scene", 64),
            (FX_REFRESH_INSTANCE, "orderId", 64),
            (FX_REFRESH_INSTANCE, "orderLineId", 64),
            (FX_REFRESH_INSTANCE, "instanceId", 64),
            (FX_REFRESH_INSTANCE, "productId", 64),
            (FX_REFRESH_INSTANCE, "expireTime", 20),
            (FX_UPDATE_INSTANCE_STATUS, "instanceId", 64),
            (FX_UPDATE_INSTANCE_STATUS, "status", 32),
            (FX_RELEASE_INSTANCE, "instanceId", 64),
            (FX_RELEASE_INSTANCE, "orderId", 64),
            (FX_RELEASE_INSTANCE, "orderLineId", 64),
            (FX_UPGRADE_INSTANCE, "instanceId", 64),
            (FX_UPGRADE_INSTANCE, "orderId", 64),
            (FX_UPGRADE_INSTANCE, "orderLineId", 64),
            (CHANGE_CHECK_OBJECT, "instanceId", 64),
            (FX_ORDER_NOTIFY, "orderId", 64),
            (FX_ORDER_NOTIFY, "orderLineId", 64),
        ];
        for &(body, field, max) in cases {
            let e = decode_value(&with(body, field, json!("1".repeat(max + 1)))).unwrap_err();
            let expected = if field == "instanceId" && body == FX_QUERY_INSTANCE {
                format!("instanceId[0] is longer than {max} characters")
            } else {
                format!("{field} is longer than {max} characters")
            };
            assert_eq!(e.to_string(), expected, "{body}");
            // Exactly at the limit passes the length check.
            if !matches!(field, "scene" | "status" | "expireTime") {
                assert!(
                    decode_value(&with(body, field, json!("1".repeat(max)))).is_ok(),
                    "{field}"
                );
            }
        }
    }

    #[test]
    fn bad_enum_values_name_the_field() {
        let e = decode_value(&with(FX_REFRESH_INSTANCE, "scene", json!("RENEW"))).unwrap_err();
        assert!(matches!(e, Error::Field(_)));
        assert!(
            e.to_string()
                .starts_with("scene must be one of TRIAL_TO_FORMAL"),
            "{e}"
        );
        let e = decode_value(&with(FX_UPDATE_INSTANCE_STATUS, "status", json!("NORMAL")));
        assert_eq!(
            e.unwrap_err().to_string(),
            "status must be one of FREEZE, UNFREEZE"
        );
        let e = decode_value(&with(FX_UPDATE_INSTANCE_STATUS, "status", json!(1))).unwrap_err();
        assert!(e.to_string().starts_with("status"), "{e}");
        for scene in Scene::NAMES {
            let body = with(FX_REFRESH_INSTANCE, "scene", json!(scene));
            let SaasV2Request::RefreshInstance(r) = decode_value(&body).unwrap() else {
                panic!()
            };
            assert_eq!(r.scene().map(Scene::as_str), Some(*scene));
        }
        let body = with(FX_UPDATE_INSTANCE_STATUS, "status", json!("UNFREEZE"));
        let SaasV2Request::UpdateInstanceStatus(r) = decode_value(&body).unwrap() else {
            panic!()
        };
        assert_eq!(r.status(), Some(StatusChange::Unfreeze));
    }

    #[test]
    fn expire_time_must_be_14_or_17_digits() {
        for ok in ["20221124023618", "20221124023618256"] {
            assert!(decode_value(&with(FX_REFRESH_INSTANCE, "expireTime", json!(ok))).is_ok());
        }
        for bad in [
            "2022112402361",
            "202211240236182",
            "2022-11-24T02:36",
            "2022112402361825x",
        ] {
            let e = decode_value(&with(FX_REFRESH_INSTANCE, "expireTime", json!(bad))).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("expireTime must be 14 or 17 digits"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn activity_must_match_and_unknown_activities_are_reported() {
        let e = decode_json::<NewInstance>(FX_QUERY_INSTANCE.as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "activity must be one of newInstance");
        let e = decode_json::<QueryInstance>(FX_NEW_INSTANCE.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("activity"));
        let e = decode(r#"{"activity":"deleteEverything","instanceId":"x"}"#).unwrap_err();
        assert_eq!(e, Error::UnknownActivity("deleteEverything".to_owned()));
        assert!(matches!(decode("not json"), Err(Error::Json(_))));
        assert!(matches!(decode(r#"{"activity":7}"#), Err(Error::Field(_))));
        let e = decode(r#"{"activity":"queryInstance","instanceId":5}"#).unwrap_err();
        assert!(e.to_string().starts_with("instanceId"), "{e}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        for (body, _) in mandatory_fields() {
            let mut v = with(
                body,
                "brandNewField",
                json!({"nested": [1, 2, {"x": null}]}),
            );
            v["anotherOne"] = json!(12.5);
            let plain = decode(body).unwrap();
            assert_eq!(decode_value(&v).unwrap(), plain);
        }
    }

    #[test]
    fn test_flag_as_text_number_or_absent() {
        for (flag, test) in [
            (json!("1"), true),
            (json!(1), true),
            (json!("0"), false),
            (json!(0), false),
        ] {
            for (body, _) in mandatory_fields() {
                let req = decode_value(&with(body, "testFlag", flag.clone())).unwrap();
                assert_eq!(req.test_flag(), test, "{body} {flag}");
            }
        }
        for (body, _) in mandatory_fields() {
            assert!(
                !decode_value(&without(body, "testFlag"))
                    .unwrap()
                    .test_flag()
            );
            let e = decode_value(&with(body, "testFlag", json!("yes"))).unwrap_err();
            assert!(e.to_string().starts_with("testFlag"), "{e}");
        }
    }

    fn query_with_ids(ids: &str) -> Result<SaasV2Request, Error> {
        decode_value(&json!({"activity": "queryInstance", "instanceId": ids}))
    }

    #[test]
    fn query_instance_id_lists() {
        let ids = |n: usize| {
            (0..n)
                .map(|i| format!("id-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            query_with_ids("").unwrap_err().to_string(),
            "instanceId is required"
        );
        assert_eq!(
            query_with_ids(" , ,").unwrap_err().to_string(),
            "instanceId is required"
        );
        let SaasV2Request::QueryInstance(one) = query_with_ids("abc").unwrap() else {
            panic!()
        };
        assert_eq!(one.instance_ids(), vec!["abc"]);
        // 100 IDs are far longer than 100 characters and still accepted.
        let SaasV2Request::QueryInstance(hundred) = query_with_ids(&ids(100)).unwrap() else {
            panic!()
        };
        assert_eq!(hundred.instance_ids().len(), 100);
        assert_eq!(hundred.instance_ids()[99], "id-99");
        let e = query_with_ids(&ids(101)).unwrap_err();
        assert!(matches!(e, Error::Field(_)));
        assert!(e.to_string().starts_with("instanceId lists 101 IDs"), "{e}");
        let SaasV2Request::QueryInstance(spaced) = query_with_ids(" a , b,,c ,").unwrap() else {
            panic!()
        };
        assert_eq!(spaced.instance_ids(), vec!["a", "b", "c"]);
        let long = format!("a,{}", "x".repeat(65));
        let e = query_with_ids(&long).unwrap_err();
        assert_eq!(e.to_string(), "instanceId[1] is longer than 64 characters");
    }

    #[test]
    fn requests_serialise_with_wire_names() {
        let r = NewInstance {
            activity: NewInstance::ACTIVITY.into(),
            order_id: ORDER.into(),
            order_line_id: ORDER_LINE.into(),
            business_id: "87b94795-0603-4e24-8ae5-69420d60e3c8".into(),
            test_flag: Some(TestFlag::TEST),
            nested_order_data: false,
        };
        let v: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v, serde_json::from_str::<Value>(FX_NEW_INSTANCE).unwrap());
        let release = ReleaseInstance {
            activity: ReleaseInstance::ACTIVITY.into(),
            instance_id: "i".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&SaasV2Request::ReleaseInstance(release)).unwrap(),
            r#"{"activity":"releaseInstance","instanceId":"i"}"#
        );
        // Every published example survives a decode → encode → decode round trip.
        for (body, _) in mandatory_fields() {
            let req = decode(body).unwrap();
            let again = decode(&serde_json::to_string(&req).unwrap()).unwrap();
            assert_eq!(again, req);
        }
    }

    #[test]
    fn responses_serialise_with_wire_names_and_omit_absent_options() {
        let r = NewInstanceResponse::new(ResultCode::Success, "03pf80c2bae96vc49b80b917bea776d7");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"resultCode":"000000","resultMsg":"success.","instanceId":"03pf80c2bae96vc49b80b917bea776d7"}"#
        );
        let info = InstanceInfo {
            instance_id: "i-1".into(),
            app_info: Some(AppInfo {
                front_end_url: "https://x.example".into(),
                ..Default::default()
            }),
            usage_info: None,
        };
        let r = QueryInstanceResponse::new(ResultCode::Success, vec![info]);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"resultCode":"000000","resultMsg":"success.","info":[{"instanceId":"i-1","appInfo":{"frontEndUrl":"https://x.example"}}]}"#
        );
        let full = QueryInstanceResponse {
            result_code: "000000".into(),
            result_msg: None,
            encrypt_type: Some("1".into()),
            info: vec![InstanceInfo {
                instance_id: "i-2".into(),
                app_info: Some(AppInfo {
                    front_end_url: "f".into(),
                    admin_url: Some("a".into()),
                    user_name: Some("u".into()),
                    password: Some("p".into()),
                    memo: Some("m".into()),
                }),
                usage_info: Some(vec![UsageInfo {
                    related_instance_id: Some("r".into()),
                    usage_value: "12.5".into(),
                    statistical_time: "20240101000000000".into(),
                    dashboard_url: Some("d".into()),
                }]),
            }],
        };
        assert_eq!(
            serde_json::to_string(&full).unwrap(),
            concat!(
                r#"{"resultCode":"000000","encryptType":"1","info":[{"instanceId":"i-2","#,
                r#""appInfo":{"frontEndUrl":"f","adminUrl":"a","userName":"u","password":"p","memo":"m"},"#,
                r#""usageInfo":[{"relatedInstanceId":"r","usageValue":"12.5","#,
                r#""statisticalTime":"20240101000000000","dashboardUrl":"d"}]}]}"#
            )
        );
        assert!(full.validate().is_ok());
        let back: QueryInstanceResponse =
            decode_json(serde_json::to_string(&full).unwrap().as_bytes()).unwrap();
        assert_eq!(back, full);
        let empty = QueryInstanceResponse::new(ResultCode::Processing, vec![]);
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"resultCode":"000004","resultMsg":"request is processing","info":[]}"#
        );
    }

    #[test]
    fn merchant_answers_are_parsed_and_checked() {
        let r: NewInstanceResponse = decode_json(
            br#"{"resultCode":"000000","resultMsg":"success","instanceId":"03pf80c2bae96vc49b80b917bea776d7","extra":1}"#,
        )
        .unwrap();
        assert_eq!(r.instance_id, "03pf80c2bae96vc49b80b917bea776d7");
        let e = decode_json::<NewInstanceResponse>(br#"{"resultCode":"000004"}"#).unwrap_err();
        assert_eq!(e.to_string(), "instanceId is required");
        // A refusal need not carry an instance ID.
        assert!(decode_json::<NewInstanceResponse>(br#"{"resultCode":"000100"}"#).is_ok());
        let e = decode_json::<NewInstanceResponse>(br#"{"resultMsg":"x"}"#).unwrap_err();
        assert_eq!(e.to_string(), "resultCode is required");
        let e = decode_json::<NewInstanceResponse>(br#"{"resultCode":"0000000"}"#).unwrap_err();
        assert_eq!(e.to_string(), "resultCode is longer than 6 characters");

        let query = |body: &str| decode_json::<QueryInstanceResponse>(body.as_bytes());
        let e = query(r#"{"resultCode":"000000","info":[{"appInfo":{"frontEndUrl":"f"}}]}"#);
        assert_eq!(e.unwrap_err().to_string(), "info[0].instanceId is required");
        let e = query(r#"{"resultCode":"000000","info":[{"instanceId":"i","appInfo":{}}]}"#);
        assert_eq!(
            e.unwrap_err().to_string(),
            "info[0].appInfo.frontEndUrl is required"
        );
        let url = "u".repeat(513);
        let e = query(&format!(
            r#"{{"resultCode":"000000","info":[{{"instanceId":"i","appInfo":{{"frontEndUrl":"{url}"}}}}]}}"#
        ));
        assert_eq!(
            e.unwrap_err().to_string(),
            "info[0].appInfo.frontEndUrl is longer than 512 characters"
        );
        let e = query(
            r#"{"resultCode":"000000","info":[{"instanceId":"i","usageInfo":[{"usageValue":"1","statisticalTime":"20240101000000000"},{"statisticalTime":"20240101000000000"}]}]}"#,
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "info[0].usageInfo[1].usageValue is required"
        );
        let e = query(
            r#"{"resultCode":"000000","info":[{"instanceId":"i","usageInfo":[{"usageValue":"1"}]}]}"#,
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "info[0].usageInfo[0].statisticalTime is required"
        );
        let e = query(r#"{"resultCode":"000000","encryptType":"3","info":[]}"#);
        assert!(e.unwrap_err().to_string().starts_with("encryptType"));
        // The `usageInfos` spelling of one revision is understood.
        let r = query(
            r#"{"resultCode":"000000","info":[{"instanceId":"i","usageInfos":[{"usageValue":"0.5","statisticalTime":"20240101000000000"}]}]}"#,
        )
        .unwrap();
        assert_eq!(r.info[0].usage_info.as_ref().unwrap()[0].usage_value, "0.5");
        // `info` may be absent in an answer.
        assert!(query(r#"{"resultCode":"000004","resultMsg":"request is processing"}"#).is_ok());
    }

    #[test]
    fn usage_value_is_decimal_with_at_most_four_decimals() {
        let usage = |v: &str| UsageInfo {
            usage_value: v.into(),
            statistical_time: "20240101000000000".into(),
            ..Default::default()
        };
        for ok in ["0", "99", "12.5", "1.2345", "123456789012.1234"] {
            assert!(usage(ok).validate().is_ok(), "{ok}");
        }
        for bad in ["1.23456", "abc", "1,5", ".5", "1e3"] {
            let e = usage(bad).validate().unwrap_err();
            assert!(e.to_string().starts_with("usageValue"), "{bad}: {e}");
        }
        assert_eq!(
            usage(&"1".repeat(21)).validate().unwrap_err().to_string(),
            "usageValue is longer than 20 characters"
        );
    }

    #[test]
    fn app_info_limits_and_debug_hides_the_password() {
        let app = AppInfo {
            front_end_url: "f".into(),
            password: Some("Huawei12345".into()),
            ..Default::default()
        };
        assert!(!format!("{app:?}").contains("Huawei12345"));
        for (field, max) in [
            ("adminUrl", 512),
            ("userName", 128),
            ("password", 128),
            ("memo", 1024),
        ] {
            let mut v = serde_json::to_value(&app).unwrap();
            v[field] = json!("x".repeat(max + 1));
            let e = decode_json::<AppInfo>(v.to_string().as_bytes()).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{field} is longer than {max} characters")
            );
        }
    }

    #[test]
    fn plain_responses_use_the_envelope() {
        let r: ReleaseInstanceResponse = ResultEnvelope::new(ResultCode::InstanceNotFound);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"resultCode":"000003","resultMsg":"instance is invalid"}"#
        );
    }
}
