//! Personal data and secrets never reach the audit log or the logs.

use serde_json::Value;

/// Fields whose values are replaced by `***` wherever they appear.
pub const SENSITIVE: [&str; 14] = [
    "mobilePhone",
    "email",
    "customerName",
    "customerRealName",
    "userName",
    "password",
    "clientSecret",
    "authToken",
    "mobile",
    "phone",
    "realName",
    "accessToken",
    "access_token",
    "refresh_token",
];

const MASK: &str = "***";

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if SENSITIVE.contains(&k.as_str()) && !val.is_null() {
                    *val = Value::String(MASK.to_owned());
                } else {
                    redact_value(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// A JSON body with sensitive values masked, compact. A body that is not JSON is recorded only
/// by its size, since it cannot be redacted field by field.
pub fn json_body(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            redact_value(&mut v);
            v.to_string()
        }
        Err(_) => format!("<{} bytes, not JSON>", body.len()),
    }
}

/// Query parameters as a JSON object, sensitive values masked.
pub fn params(params: &[(String, String)]) -> String {
    let mut map = serde_json::Map::new();
    for (k, v) in params {
        let value = if SENSITIVE.contains(&k.as_str()) {
            MASK.to_owned()
        } else {
            v.clone()
        };
        map.entry(k.clone()).or_insert(Value::String(value));
    }
    Value::Object(map).to_string()
}

/// How much of an unauthenticated request the audit log keeps.
pub const EXCERPT_BYTES: usize = 2048;

/// The start of a (redacted) request, for the audit row of a request that was not
/// authenticated: anyone can send those, so their rows are bounded, with the full size noted.
pub fn excerpt(redacted: &str, size: usize) -> String {
    if redacted.len() <= EXCERPT_BYTES {
        return redacted.to_owned();
    }
    let mut end = EXCERPT_BYTES;
    while !redacted.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({size} bytes)", &redacted[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_at_a_character_boundary() {
        assert_eq!(excerpt("short", 5), "short");
        let long = "é".repeat(EXCERPT_BYTES);
        let cut = excerpt(&long, long.len());
        assert!(cut.len() <= EXCERPT_BYTES + 32, "{}", cut.len());
        assert!(cut.ends_with(&format!("… ({} bytes)", long.len())), "{cut}");
    }

    #[test]
    fn masks_nested_sensitive_fields() {
        let out = json_body(br#"{"orderId":"X","buyerInfo":{"mobilePhone":"186","email":null},"list":[{"password":"p"}]}"#);
        assert_eq!(
            out,
            r#"{"orderId":"X","buyerInfo":{"mobilePhone":"***","email":null},"list":[{"password":"***"}]}"#
        );
        assert_eq!(json_body(b"not json"), "<8 bytes, not JSON>");
        let p = params(&[
            ("email".into(), "abc".into()),
            ("orderId".into(), "X".into()),
            ("authToken".into(), "t".into()),
        ]);
        assert_eq!(p, r#"{"email":"***","orderId":"X","authToken":"***"}"#);
    }
}
