//! Joint-operation kit signature (security.md §10):
//! `x-sign = hex(HMAC-SHA256(kitKey, kitKey + x-nonce + x-timestamp + payload))`,
//! with the payload the raw body or its canonical form.

use crate::error::AuthError;
use crate::sign::{Names, SignedForm, SignedRequest, hmac_sha256, verify_body_signature};

pub const HEADER_SIGN: &str = "x-sign";
pub const HEADER_TIMESTAMP: &str = "x-timestamp";
pub const HEADER_NONCE: &str = "x-nonce";

const NAMES: Names = Names {
    signature: HEADER_SIGN,
    timestamp: HEADER_TIMESTAMP,
    nonce: HEADER_NONCE,
};

fn mac(kit_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> [u8; 32] {
    let k = kit_key.as_bytes();
    hmac_sha256(k, &[k, nonce.as_bytes(), timestamp.as_bytes(), payload])
}

/// The `x-sign` value (lower-case hex).
pub fn sign(kit_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> String {
    hex::encode(mac(kit_key, nonce, timestamp, payload))
}

/// Verifies the headers of a kit request in the order of security.md §15.
pub fn verify(
    kit_key: &str,
    req: &SignedRequest<'_>,
    body: &[u8],
    now_ms: i64,
    window_ms: u64,
) -> Result<SignedForm, AuthError> {
    verify_body_signature(
        &NAMES,
        req,
        body,
        now_ms,
        window_ms,
        |nonce, ts, payload| mac(kit_key, nonce, ts, payload),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differs_from_v2_and_checks_headers() {
        let body = br#"{"flag":1}"#;
        let (ts, nonce) = ("1680508066618", "N");
        let sig = sign("kit", nonce, ts, body);
        assert_ne!(sig, crate::sign::v2::sign("kit", nonce, ts, body));
        let req = SignedRequest {
            signature: Some(&sig),
            timestamp: Some(ts),
            nonce: Some(nonce),
        };
        assert_eq!(
            verify("kit", &req, body, 1_680_508_066_618, 60_000),
            Ok(SignedForm::Raw)
        );
        let missing = SignedRequest { nonce: None, ..req };
        assert_eq!(
            verify("kit", &missing, body, 1_680_508_066_618, 60_000),
            Err(AuthError::MissingNonce("x-nonce"))
        );
    }
}
