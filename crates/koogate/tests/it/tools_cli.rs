//! `koogate tools` as a user runs it: the result alone on stdout with exit 0, a usage error
//! with exit 2, a failure with exit 1 and a message on stderr. Expected values are public
//! vectors of the protocol reference (ids in comments).

use assert_cmd::Command;
use predicates::prelude::*;

fn tools(args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("koogate")
        .unwrap()
        .arg("tools")
        .args(args)
        .assert()
}

fn ok(args: &[&str], expected: &str) {
    tools(args)
        .success()
        .stdout(format!("{expected}\n"))
        .stderr("");
}

#[test]
fn v1_token() {
    // v1-get-001, given URL-encoded as on the wire.
    ok(
        &[
            "v1-token",
            "--key",
            "my-access-key",
            "--params",
            "activity=newInstance&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&customerId=68cbc86abc2018ab880d92f36422fa0e&expireTime=20200727153156&orderId=CS1906666666ABCDE&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903",
        ],
        "Um9kyMKbWxNAa3UfesBylJw3ZG2/fiobjENiAHjtau8=",
    );
    tools(&["v1-token", "--key", "k", "--params", "a=1"])
        .code(1)
        .stderr(predicate::str::contains("timeStamp is missing"));
}

const V2_BODY: &str = r#"{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;
const V2_NONCE: &str = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA";
const V2_SIG: &str = "ed3c1637449656023ec468104e43ce227d25762f9cd1813c5425983415f97e6e";

#[test]
fn v2_sign_inline_and_from_file_and_stdin() {
    // v2-sig-001
    ok(
        &[
            "v2-sign",
            "--key",
            "my-access-key",
            "--nonce",
            V2_NONCE,
            "--timestamp",
            "1680508066618",
            "--body",
            V2_BODY,
        ],
        V2_SIG,
    );
    let dir = tempdir();
    let file = dir.join("body.json");
    std::fs::write(&file, V2_BODY).unwrap();
    ok(
        &[
            "v2-sign",
            "--key",
            "my-access-key",
            "--nonce",
            V2_NONCE,
            "--timestamp",
            "1680508066618",
            "--body-file",
            file.to_str().unwrap(),
        ],
        V2_SIG,
    );
    Command::cargo_bin("koogate")
        .unwrap()
        .args([
            "tools",
            "v2-sign",
            "--key",
            "my-access-key",
            "--nonce",
            V2_NONCE,
            "--timestamp",
            "1680508066618",
            "--body-file",
            "-",
        ])
        .write_stdin(V2_BODY)
        .assert()
        .success()
        .stdout(format!("{V2_SIG}\n"));
}

#[test]
fn kit_body_usage_sign() {
    // kit-sig-001 (signed over the canonical body)
    ok(
        &[
            "kit-sign",
            "--key",
            "kitKey-Example-0001",
            "--nonce",
            V2_NONCE,
            "--timestamp",
            "1680508066618",
            "--body",
            r#"{"domainName":"https://huaweitest.example.com","flag":1,"instanceId":"huaweitest123456","name":"huaweitest","orderId":"CS1906666666ABCDE","tenantCode":"huaweitest","tenantId":"68cbc86abc2018ab880d92f36422fa0e","testFlag":1,"timeStamp":"20220413093539534"}"#,
        ],
        "9651a71b04110dca07846c2ad88f4ef9a56faeece0ad052da9457dc302740fa4",
    );
    // body-sign-001
    ok(
        &["body-sign", "--key", "abcde", "--body", "a=1&b=2"],
        r#"sign_type="HMAC-SHA256", signature= "4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok=""#,
    );
    // usage-001
    ok(
        &[
            "usage-sign",
            "--key",
            "basicKey-Example-0001",
            "--ts",
            "1709690865879",
            "--nonce",
            "6c63c221-1f6b-4141-8ff4-22f5dfe82b65",
            "--body",
            r#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"9b7a1c2e-0c1d-4d3e-8f00-000000000001","record_time":"20220809T091000Z","usage_value":"99"}]}"#,
        ],
        "wK2SsqzfoO1FsH1wyS2UXRntvPKo/UM+COciDbJE7Ac=",
    );
}

#[test]
fn apig_sign() {
    // apig-001
    let args = [
        "apig-sign",
        "--ak",
        "QTWAOYTTINDUT2QVKYUC",
        "--sk",
        "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
        "--method",
        "GET",
        "--url",
        "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0",
        "--date",
        "20191115T033655Z",
        "--header",
        "Content-Type: application/json",
    ];
    ok(
        &args,
        "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe",
    );
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let out = Command::cargo_bin("koogate")
        .unwrap()
        .arg("tools")
        .args(&with_json)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["string_to_sign"],
        "SDK-HMAC-SHA256\n20191115T033655Z\nb25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    );
    assert_eq!(v["headers_to_add"]["X-Sdk-Date"], "20191115T033655Z");
    tools(&[
        "apig-sign",
        "--ak",
        "a",
        "--sk",
        "b",
        "--method",
        "GET",
        "--url",
        "https://h/x",
        "--date",
        "2019-11-15",
    ])
    .code(1)
    .stderr(predicate::str::contains("--date must be"));
    tools(&[
        "apig-sign",
        "--ak",
        "a",
        "--sk",
        "b",
        "--method",
        "GET",
        "--url",
        "https://h/x",
        "--date",
        "20191115T033655Z",
        "--header",
        "nocolon",
    ])
    .code(1)
    .stderr(predicate::str::contains("'Name: value'"));
}

#[test]
fn encrypt_decrypt_sha1prng() {
    // fe-003, fe-004, fe-005
    ok(
        &[
            "encrypt",
            "--key",
            "my-access-key",
            "--bits",
            "128",
            "--iv",
            "abcdEFGH12345678",
            "admin@example.com",
        ],
        "abcdEFGH12345678gf3G8TueEisaB7XGIXL1khlm/QflQfkaMOLKtIR7hfY=",
    );
    ok(
        &[
            "encrypt",
            "--key",
            "my-access-key",
            "--iv",
            "abcdEFGH12345678",
            "admin@example.com",
        ],
        "abcdEFGH12345678G9cwJDzPCChTJhC0S3nNdyLBXGA3TXj08hzgM6Oo37U=",
    );
    ok(
        &[
            "decrypt",
            "--key",
            "my-access-key",
            "Zz9Yy8Xx7Ww6Vv5UDJTr3SXEncSRH+DcebJFwg==",
        ],
        "P@ssw0rd!中文",
    );
    // fe-001: a '+' that arrived as a space
    ok(
        &[
            "decrypt",
            "--key",
            "9fa6c870-8bb0-4e9b-b71e-4c223300156f",
            "Ab3dE5gH7jK9mN1p/iWS9wcSzrYj2aMMOYB Lw==",
        ],
        "15905222222",
    );
    tools(&[
        "decrypt",
        "--key",
        "wrong",
        "--bits",
        "128",
        "abcdEFGH12345678gf3G8TueEisaB7XGIXL1khlm/QflQfkaMOLKtIR7hfY=",
    ])
    .code(1)
    .stderr(predicate::str::contains("padding"));
    tools(&["decrypt", "--key", "k", "abcdEFGH12345678!!"])
        .code(1)
        .stderr(predicate::str::contains("Base64"));
    tools(&["encrypt", "--key", "k", "--iv", "short", "x"])
        .code(1)
        .stderr(predicate::str::contains("IV"));
    // A random IV round-trips.
    let out = Command::cargo_bin("koogate")
        .unwrap()
        .args(["tools", "encrypt", "--key", "k", "secret"])
        .output()
        .unwrap();
    let value = String::from_utf8(out.stdout).unwrap();
    ok(&["decrypt", "--key", "k", value.trim_end()], "secret");
    // prng-001
    ok(
        &["sha1prng", "--seed", "abcde", "--len", "32"],
        "8dc54f2e15823c98aea063e339a5d4c53d1a471adbf839311f5083e7778f46fb",
    );
}

#[test]
fn canonical() {
    // canon-001
    ok(
        &[
            "canonical",
            "--body",
            r#"{"b":"2","a":"1","c":null,"d":""}"#,
        ],
        r#"{"a":"1","b":"2","d":""}"#,
    );
    tools(&["canonical", "--body", "[1]"])
        .code(1)
        .stderr(predicate::str::contains("not an object"));
}

#[test]
fn verify_v2_reports_form_or_reason() {
    let dir = tempdir();
    let file = dir.join("body.json");
    // v2-sig-003: pretty-printed body, signed over the canonical form.
    std::fs::write(&file, "{\n  \"testFlag\": \"1\",\n  \"status\": \"FREEZE\",\n  \"instanceId\": \"10e758d0-31ad-4c4b-8f1b-81d03469a10e\",\n  \"activity\": \"updateInstanceStatus\",\n  \"reason\": null\n}").unwrap();
    let f = file.to_str().unwrap();
    let url = "https://example.com/produce?signature=6da26a5be99e05c6a856ad2c7e574f7a84e1c8da86045baac0dc4ba31f007be5&timestamp=1680509558159&nonce=7B0E0F6A3C1D48E59A2B4C6D8E0F1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B";
    ok(
        &[
            "verify-v2",
            "--key",
            "my-access-key",
            "--url",
            url,
            "--body-file",
            f,
            "--now-ms",
            "1680509558159",
        ],
        "canonical",
    );
    tools(&[
        "verify-v2",
        "--key",
        "other-key",
        "--url",
        url,
        "--body-file",
        f,
        "--now-ms",
        "1680509558159",
    ])
    .code(1)
    .stderr(
        predicate::str::contains("signature does not match")
            .and(predicate::str::contains("000001")),
    );
    tools(&[
        "verify-v2",
        "--key",
        "my-access-key",
        "--url",
        url,
        "--body-file",
        f,
        "--now-ms",
        "1680509658160",
    ])
    .code(1)
    .stderr(
        predicate::str::contains("outside the 60000 ms window")
            .and(predicate::str::contains("000002")),
    );
    tools(&[
        "verify-v2",
        "--key",
        "my-access-key",
        "--url",
        "https://example.com/produce",
        "--body-file",
        f,
    ])
    .code(1);
}

#[test]
fn usage_errors_exit_2() {
    tools(&["v2-sign", "--key", "k"]).code(2);
    tools(&[
        "v2-sign",
        "--key",
        "k",
        "--nonce",
        "n",
        "--timestamp",
        "1",
        "--body",
        "a",
        "--body-file",
        "f",
    ])
    .code(2);
    tools(&["encrypt", "--key", "k", "--bits", "192", "x"]).code(2);
    tools(&["sha1prng", "--seed", "s", "--len", "0"]).code(2);
    tools(&["no-such-tool"]).code(2);
    tools(&[
        "v2-sign",
        "--key",
        "k",
        "--nonce",
        "n",
        "--timestamp",
        "1",
        "--body-file",
        "/nonexistent/x",
    ])
    .code(1)
    .stderr(predicate::str::contains("cannot read body file"));
}

#[test]
fn help_everywhere() {
    Command::cargo_bin("koogate")
        .unwrap()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("tools"));
    for tool in [
        "v1-token",
        "v2-sign",
        "kit-sign",
        "body-sign",
        "usage-sign",
        "apig-sign",
        "encrypt",
        "decrypt",
        "sha1prng",
        "canonical",
        "verify-v2",
    ] {
        tools(&[tool, "--help"])
            .success()
            .stdout(predicate::str::contains("Usage"));
    }
}

/// A fresh directory under the target dir (no extra dependency for one temp file).
fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "koogate-tools-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
