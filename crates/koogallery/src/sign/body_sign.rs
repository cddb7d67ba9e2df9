//! The `Body-Sign` response header (security.md §7):
//! `sign_type="HMAC-SHA256", signature= "<Base64(HMAC-SHA256(accessKey, exact body bytes))>"`.
//! The builder writes exactly that layout; the parser tolerates other spacing and quoting.

use crate::error::AuthError;
use crate::sign::{base64, decode_b64_sig, hmac_sha256, macs_equal};

/// The header name, exactly as KooGallery's case-sensitive checker wants it on the wire.
pub const HEADER: &str = "Body-Sign";

/// Base64 HMAC-SHA256 of the body with the access key alone.
pub fn signature(access_key: &str, body: &[u8]) -> String {
    base64(&hmac_sha256(access_key.as_bytes(), &[body]))
}

/// The complete header value, in the documented layout.
pub fn header_value(access_key: &str, body: &[u8]) -> String {
    format!(
        "sign_type=\"HMAC-SHA256\", signature= \"{}\"",
        signature(access_key, body)
    )
}

/// A parsed `Body-Sign` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodySign {
    pub sign_type: String,
    pub signature: String,
}

/// Parses `key=value` items separated by commas, values optionally double-quoted, whitespace
/// around any token ignored. `None` if `sign_type` is not `HMAC-SHA256` or `signature` is
/// missing or empty — KooGallery's "sign_type is not equals HMAC-SHA256 or signature is empty".
pub fn parse(header: &str) -> Option<BodySign> {
    let mut sign_type = None;
    let mut signature = None;
    for item in header.split(',') {
        let (k, v) = item.split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v)
            .trim();
        match k.trim() {
            "sign_type" => sign_type = Some(v.to_owned()),
            "signature" => signature = Some(v.to_owned()),
            _ => {}
        }
    }
    let sign_type = sign_type.filter(|t| t == "HMAC-SHA256")?;
    let signature = signature.filter(|s| !s.is_empty())?;
    Some(BodySign {
        sign_type,
        signature,
    })
}

/// Verifies a response: header present, well-formed, and a MAC of these exact bytes.
pub fn verify(access_key: &str, body: &[u8], header: Option<&str>) -> Result<(), AuthError> {
    let header = header
        .filter(|h| !h.trim().is_empty())
        .ok_or(AuthError::MissingSignature(HEADER))?;
    let parsed = parse(header).ok_or(AuthError::MalformedSignature(HEADER))?;
    let received = decode_b64_sig(&parsed.signature, HEADER)?;
    if macs_equal(&hmac_sha256(access_key.as_bytes(), &[body]), &received) {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_is_tolerant_builder_is_exact() {
        let v = header_value("abcde", b"a=1&b=2");
        assert_eq!(
            v,
            "sign_type=\"HMAC-SHA256\", signature= \"4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok=\""
        );
        for h in [
            v.as_str(),
            "sign_type=\"HMAC-SHA256\",signature=\"4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok=\"",
            " signature = 4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok= , sign_type = HMAC-SHA256 ",
        ] {
            assert_eq!(verify("abcde", b"a=1&b=2", Some(h)), Ok(()), "{h}");
        }
    }

    #[test]
    fn rejections() {
        assert_eq!(
            verify("k", b"x", None),
            Err(AuthError::MissingSignature(HEADER))
        );
        assert_eq!(
            verify("k", b"x", Some("")),
            Err(AuthError::MissingSignature(HEADER))
        );
        let wrong_type =
            "sign_type=\"HMAC-SHA1\", signature= \"4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok=\"";
        assert_eq!(
            verify("k", b"x", Some(wrong_type)),
            Err(AuthError::MalformedSignature(HEADER))
        );
        assert_eq!(
            verify(
                "k",
                b"x",
                Some("sign_type=\"HMAC-SHA256\", signature= \"\"")
            ),
            Err(AuthError::MalformedSignature(HEADER))
        );
        assert_eq!(
            verify("k", b"x", Some("garbage")),
            Err(AuthError::MalformedSignature(HEADER))
        );
        assert_eq!(
            verify("k", b"x ", Some(&header_value("k", b"x"))),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            verify("k2", b"x", Some(&header_value("k", b"x"))),
            Err(AuthError::SignatureMismatch)
        );
    }
}
