//! The crate's one error type, [`Error`], and the specific errors it wraps. Every error maps
//! onto a KooGallery [`ResultCode`] and carries a message that names what failed; no message ever
//! contains a key, a signature or a decrypted value.

use std::fmt;

use crate::ResultCode;

/// Why the authentication of a request failed (security.md §15).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `timestamp` / `x-timestamp` / `timeStamp` absent or empty.
    #[error("{0} is missing")]
    MissingTimestamp(&'static str),
    /// Present but not a decimal integer (or not a valid date for V1).
    #[error("{0} is not a valid timestamp")]
    MalformedTimestamp(&'static str),
    /// Outside the freshness window; `skew_ms` is request time minus now.
    #[error("timestamp is outside the {window_ms} ms window (skew {skew_ms} ms)")]
    StaleTimestamp { skew_ms: i64, window_ms: u64 },
    /// `nonce` / `x-nonce` absent or empty.
    #[error("{0} is missing")]
    MissingNonce(&'static str),
    /// Longer than the 256 characters we accept.
    #[error("{0} is longer than 256 characters")]
    NonceTooLong(&'static str),
    /// `signature` / `x-sign` / `authToken` absent or empty.
    #[error("{0} is missing")]
    MissingSignature(&'static str),
    /// Present but not 32 bytes of hex / Base64.
    #[error("{0} is not a well-formed signature")]
    MalformedSignature(&'static str),
    /// Well-formed but matches neither the raw body nor its canonical form.
    #[error("signature does not match")]
    SignatureMismatch,
    /// A nonce seen before within the window (the caller's nonce store decides this).
    #[error("nonce was already used")]
    ReplayedNonce,
}

impl AuthError {
    /// The result code KooGallery expects for this failure (security.md §15).
    pub const fn result_code(&self) -> ResultCode {
        match self {
            Self::MissingSignature(_) | Self::MalformedSignature(_) | Self::SignatureMismatch => {
                ResultCode::AuthFailed
            }
            _ => ResultCode::InvalidParam,
        }
    }

    /// A stable snake_case tag for logs and metrics (`missing_nonce`, `signature_mismatch`…).
    pub const fn tag(&self) -> &'static str {
        match self {
            Self::MissingTimestamp(_) => "missing_timestamp",
            Self::MalformedTimestamp(_) => "malformed_timestamp",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::MissingNonce(_) => "missing_nonce",
            Self::NonceTooLong(_) => "nonce_too_long",
            Self::MissingSignature(_) => "missing_signature",
            Self::MalformedSignature(_) => "malformed_signature",
            Self::SignatureMismatch => "signature_mismatch",
            Self::ReplayedNonce => "replayed_nonce",
        }
    }
}

/// What is wrong with one field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    /// Mandatory and absent (or empty).
    Missing,
    /// Longer than the documented maximum (counted in UTF-16 code units, as Java does).
    TooLong { max: usize },
    /// Not one of the documented values.
    NotAllowed { allowed: &'static [&'static str] },
    /// Anything else, described in words.
    Invalid(String),
}

/// A field that failed decoding or validation; always answered with `000002`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct FieldError {
    /// The field's wire name, with a path for nested fields (`productInfo.skuCode`, `info[2].instanceId`).
    pub field: String,
    pub problem: FieldProblem,
}

impl FieldError {
    pub fn missing(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: FieldProblem::Missing,
        }
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self {
            field: field.into(),
            problem: FieldProblem::TooLong { max },
        }
    }
    pub fn not_allowed(field: impl Into<String>, allowed: &'static [&'static str]) -> Self {
        Self {
            field: field.into(),
            problem: FieldProblem::NotAllowed { allowed },
        }
    }
    pub fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: FieldProblem::Invalid(why.into()),
        }
    }
    /// The same problem, reported under `prefix.field` (for nested structures).
    pub fn nested(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("is required"),
            Self::TooLong { max } => write!(f, "is longer than {max} characters"),
            Self::NotAllowed { allowed } => write!(f, "must be one of {}", allowed.join(", ")),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

/// Why a field value could not be decrypted or an RSA secret not recovered (security.md §13.6, §14).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("value is not valid Base64")]
    BadBase64,
    #[error("value is too short to hold a 16-character IV and a ciphertext")]
    TooShort,
    #[error("IV must be exactly 16 ASCII characters")]
    BadIv,
    #[error("ciphertext length is not a positive multiple of 16 bytes")]
    BadCiphertextLength,
    #[error("padding check failed (wrong key or key size, or corrupted value)")]
    BadPadding,
    #[error("decrypted value is not valid UTF-8")]
    NotUtf8,
    #[error("unsupported AES key size {0} (use 128 or 256)")]
    BadKeySize(u32),
    #[error("unknown encryptType {0:?} (use \"1\" for AES-256 or \"2\" for AES-128)")]
    BadEncryptType(String),
    #[error("no OAEP parameter set decrypts the value")]
    OaepNoMatch,
    #[error("RSA key cannot be used: {0}")]
    RsaKey(String),
}

/// Why a timestamp text could not be parsed (security.md §3.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("timestamp is empty")]
    Empty,
    #[error("timestamp must be decimal digits only")]
    NotDigits,
    #[error("timestamp must not start with 0")]
    LeadingZero,
    #[error("timestamp has {got} characters, expected {expected}")]
    BadLength { got: usize, expected: &'static str },
    #[error("timestamp is not a valid date and time")]
    OutOfRange,
}

/// Every error this crate returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Time(#[from] TimeError),
    /// The body is not JSON at all, or not the JSON shape expected.
    #[error("body is not valid JSON: {0}")]
    Json(String),
    /// The `activity` names no operation of this interface.
    #[error("activity {0:?} is not supported")]
    UnknownActivity(String),
}

impl Error {
    /// The KooGallery result code this error is answered with.
    pub const fn result_code(&self) -> ResultCode {
        match self {
            Self::Auth(e) => e.result_code(),
            _ => ResultCode::InvalidParam,
        }
    }

    /// `resultMsg` for the answer: the standard message followed by what exactly failed,
    /// e.g. `param is invalid: orderId is longer than 64 characters`.
    pub fn result_msg(&self) -> String {
        format!("{}: {self}", self.result_code().message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_map_to_documented_codes() {
        assert_eq!(
            AuthError::MissingTimestamp("timestamp").result_code(),
            ResultCode::InvalidParam
        );
        assert_eq!(
            AuthError::StaleTimestamp {
                skew_ms: -61_000,
                window_ms: 60_000
            }
            .result_code(),
            ResultCode::InvalidParam
        );
        assert_eq!(
            AuthError::MissingNonce("nonce").result_code(),
            ResultCode::InvalidParam
        );
        assert_eq!(
            AuthError::MissingSignature("signature").result_code(),
            ResultCode::AuthFailed
        );
        assert_eq!(
            AuthError::SignatureMismatch.result_code(),
            ResultCode::AuthFailed
        );
        assert_eq!(
            AuthError::ReplayedNonce.result_code(),
            ResultCode::InvalidParam
        );
    }

    #[test]
    fn field_errors_name_the_field() {
        let e = Error::from(FieldError::too_long("orderId", 64));
        assert_eq!(e.result_code(), ResultCode::InvalidParam);
        assert_eq!(
            e.result_msg(),
            "param is invalid: orderId is longer than 64 characters"
        );
        let nested = FieldError::missing("skuCode").nested("productInfo");
        assert_eq!(nested.to_string(), "productInfo.skuCode is required");
        assert_eq!(
            FieldError::missing("[1].name").nested("extendParams").field,
            "extendParams[1].name"
        );
    }
}
