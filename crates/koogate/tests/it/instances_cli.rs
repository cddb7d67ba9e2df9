//! `koogate instances list|show|complete|fail` on the configured database.

use crate::common::receiver::{Mode, Receiver};
use crate::common::{self, Options, TestDb, TestServer};

const SECRET: &str = "whsec_Y2xpLXByb3Zpc2lvbi1zZWNyZXQtMDEyMw==";

// The CLI runs as a blocking child process; the server needs runtime threads of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_complete_and_fail_provisionings_from_the_command_line() {
    let app = Receiver::start(SECRET, Mode::Answer(202, String::new())).await;
    let db = TestDb::fresh(common::Backend::Sqlite).await;
    let s = TestServer::start(
        &db,
        Options {
            config_toml: Some(format!(
                "[[provisioners]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
                app.url
            )),
            ..Options::default()
        },
    )
    .await;
    for (order, biz) in [("CS-CLI-1", "cli-1"), ("CS-CLI-2", "cli-2")] {
        s.v2(&format!(
            r#"{{"activity":"newInstance","businessId":"{biz}","orderId":"{order}","orderLineId":"{order}-000001"}}"#
        ))
        .await
        .expect_code("000004");
    }
    s.wait_count(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'provision' AND status = 'done'",
        2,
    )
    .await;
    let data = s.data.path().to_path_buf();
    let url = db.url.clone();
    let koogate = move |args: &[&str]| common::koogate_cli(&url, &data, &[], args);
    let (code, out, err) = koogate(&["instances", "list", "--state", "provisioning", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);

    let (code, out, err) = koogate(&[
        "instances",
        "complete",
        "cli-1",
        "--app-info",
        r#"{"frontEndUrl":"https://app.example.com/cli-1","userName":"owner"}"#,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "instance cli-1 is active");
    let r = s
        .v2(r#"{"activity":"queryInstance","instanceId":"cli-1"}"#)
        .await;
    r.expect("000000");
    assert_eq!(
        r.json["info"][0]["appInfo"]["frontEndUrl"],
        "https://app.example.com/cli-1"
    );

    let (code, out, err) = koogate(&[
        "instances",
        "fail",
        "cli-2",
        "--message",
        "quota exceeded",
        "--code",
        "000100",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("failed") && out.contains("000100"), "{out}");
    s.v2(r#"{"activity":"newInstance","businessId":"x","orderId":"CS-CLI-2","orderLineId":"CS-CLI-2-000001"}"#)
        .await
        .expect_code("000100");

    let (code, out, _) = koogate(&["instances", "show", "cli-2"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("failure      000100: quota exceeded"), "{out}");
    assert!(out.contains("provision_failed"), "{out}");
    // Refusals are clear and exit 1.
    let (code, _, err) = koogate(&[
        "instances",
        "complete",
        "cli-1",
        "--app-info",
        r#"{"frontEndUrl":"https://x"}"#,
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("is active, not provisioning"), "{err}");
    let (code, _, err) = koogate(&["instances", "show", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("instance nope not found"), "{err}");
    let (code, _, err) = koogate(&["instances", "complete", "cli-1", "--app-info", "{"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--app-info must be a JSON object"), "{err}");
    let (code, _, err) = koogate(&["instances", "list", "--state", "melted"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--state"), "{err}");
    s.stop().await;
}
