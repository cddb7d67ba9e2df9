//! Usage-push body signature (security.md §11), sent by the merchant with the usage push:
//! `signature = Base64(HMAC-SHA256(basicKey, "ts={ts}&nonce={nonce}&body={body}"))`.

use crate::error::AuthError;
use crate::sign::{base64, decode_b64_sig, hmac_sha256, macs_equal};

pub const HEADER_SIGNATURE: &str = "signature";
pub const HEADER_TS: &str = "ts";
pub const HEADER_NONCE: &str = "nonce";

/// The exact text that is signed.
pub fn string_to_sign(ts: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = format!("ts={ts}&nonce={nonce}&body=").into_bytes();
    msg.extend_from_slice(body);
    msg
}

/// The `signature` header value.
pub fn sign(basic_key: &str, ts: &str, nonce: &str, body: &[u8]) -> String {
    base64(&hmac_sha256(
        basic_key.as_bytes(),
        &[&string_to_sign(ts, nonce, body)],
    ))
}

/// Verifies a received usage push (the emulator's side).
pub fn verify(
    basic_key: &str,
    ts: &str,
    nonce: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), AuthError> {
    let signature = signature
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::MissingSignature(HEADER_SIGNATURE))?;
    let received = decode_b64_sig(signature, HEADER_SIGNATURE)?;
    let expected = hmac_sha256(basic_key.as_bytes(), &[&string_to_sign(ts, nonce, body)]);
    if macs_equal(&expected, &received) {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let s = sign("k", "1", "n", b"{}");
        assert_eq!(verify("k", "1", "n", b"{}", Some(&s)), Ok(()));
        assert_eq!(
            verify("k", "2", "n", b"{}", Some(&s)),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            verify("k", "1", "n", b"{} ", Some(&s)),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            verify("k", "1", "n", b"{}", None),
            Err(AuthError::MissingSignature("signature"))
        );
    }
}
