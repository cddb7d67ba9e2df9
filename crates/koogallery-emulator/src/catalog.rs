//! The catalog: products as KooGallery lists them, each with its delivery family, charging mode,
//! period and the merchant production interface it is bound to.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How a product is delivered, which selects the protocol KooGallery speaks to the merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// SaaS V2: `POST` JSON with the URL signature (saas.md §1–§12).
    SaasV2,
    /// SaaS V1: `GET` with `authToken`, `Body-Sign` on answers (saas.md §13).
    SaasV1,
    /// License 1.0: V1 `GET` family, `getLicense` … (license.md §3).
    License1,
    /// Online License: the SaaS V2 instance activities (license.md §4); `getLicenseAsync` is
    /// not emulated yet.
    OnlineLicense,
    /// License code 2.0: V2 `POST` with the license-code key (license.md §5); KooGallery
    /// generates the code, the merchant activates it with the open API.
    LicenseCode2,
    /// Joint operation: the SaaS V2 activities plus the kit sync interfaces of jointop.md
    /// (`tenantSync` …, `x-sign` headers, the kit key).
    JointOperation,
}

impl Family {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SaasV2 => "saas-v2",
            Self::SaasV1 => "saas-v1",
            Self::License1 => "license-1",
            Self::OnlineLicense => "online-license",
            Self::LicenseCode2 => "license-code-2",
            Self::JointOperation => "joint-operation",
        }
    }

    /// Whether calls travel as V1 `GET` with `authToken` (else V2 `POST` with the URL
    /// signature).
    pub const fn is_v1(self) -> bool {
        matches!(self, Self::SaasV1 | Self::License1)
    }

    /// Whether answers must carry a valid `Body-Sign` (the V1 families, security.md §7).
    pub const fn requires_body_sign(self) -> bool {
        matches!(self, Self::SaasV1 | Self::License1)
    }
}

/// The charging mode, with the query-order API's wire names (openapi.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargingMode {
    /// 按次: one-time purchase, no expiry.
    OneTime,
    /// 包周期: monthly or yearly subscription.
    Period,
    /// 按需: pay per use, no expiry.
    OnDemand,
    /// 按需套餐包: a prepaid package with a period.
    OnDemandPkg,
}

impl ChargingMode {
    /// `chargingMode` of the query-order API.
    pub const fn wire(self) -> &'static str {
        match self {
            Self::OneTime => "ONE_TIME",
            Self::Period => "PERIOD",
            Self::OnDemand => "ON_DEMAND",
            Self::OnDemandPkg => "ON_DEMAND_PKG",
        }
    }

    /// `chargingMode` of SaaS V1 `newInstance` (saas.md §13.2): `0` on-demand, `1` period, `3`
    /// one-off, `5` on-demand package.
    pub const fn v1_code(self) -> &'static str {
        match self {
            Self::OnDemand => "0",
            Self::Period => "1",
            Self::OneTime => "3",
            Self::OnDemandPkg => "5",
        }
    }

    /// Whether instances of this mode expire (and so are frozen and released).
    pub const fn expires(self) -> bool {
        matches!(self, Self::Period | Self::OnDemandPkg)
    }
}

/// A period unit (`periodType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodUnit {
    Day,
    Month,
    Year,
}

impl PeriodUnit {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

/// A subscription period: `number` × `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Period {
    pub unit: PeriodUnit,
    pub number: u32,
}

impl Period {
    pub const fn new(unit: PeriodUnit, number: u32) -> Self {
        Self { unit, number }
    }

    /// `from_ms` plus this period `times` times, in calendar terms (a month from 31 January is
    /// the last day of February). `None` on overflow.
    pub fn add_to(self, from_ms: i64, times: u32) -> Option<i64> {
        let t = koogallery::time::from_epoch_millis(from_ms)?;
        let n = i64::from(self.number).checked_mul(i64::from(times))?;
        let out = match self.unit {
            PeriodUnit::Day => t.checked_add(time::Duration::days(n))?,
            PeriodUnit::Month => add_months(t, n)?,
            PeriodUnit::Year => add_months(t, n.checked_mul(12)?)?,
        };
        Some(koogallery::time::epoch_millis(out))
    }

    /// `from_ms` minus this period `times` times.
    pub fn subtract_from(self, from_ms: i64, times: u32) -> Option<i64> {
        let t = koogallery::time::from_epoch_millis(from_ms)?;
        let n = i64::from(self.number).checked_mul(i64::from(times))?;
        let out = match self.unit {
            PeriodUnit::Day => t.checked_sub(time::Duration::days(n))?,
            PeriodUnit::Month => add_months(t, -n)?,
            PeriodUnit::Year => add_months(t, -(n.checked_mul(12)?))?,
        };
        Some(koogallery::time::epoch_millis(out))
    }
}

fn add_months(t: OffsetDateTime, months: i64) -> Option<OffsetDateTime> {
    let index = i64::from(t.year())
        .checked_mul(12)?
        .checked_add(i64::from(u8::from(t.month())) - 1)?
        .checked_add(months)?;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = time::Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    let day = t.day().min(month.length(year));
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(t.replace_date(date))
}

/// The keys bound to a production address, one per interface type (saas.md §10, security.md §1).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantKeys {
    /// 基础接口: SaaS V2/V1 basic interfaces, online License.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<String>,
    /// 联营SaaS同步接口: the joint-operation kit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kit: Option<String>,
    /// License授权码交付接口: License code 2.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// 通用接口: `orderNotify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic: Option<String>,
}

impl fmt::Debug for MerchantKeys {
    /// Says which keys are set, never their values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |k: &Option<String>| if k.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("MerchantKeys")
            .field("basic", &set(&self.basic))
            .field("kit", &set(&self.kit))
            .field("license", &set(&self.license))
            .field("generic", &set(&self.generic))
            .finish()
    }
}

impl MerchantKeys {
    /// Each key of `self`, or else of `fallback`.
    pub fn or(&self, fallback: &MerchantKeys) -> MerchantKeys {
        MerchantKeys {
            basic: self.basic.clone().or_else(|| fallback.basic.clone()),
            kit: self.kit.clone().or_else(|| fallback.kit.clone()),
            license: self.license.clone().or_else(|| fallback.license.clone()),
            generic: self.generic.clone().or_else(|| fallback.generic.clone()),
        }
    }

    /// The same, with every value replaced by `<set>` (for listings).
    pub fn redacted(&self) -> MerchantKeys {
        let r = |k: &Option<String>| k.as_ref().map(|_| "<set>".to_owned());
        MerchantKeys {
            basic: r(&self.basic),
            kit: r(&self.kit),
            license: r(&self.license),
            generic: r(&self.generic),
        }
    }
}

/// One product (one `productId`) of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// `productId`: one per period type under a SKU.
    pub product_id: String,
    /// `skuCode`: the specification, stable across period types.
    pub sku_code: String,
    /// `productName` (at most 64 characters on the wire).
    pub name: String,
    pub family: Family,
    pub charging_mode: ChargingMode,
    /// For `PERIOD` and `ON_DEMAND_PKG`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Length of a trial in days, if the product can be tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<u32>,
    /// Quantity of the linear attribute, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_value: Option<i64>,
    /// Price of one period (or of the purchase; for on-demand: of one unit of pushed usage), as
    /// the query-order API writes amounts.
    #[serde(default = "default_price")]
    pub price: String,
    /// The product an upgrade or a renewal change moves to by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_to: Option<String>,
    /// Production URL; the emulator's default (`--merchant-url`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_url: Option<String>,
    /// Keys of the production address; each falls back to the emulator's (`--basic-key` …).
    #[serde(default)]
    pub keys: MerchantKeys,
    /// Order notification (订单通知, saas.md §5.8) is enabled: every order of this product is
    /// also announced with `orderNotify`, signed with the generic key.
    #[serde(default)]
    pub order_notify: bool,
    /// SaaS V1: the product options "based on mobile number" / "based on e-mail": `newInstance`
    /// carries the buyer's `mobilePhone` / `email`, encrypted with the basic key (saas.md §13.2,
    /// security.md §13, AES-256).
    #[serde(default)]
    pub send_mobile_phone: bool,
    #[serde(default)]
    pub send_email: bool,
    /// Extension parameters (at most 3): in the order (query-order `extendParams`) and, for
    /// SaaS V1, as `saasExtendParams` (saas.md §13.9).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extend_params: Vec<ProductParam>,
    /// Joint operation: the merchant's RSA public key (PEM, SPKI or PKCS#1) uploaded with the
    /// application credential; `applicationSync` encrypts `clientSecret` with it (jointop.md
    /// §5). Falls back to the emulator's (`--kit-public-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kit_public_key: Option<String>,
}

/// One extension parameter of a product (`{name, value}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductParam {
    pub name: String,
    pub value: String,
}

fn default_price() -> String {
    "100".to_owned()
}

impl Product {
    /// Checks the fields KooGallery would refuse to list.
    pub fn validate(&self) -> Result<(), String> {
        for (field, value) in [
            ("productId", &self.product_id),
            ("skuCode", &self.sku_code),
            ("name", &self.name),
        ] {
            if value.is_empty() {
                return Err(format!("{field} is required"));
            }
            if koogallery::model::java_len(value) > 64 {
                return Err(format!("{field} is longer than 64 characters"));
            }
        }
        if self.extend_params.len() > koogallery::model::saas_v1::MAX_EXTEND_PARAMS {
            return Err(format!(
                "at most {} extendParams",
                koogallery::model::saas_v1::MAX_EXTEND_PARAMS
            ));
        }
        if let Some(pem) = &self.kit_public_key {
            crate::kit::parse_public_key(pem).map_err(|e| format!("kitPublicKey: {e}"))?;
        }
        match (self.charging_mode.expires(), self.period) {
            (true, None) => Err(format!(
                "a {} product needs a period",
                self.charging_mode.wire()
            )),
            (_, Some(p)) if p.number == 0 => Err("period.number must be at least 1".to_owned()),
            _ => Ok(()),
        }
    }

    /// This product as listed by the control API: keys redacted.
    pub fn redacted(&self) -> Product {
        Product {
            keys: self.keys.redacted(),
            ..self.clone()
        }
    }
}

struct Spec {
    id: &'static str,
    sku: &'static str,
    name: &'static str,
    mode: ChargingMode,
    period: Option<Period>,
    trial_days: Option<u32>,
    linear: Option<i64>,
    price: &'static str,
    upgrade_to: Option<&'static str>,
}

const MONTH: Option<Period> = Some(Period::new(PeriodUnit::Month, 1));
const YEAR: Option<Period> = Some(Period::new(PeriodUnit::Year, 1));

/// The default catalog: for SaaS V2 and SaaS V1, a product of every charging mode (one-time,
/// monthly, yearly, on-demand, on-demand package; the monthly one can be tried for 7 days) plus
/// a professional edition to upgrade to; and one product of each other family. Product IDs
/// start with the family (`V2-`, `V1-`, `LIC1-`, `OLIC-`, `LCODE-`, `JOINT-`).
pub fn default_catalog() -> Vec<Product> {
    let saas = |prefix: &'static str, family: Family| {
        let specs: [Spec; 7] = [
            Spec {
                id: "ONETIME",
                sku: "BASIC",
                name: "basic, one-time",
                mode: ChargingMode::OneTime,
                period: None,
                trial_days: None,
                linear: None,
                price: "300",
                upgrade_to: None,
            },
            Spec {
                id: "MONTH",
                sku: "BASIC",
                name: "basic, monthly",
                mode: ChargingMode::Period,
                period: MONTH,
                trial_days: Some(7),
                linear: Some(10),
                price: "10",
                upgrade_to: Some("MONTH-PRO"),
            },
            Spec {
                id: "YEAR",
                sku: "BASIC",
                name: "basic, yearly",
                mode: ChargingMode::Period,
                period: YEAR,
                trial_days: None,
                linear: Some(10),
                price: "100",
                upgrade_to: Some("YEAR-PRO"),
            },
            Spec {
                id: "MONTH-PRO",
                sku: "PRO",
                name: "professional, monthly",
                mode: ChargingMode::Period,
                period: MONTH,
                trial_days: None,
                linear: Some(50),
                price: "30",
                upgrade_to: None,
            },
            Spec {
                id: "YEAR-PRO",
                sku: "PRO",
                name: "professional, yearly",
                mode: ChargingMode::Period,
                period: YEAR,
                trial_days: None,
                linear: Some(50),
                price: "300",
                upgrade_to: None,
            },
            Spec {
                id: "ONDEMAND",
                sku: "METERED",
                name: "metered, on demand",
                mode: ChargingMode::OnDemand,
                period: None,
                trial_days: None,
                linear: None,
                // Per unit of pushed usage (the emulator's bills).
                price: "0.05",
                upgrade_to: None,
            },
            Spec {
                id: "PKG",
                sku: "PACKAGE",
                name: "package of 1000 calls, yearly",
                mode: ChargingMode::OnDemandPkg,
                period: YEAR,
                trial_days: None,
                linear: Some(1000),
                price: "50",
                upgrade_to: None,
            },
        ];
        specs
            .into_iter()
            .map(|s| product(prefix, family, &s))
            .collect::<Vec<_>>()
    };
    let mut out = saas("V2", Family::SaasV2);
    out.extend(saas("V1", Family::SaasV1));
    let year = |prefix: &'static str, family: Family, name: &'static str| {
        product(
            prefix,
            family,
            &Spec {
                id: "YEAR",
                sku: "STD",
                name,
                mode: ChargingMode::Period,
                period: YEAR,
                trial_days: None,
                linear: Some(1),
                price: "1000",
                upgrade_to: None,
            },
        )
    };
    out.push(year("LIC1", Family::License1, "license 1.0, yearly"));
    out.push(year(
        "OLIC",
        Family::OnlineLicense,
        "online license, yearly",
    ));
    out.push(year(
        "LCODE",
        Family::LicenseCode2,
        "license code 2.0, yearly",
    ));
    out.push(year(
        "JOINT",
        Family::JointOperation,
        "joint operation, yearly",
    ));
    out
}

fn product(prefix: &str, family: Family, s: &Spec) -> Product {
    Product {
        product_id: format!("{prefix}-{}", s.id),
        sku_code: format!("{prefix}-SKU-{}", s.sku),
        name: format!("emulated {} {}", family.as_str(), s.name),
        family,
        charging_mode: s.mode,
        period: s.period,
        trial_days: s.trial_days,
        linear_value: s.linear,
        price: s.price.to_owned(),
        upgrade_to: s.upgrade_to.map(|t| format!("{prefix}-{t}")),
        merchant_url: None,
        keys: MerchantKeys::default(),
        order_notify: false,
        send_mobile_phone: false,
        send_email: false,
        extend_params: Vec::new(),
        kit_public_key: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_catalog_is_valid_and_covers_every_mode() {
        let catalog = default_catalog();
        for p in &catalog {
            p.validate().unwrap();
            if let Some(t) = &p.upgrade_to {
                assert!(catalog.iter().any(|q| &q.product_id == t), "{t}");
            }
        }
        for family in [Family::SaasV2, Family::SaasV1] {
            for mode in [
                ChargingMode::OneTime,
                ChargingMode::Period,
                ChargingMode::OnDemand,
                ChargingMode::OnDemandPkg,
            ] {
                assert!(
                    catalog
                        .iter()
                        .any(|p| p.family == family && p.charging_mode == mode)
                );
            }
            assert!(
                catalog
                    .iter()
                    .any(|p| p.family == family && p.trial_days.is_some())
            );
        }
    }

    #[test]
    fn calendar_periods() {
        let jan31 = koogallery::time::epoch_millis(
            koogallery::time::parse_expire_time("20250131120000").unwrap(),
        );
        let month = Period::new(PeriodUnit::Month, 1);
        let feb = month.add_to(jan31, 1).unwrap();
        assert_eq!(
            koogallery::time::format_expire_time(koogallery::time::from_epoch_millis(feb).unwrap()),
            "20250228120000"
        );
        let year = Period::new(PeriodUnit::Year, 1);
        let back = year.subtract_from(jan31, 1).unwrap();
        assert_eq!(
            koogallery::time::format_expire_time(
                koogallery::time::from_epoch_millis(back).unwrap()
            ),
            "20240131120000"
        );
    }

    #[test]
    fn keys_never_debug_printed() {
        let k = MerchantKeys {
            basic: Some("SECRET".to_owned()),
            ..MerchantKeys::default()
        };
        assert!(!format!("{k:?}").contains("SECRET"));
        assert_eq!(k.redacted().basic.as_deref(), Some("<set>"));
    }
}
