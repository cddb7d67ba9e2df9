//! Every signature scheme between KooGallery and a merchant (security.md §6–§12).
//!
//! | scheme | module | direction |
//! |---|---|---|
//! | V1 `authToken` (GET query and POST body) | [`v1`] | KooGallery → merchant |
//! | `Body-Sign` response header | [`body_sign`] | merchant → KooGallery |
//! | V2 URL signature (`signature`/`timestamp`/`nonce`) | [`v2`] | KooGallery → merchant |
//! | kit headers (`x-sign`/`x-timestamp`/`x-nonce`) | [`kit`] | KooGallery → merchant |
//! | usage-push body signature (`signature`/`ts`/`nonce`) | [`usage`] | merchant → KooGallery |
//! | API Gateway `SDK-HMAC-SHA256` | [`apig`] | merchant → KooGallery open APIs |
//!
//! Received signatures are decoded to bytes first (which makes hex comparison case-insensitive)
//! and compared in constant time.

pub mod apig;
pub mod body_sign;
pub mod kit;
pub mod usage;
pub mod v1;
pub mod v2;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::canonical;
use crate::error::AuthError;

type HmacSha256 = Hmac<Sha256>;

/// The longest nonce accepted (security.md §4: only absurd lengths are refused).
pub const MAX_NONCE_LEN: usize = 256;

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Decodes a received hex signature (either case) into 32 bytes.
pub(crate) fn decode_hex_sig(value: &str, field: &'static str) -> Result<[u8; 32], AuthError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(value, &mut out).map_err(|_| AuthError::MalformedSignature(field))?;
    Ok(out)
}

/// Decodes a received Base64 signature into 32 bytes.
pub(crate) fn decode_b64_sig(value: &str, field: &'static str) -> Result<[u8; 32], AuthError> {
    let bytes = BASE64
        .decode(value)
        .map_err(|_| AuthError::MalformedSignature(field))?;
    bytes
        .try_into()
        .map_err(|_| AuthError::MalformedSignature(field))
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Constant-time equality of two MACs.
pub(crate) fn macs_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Which form of the body a verified signature was made over (security.md §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedForm {
    /// The exact bytes received.
    Raw,
    /// The canonical (Jackson) re-serialisation.
    Canonical,
}

impl SignedForm {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Canonical => "canonical",
        }
    }
}

/// The three authentication values of a V2 or kit request, as received (already URL-decoded).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedRequest<'a> {
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

/// Wire names of the three values, for error messages.
pub(crate) struct Names {
    pub signature: &'static str,
    pub timestamp: &'static str,
    pub nonce: &'static str,
}

/// The verification order of security.md §15, shared by V2 and the kit: timestamp present and
/// numeric, inside the window, nonce present, signature present and well-formed, then the MAC
/// over the raw body and, failing that, over its canonical form.
pub(crate) fn verify_body_signature(
    names: &Names,
    req: &SignedRequest<'_>,
    body: &[u8],
    now_ms: i64,
    window_ms: u64,
    mac_of: impl Fn(&str, &str, &[u8]) -> [u8; 32],
) -> Result<SignedForm, AuthError> {
    let timestamp = req.timestamp.unwrap_or_default();
    crate::time::check_fresh(names.timestamp, req.timestamp, now_ms, window_ms)?;
    let nonce = check_nonce(names.nonce, req.nonce)?;
    let signature = req
        .signature
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::MissingSignature(names.signature))?;
    let received = decode_hex_sig(signature, names.signature)?;
    if macs_equal(&mac_of(nonce, timestamp, body), &received) {
        return Ok(SignedForm::Raw);
    }
    match canonical::canonicalize(body) {
        Ok(c)
            if c.as_bytes() != body
                && macs_equal(&mac_of(nonce, timestamp, c.as_bytes()), &received) =>
        {
            Ok(SignedForm::Canonical)
        }
        _ => Err(AuthError::SignatureMismatch),
    }
}

fn check_nonce<'a>(field: &'static str, nonce: Option<&'a str>) -> Result<&'a str, AuthError> {
    let nonce = nonce
        .filter(|n| !n.is_empty())
        .ok_or(AuthError::MissingNonce(field))?;
    if nonce.chars().count() > MAX_NONCE_LEN {
        return Err(AuthError::NonceTooLong(field));
    }
    Ok(nonce)
}

/// Sorts `name=value` pairs by name in Java `String.compareTo` order (UTF-16 code units).
pub(crate) fn sort_java<T>(items: &mut [(String, T)]) {
    items.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_decode_strictly() {
        let upper = "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843";
        assert!(decode_hex_sig(upper, "signature").is_ok());
        assert!(decode_hex_sig(&upper[..62], "signature").is_err());
        assert!(decode_hex_sig(&format!("{upper}00"), "signature").is_err());
        assert!(decode_hex_sig(&upper.replace('B', "G"), "signature").is_err());
        assert!(
            decode_b64_sig("4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok=", "authToken").is_ok()
        );
        assert!(
            decode_b64_sig("4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok", "authToken").is_err()
        );
        assert!(decode_b64_sig("AAAA", "authToken").is_err());
    }
}
