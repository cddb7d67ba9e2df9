//! Verifying an answer the way KooGallery's debugging tool does (saas.md §2.1, §10; security.md
//! §7, §15), with the tool's own error messages first in every reason so a merchant recognises
//! what the seller console would show.

use koogallery::sign::body_sign;
use serde_json::Value;

use super::http::{Answer, Failure, truncate};

/// The console's message for an unreachable production address.
pub const UNREACHABLE: &str = "调测失败,生产地址不可达.";
/// The console's message for a missing answer after 20 s.
pub const TIMEOUT: &str = "调测失败,调用接口超时20s.";
/// The console's message for a `resultCode` other than the expected one.
pub const WRONG_CODE: &str = "调用失败,生产接口resultCode返回错误.";
/// The console's message for a body that is not the expected JSON.
pub const NOT_JSON: &str =
    r#"调测失败,解析响应体失败,响应格式参考{"resultCode":"000000","resultMsg":"success."}."#;
/// The console's message for a wrong `Content-Type`.
pub const WRONG_CONTENT_TYPE: &str =
    r#"调测失败,响应content-type格式错误,正确的格式为"application/json"."#;
/// The console's message for a missing `Body-Sign`.
pub const NO_BODY_SIGN: &str = "http header->bodySign is empty.";
/// The console's message for a malformed `Body-Sign`.
pub const BAD_BODY_SIGN: &str =
    "http header->sign_type is not equals HMAC-SHA256 or signature is empty.";

/// The console's message for a missing mandatory response field.
pub fn missing(field: &str) -> String {
    format!("调测失败,接口响应缺少{field}.")
}

/// The reason of a request that got no answer.
pub fn transport(f: &Failure) -> String {
    match f {
        Failure::Unreachable(e) => {
            format!("{UNREACHABLE} (the production address is unreachable: {e})")
        }
        Failure::Timeout => format!("{TIMEOUT} (no complete answer within 20 s)"),
        Failure::Malformed(e) => format!("{NOT_JSON} (the answer is not valid HTTP/1.1: {e})"),
    }
}

/// When `Body-Sign` must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignRule {
    /// V1 families: mandatory on every answer (security.md §7).
    Required,
    /// V2 families: recommended; a header that is present must be correct (saas.md §14 #1).
    IfPresent,
}

/// Length of a string as Java counts it (UTF-16 code units), the unit of every `String(n)`.
pub fn java_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// An answer that passed the envelope checks.
pub struct Checked {
    pub json: serde_json::Map<String, Value>,
    pub code: String,
    pub notes: Vec<String>,
}

/// The checks every answer must pass, in the order the console applies them: HTTP 200,
/// `Content-Type: application/json`, a JSON object, `Body-Sign` (per `rule`), a `resultCode`
/// string of six digits.
pub fn envelope(answer: &Answer, key: &str, rule: SignRule) -> Result<Checked, String> {
    let mut notes = Vec::new();
    if answer.status != 200 {
        return Err(format!(
            "调测失败,接口响应httpCode={}. (HTTP status {}, KooGallery accepts only 200, also for refusals; body: {})",
            answer.status,
            answer.status,
            body_excerpt(&answer.body)
        ));
    }
    let content_type = answer.header("Content-Type");
    let json_type = content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json_type {
        return Err(format!(
            "{WRONG_CONTENT_TYPE} (Content-Type is {})",
            content_type.map_or_else(|| "missing".to_owned(), |c| format!("{c:?}"))
        ));
    }
    let json = match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(format!(
                "{NOT_JSON} (the body is JSON but not an object: {})",
                body_excerpt(&answer.body)
            ));
        }
        Err(e) => {
            return Err(format!(
                "{NOT_JSON} (the body is not JSON: {e}; body: {})",
                body_excerpt(&answer.body)
            ));
        }
    };
    // A refusal of our own signature explains a Body-Sign made with another key.
    let hint = if json.get("resultCode").and_then(Value::as_str) == Some("000001") {
        " The endpoint also answered 000001 (token is invalid) to a correctly signed request: the key given is probably not the endpoint's key."
    } else {
        ""
    };
    let verify_sign =
        |value: &str| verify_sign(key, &answer.body, value).map_err(|e| format!("{e}{hint}"));
    match answer.header_exact(body_sign::HEADER) {
        Some(value) => verify_sign(value)?,
        None => match (answer.header_name(body_sign::HEADER), rule) {
            (Some(name), SignRule::Required) => {
                return Err(format!(
                    "{NO_BODY_SIGN} (the header is sent as {name:?}; KooGallery reads header names case-sensitively and wants exactly \"Body-Sign\", security.md §7)"
                ));
            }
            (Some(name), SignRule::IfPresent) => {
                notes.push(format!(
                    "Body-Sign is sent as {name:?}: a case-sensitive checker does not see it (security.md §7)"
                ));
                // Still check the value.
                if let Some(value) = answer.header(body_sign::HEADER) {
                    verify_sign(value)?;
                }
            }
            (None, SignRule::Required) => {
                return Err(format!(
                    "{NO_BODY_SIGN} (no Body-Sign header; it is mandatory on every V1 answer, refusals included, security.md §7)"
                ));
            }
            (None, SignRule::IfPresent) => notes.push(
                "no Body-Sign header (recommended on every answer, security.md §7)".to_owned(),
            ),
        },
    }
    let code = match json.get("resultCode") {
        Some(Value::String(c)) => c.clone(),
        Some(other) => {
            return Err(format!(
                "{NOT_JSON} (resultCode must be a string, it is {other})"
            ));
        }
        None => return Err(format!("{} (no resultCode)", missing("resultCode"))),
    };
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{WRONG_CODE} (resultCode {code:?} is not a six-digit code of saas.md §3)"
        ));
    }
    match json.get("resultMsg") {
        Some(Value::String(m)) if java_len(m) > 255 => {
            return Err(format!(
                "resultMsg is {} characters, longer than its limit of 255 (saas.md §2.3)",
                java_len(m)
            ));
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(format!("{NOT_JSON} (resultMsg must be a string)")),
        None => {
            notes.push("no resultMsg (the console's parser expects it, saas.md §2.3)".to_owned())
        }
    }
    Ok(Checked { json, code, notes })
}

fn verify_sign(key: &str, body: &[u8], value: &str) -> Result<(), String> {
    let Some(parsed) = body_sign::parse(value) else {
        return Err(format!(
            "{BAD_BODY_SIGN} (Body-Sign is {:?}; expected sign_type=\"HMAC-SHA256\", signature= \"<Base64>\")",
            truncate(value, 120)
        ));
    };
    body_sign::verify(key, body, Some(value)).map_err(|e| {
        format!(
            "Body-Sign does not match the body ({e}): HMAC-SHA256 with the key over the exact {} bytes received is {}, the header's signature is {} (sign the final bytes, after escaping, with the same key, security.md §7).",
            body.len(),
            body_sign::signature(key, body),
            truncate(&parsed.signature, 100)
        )
    })
}

/// The `resultCode` must be one of `allowed`.
pub fn code_in(checked: &Checked, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&checked.code.as_str()) {
        return Ok(());
    }
    let msg = checked
        .json
        .get("resultMsg")
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(format!(
        "{WRONG_CODE} (resultCode {}, expected {}; resultMsg {:?})",
        checked.code,
        allowed.join(" or "),
        truncate(msg, 200)
    ))
}

/// A refusal: the `resultCode` must be `expected`; `000000` is named as an acceptance.
pub fn refused_with(checked: &Checked, expected: &str, what: &str) -> Result<(), String> {
    if checked.code == expected {
        return Ok(());
    }
    if checked.code == "000000" || checked.code == "000004" {
        return Err(format!(
            "{WRONG_CODE} (the endpoint accepted {what} with resultCode {}; it must refuse it with {expected}, security.md §15)",
            checked.code
        ));
    }
    Err(format!(
        "{WRONG_CODE} (refused {what}, but with resultCode {}; the spec's code is {expected}, security.md §15)",
        checked.code
    ))
}

/// A mandatory string field of at most `max` characters.
pub fn required_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    path: &str,
    field: &str,
    max: usize,
) -> Result<&'a str, String> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.is_empty() => {
            let n = java_len(s);
            if n > max {
                return Err(format!(
                    "{path} is {n} characters, longer than its limit of {max}"
                ));
            }
            Ok(s)
        }
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(format!("{} ({path} is missing or empty)", missing(field)))
        }
        Some(other) => Err(format!("{path} must be a string, it is {other}")),
    }
}

/// An optional string field of at most `max` characters.
pub fn optional_str(
    obj: &serde_json::Map<String, Value>,
    path: &str,
    field: &str,
    max: usize,
) -> Result<(), String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => {
            let n = java_len(s);
            if n > max {
                Err(format!(
                    "{path} is {n} characters, longer than its limit of {max}"
                ))
            } else {
                Ok(())
            }
        }
        Some(other) => Err(format!("{path} must be a string, it is {other}")),
    }
}

/// `encryptType`, when present, is `1` or `2` (security.md §13.3).
pub fn encrypt_type(obj: &serde_json::Map<String, Value>) -> Result<(), String> {
    match obj.get("encryptType") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s == "1" || s == "2" => Ok(()),
        Some(other) => Err(format!(
            "encryptType is {other}; it must be \"1\" (AES-256) or \"2\" (AES-128), saas.md §5.2"
        )),
    }
}

/// An `appInfo` object: `frontEndUrl` mandatory (≤ 512), `adminUrl` ≤ 512, `userName` and
/// `password` ≤ 128, `memo` ≤ 1024 (saas.md §5.2, §13.2).
pub fn app_info(value: &Value, path: &str) -> Result<(), String> {
    let Value::Object(app) = value else {
        return Err(format!("{path} must be an object"));
    };
    required_str(app, &format!("{path}.frontEndUrl"), "frontEndUrl", 512)?;
    optional_str(app, &format!("{path}.adminUrl"), "adminUrl", 512)?;
    optional_str(app, &format!("{path}.userName"), "userName", 128)?;
    optional_str(app, &format!("{path}.password"), "password", 128)?;
    optional_str(app, &format!("{path}.memo"), "memo", 1024)?;
    Ok(())
}

/// A `usageInfo` array: every entry has `usageValue` and `statisticalTime` (saas.md §5.2).
pub fn usage_info(value: &Value, path: &str) -> Result<(), String> {
    let Value::Array(entries) = value else {
        return Err(format!("{path} must be an array"));
    };
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(u) = entry else {
            return Err(format!("{path}[{i}] must be an object"));
        };
        match u.get("usageValue") {
            Some(Value::String(s)) if !s.is_empty() && java_len(s) <= 20 => {}
            Some(Value::Number(_)) => {}
            Some(Value::String(s)) if !s.is_empty() => {
                return Err(format!(
                    "{path}[{i}].usageValue is {} characters, longer than its limit of 20",
                    java_len(s)
                ));
            }
            _ => {
                return Err(format!(
                    "{} ({path}[{i}].usageValue is missing)",
                    missing("usageValue")
                ));
            }
        }
        let t = required_str(
            u,
            &format!("{path}[{i}].statisticalTime"),
            "statisticalTime",
            20,
        )?;
        if koogallery::time::parse_millis17(t).is_err() {
            return Err(format!(
                "{path}[{i}].statisticalTime {t:?} is not yyyyMMddHHmmssSSS (saas.md §5.2)"
            ));
        }
        optional_str(
            u,
            &format!("{path}[{i}].relatedInstanceId"),
            "relatedInstanceId",
            64,
        )?;
        optional_str(u, &format!("{path}[{i}].dashboardUrl"), "dashboardUrl", 512)?;
    }
    Ok(())
}

/// A `queryInstance` answer: `info` holds an entry for `wanted`, every entry has an
/// `instanceId` (≤ 64) and valid `appInfo`/`usageInfo` when present. `need_app_info` also
/// demands `appInfo` (V1 and real V2 answers for the buyer's details page).
pub fn query_info(checked: &Checked, wanted: &str, need_app_info: bool) -> Result<(), String> {
    encrypt_type(&checked.json)?;
    let entries = match checked.json.get("info") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(format!(
                "{} (no info[].instanceId: the answer has no instance information)",
                missing("instanceId")
            ));
        }
        Some(other) => return Err(format!("info must be an array, it is {other}")),
    };
    let mut found = false;
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(e) = entry else {
            return Err(format!("info[{i}] must be an object"));
        };
        let id = required_str(e, &format!("info[{i}].instanceId"), "instanceId", 64)?;
        found |= id == wanted;
        match e.get("appInfo") {
            None | Some(Value::Null) if need_app_info => {
                return Err(format!(
                    "{} (info[{i}].appInfo is missing: the buyer gets no access information)",
                    missing("appInfo")
                ));
            }
            None | Some(Value::Null) => {}
            Some(app) => app_info(app, &format!("info[{i}].appInfo"))?,
        }
        let usage = e.get("usageInfo").or_else(|| e.get("usageInfos"));
        if let Some(u) = usage.filter(|u| !u.is_null()) {
            usage_info(u, &format!("info[{i}].usageInfo"))?;
        }
    }
    if !found {
        return Err(format!(
            "{} (info has no entry for the requested instanceId {wanted:?})",
            missing("instanceId")
        ));
    }
    Ok(())
}

/// The start of a body, for a reason.
pub fn body_excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty".to_owned();
    }
    format!("{:?}", truncate(&String::from_utf8_lossy(body), 200))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        Answer {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn envelope_checks_in_console_order() {
        let body = r#"{"resultCode":"000000","resultMsg":"success."}"#;
        let sign = body_sign::header_value("k", body.as_bytes());
        let good = answer(
            200,
            &[
                ("Content-Type", "application/json;charset=UTF-8"),
                ("Body-Sign", &sign),
            ],
            body,
        );
        let c = envelope(&good, "k", SignRule::Required).unwrap();
        assert_eq!(c.code, "000000");
        assert!(c.notes.is_empty());
        let e = |a: &Answer, rule| envelope(a, "k", rule).err().unwrap();
        assert!(e(&answer(500, &[], body), SignRule::IfPresent).contains("httpCode=500"));
        assert!(
            e(
                &answer(
                    200,
                    &[("Content-Type", "text/plain"), ("Body-Sign", &sign)],
                    body
                ),
                SignRule::IfPresent
            )
            .starts_with(WRONG_CONTENT_TYPE)
        );
        assert!(
            e(
                &answer(200, &[("Content-Type", "application/json")], "nope"),
                SignRule::IfPresent
            )
            .starts_with(NOT_JSON)
        );
        assert!(
            e(
                &answer(200, &[("Content-Type", "application/json")], body),
                SignRule::Required
            )
            .starts_with(NO_BODY_SIGN)
        );
        assert!(
            e(
                &answer(
                    200,
                    &[("Content-Type", "application/json"), ("body-sign", &sign)],
                    body
                ),
                SignRule::Required
            )
            .contains("case-sensitively")
        );
        let wrong = body_sign::header_value("other", body.as_bytes());
        assert!(
            e(
                &answer(
                    200,
                    &[("Content-Type", "application/json"), ("Body-Sign", &wrong)],
                    body
                ),
                SignRule::IfPresent
            )
            .starts_with("Body-Sign does not match")
        );
        assert!(
            e(
                &answer(
                    200,
                    &[("Content-Type", "application/json"), ("Body-Sign", "x")],
                    body
                ),
                SignRule::IfPresent
            )
            .starts_with(BAD_BODY_SIGN)
        );
        let unsigned = envelope(
            &answer(200, &[("Content-Type", "application/json")], body),
            "k",
            SignRule::IfPresent,
        )
        .unwrap();
        assert_eq!(unsigned.notes.len(), 1);
    }

    #[test]
    fn query_answers() {
        let checked = |json: &str| Checked {
            json: serde_json::from_str(json).unwrap(),
            code: "000000".to_owned(),
            notes: Vec::new(),
        };
        let ok = checked(
            r#"{"info":[{"instanceId":"i1","appInfo":{"frontEndUrl":"https://x"},"usageInfo":[{"usageValue":"1.5","statisticalTime":"20240101000000000"}]}]}"#,
        );
        query_info(&ok, "i1", true).unwrap();
        assert!(
            query_info(&ok, "i2", false)
                .unwrap_err()
                .contains("no entry")
        );
        let long = format!(
            r#"{{"info":[{{"instanceId":"i1","appInfo":{{"frontEndUrl":"{}"}}}}]}}"#,
            "u".repeat(513)
        );
        assert!(
            query_info(&checked(&long), "i1", false)
                .unwrap_err()
                .contains("longer than its limit of 512")
        );
        assert!(
            query_info(
                &checked(r#"{"info":[{"instanceId":"i1","usageInfo":[{"usageValue":"1"}]}]}"#),
                "i1",
                false
            )
            .unwrap_err()
            .contains("statisticalTime")
        );
        assert!(
            query_info(&checked(r#"{}"#), "i1", false)
                .unwrap_err()
                .starts_with("调测失败,接口响应缺少instanceId.")
        );
        assert!(
            query_info(&checked(r#"{"info":[{"instanceId":"i1"}]}"#), "i1", true)
                .unwrap_err()
                .contains("appInfo")
        );
    }
}
