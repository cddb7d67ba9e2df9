//! Query-string decoding with the `+`-as-space repair (security.md §5).
//!
//! KooGallery URL-encodes every value. Each name and value is decoded once with ordinary form
//! decoding (`%XX` → byte, `+` → space). Base64 never contains a space, so in a Base64-valued
//! parameter a space can only be a `+` that arrived unencoded: those are restored.

/// Parameters whose values are Base64 (or encrypted, which is Base64 after a 16-character IV).
pub const BASE64_PARAMS: [&str; 4] = ["authToken", "mobilePhone", "email", "saasExtendParams"];

/// Decodes a raw query string (without the leading `?`) into name/value pairs in wire order,
/// restoring `+` in the [`BASE64_PARAMS`].
pub fn decode_query(query: &str) -> Vec<(String, String)> {
    decode_query_with(query, &BASE64_PARAMS)
}

/// As [`decode_query`], with the caller's list of Base64-valued parameter names.
pub fn decode_query_with(query: &str, base64_params: &[&str]) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| {
            let value = if base64_params.contains(&name.as_ref()) {
                restore_plus(&value)
            } else {
                value.into_owned()
            };
            (name.into_owned(), value)
        })
        .collect()
}

/// Replaces every space with `+`: for a Base64 value mangled by form decoding.
pub fn restore_plus(value: &str) -> String {
    value.replace(' ', "+")
}

/// The first value of `name`, as Java's `getParameter` returns it.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Encodes pairs as a query string (`application/x-www-form-urlencoded`), for building requests.
pub fn encode_query<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_restored_only_in_base64_params() {
        let p = decode_query("customerName=John+Smith&email=ab+cd%2B%3D&authToken=x+y");
        assert_eq!(param(&p, "customerName"), Some("John Smith"));
        assert_eq!(param(&p, "email"), Some("ab+cd+="));
        assert_eq!(param(&p, "authToken"), Some("x+y"));
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let pairs = vec![
            ("a".to_owned(), "x y+z/=&中".to_owned()),
            ("b".to_owned(), String::new()),
        ];
        assert_eq!(decode_query_with(&encode_query(&pairs), &[]), pairs);
    }

    #[test]
    fn first_value_wins() {
        let p = decode_query("a=1&a=2");
        assert_eq!(param(&p, "a"), Some("1"));
    }
}
