//! Huawei API Gateway `SDK-HMAC-SHA256` request signing (security.md §12), used for every
//! merchant → KooGallery open API, and its verification (for the emulator).
//!
//! ```text
//! CanonicalRequest = METHOD \n CanonicalURI/ \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n HashedPayload
//! StringToSign     = "SDK-HMAC-SHA256" \n X-Sdk-Date \n hex(SHA-256(CanonicalRequest))
//! Authorization    = SDK-HMAC-SHA256 Access={AK}, SignedHeaders={…}, Signature=hex(HMAC-SHA256(SK, StringToSign))
//! ```

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::error::AuthError;
use crate::sign::{decode_hex_sig, hmac_sha256, macs_equal};

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
pub const HEADER_DATE: &str = "X-Sdk-Date";
pub const HEADER_CONTENT_SHA256: &str = "X-Sdk-Content-Sha256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The gateway refuses a request whose `X-Sdk-Date` is further than this from its clock.
pub const MAX_CLOCK_SKEW_MS: u64 = 15 * 60 * 1000;

/// Everything but RFC 3986 unreserved characters is percent-encoded (upper-case hex).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE).to_string()
}

/// A request to sign or verify. `query` holds decoded name/value pairs; `headers` are the
/// headers sent (any case), without `X-Sdk-Date` and `Host` unless the caller sets them.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The URL host, with the port only when it is not the scheme's default.
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The outcome of signing, with every intermediate for debugging (`koogate tools apig-sign`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Headers to add to the request as sent: `X-Sdk-Date`, `host` if absent, and
    /// `X-Sdk-Content-Sha256` for non-JSON bodies.
    pub added_headers: Vec<(String, String)>,
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub signature: String,
    /// The `Authorization` header value.
    pub authorization: String,
}

/// The canonical URI: decode, re-encode each segment, end with `/`. The trailing slash
/// exists only in the signature, never on the wire.
pub fn canonical_uri(path: &str) -> String {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let mut uri = decoded.split('/').map(encode).collect::<Vec<_>>().join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The canonical query string: names sorted, a repeated name's values sorted, names and values
/// encoded, `name=value` joined with `&`. Send the query in exactly this form.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn is_json_like(content_type: &str) -> bool {
    let ct = content_type.trim().to_ascii_lowercase();
    ct.starts_with("application/json") || ct.starts_with("application/bson")
}

/// Signs a request with the account AK/SK at `sdk_date` (`yyyyMMdd'T'HHmmss'Z'`).
pub fn sign(req: &Request<'_>, ak: &str, sk: &str, sdk_date: &str) -> Signed {
    let has = |name: &str| {
        req.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    let mut added = Vec::new();
    if !has(HEADER_DATE) {
        added.push((HEADER_DATE.to_owned(), sdk_date.to_owned()));
    }
    if !has("host") {
        added.push(("host".to_owned(), req.host.to_owned()));
    }
    let non_json = req
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && !is_json_like(v));
    if non_json && !has(HEADER_CONTENT_SHA256) {
        added.push((
            HEADER_CONTENT_SHA256.to_owned(),
            UNSIGNED_PAYLOAD.to_owned(),
        ));
    }
    let all: Vec<(String, String)> = req
        .headers
        .iter()
        .cloned()
        .chain(added.iter().cloned())
        .collect();
    let signable: Vec<String> = all
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| !k.contains('_'))
        .collect();
    let date = all
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(HEADER_DATE))
        .map_or(sdk_date, |(_, v)| v.as_str());
    let parts = compute(req, &all, &signable, date, sk);
    Signed {
        added_headers: added,
        authorization: format!(
            "{ALGORITHM} Access={ak}, SignedHeaders={}, Signature={}",
            parts.signed_headers, parts.signature
        ),
        canonical_request: parts.canonical_request,
        string_to_sign: parts.string_to_sign,
        signed_headers: parts.signed_headers,
        signature: parts.signature,
    }
}

struct Parts {
    canonical_request: String,
    string_to_sign: String,
    signed_headers: String,
    signature: String,
}

fn compute(
    req: &Request<'_>,
    headers: &[(String, String)],
    signed: &[String],
    date: &str,
    sk: &str,
) -> Parts {
    let mut names: Vec<&str> = signed.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let mut canonical_headers = String::new();
    for name in &names {
        let value = headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.trim());
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let signed_headers = names.join(";");
    let payload_hash = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(HEADER_CONTENT_SHA256))
        .map_or_else(|| hex::encode(Sha256::digest(req.body)), |(_, v)| v.clone());
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        payload_hash
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let signature = hex::encode(hmac_sha256(sk.as_bytes(), &[string_to_sign.as_bytes()]));
    Parts {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
    }
}

/// A parsed `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses an `Authorization` header; `None` unless it is a well-formed SDK-HMAC-SHA256 value.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.trim().strip_prefix(ALGORITHM)?.trim_start();
    let (mut access, mut signed, mut signature) = (None, None, None);
    for item in rest.split(',') {
        let (k, v) = item.trim().split_once('=')?;
        match k.trim() {
            "Access" => access = Some(v.trim().to_owned()),
            "SignedHeaders" => {
                signed = Some(v.trim().split(';').map(str::to_owned).collect::<Vec<_>>())
            }
            "Signature" => signature = Some(v.trim().to_owned()),
            _ => return None,
        }
    }
    let a = Authorization {
        access: access?,
        signed_headers: signed?,
        signature: signature?,
    };
    (!a.access.is_empty()
        && !a.signed_headers.is_empty()
        && a.signed_headers.iter().all(|h| !h.is_empty()))
    .then_some(a)
}

/// Why the gateway refuses a request (the emulator maps these to APIG error codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApigError {
    #[error("Authorization header is missing or malformed")]
    BadAuthorization,
    #[error("X-Sdk-Date is missing or malformed")]
    BadDate,
    #[error("X-Sdk-Date is more than 15 minutes from the gateway's clock")]
    ClockSkew,
    #[error("access key {0:?} is unknown")]
    UnknownAccessKey(String),
    #[error("signed header {0:?} is not present in the request")]
    MissingSignedHeader(String),
    #[error("{0}")]
    Signature(AuthError),
}

/// Verifies a received request as the gateway does. `secret_for` maps an AK to its SK.
pub fn verify<'s>(
    req: &Request<'_>,
    now_ms: i64,
    secret_for: impl Fn(&str) -> Option<&'s str>,
) -> Result<String, ApigError> {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let auth = header("authorization")
        .and_then(parse_authorization)
        .ok_or(ApigError::BadAuthorization)?;
    let date = header(HEADER_DATE).ok_or(ApigError::BadDate)?;
    let t = crate::time::parse_sdk_date(date).map_err(|_| ApigError::BadDate)?;
    crate::time::check_window(crate::time::epoch_millis(t), now_ms, MAX_CLOCK_SKEW_MS)
        .map_err(|_| ApigError::ClockSkew)?;
    let sk =
        secret_for(&auth.access).ok_or_else(|| ApigError::UnknownAccessKey(auth.access.clone()))?;
    let names: Vec<String> = auth
        .signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if let Some(missing) = names.iter().find(|n| header(n).is_none()) {
        return Err(ApigError::MissingSignedHeader(missing.clone()));
    }
    let parts = compute(req, req.headers, &names, date, sk);
    let received = decode_hex_sig(&auth.signature, "Signature").map_err(ApigError::Signature)?;
    let expected = decode_hex_sig(&parts.signature, "Signature").map_err(ApigError::Signature)?;
    if macs_equal(&expected, &received) {
        Ok(auth.access)
    } else {
        Err(ApigError::Signature(AuthError::SignatureMismatch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uri_rules() {
        assert_eq!(canonical_uri("/v1/a/vpcs"), "/v1/a/vpcs/");
        assert_eq!(canonical_uri("/v1/a/"), "/v1/a/");
        assert_eq!(canonical_uri("/a b/%41~x*"), "/a%20b/A~x%2A/");
        assert_eq!(canonical_uri("/中"), "/%E4%B8%AD/");
        assert_eq!(canonical_uri(""), "/");
    }

    #[test]
    fn canonical_query_sorts_names_and_values() {
        let q = vec![
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "y z".to_owned()),
            ("a".to_owned(), "x".to_owned()),
            ("c".to_owned(), String::new()),
        ];
        assert_eq!(canonical_query(&q), "a=x&a=y%20z&b=2&c=");
        assert_eq!(canonical_query(&[]), "");
    }

    fn request<'a>(headers: &'a [(String, String)], query: &'a [(String, String)]) -> Request<'a> {
        Request {
            method: "POST",
            host: "mkt.example.com",
            path: "/api/x",
            query,
            headers,
            body: b"{}",
        }
    }

    #[test]
    fn sign_then_verify() {
        let base = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let q = vec![("a".to_owned(), "1".to_owned())];
        let signed = sign(&request(&base, &q), "AK", "SK", "20220809T091500Z");
        let mut sent = base.clone();
        sent.extend(signed.added_headers.clone());
        sent.push(("Authorization".to_owned(), signed.authorization.clone()));
        let now =
            crate::time::epoch_millis(crate::time::parse_sdk_date("20220809T091500Z").unwrap());
        let lookup = |ak: &str| (ak == "AK").then_some("SK");
        assert_eq!(
            verify(&request(&sent, &q), now, lookup),
            Ok("AK".to_owned())
        );
        assert_eq!(
            verify(&request(&sent, &q), now + 15 * 60_000 + 1, lookup),
            Err(ApigError::ClockSkew)
        );
        assert_eq!(
            verify(&request(&sent, &q), now, |_| Some("other")),
            Err(ApigError::Signature(AuthError::SignatureMismatch))
        );
        assert!(matches!(
            verify(&request(&sent, &q), now, |_| None),
            Err(ApigError::UnknownAccessKey(_))
        ));
        let tampered_q = vec![("a".to_owned(), "2".to_owned())];
        assert!(verify(&request(&sent, &tampered_q), now, lookup).is_err());
        let no_auth: Vec<_> = sent
            .iter()
            .filter(|(k, _)| k != "Authorization")
            .cloned()
            .collect();
        assert_eq!(
            verify(&request(&no_auth, &q), now, lookup),
            Err(ApigError::BadAuthorization)
        );
    }

    #[test]
    fn multipart_is_unsigned_payload_and_underscore_headers_unsigned() {
        let h = vec![
            (
                "Content-Type".to_owned(),
                "multipart/form-data; boundary=x".to_owned(),
            ),
            ("x_custom".to_owned(), "v".to_owned()),
        ];
        let s = sign(&request(&h, &[]), "AK", "SK", "20220809T091500Z");
        assert!(s.added_headers.contains(&(
            HEADER_CONTENT_SHA256.to_owned(),
            UNSIGNED_PAYLOAD.to_owned()
        )));
        assert!(s.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
        assert_eq!(
            s.signed_headers,
            "content-type;host;x-sdk-content-sha256;x-sdk-date"
        );
    }

    #[test]
    fn authorization_parser() {
        let a = parse_authorization(
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=ab",
        )
        .unwrap();
        assert_eq!(a.access, "AK");
        assert_eq!(a.signed_headers, vec!["host", "x-sdk-date"]);
        assert!(parse_authorization("AWS4 Access=AK, SignedHeaders=host, Signature=ab").is_none());
        assert!(parse_authorization("SDK-HMAC-SHA256 Access=AK, Signature=ab").is_none());
        assert!(
            parse_authorization("SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=ab")
                .is_none()
        );
    }
}
