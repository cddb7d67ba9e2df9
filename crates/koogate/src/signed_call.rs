//! Calls to a production interface signed exactly as KooGallery signs them: the V2 URL signature
//! (`signature`/`timestamp`/`nonce`, security.md §9) and the V1 `authToken` (security.md §6).
//! Shared by `koogate load` and `koogate conformance`, which send such calls to a merchant's
//! server; the signing itself is the `koogallery` crate's.

use koogallery::sign::{v1, v2};

/// A `--url` value: an absolute `http://` or `https://` URL with a host and no fragment.
pub fn parse_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL with a host".to_owned());
    }
    if url.fragment().is_some() {
        return Err("a URL with a #fragment cannot be a production interface".to_owned());
    }
    Ok(s.to_owned())
}

/// The URL with `extra` appended to its query.
pub fn with_query(base: &str, extra: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{extra}")
}

/// The current time, Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    koogallery::time::epoch_millis(time::OffsetDateTime::now_utc())
}

/// A fresh nonce: 32 lower-case hex characters.
pub fn fresh_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The V2 query `signature=…&timestamp=…&nonce=…` for `body` at `timestamp`.
pub fn v2_query(key: &str, nonce: &str, timestamp: &str, body: &[u8]) -> String {
    let sig = v2::sign(key, nonce, timestamp, body);
    format!("signature={sig}&timestamp={timestamp}&nonce={nonce}")
}

/// The URL of a V2 call: `base` plus a fresh nonce, the current time and the signature of
/// `body`.
pub fn v2_url(base: &str, key: &str, body: &[u8]) -> String {
    let ts = now_ms().to_string();
    with_query(base, &v2_query(key, &fresh_nonce(), &ts, body))
}

/// The parameters of a V1 call: `params` plus `timeStamp` (UTC `yyyyMMddHHmmssSSS`) and its
/// `authToken`.
pub fn v1_params(
    key: &str,
    mut params: Vec<(String, String)>,
    time_stamp: String,
) -> Vec<(String, String)> {
    params.push(("timeStamp".to_owned(), time_stamp));
    // Cannot fail: timeStamp is among the parameters.
    let token = v1::auth_token(key, &params).unwrap_or_default();
    params.push(("authToken".to_owned(), token));
    params
}

/// The URL of a V1 call at the current time.
pub fn v1_url(base: &str, key: &str, params: Vec<(String, String)>) -> String {
    let ts = koogallery::time::format_millis17(time::OffsetDateTime::now_utc());
    with_query(
        base,
        &koogallery::query::encode_query(&v1_params(key, params, ts)),
    )
}
