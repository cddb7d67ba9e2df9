//! V1 `authToken` (security.md §6): SaaS V1 and License 1.0 GET requests (token in the query),
//! and the V1 kit's POST-body variant (token in the `authToken` header).
//!
//! `authToken = Base64(HMAC-SHA256(key = accessKey + timeStamp, msg = sorted "name=value" & …))`

use crate::error::AuthError;
use crate::sign::{base64, decode_b64_sig, hmac_sha256, macs_equal, sort_java};

/// The canonical string: every parameter except `authToken`, sorted by name in Java order,
/// joined as `name=value` with `&` (empty values kept as `name=`). A repeated name counts once,
/// with its first value.
pub fn canonical_string<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut items: Vec<(String, &str)> = params
        .iter()
        .filter(|(k, _)| k.as_ref() != "authToken" && seen.insert(k.as_ref().to_owned()))
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref()))
        .collect();
    sort_java(&mut items);
    let mut out = String::new();
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Computes the `authToken` of decoded parameters; `timeStamp` must be among them.
pub fn auth_token<K: AsRef<str>, V: AsRef<str>>(
    access_key: &str,
    params: &[(K, V)],
) -> Result<String, AuthError> {
    let ts = time_stamp(params)?;
    let mac = hmac_sha256(
        format!("{access_key}{ts}").as_bytes(),
        &[canonical_string(params).as_bytes()],
    );
    Ok(base64(&mac))
}

fn time_stamp<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> Result<&str, AuthError> {
    params
        .iter()
        .find(|(k, _)| k.as_ref() == "timeStamp")
        .map(|(_, v)| v.as_ref())
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::MissingTimestamp("timeStamp"))
}

/// Verifies a GET request's decoded parameters (which include `authToken`, with `+` already
/// restored by [`crate::query::decode_query`]). Missing `timeStamp` → `000002`; missing or wrong
/// `authToken` → `000001` (security.md §6.3). Freshness is checked separately with
/// [`check_v1_window`].
pub fn verify_get(access_key: &str, params: &[(String, String)]) -> Result<(), AuthError> {
    let received = crate::query::param(params, "authToken");
    verify_token(access_key, params, received)
}

fn verify_token<K: AsRef<str>, V: AsRef<str>>(
    access_key: &str,
    params: &[(K, V)],
    received: Option<&str>,
) -> Result<(), AuthError> {
    let ts = time_stamp(params)?;
    let received = received
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::MissingSignature("authToken"))?;
    let received = decode_b64_sig(&received.replace(' ', "+"), "authToken")?;
    let expected = hmac_sha256(
        format!("{access_key}{ts}").as_bytes(),
        &[canonical_string(params).as_bytes()],
    );
    if macs_equal(&expected, &received) {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// Checks a V1 `timeStamp` (17 digits, UTC) against `|now − timeStamp| ≤ window`
/// (security.md §3.3: undocumented by KooGallery; 300 s recommended).
pub fn check_v1_window(time_stamp: &str, now_ms: i64, window_ms: u64) -> Result<(), AuthError> {
    let t = crate::time::parse_millis17(time_stamp)
        .map_err(|_| AuthError::MalformedTimestamp("timeStamp"))?;
    crate::time::check_window(crate::time::epoch_millis(t), now_ms, window_ms)
}

/// The POST-body variant's parameters: the top-level members of a JSON object as text
/// (numbers as written, booleans as `true`/`false`), skipping `null`, empty and blank values
/// (security.md §6.2). Nested values are passed as their compact JSON text.
pub fn post_body_params(body: &[u8]) -> Result<Vec<(String, String)>, crate::Error> {
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| crate::Error::Json(e.to_string()))?;
    Ok(value
        .into_iter()
        .filter_map(|(k, v)| {
            let text = match v {
                serde_json::Value::Null => return None,
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (!text.trim().is_empty()).then_some((k, text))
        })
        .collect())
}

/// Computes the POST-body variant's token over a JSON body.
pub fn post_auth_token(access_key: &str, body: &[u8]) -> Result<String, crate::Error> {
    Ok(auth_token(access_key, &post_body_params(body)?)?)
}

/// Verifies the POST-body variant: `auth_token` is the `authToken` header.
pub fn verify_post(
    access_key: &str,
    body: &[u8],
    auth_token: Option<&str>,
) -> Result<(), crate::Error> {
    let params = post_body_params(body)?;
    Ok(verify_token(access_key, &params, auth_token)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let mut params = p(&[
            ("activity", "newInstance"),
            ("orderId", "X"),
            ("timeStamp", "20200727073711903"),
        ]);
        let token = auth_token("k", &params).unwrap();
        params.push(("authToken".into(), token.clone()));
        assert_eq!(verify_get("k", &params), Ok(()));
        assert_eq!(
            verify_get("other", &params),
            Err(AuthError::SignatureMismatch)
        );
        params[1].1 = "Y".into();
        assert_eq!(verify_get("k", &params), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn missing_values() {
        let no_ts = p(&[("a", "1"), ("authToken", "x")]);
        assert_eq!(
            verify_get("k", &no_ts),
            Err(AuthError::MissingTimestamp("timeStamp"))
        );
        let no_token = p(&[("a", "1"), ("timeStamp", "20200727073711903")]);
        assert_eq!(
            verify_get("k", &no_token),
            Err(AuthError::MissingSignature("authToken"))
        );
        let bad_token = p(&[("timeStamp", "20200727073711903"), ("authToken", "!!")]);
        assert_eq!(
            verify_get("k", &bad_token),
            Err(AuthError::MalformedSignature("authToken"))
        );
    }

    #[test]
    fn v1_window() {
        let now =
            crate::time::epoch_millis(crate::time::parse_millis17("20200727073711903").unwrap());
        assert!(check_v1_window("20200727073711903", now + 300_000, 300_000).is_ok());
        assert!(check_v1_window("20200727073711903", now + 300_001, 300_000).is_err());
        assert_eq!(
            check_v1_window("2020", now, 1),
            Err(AuthError::MalformedTimestamp("timeStamp"))
        );
    }
}
