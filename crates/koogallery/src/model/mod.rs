//! Typed request and response models for every KooGallery activity, with validation.
//!
//! Conventions every model follows:
//! * Field names are the wire names (`#[serde(rename_all = "camelCase")]` or explicit renames).
//! * Mandatory strings are `String` with `#[serde(default)]`, so an absent field reaches
//!   [`Validate::validate`] and is reported as `"<field> is required"` rather than as a serde error.
//! * Optional fields are `Option<_>` and are skipped when serialising if `None`.
//! * Unknown fields are ignored (KooGallery adds fields over time), never rejected.
//! * Lengths are checked in UTF-16 code units, as KooGallery's Java checker counts them.
//! * Decoding ([`decode_json`], [`decode_params`]) reports type errors with the field's path, and
//!   validation failures as a [`FieldError`]; both answer `000002`.

pub mod kit;
pub mod license;
pub mod openapi;
pub mod saas_v1;
pub mod saas_v2;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, FieldError};

/// Checks the documented constraints of a decoded message: presence, maximum lengths, enums.
pub trait Validate {
    fn validate(&self) -> Result<(), FieldError>;
}

/// Decodes a JSON body into `T` and validates it.
///
/// A syntax error is [`Error::Json`]; a wrong type is a [`FieldError`] naming the field's path.
pub fn decode_json<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, Error> {
    // serde also accepts a struct as a JSON array of its fields; KooGallery only sends objects.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::Json("expected a JSON object".to_owned()));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| Error::Json(e.to_string()))?;
    value.validate()?;
    Ok(value)
}

/// Decodes V1 query (or form) parameters into `T` and validates it. Every value is text, as on
/// the wire; a repeated name keeps its first value, as Java's `getParameter` does.
pub fn decode_params<T: DeserializeOwned + Validate>(
    params: &[(String, String)],
) -> Result<T, Error> {
    let mut map = serde_json::Map::new();
    for (k, v) in params {
        map.entry(k.clone())
            .or_insert_with(|| serde_json::Value::String(v.clone()));
    }
    let value: T =
        serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(path_error)?;
    value.validate()?;
    Ok(value)
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() || path == "." {
        Error::Json(inner.to_string())
    } else {
        // serde_json appends " at line L column C"; the path already says where.
        let msg = inner.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        Error::Field(FieldError::invalid(path, msg))
    }
}

/// Reads only the `activity` member of a JSON body, ignoring everything else.
pub fn peek_activity(body: &[u8]) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Activity {
        #[serde(default)]
        activity: Option<String>,
    }
    let a: Activity = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            Error::Field(FieldError::invalid("activity", "must be a string"))
        } else {
            Error::Json(e.to_string())
        }
    })?;
    match a.activity {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(FieldError::missing("activity").into()),
    }
}

/// Length in UTF-16 code units, the way Java's `String.length()` counts.
pub fn java_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A mandatory string of at most `max` characters.
pub fn required(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::missing(field));
    }
    max_len(field, value, max)
}

/// An optional string of at most `max` characters.
pub fn optional(field: &str, value: Option<&str>, max: usize) -> Result<(), FieldError> {
    value.map_or(Ok(()), |v| max_len(field, v, max))
}

/// At most `max` characters (an empty value passes).
pub fn max_len(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    // Byte length bounds the UTF-16 length from above, so most values skip the count.
    if value.len() > max && java_len(value) > max {
        return Err(FieldError::too_long(field, max));
    }
    Ok(())
}

/// One of the documented values.
pub fn one_of(
    field: &str,
    value: &str,
    allowed: &'static [&'static str],
) -> Result<(), FieldError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(FieldError::not_allowed(field, allowed))
    }
}

/// Validates each element of a list, reporting errors as `field[i].inner`.
pub fn each<T: Validate>(field: &str, items: &[T]) -> Result<(), FieldError> {
    for (i, item) in items.iter().enumerate() {
        item.validate()
            .map_err(|e| e.nested(&format!("{field}[{i}]")))?;
    }
    Ok(())
}

/// `testFlag`: `"1"`/`1` marks a debugging call (seller console or dial test); `"0"`/`0`, empty
/// or absent is real traffic (saas.md §2.4). V2 sends a string, V1 and the kit send numbers; both
/// are accepted. Serialised as a string unless built with [`TestFlag::numeric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TestFlag {
    test: bool,
    numeric: bool,
}

impl TestFlag {
    pub const REAL: TestFlag = TestFlag {
        test: false,
        numeric: false,
    };
    pub const TEST: TestFlag = TestFlag {
        test: true,
        numeric: false,
    };

    pub const fn new(test: bool) -> Self {
        Self {
            test,
            numeric: false,
        }
    }
    /// The same flag, serialised as a JSON number (kit and V1 POST bodies).
    pub const fn numeric(self) -> Self {
        Self {
            numeric: true,
            ..self
        }
    }
    pub const fn is_test(self) -> bool {
        self.test
    }
    /// Parses the textual form; `None` for anything other than `""`, `"0"` and `"1"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "" | "0" => Some(Self::REAL),
            "1" => Some(Self::TEST),
            _ => None,
        }
    }
}

impl fmt::Display for TestFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.test { "1" } else { "0" })
    }
}

impl Serialize for TestFlag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.numeric, self.test) {
            (true, t) => s.serialize_u8(u8::from(t)),
            (false, true) => s.serialize_str("1"),
            (false, false) => s.serialize_str("0"),
        }
    }
}

impl<'de> Deserialize<'de> for TestFlag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(i64),
        }
        let invalid = || serde::de::Error::custom("testFlag must be 0 or 1");
        match Raw::deserialize(d)? {
            Raw::Text(s) => Self::parse(&s).ok_or_else(invalid),
            Raw::Number(0) => Ok(Self::REAL.numeric()),
            Raw::Number(1) => Ok(Self::TEST.numeric()),
            Raw::Number(_) => Err(invalid()),
        }
    }
}

/// Whether an optional flag marks a debugging call.
pub fn is_test(flag: Option<TestFlag>) -> bool {
    flag.is_some_and(TestFlag::is_test)
}

/// A value KooGallery sends either as a JSON object/array or as a JSON-encoded string of one
/// (`productInfo`, `orgInfoList`). Decoding accepts both; `was_string` remembers which form
/// arrived, and serialisation reproduces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonOrString<T> {
    pub value: T,
    pub was_string: bool,
}

impl<T> JsonOrString<T> {
    pub fn new(value: T) -> Self {
        Self {
            value,
            was_string: false,
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for JsonOrString<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        match raw {
            serde_json::Value::String(s) => serde_json::from_str(&s)
                .map(|value| Self {
                    value,
                    was_string: true,
                })
                .map_err(|e| serde::de::Error::custom(format!("embedded JSON is invalid: {e}"))),
            other => serde_json::from_value(other)
                .map(|value| Self {
                    value,
                    was_string: false,
                })
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<T: Serialize> Serialize for JsonOrString<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.was_string {
            let text = serde_json::to_string(&self.value).map_err(serde::ser::Error::custom)?;
            s.serialize_str(&text)
        } else {
            self.value.serialize(s)
        }
    }
}

/// A number KooGallery may send as a JSON number or as decimal text (`linearValue`,
/// `periodNumber`, `orderAmount`…). Kept as its decimal text, exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(pub String);

impl Decimal {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The value as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => Ok(Self(n.to_string())),
            serde_json::Value::String(s) if is_decimal(&s) => Ok(Self(s)),
            _ => Err(serde::de::Error::custom("must be a decimal number")),
        }
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Integers go out as JSON numbers, anything else as text, as KooGallery sends them.
        match self.0.parse::<i64>() {
            Ok(n) => s.serialize_i64(n),
            Err(_) => s.serialize_str(&self.0),
        }
    }
}

/// `-?digits(.digits)?`: the decimal text KooGallery uses for amounts and quantities.
pub fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// The response envelope every activity shares: `resultCode` and `resultMsg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultEnvelope {
    pub result_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_msg: Option<String>,
}

impl ResultEnvelope {
    pub fn new(code: crate::ResultCode) -> Self {
        Self {
            result_code: code.code().to_owned(),
            result_msg: Some(code.message().to_owned()),
        }
    }
    pub fn with_msg(code: crate::ResultCode, msg: impl Into<String>) -> Self {
        Self {
            result_code: code.code().to_owned(),
            result_msg: Some(msg.into()),
        }
    }
}

impl Validate for ResultEnvelope {
    fn validate(&self) -> Result<(), FieldError> {
        required("resultCode", &self.result_code, 6)?;
        optional("resultMsg", self.result_msg.as_deref(), 255)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        #[serde(default)]
        order_id: String,
        #[serde(default)]
        test_flag: Option<TestFlag>,
        #[serde(default)]
        product_info: Option<JsonOrString<serde_json::Value>>,
    }
    impl Validate for Sample {
        fn validate(&self) -> Result<(), FieldError> {
            required("orderId", &self.order_id, 8)
        }
    }

    #[test]
    fn missing_and_too_long_name_the_field() {
        let e = decode_json::<Sample>(br#"{"testFlag":"1"}"#).unwrap_err();
        assert_eq!(e.to_string(), "orderId is required");
        let e = decode_json::<Sample>(br#"{"orderId":"123456789"}"#).unwrap_err();
        assert_eq!(e.to_string(), "orderId is longer than 8 characters");
        // Eight CJK characters are 24 bytes but 8 UTF-16 units: allowed.
        assert!(decode_json::<Sample>("{\"orderId\":\"中中中中中中中中\"}".as_bytes()).is_ok());
    }

    #[test]
    fn type_errors_name_the_field_and_syntax_errors_say_json() {
        let e = decode_json::<Sample>(br#"{"orderId":5}"#).unwrap_err();
        assert!(
            matches!(&e, Error::Field(f) if f.field == "orderId"),
            "{e:?}"
        );
        assert!(matches!(
            decode_json::<Sample>(b"{\"orderId\":"),
            Err(Error::Json(_))
        ));
        assert!(matches!(decode_json::<Sample>(b"[1]"), Err(Error::Json(_))));
        assert!(matches!(
            decode_json::<Sample>(br#"{"orderId":"a"} x"#),
            Err(Error::Json(_))
        ));
    }

    #[test]
    fn test_flag_accepts_strings_and_numbers() {
        for (body, test) in [
            (r#"{"orderId":"a","testFlag":"1"}"#, true),
            (r#"{"orderId":"a","testFlag":1}"#, true),
            (r#"{"orderId":"a","testFlag":"0"}"#, false),
            (r#"{"orderId":"a","testFlag":0}"#, false),
            (r#"{"orderId":"a","testFlag":""}"#, false),
            (r#"{"orderId":"a"}"#, false),
        ] {
            let s: Sample = decode_json(body.as_bytes()).unwrap();
            assert_eq!(is_test(s.test_flag), test, "{body}");
        }
        let e = decode_json::<Sample>(br#"{"orderId":"a","testFlag":"2"}"#).unwrap_err();
        assert!(e.to_string().starts_with("testFlag"), "{e}");
        assert_eq!(serde_json::to_string(&TestFlag::TEST).unwrap(), "\"1\"");
        assert_eq!(
            serde_json::to_string(&TestFlag::TEST.numeric()).unwrap(),
            "1"
        );
    }

    #[test]
    fn json_or_string_accepts_both_and_keeps_the_form() {
        let a: Sample = decode_json(br#"{"orderId":"a","productInfo":{"x":1}}"#).unwrap();
        let b: Sample = decode_json(br#"{"orderId":"a","productInfo":"{\"x\":1}"}"#).unwrap();
        let (a, b) = (a.product_info.unwrap(), b.product_info.unwrap());
        assert_eq!(a.value, b.value);
        assert!(!a.was_string && b.was_string);
        assert_eq!(serde_json::to_string(&b).unwrap(), r#""{\"x\":1}""#);
        let e = decode_json::<Sample>(br#"{"orderId":"a","productInfo":"{bad"}"#).unwrap_err();
        assert!(e.to_string().starts_with("productInfo"), "{e}");
    }

    #[test]
    fn decimals() {
        assert!(is_decimal("12.78") && is_decimal("-12.5") && is_decimal("0"));
        assert!(!is_decimal("") && !is_decimal("1.") && !is_decimal(".5") && !is_decimal("1e5"));
        assert!(!is_decimal("+1") && !is_decimal(" 1"));
    }

    #[test]
    fn params_decode_as_text() {
        let params = vec![
            ("orderId".to_owned(), "abc".to_owned()),
            ("testFlag".to_owned(), "1".to_owned()),
        ];
        let s: Sample = decode_params(&params).unwrap();
        assert_eq!(s.order_id, "abc");
        assert!(is_test(s.test_flag));
    }

    #[test]
    fn peek_activity_reads_only_activity() {
        assert_eq!(
            peek_activity(br#"{"x":[1,{"y":null}],"activity":"newInstance"}"#).unwrap(),
            "newInstance"
        );
        assert!(matches!(peek_activity(br#"{"x":1}"#), Err(Error::Field(_))));
        assert!(matches!(
            peek_activity(br#"{"activity":5}"#),
            Err(Error::Field(_))
        ));
        assert!(matches!(peek_activity(b"not json"), Err(Error::Json(_))));
    }
}
