//! KooGallery `resultCode` values (saas.md §3, license.md §2.1) and their standard messages.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every documented `resultCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultCode {
    /// `000000`: success.
    Success,
    /// `000001`: authentication failed (bad or missing signature).
    AuthFailed,
    /// `000002`: invalid request parameter, including a stale timestamp or a missing nonce.
    InvalidParam,
    /// `000003`: the instance (or, for License code 2.0, the license code) does not exist.
    InstanceNotFound,
    /// `000004`: accepted, being processed asynchronously.
    Processing,
    /// `000005`: other internal error.
    InternalError,
    /// `000100`: create: no instance resource can be allocated.
    NoResource,
    /// `000101`: create: mobile number missing or already exists.
    MobileInvalid,
    /// `000102`: create: e-mail missing or already exists.
    EmailInvalid,
    /// `000103`: create: the product may not be purchased twice.
    AlreadyPurchased,
    /// `000104`: create: product internal service error.
    ServiceError,
    /// `000105`: create: the account already holds this benefit.
    BenefitAlreadySubscribed,
    /// `000106`: create: product resources sold out.
    SoldOut,
    /// `000107`: create: SaaS e-mail domain already exists.
    EmailDomainExists,
    /// `000900`: `getLicenseAsync`: not enough license quota left on the current order.
    LicenseQuotaExhausted,
    /// `000901`: `getLicenseAsync`: the request must fall inside the current order's validity.
    LicenseOutsideValidity,
    /// `000902`: `getLicenseAsync`: a period license needs an expiry date.
    LicenseExpiryRequired,
    /// `000903`: `getLicenseAsync`: a device fingerprint is required.
    LicenseFingerprintRequired,
}

impl ResultCode {
    /// Every code, in numeric order.
    pub const ALL: [ResultCode; 18] = [
        Self::Success,
        Self::AuthFailed,
        Self::InvalidParam,
        Self::InstanceNotFound,
        Self::Processing,
        Self::InternalError,
        Self::NoResource,
        Self::MobileInvalid,
        Self::EmailInvalid,
        Self::AlreadyPurchased,
        Self::ServiceError,
        Self::BenefitAlreadySubscribed,
        Self::SoldOut,
        Self::EmailDomainExists,
        Self::LicenseQuotaExhausted,
        Self::LicenseOutsideValidity,
        Self::LicenseExpiryRequired,
        Self::LicenseFingerprintRequired,
    ];

    /// The six-digit wire value.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Success => "000000",
            Self::AuthFailed => "000001",
            Self::InvalidParam => "000002",
            Self::InstanceNotFound => "000003",
            Self::Processing => "000004",
            Self::InternalError => "000005",
            Self::NoResource => "000100",
            Self::MobileInvalid => "000101",
            Self::EmailInvalid => "000102",
            Self::AlreadyPurchased => "000103",
            Self::ServiceError => "000104",
            Self::BenefitAlreadySubscribed => "000105",
            Self::SoldOut => "000106",
            Self::EmailDomainExists => "000107",
            Self::LicenseQuotaExhausted => "000900",
            Self::LicenseOutsideValidity => "000901",
            Self::LicenseExpiryRequired => "000902",
            Self::LicenseFingerprintRequired => "000903",
        }
    }

    /// The standard English `resultMsg` (the official sample's strings where it has one).
    pub const fn message(self) -> &'static str {
        match self {
            Self::Success => "success.",
            Self::AuthFailed => "token is invalid",
            Self::InvalidParam => "param is invalid",
            Self::InstanceNotFound => "instance is invalid",
            Self::Processing => "request is processing",
            Self::InternalError => "other inner error",
            Self::NoResource => "no available resource",
            Self::MobileInvalid => "Mobile number not specified or already exists",
            Self::EmailInvalid => "Email address is not specified or already exists",
            Self::AlreadyPurchased => "Product already purchased",
            Self::ServiceError => "Internal service error",
            Self::BenefitAlreadySubscribed => "Account has already subscribed to benefits",
            Self::SoldOut => "Product resources sold out.",
            Self::EmailDomainExists => "SaaS email domain already exists.",
            Self::LicenseQuotaExhausted => "insufficient license quota on the current order",
            Self::LicenseOutsideValidity => "request is outside the validity of the current order",
            Self::LicenseExpiryRequired => "a period license requires an expiry time",
            Self::LicenseFingerprintRequired => "a device fingerprint is required",
        }
    }

    /// Parses a wire value; `None` for anything undocumented.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Whether KooGallery counts this answer as success (`000004` only where creation may be
    /// asynchronous, which the caller decides).
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Success)
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for ResultCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for ResultCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Self::from_code(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown resultCode {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_six_digits_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in ResultCode::ALL {
            assert_eq!(c.code().len(), 6);
            assert!(c.code().bytes().all(|b| b.is_ascii_digit()));
            assert!(seen.insert(c.code()), "duplicate {c}");
            assert_eq!(ResultCode::from_code(c.code()), Some(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<ResultCode>(&json).unwrap(), c);
        }
        assert_eq!(ResultCode::from_code("00000"), None);
        assert_eq!(ResultCode::InvalidParam.message(), "param is invalid");
    }
}
