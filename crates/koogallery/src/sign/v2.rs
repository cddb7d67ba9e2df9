//! V2 URL signature of the basic interfaces (security.md §9):
//!
//! ```text
//! inner     = lowercase_hex(HMAC-SHA256(AK, payload))
//! signature = hex(HMAC-SHA256(AK, AK + nonce + timestamp + inner))
//! ```
//!
//! `payload` is the raw body or its canonical form (security.md §8.1); both are tried.

use crate::error::AuthError;
use crate::sign::{Names, SignedForm, SignedRequest, hmac_sha256, verify_body_signature};

const NAMES: Names = Names {
    signature: "signature",
    timestamp: "timestamp",
    nonce: "nonce",
};

/// The inner hash: lower-case hex HMAC of the payload.
pub fn inner_hex(access_key: &str, payload: &[u8]) -> String {
    hex::encode(hmac_sha256(access_key.as_bytes(), &[payload]))
}

fn mac(access_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> [u8; 32] {
    let inner = inner_hex(access_key, payload);
    let k = access_key.as_bytes();
    hmac_sha256(
        k,
        &[k, nonce.as_bytes(), timestamp.as_bytes(), inner.as_bytes()],
    )
}

/// The signature (lower-case hex) KooGallery puts in the `signature` query parameter.
pub fn sign(access_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> String {
    hex::encode(mac(access_key, nonce, timestamp, payload))
}

/// Verifies a request in the order of security.md §15. Nonce replay is the caller's check,
/// after this succeeds (only an authenticated request may write to the nonce store).
pub fn verify(
    access_key: &str,
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
        |nonce, ts, payload| mac(access_key, nonce, ts, payload),
    )
}

/// Diagnostic only, for a request that failed verification: whether the signature would match
/// a third-party variant that uses plain SHA-256 as the inner hash (security.md §9). Such a
/// request is never accepted; this only lets the log say why it failed.
pub fn matches_plain_sha256_variant(
    access_key: &str,
    req: &SignedRequest<'_>,
    body: &[u8],
) -> bool {
    use sha2::Digest;
    let (Some(sig), Some(ts), Some(nonce)) = (req.signature, req.timestamp, req.nonce) else {
        return false;
    };
    let Ok(received) = crate::sign::decode_hex_sig(sig, "signature") else {
        return false;
    };
    let inner = hex::encode(sha2::Sha256::digest(body));
    let k = access_key.as_bytes();
    let mac = hmac_sha256(k, &[k, nonce.as_bytes(), ts.as_bytes(), inner.as_bytes()]);
    crate::sign::macs_equal(&mac, &received)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_680_508_066_618;

    fn req<'a>(sig: &'a str, ts: &'a str, nonce: &'a str) -> SignedRequest<'a> {
        SignedRequest {
            signature: Some(sig),
            timestamp: Some(ts),
            nonce: Some(nonce),
        }
    }

    #[test]
    fn order_of_checks() {
        let body = br#"{"a":"b"}"#;
        let sig = sign("ak", "n", "1680508066618", body);
        let ok = req(&sig, "1680508066618", "n");
        assert_eq!(verify("ak", &ok, body, NOW, 60_000), Ok(SignedForm::Raw));
        let e = |r: SignedRequest<'_>| verify("ak", &r, body, NOW, 60_000).unwrap_err();
        assert_eq!(
            e(SignedRequest {
                timestamp: None,
                ..ok
            }),
            AuthError::MissingTimestamp("timestamp")
        );
        assert_eq!(
            e(SignedRequest {
                timestamp: Some("1.5"),
                ..ok
            }),
            AuthError::MalformedTimestamp("timestamp")
        );
        assert!(matches!(
            e(SignedRequest {
                timestamp: Some("1680508000000"),
                ..ok
            }),
            AuthError::StaleTimestamp { .. }
        ));
        assert_eq!(
            e(SignedRequest { nonce: None, ..ok }),
            AuthError::MissingNonce("nonce")
        );
        assert_eq!(
            e(SignedRequest {
                nonce: Some(""),
                ..ok
            }),
            AuthError::MissingNonce("nonce")
        );
        let long = "n".repeat(257);
        assert_eq!(
            e(SignedRequest {
                nonce: Some(&long),
                ..ok
            }),
            AuthError::NonceTooLong("nonce")
        );
        assert_eq!(
            e(SignedRequest {
                signature: None,
                ..ok
            }),
            AuthError::MissingSignature("signature")
        );
        assert_eq!(
            e(SignedRequest {
                signature: Some("zz"),
                ..ok
            }),
            AuthError::MalformedSignature("signature")
        );
        assert_eq!(
            e(SignedRequest {
                nonce: Some("m"),
                ..ok
            }),
            AuthError::SignatureMismatch
        );
        assert_eq!(
            verify("other", &ok, body, NOW, 60_000),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            verify("ak", &ok, br#"{"a":"c"}"#, NOW, 60_000),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn upper_case_hex_accepted() {
        let body = b"{}";
        let sig = sign("ak", "n", "1680508066618", body).to_uppercase();
        assert_eq!(
            verify("ak", &req(&sig, "1680508066618", "n"), body, NOW, 60_000),
            Ok(SignedForm::Raw)
        );
    }
}
