//! Every public test vector of the protocol reference (`fixtures/vectors.json`, copied from
//! security.md §16), checked against this crate. Each kind has its own test, and each test
//! asserts it saw the number of vectors the file holds, so a vector cannot be skipped silently.

use koogallery::canonical::{canonicalize, is_canonical, to_ascii_json};
use koogallery::crypto::sha1prng::{Sha1Prng, aes_key};
use koogallery::crypto::{FieldCipher, KeySize};
use koogallery::error::AuthError;
use koogallery::nonce::NonceWindow;
use koogallery::query::decode_query;
use koogallery::sign::{SignedForm, SignedRequest, apig, body_sign, kit, usage, v1, v2};
use serde_json::Value;

fn vectors(kind: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(include_str!("../fixtures/vectors.json")).unwrap();
    all["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == kind)
        .cloned()
        .collect()
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    let mut cur = v;
    for part in path.split('.') {
        cur = &cur[part];
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {}", v["id"]))
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[test]
fn v1_auth_token() {
    let vs = vectors("v1_auth_token");
    assert_eq!(vs.len(), 3);
    for v in &vs {
        let key = s(v, "input.access_key");
        let expected = s(v, "expected.auth_token");
        match s(v, "input.variant") {
            "get" => {
                let mut params: Vec<(String, String)> = v["input"]["params"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, val)| (k.clone(), val.as_str().unwrap().to_owned()))
                    .collect();
                assert_eq!(
                    v1::canonical_string(&params),
                    s(v, "expected.canonical_string"),
                    "{}",
                    id(v)
                );
                assert_eq!(v1::auth_token(key, &params).unwrap(), expected, "{}", id(v));
                params.push(("authToken".into(), expected.to_owned()));
                assert_eq!(v1::verify_get(key, &params), Ok(()), "{}", id(v));
                assert_eq!(
                    v1::verify_get("wrong-key", &params),
                    Err(AuthError::SignatureMismatch)
                );
            }
            "post_body" => {
                let body = serde_json::to_vec(&v["input"]["params"]).unwrap();
                let params = v1::post_body_params(&body).unwrap();
                assert_eq!(
                    v1::canonical_string(&params),
                    s(v, "expected.canonical_string"),
                    "{}",
                    id(v)
                );
                assert_eq!(
                    v1::post_auth_token(key, &body).unwrap(),
                    expected,
                    "{}",
                    id(v)
                );
                assert!(v1::verify_post(key, &body, Some(expected)).is_ok());
                assert!(v1::verify_post(key, &body, None).is_err());
            }
            other => panic!("unknown variant {other}"),
        }
        // The key is access key + timeStamp, as the vector states.
        let ts = v["input"]["params"]["timeStamp"].as_str().unwrap();
        assert_eq!(format!("{key}{ts}"), s(v, "expected.hmac_key"));
    }
}

#[test]
fn body_sign_vectors() {
    let vs = vectors("body_sign");
    assert_eq!(vs.len(), 2);
    for v in &vs {
        let (key, body) = (s(v, "input.access_key"), s(v, "input.body").as_bytes());
        assert_eq!(
            body_sign::signature(key, body),
            s(v, "expected.signature"),
            "{}",
            id(v)
        );
        assert_eq!(
            body_sign::header_value(key, body),
            s(v, "expected.header_value"),
            "{}",
            id(v)
        );
        assert_eq!(body_sign::HEADER, s(v, "expected.header_name"));
        assert_eq!(
            body_sign::verify(key, body, Some(s(v, "expected.header_value"))),
            Ok(())
        );
    }
}

fn form(v: &Value, field: &str) -> SignedForm {
    match s(v, field) {
        "raw" => SignedForm::Raw,
        "canonical" => SignedForm::Canonical,
        other => panic!("unknown form {other}"),
    }
}

#[test]
fn v2_signature() {
    let vs = vectors("v2_signature");
    assert_eq!(vs.len(), 6);
    for v in &vs {
        let (key, nonce, ts, body) = (
            s(v, "input.access_key"),
            s(v, "input.nonce"),
            s(v, "input.timestamp"),
            s(v, "input.body"),
        );
        let canonical = canonicalize(body.as_bytes()).unwrap();
        assert_eq!(canonical, s(v, "expected.canonical_body"), "{}", id(v));
        let payload = match form(v, "expected.signed_form") {
            SignedForm::Raw => body,
            SignedForm::Canonical => canonical.as_str(),
        };
        // `inner_hex` is always over the canonical body (reference.py); the canonical request
        // uses the inner hash of whichever form was signed.
        assert_eq!(
            v2::inner_hex(key, canonical.as_bytes()),
            s(v, "expected.inner_hex"),
            "{}",
            id(v)
        );
        let inner = v2::inner_hex(key, payload.as_bytes());
        assert_eq!(
            format!("{key}{nonce}{ts}{inner}"),
            s(v, "expected.canonical_request"),
            "{}",
            id(v)
        );
        let sig = v2::sign(key, nonce, ts, payload.as_bytes());
        assert_eq!(sig, s(v, "expected.signature"), "{}", id(v));
        let now: i64 = ts.parse().unwrap();
        for received in [sig.clone(), sig.to_uppercase()] {
            let req = SignedRequest {
                signature: Some(&received),
                timestamp: Some(ts),
                nonce: Some(nonce),
            };
            assert_eq!(
                v2::verify(key, &req, body.as_bytes(), now, 60_000),
                Ok(form(v, "expected.matches")),
                "{}",
                id(v)
            );
        }
        if let Some(bad) = v["input"]["received_signature"].as_str() {
            assert!(v["expected"]["received_matches"].is_null());
            let req = SignedRequest {
                signature: Some(bad),
                timestamp: Some(ts),
                nonce: Some(nonce),
            };
            assert_eq!(
                v2::verify(key, &req, body.as_bytes(), now, 60_000),
                Err(AuthError::SignatureMismatch),
                "{}",
                id(v)
            );
        }
    }
}

#[test]
fn v2_plain_sha256_variant_is_diagnosed_not_accepted() {
    let v = vectors("v2_signature")
        .into_iter()
        .find(|v| id(v) == "v2-sig-002")
        .unwrap();
    let req = SignedRequest {
        signature: v["input"]["received_signature"].as_str(),
        timestamp: Some(s(&v, "input.timestamp")),
        nonce: Some(s(&v, "input.nonce")),
    };
    let body = s(&v, "input.body").as_bytes();
    assert!(
        v2::verify(
            s(&v, "input.access_key"),
            &req,
            body,
            1_680_508_066_618,
            60_000
        )
        .is_err()
    );
    assert!(v2::matches_plain_sha256_variant(
        s(&v, "input.access_key"),
        &req,
        body
    ));
}

#[test]
fn kit_signature() {
    let vs = vectors("kit_signature");
    assert_eq!(vs.len(), 2);
    for v in &vs {
        let (key, nonce, ts, body) = (
            s(v, "input.kit_key"),
            s(v, "input.nonce"),
            s(v, "input.timestamp"),
            s(v, "input.body"),
        );
        let canonical = canonicalize(body.as_bytes()).unwrap();
        assert_eq!(canonical, s(v, "expected.canonical_body"), "{}", id(v));
        let payload = match form(v, "expected.signed_form") {
            SignedForm::Raw => body,
            SignedForm::Canonical => canonical.as_str(),
        };
        assert_eq!(
            format!("{key}{nonce}{ts}{payload}"),
            s(v, "expected.mac_input"),
            "{}",
            id(v)
        );
        let sig = kit::sign(key, nonce, ts, payload.as_bytes());
        assert_eq!(sig, s(v, "expected.signature"), "{}", id(v));
        let now: i64 = ts.parse().unwrap();
        let req = SignedRequest {
            signature: Some(&sig),
            timestamp: Some(ts),
            nonce: Some(nonce),
        };
        assert_eq!(
            kit::verify(key, &req, body.as_bytes(), now, 60_000),
            Ok(form(v, "expected.matches")),
            "{}",
            id(v)
        );
        if let Some(bad) = v["input"]["received_signature"].as_str() {
            let req = SignedRequest {
                signature: Some(bad),
                ..req
            };
            assert_eq!(
                kit::verify(key, &req, body.as_bytes(), now, 60_000),
                Err(AuthError::SignatureMismatch),
                "{}",
                id(v)
            );
        }
    }
}

/// Sorts the members of every object (the usage push signs a fully sorted body, security.md §11).
fn sort_all(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sort_all(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_all).collect()),
        other => other.clone(),
    }
}

#[test]
fn usage_push_signature() {
    let vs = vectors("usage_push_signature");
    assert_eq!(vs.len(), 2);
    for v in &vs {
        let (key, ts, nonce, body) = (
            s(v, "input.basic_key"),
            s(v, "input.ts"),
            s(v, "input.nonce"),
            s(v, "input.body"),
        );
        assert_eq!(
            usage::string_to_sign(ts, nonce, body.as_bytes()),
            s(v, "expected.string_to_sign").as_bytes(),
            "{}",
            id(v)
        );
        let sig = usage::sign(key, ts, nonce, body.as_bytes());
        assert_eq!(sig, s(v, "expected.signature"), "{}", id(v));
        assert_eq!(
            usage::verify(key, ts, nonce, body.as_bytes(), Some(&sig)),
            Ok(())
        );
        if v["expected"]["body_is_sorted_compact"] == true {
            let parsed: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                serde_json::to_string(&sort_all(&parsed)).unwrap(),
                body,
                "{}",
                id(v)
            );
        }
    }
}

#[test]
fn apig_signature() {
    let vs = vectors("apig_signature");
    assert_eq!(vs.len(), 3);
    for v in &vs {
        let i = &v["input"];
        let query: Vec<(String, String)> = i["query"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_owned(),
                    p[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let headers: Vec<(String, String)> = i["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, val)| (k.clone(), val.as_str().unwrap().to_owned()))
            .collect();
        let req = apig::Request {
            method: s(v, "input.method"),
            host: s(v, "input.host"),
            path: s(v, "input.path"),
            query: &query,
            headers: &headers,
            body: s(v, "input.body").as_bytes(),
        };
        let (ak, sk, date) = (s(v, "input.ak"), s(v, "input.sk"), s(v, "input.x_sdk_date"));
        let signed = apig::sign(&req, ak, sk, date);
        assert_eq!(
            signed.canonical_request,
            s(v, "expected.canonical_request"),
            "{}",
            id(v)
        );
        assert_eq!(
            signed.string_to_sign,
            s(v, "expected.string_to_sign"),
            "{}",
            id(v)
        );
        assert_eq!(
            signed.signed_headers,
            s(v, "expected.signed_headers"),
            "{}",
            id(v)
        );
        assert_eq!(signed.signature, s(v, "expected.signature"), "{}", id(v));
        assert_eq!(
            signed.authorization,
            s(v, "expected.authorization"),
            "{}",
            id(v)
        );
        // The gateway's side accepts what we signed.
        let mut sent = headers.clone();
        sent.extend(signed.added_headers.clone());
        sent.push(("Authorization".to_owned(), signed.authorization.clone()));
        let now = koogallery::time::epoch_millis(koogallery::time::parse_sdk_date(date).unwrap());
        let received = apig::Request {
            headers: &sent,
            ..req
        };
        assert_eq!(
            apig::verify(&received, now, |a| (a == ak).then_some(sk)),
            Ok(ak.to_owned()),
            "{}",
            id(v)
        );
    }
}

#[test]
fn sha1prng_key() {
    let vs = vectors("sha1prng_key");
    assert_eq!(vs.len(), 5);
    for v in &vs {
        let seed = match v["input"]["seed_hex"].as_str() {
            Some(h) => hex::decode(h).unwrap(),
            None => s(v, "input.seed").as_bytes().to_vec(),
        };
        if let Some(k) = v["expected"]["aes128_key_hex"].as_str() {
            assert_eq!(
                hex::encode(Sha1Prng::new(&seed).next_bytes(16)),
                k,
                "{}",
                id(v)
            );
            assert_eq!(hex::encode(aes_key(s(v, "input.seed"), 16)), k, "{}", id(v));
        }
        if let Some(k) = v["expected"]["aes256_key_hex"].as_str() {
            assert_eq!(
                hex::encode(Sha1Prng::new(&seed).next_bytes(32)),
                k,
                "{}",
                id(v)
            );
        }
        if let Some(stream) = v["expected"]["stream_hex"].as_str() {
            let n = usize::try_from(v["input"]["n"].as_u64().unwrap()).unwrap();
            assert_eq!(
                hex::encode(Sha1Prng::new(&seed).next_bytes(n)),
                stream,
                "{}",
                id(v)
            );
        }
    }
}

#[test]
fn field_encrypt() {
    let vs = vectors("field_encrypt");
    assert_eq!(vs.len(), 5);
    for v in &vs {
        let bits = u32::try_from(v["input"]["bits"].as_u64().unwrap()).unwrap();
        let size = KeySize::from_bits(bits).unwrap();
        assert_eq!(
            KeySize::from_encrypt_type(s(v, "input.encrypt_type")).unwrap(),
            size
        );
        let cipher = FieldCipher::new(s(v, "input.access_key"), size);
        if let Some(k) = v["expected"]["aes_key_hex"].as_str() {
            assert_eq!(hex::encode(cipher.key_bytes()), k, "{}", id(v));
        }
        let value = cipher
            .encrypt_with_iv(s(v, "input.plaintext"), s(v, "input.iv"))
            .unwrap();
        assert_eq!(value, s(v, "expected.value"), "{}", id(v));
        assert_eq!(
            cipher.decrypt(&value).unwrap(),
            s(v, "input.plaintext"),
            "{}",
            id(v)
        );
        if let Some(mangled) = v["input"]["received_value"].as_str() {
            assert_eq!(
                cipher.decrypt(mangled).unwrap(),
                s(v, "input.plaintext"),
                "{}",
                id(v)
            );
        }
    }
}

#[test]
fn aes_block() {
    use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
    let vs = vectors("aes_block");
    assert_eq!(vs.len(), 2);
    for v in &vs {
        let key = hex::decode(s(v, "input.key_hex")).unwrap();
        let mut block =
            GenericArray::clone_from_slice(&hex::decode(s(v, "input.plaintext_hex")).unwrap());
        match key.len() {
            16 => aes::Aes128::new_from_slice(&key)
                .unwrap()
                .encrypt_block(&mut block),
            32 => aes::Aes256::new_from_slice(&key)
                .unwrap()
                .encrypt_block(&mut block),
            n => panic!("key length {n}"),
        }
        assert_eq!(
            hex::encode(block),
            s(v, "expected.ciphertext_hex"),
            "{}",
            id(v)
        );
    }
}

#[test]
fn canonical_json() {
    let vs = vectors("canonical_json");
    assert_eq!(vs.len(), 5);
    for v in &vs {
        let c = canonicalize(s(v, "input.body").as_bytes()).unwrap();
        assert_eq!(c, s(v, "expected.canonical_body"), "{}", id(v));
        // Canonicalisation is idempotent.
        assert_eq!(canonicalize(c.as_bytes()).unwrap(), c, "{}", id(v));
    }
}

#[test]
fn json_ascii_escape() {
    let vs = vectors("json_ascii_escape");
    assert_eq!(vs.len(), 1);
    for v in &vs {
        let value: Value = serde_json::from_str(s(v, "input.json")).unwrap();
        assert_eq!(
            String::from_utf8(to_ascii_json(&value).unwrap()).unwrap(),
            s(v, "expected.json"),
            "{}",
            id(v)
        );
    }
}

#[test]
fn timestamp_window() {
    let vs = vectors("timestamp_window");
    assert_eq!(vs.len(), 8);
    for v in &vs {
        let now = v["input"]["now_ms"].as_i64().unwrap();
        let window = v["input"]["window_ms"].as_u64().unwrap();
        let fresh =
            koogallery::time::check_fresh("timestamp", Some(s(v, "input.timestamp")), now, window)
                .is_ok();
        assert_eq!(
            fresh,
            v["expected"]["fresh"].as_bool().unwrap(),
            "{}",
            id(v)
        );
    }
}

#[test]
fn nonce_replay() {
    let vs = vectors("nonce_replay");
    assert_eq!(vs.len(), 1);
    for v in &vs {
        let mut w = NonceWindow::new(v["input"]["ttl_ms"].as_u64().unwrap());
        let scope = s(v, "input.scope");
        let got: Vec<bool> = v["input"]["sequence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| w.accept(scope, step[0].as_str().unwrap(), step[1].as_i64().unwrap()))
            .collect();
        let expected: Vec<bool> = v["expected"]["accepted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_bool().unwrap())
            .collect();
        assert_eq!(got, expected, "{}", id(v));
    }
}

#[test]
fn query_decode() {
    let vs = vectors("query_decode");
    assert_eq!(vs.len(), 2);
    for v in &vs {
        let got: serde_json::Map<String, Value> = decode_query(s(v, "input.query"))
            .into_iter()
            .map(|(k, val)| (k, Value::String(val)))
            .collect();
        assert_eq!(Value::Object(got), v["expected"]["params"], "{}", id(v));
    }
}

#[test]
fn format_fixtures() {
    let all: Value = serde_json::from_str(include_str!("../fixtures/vectors.json")).unwrap();
    let fixtures = all["format_fixtures"].as_array().unwrap();
    assert_eq!(fixtures.len(), 9);
    for f in fixtures {
        match f["kind"].as_str().unwrap() {
            "v2_request_example" => {
                let body = f["body"].as_str().unwrap().as_bytes();
                assert_eq!(
                    is_canonical(body),
                    f["body_is_canonical"].as_bool().unwrap(),
                    "{}",
                    id(f)
                );
                assert!(
                    koogallery::time::parse_epoch_millis(f["timestamp"].as_str().unwrap()).is_ok()
                );
            }
            "v1_request_example" => {
                let got: serde_json::Map<String, Value> =
                    decode_query(f["query"].as_str().unwrap())
                        .into_iter()
                        .map(|(k, val)| (k, Value::String(val)))
                        .collect();
                assert_eq!(Value::Object(got), f["decoded_params"], "{}", id(f));
            }
            other => panic!("unknown fixture kind {other}"),
        }
    }
}

#[test]
fn device_fingerprint() {
    let vs = vectors("device_fingerprint");
    assert_eq!(vs.len(), 2);
    let strings = |v: &Value, f: &str| -> Vec<String> {
        v["input"][f]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect()
    };
    for v in &vs {
        let (macs, disks) = (strings(v, "macs"), strings(v, "disks"));
        let fp = koogallery::fingerprint::device_fingerprint(
            &macs,
            &disks,
            s(v, "input.board"),
            s(v, "input.cpu"),
        );
        assert_eq!(fp, s(v, "expected.fingerprint"), "{}", id(v));
    }
}
