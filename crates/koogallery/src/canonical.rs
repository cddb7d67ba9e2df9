//! Jackson-compatible canonical JSON (security.md §8) and the ASCII-escaping response
//! serialiser (saas.md §2.5).
//!
//! KooGallery's official sample verifies a signature over a re-serialised body: parse into a
//! map, copy into a `TreeMap` (top-level keys sorted by UTF-16 code unit), drop top-level
//! `null`s, write with Jackson's default `ObjectMapper`. [`canonicalize`] reproduces that byte
//! for byte: nested objects and arrays keep their order and their `null`s, strings stay strings,
//! number tokens are kept exactly as received, output is compact, and strings are escaped the
//! way Jackson escapes them (short escapes, other control characters as upper-case `\u00XX`,
//! `/` and non-ASCII raw).
//!
//! A small strict parser is used instead of `serde_json::Value`: serde_json would either
//! reformat numbers, or need its `arbitrary_precision` feature, which is global to the build and
//! breaks `#[serde(untagged)]` decoding of numbers elsewhere.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;

use serde::Serialize;

/// Nesting deeper than this is refused rather than risking the stack.
pub const MAX_DEPTH: usize = 128;

/// Why a body has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("invalid JSON at byte {0}")]
    Syntax(usize),
    #[error("JSON nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("body is JSON but not an object")]
    NotAnObject,
}

/// Returns the canonical form of a JSON object body.
pub fn canonicalize(body: &[u8]) -> Result<String, CanonicalError> {
    let text = std::str::from_utf8(body).map_err(|_| CanonicalError::NotUtf8)?;
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    p.ws();
    let value = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(CanonicalError::Syntax(p.i));
    }
    let Json::Object(mut members) = value else {
        return Err(CanonicalError::NotAnObject);
    };
    members.retain(|(_, v)| !matches!(v, Json::Null));
    members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    let mut out = String::with_capacity(body.len());
    write_object(&mut out, &members);
    Ok(out)
}

/// Whether a body is already in canonical form (every published KooGallery example is).
pub fn is_canonical(body: &[u8]) -> bool {
    canonicalize(body).is_ok_and(|c| c.as_bytes() == body)
}

enum Json<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self) -> Result<T, CanonicalError> {
        Err(CanonicalError::Syntax(self.i))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json<'a>, CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(CanonicalError::TooDeep);
        }
        match self.s.get(self.i) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if self.eat(b"null") => Ok(Json::Null),
            _ if self.eat(b"true") => Ok(Json::Bool(true)),
            _ if self.eat(b"false") => Ok(Json::Bool(false)),
            _ => self.err(),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json<'a>, CanonicalError> {
        self.i += 1;
        let mut members: Vec<(Cow<'a, str>, Json<'a>)> = Vec::new();
        let mut index: HashMap<Cow<'a, str>, usize> = HashMap::new();
        self.ws();
        if self.eat(b"}") {
            return Ok(Json::Object(members));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return self.err();
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(b":") {
                return self.err();
            }
            self.ws();
            let value = self.value(depth + 1)?;
            // A repeated key keeps its first position and takes the last value, as a Java
            // LinkedHashMap (and Jackson's ObjectNode) do.
            match index.get(&key) {
                Some(&at) => members[at].1 = value,
                None => {
                    index.insert(key.clone(), members.len());
                    members.push((key, value));
                }
            }
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"}") {
                return Ok(Json::Object(members));
            }
            return self.err();
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json<'a>, CanonicalError> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b"]") {
            return Ok(Json::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"]") {
                return Ok(Json::Array(items));
            }
            return self.err();
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, returned as the exact token.
    fn number(&mut self) -> Result<Json<'a>, CanonicalError> {
        let start = self.i;
        self.eat(b"-");
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.err(),
        }
        if self.eat(b".") {
            if !self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                return self.err();
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if !self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                return self.err();
            }
            self.digits();
        }
        Ok(Json::Number(&self.text[start..self.i]))
    }

    fn digits(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn hex4(&mut self) -> Result<u32, CanonicalError> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or(CanonicalError::Syntax(self.i))?;
        let h = std::str::from_utf8(h).map_err(|_| CanonicalError::Syntax(self.i))?;
        let v = u32::from_str_radix(h, 16).map_err(|_| CanonicalError::Syntax(self.i))?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.err();
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, CanonicalError> {
        self.i += 1;
        let start = self.i;
        // Fast path: no escapes, borrow the text.
        while let Some(&b) = self.s.get(self.i) {
            match b {
                b'"' => {
                    self.i += 1;
                    return Ok(Cow::Borrowed(&self.text[start..self.i - 1]));
                }
                b'\\' => break,
                0..=0x1f => return self.err(),
                _ => self.i += 1,
            }
        }
        let mut out = String::from(&self.text[start..self.i]);
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return self.err();
            };
            match b {
                b'"' => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                0..=0x1f => return self.err(),
                b'\\' => {
                    self.i += 1;
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err();
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return self.err(),
                    }
                }
                _ => {
                    // Copy one whole UTF-8 character.
                    let len = utf8_len(b);
                    out.push_str(&self.text[self.i..self.i + len]);
                    self.i += len;
                }
            }
        }
    }

    /// After `\u`: one escape, or a surrogate pair of two. A lone surrogate cannot be carried
    /// in UTF-8, so such a body has no canonical form.
    fn unicode_escape(&mut self) -> Result<char, CanonicalError> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.eat(b"\\u") {
                return self.err();
            }
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return self.err();
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or(CanonicalError::Syntax(self.i))
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn write_value(out: &mut String, v: &Json<'_>) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(n),
        Json::String(s) => write_jackson_string(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Json::Object(members) => write_object(out, members),
    }
}

fn write_object(out: &mut String, members: &[(Cow<'_, str>, Json<'_>)]) {
    out.push('{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_jackson_string(out, k);
        out.push(':');
        write_value(out, v);
    }
    out.push('}');
}

/// A JSON string as Jackson writes it by default.
fn write_jackson_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('"');
    let mut plain_from = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            0x09 => Some("\\t"),
            0x0a => Some("\\n"),
            0x0c => Some("\\f"),
            0x0d => Some("\\r"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[plain_from..i]);
        plain_from = i + 1;
        match escape {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// A compact serde_json formatter that writes every non-ASCII character as `\uXXXX`
/// (lower-case hex, UTF-16 surrogate pairs above U+FFFF), as KooGallery requires of `memo`
/// (saas.md §2.5). Escaping the whole response is valid JSON and the simplest safe rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsciiFormatter;

impl serde_json::ser::Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut plain_from = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() {
                continue;
            }
            w.write_all(&fragment.as_bytes()[plain_from..i])?;
            plain_from = i + c.len_utf8();
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
        }
        w.write_all(&fragment.as_bytes()[plain_from..])
    }
}

/// Serialises a response compactly with every non-ASCII character escaped; these are the exact
/// bytes to sign (`Body-Sign`) and send.
pub fn to_ascii_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        canonicalize(s.as_bytes()).unwrap()
    }

    #[test]
    fn sorts_top_level_only_and_drops_top_level_nulls() {
        assert_eq!(
            canon(r#"{"b":"2","a":"1","c":null,"d":""}"#),
            r#"{"a":"1","b":"2","d":""}"#
        );
        assert_eq!(
            canon(r#"{ "z" : {"y":1,"x":null} , "a":[3, 2,1] }"#),
            r#"{"a":[3,2,1],"z":{"y":1,"x":null}}"#
        );
        assert_eq!(canon("{}"), "{}");
    }

    #[test]
    fn duplicate_keys_last_value_wins() {
        assert_eq!(canon(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
        assert_eq!(
            canon(r#"{"n":{"x":1,"y":2,"x":3}}"#),
            r#"{"n":{"x":3,"y":2}}"#
        );
        assert_eq!(canon(r#"{"a":1,"a":null}"#), "{}");
    }

    #[test]
    fn escapes_like_jackson() {
        assert_eq!(
            canon(r#"{"s":"\/\u0041\b\f\u007f\u2028"}"#),
            "{\"s\":\"/A\\b\\f\u{7f}\u{2028}\"}"
        );
        assert_eq!(canon(r#"{"s":"\u0000\u001f"}"#), r#"{"s":"\u0000\u001F"}"#);
    }

    #[test]
    fn rejects_invalid_json() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":-}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":tru}",
            "{} x",
            "{\"a\":\"\\u12G4\"}",
            "{'a':1}",
        ] {
            assert!(
                matches!(canonicalize(bad.as_bytes()), Err(CanonicalError::Syntax(_))),
                "{bad:?}"
            );
        }
        assert_eq!(canonicalize(b"[1]"), Err(CanonicalError::NotAnObject));
        assert_eq!(canonicalize(b"\"s\""), Err(CanonicalError::NotAnObject));
        assert_eq!(
            canonicalize(b"{\"a\":\"\xff\"}"),
            Err(CanonicalError::NotUtf8)
        );
        let deep = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH + 5),
            "]".repeat(MAX_DEPTH + 5)
        );
        assert_eq!(canonicalize(deep.as_bytes()), Err(CanonicalError::TooDeep));
    }

    #[test]
    fn numbers_keep_their_tokens() {
        assert_eq!(
            canon(r#"{"a":1.50,"b":-0,"c":1e10,"d":2E-3}"#),
            r#"{"a":1.50,"b":-0,"c":1e10,"d":2E-3}"#
        );
    }

    #[test]
    fn ascii_formatter_escapes_non_ascii_only() {
        let v = serde_json::json!({"memo": "中文 😀 ok/done", "q": "\"\n"});
        let out = String::from_utf8(to_ascii_json(&v).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"memo":"\u4e2d\u6587 \ud83d\ude00 ok/done","q":"\"\n"}"#
        );
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, v);
    }
}
