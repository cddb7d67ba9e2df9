//! The configuration layer of `koogate serve`: precedence, validation, key generation and the
//! rule that secrets are never shown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{CommandFactory as _, Parser};
use koogallery::crypto::KeySize;
use koogate::config::{
    Config, ConfigArgs, LogFormat, ProvisionerTemplates, SETTINGS, Source, TemplateVars,
};
use secrecy::ExposeSecret as _;

#[derive(Parser)]
struct T {
    #[command(flatten)]
    a: ConfigArgs,
}

/// Arguments with a data directory inside `dir` and an empty config file, so that nothing from
/// the working directory is picked up.
fn args_in(dir: &Path) -> ConfigArgs {
    let file = dir.join("empty.toml");
    std::fs::write(&file, "").unwrap();
    ConfigArgs {
        config: Some(file),
        data_dir: Some(dir.join("data")),
        ..ConfigArgs::default()
    }
}

fn with_file(dir: &Path, toml: &str) -> ConfigArgs {
    let file = dir.join("koogate.toml");
    std::fs::write(&file, toml).unwrap();
    ConfigArgs {
        config: Some(file),
        ..ConfigArgs::default()
    }
}

/// A line of `explain`: the name, padded, then the value.
fn line(name: &str, rest: &str) -> String {
    format!("{:<24}{rest}", format!("{name}:"))
}

fn load_err(args: &ConfigArgs) -> String {
    format!("{:#}", Config::load(args).unwrap_err())
}

#[test]
fn defaults() {
    let dir = tempfile::tempdir().unwrap();
    let args = ConfigArgs {
        config: args_in(dir.path()).config,
        ..ConfigArgs::default()
    };
    let c = Config::load(&args).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("./koogate-data"));
    assert_eq!(c.database_url, "sqlite://./koogate-data/koogate.db");
    assert_eq!(c.produce_path, "/produce");
    assert!(c.keys.basic.is_none() && c.keys.v1.is_none());
    assert!(c.ak.is_none() && c.sk.is_none() && c.admin_token.is_none());
    assert_eq!(c.openapi_url, "https://mkt.myhuaweicloud.com");
    assert_eq!(c.time_window_ms, 60_000);
    assert_eq!(c.v1_time_window_ms, 300_000);
    assert!(c.tls.is_none());
    assert!(c.data_key.is_none());
    assert_eq!(c.max_body_bytes, 65_536);
    assert_eq!(c.v1_key_size, KeySize::Aes256);
    assert!(!c.v2_encrypt_credentials);
    assert_eq!(
        c.provisioner.front_end_url,
        "https://app.example.com/t/{instance_id}"
    );
    assert_eq!(c.provisioner.admin_url, None);
    assert_eq!(c.provisioner.memo, None);
    assert_eq!(c.provisioner.user_name, "admin");
    assert_eq!(c.workers, 2);
    assert_eq!(c.log_format, LogFormat::Text);
    for s in SETTINGS.iter().filter(|s| s.name != "config") {
        assert_eq!(c.sources[s.name], Source::Default, "{}", s.name);
    }
}

#[test]
fn database_url_defaults_into_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args_in(dir.path());
    args.data_dir = Some(PathBuf::from("/var/lib/koogate"));
    let c = Config::load(&args).unwrap();
    assert_eq!(c.database_url, "sqlite:///var/lib/koogate/koogate.db");
}

#[test]
fn the_file_sets_everything_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, "x").unwrap();
    std::fs::write(&key, "x").unwrap();
    let toml = format!(
        r#"
listen = "0.0.0.0:8443"
data_dir = "/srv/koogate"
database_url = "postgres://kg:pw@db/koogate"
produce_path = "/kg/produce"
admin_token = "0123456789abcdef0123"
data_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
max_body_bytes = 131072
workers = 4
log_format = "json"

[keys]
basic = "file-basic"
kit = "file-kit"
license = "file-license"
generic = "file-generic"
v1 = "file-v1"

[openapi]
url = "https://mkt.myhuaweicloud.cn/"
ak = "file-ak"
sk = "file-sk"

[protocol]
time_window_secs = 120
v1_time_window_secs = 600
v1_encrypt_type = 2
v2_encrypt_credentials = true

[tls]
cert = {cert:?}
key = {key:?}

[provisioner]
front_end_url = "https://{{instance_id}}.app.example.com/"
admin_url = "https://admin.example.com/{{customer_id}}"
memo = "Order {{order_id}}"
user_name = "root"
"#
    );
    let mut args = with_file(dir.path(), &toml);
    let c = Config::load(&args).unwrap();
    assert_eq!(c.listen, "0.0.0.0:8443".parse::<SocketAddr>().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("/srv/koogate"));
    assert_eq!(c.database_url, "postgres://kg:pw@db/koogate");
    assert_eq!(c.produce_path, "/kg/produce");
    assert_eq!(c.keys.basic.as_ref().unwrap().expose_secret(), "file-basic");
    assert_eq!(c.keys.v1.as_ref().unwrap().expose_secret(), "file-v1");
    assert_eq!(c.sk.as_ref().unwrap().expose_secret(), "file-sk");
    assert_eq!(c.openapi_url, "https://mkt.myhuaweicloud.cn");
    assert_eq!(c.time_window_ms, 120_000);
    assert_eq!(c.v1_time_window_ms, 600_000);
    assert_eq!(c.v1_key_size, KeySize::Aes128);
    assert!(c.v2_encrypt_credentials);
    assert_eq!(c.tls.as_ref().unwrap().key, key);
    assert_eq!(c.data_key.as_ref().unwrap().expose_secret()[31], 31);
    assert_eq!(c.max_body_bytes, 131_072);
    assert_eq!(c.workers, 4);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.provisioner.user_name, "root");
    assert_eq!(c.sources["listen"], Source::File);
    assert_eq!(c.sources["data_key"], Source::File);

    args.listen = Some("127.0.0.1:9000".parse().unwrap());
    args.basic_key = Some("flag-basic".to_owned());
    args.workers = Some(8);
    let c = Config::load(&args).unwrap();
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.keys.basic.as_ref().unwrap().expose_secret(), "flag-basic");
    assert_eq!(c.workers, 8);
    assert_eq!(c.sources["listen"], Source::Flag);
    assert_eq!(c.sources["basic_key"], Source::Flag);
    assert_eq!(c.sources["log_format"], Source::File);
}

#[test]
fn flags_parse_with_clap() {
    let t = T::try_parse_from([
        "t",
        "--listen",
        "0.0.0.0:8443",
        "--basic-key",
        "k1",
        "--v2-encrypt-credentials",
        "--time-window-secs",
        "30",
    ])
    .unwrap();
    assert_eq!(t.a.listen.unwrap().port(), 8443);
    assert_eq!(t.a.basic_key.as_deref(), Some("k1"));
    assert_eq!(t.a.v2_encrypt_credentials, Some(true));
    let t = T::try_parse_from(["t", "--v2-encrypt-credentials", "off"]).unwrap();
    assert_eq!(t.a.v2_encrypt_credentials, Some(false));
    assert!(T::try_parse_from(["t", "--listen", "nowhere"]).is_err());
}

#[test]
fn every_setting_has_its_flag_and_env_var() {
    let cmd = T::command();
    let args: Vec<_> = cmd
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .collect();
    assert_eq!(args.len(), SETTINGS.len());
    for s in SETTINGS {
        let arg = args
            .iter()
            .find(|a| a.get_id() == s.name)
            .unwrap_or_else(|| panic!("no argument {}", s.name));
        assert_eq!(format!("--{}", arg.get_long().unwrap()), s.flag);
        assert_eq!(arg.get_env().unwrap(), s.env);
        assert_eq!(s.env, format!("KOOGATE_{}", s.name.to_uppercase()));
        // `--help` must not print a secret taken from the environment.
        if s.secret {
            assert!(arg.is_hide_env_values_set(), "{}", s.name);
        }
    }
}

#[test]
fn every_validation_error_names_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "x").unwrap();
    let base = args_in(dir.path());
    let long = format!("https://example.com/{}", "a".repeat(500));
    type Case = (fn(&mut ConfigArgs, &Path), &'static str);
    let cases: Vec<Case> = vec![
        (
            |a, _| a.data_dir = Some(PathBuf::new()),
            "--data-dir: must not be empty",
        ),
        (
            |a, _| a.database_url = Some("mysql://h/db".into()),
            "--database-url: must start with",
        ),
        (
            |a, _| a.produce_path = Some("produce".into()),
            "--produce-path: must start with '/'",
        ),
        (
            |a, _| a.produce_path = Some("/p?x=1".into()),
            "--produce-path: must not contain '?'",
        ),
        (
            |a, _| a.basic_key = Some(" k".into()),
            "--basic-key: has leading or trailing",
        ),
        (
            |a, _| a.kit_key = Some(String::new()),
            "--kit-key: must not be empty",
        ),
        (
            |a, _| a.license_key = Some("a\nb".into()),
            "--license-key: contains a control",
        ),
        (
            |a, _| a.generic_key = Some("k ".into()),
            "--generic-key: has leading",
        ),
        (
            |a, _| a.v1_key = Some(String::new()),
            "--v1-key: must not be empty",
        ),
        (|a, _| a.ak = Some("ak".into()), "--ak: set without sk"),
        (|a, _| a.sk = Some("sk".into()), "--sk: set without ak"),
        (
            |a, _| a.openapi_url = Some("ftp://x".into()),
            "--openapi-url: must be an http",
        ),
        (
            |a, _| a.openapi_url = Some("mkt".into()),
            "--openapi-url: not a URL",
        ),
        (
            |a, _| a.time_window_secs = Some(0),
            "--time-window-secs: must be between 1 and 3600, got 0",
        ),
        (
            |a, _| a.v1_time_window_secs = Some(3601),
            "--v1-time-window-secs: must be between 1 and 3600, got 3601",
        ),
        (
            |a, _| a.admin_token = Some("short".into()),
            "--admin-token: must be at least 16",
        ),
        (
            |a, d| a.tls_cert = Some(d.join("cert.pem")),
            "--tls-cert: set without tls_key",
        ),
        (
            |a, d| a.tls_key = Some(d.join("cert.pem")),
            "--tls-key: set without tls_cert",
        ),
        (
            |a, d| a.tls_cert = Some(d.join("missing.pem")),
            "--tls-cert: ",
        ),
        (
            |a, _| a.data_key = Some("AAAA".into()),
            "--data-key: must be base64 of 32 bytes, got 3 bytes",
        ),
        (
            |a, _| a.data_key = Some("!!".into()),
            "--data-key: must be base64 of 32 bytes",
        ),
        (
            |a, _| a.max_body_bytes = Some(10),
            "--max-body-bytes: must be between 1024 and 16777216",
        ),
        (
            |a, _| a.v1_encrypt_type = Some("3".into()),
            "--v1-encrypt-type: must be \"1\"",
        ),
        (
            |a, _| a.front_end_url = Some("https://x/{tenant}".into()),
            "--front-end-url: unknown placeholder {tenant}",
        ),
        (
            |a, _| a.front_end_url = Some("app/{instance_id}".into()),
            "--front-end-url: once rendered",
        ),
        (
            |a, _| a.admin_url = Some("https://x/{order_id".into()),
            "--admin-url: unclosed '{'",
        ),
        (
            |a, _| a.memo = Some("a } b".into()),
            "--memo: unmatched '}'",
        ),
        (
            |a, _| a.user_name = Some("u".repeat(129)),
            "--user-name: renders to 129",
        ),
        (
            |a, _| a.workers = Some(0),
            "--workers: must be between 1 and 64, got 0",
        ),
        (
            |a, _| a.workers = Some(65),
            "--workers: must be between 1 and 64, got 65",
        ),
        (
            |a, _| a.log_format = Some("xml".into()),
            "--log-format: must be \"text\" or \"json\"",
        ),
        (
            |a, d| a.config = Some(d.join("missing.toml")),
            "--config: cannot read",
        ),
    ];
    for (set, expected) in cases {
        let mut args = base.clone();
        set(&mut args, dir.path());
        let err = load_err(&args);
        assert!(
            err.starts_with(expected),
            "{err:?} should start with {expected:?}"
        );
    }
    // frontEndUrl is String(512): a 64-character instance id must fit.
    let mut args = base.clone();
    args.front_end_url = Some(format!("{}/{{instance_id}}", &long[..448]));
    let err = load_err(&args);
    assert!(err.starts_with("--front-end-url: renders to 513"), "{err}");
    args.front_end_url = Some(format!("{}/{{instance_id}}", &long[..447]));
    assert_eq!(
        ProvisionerTemplates::render(
            &Config::load(&args).unwrap().provisioner.front_end_url,
            &TemplateVars {
                instance_id: &"i".repeat(64),
                order_id: "",
                customer_id: ""
            }
        )
        .len(),
        512
    );
}

#[test]
fn file_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let args = with_file(dir.path(), "[protocol]\ntime_window_secs = 0\n");
    let err = load_err(&args);
    let file = dir.path().join("koogate.toml");
    assert_eq!(
        err,
        format!(
            "{}: protocol.time_window_secs: must be between 1 and 3600, got 0",
            file.display()
        )
    );
    let args = with_file(dir.path(), "[provisioner]\nfront_end_url = \"{oops}\"\n");
    assert!(load_err(&args).contains("provisioner.front_end_url: unknown placeholder {oops}"));
    let args = with_file(dir.path(), "workers = -1\n");
    let err = load_err(&args);
    assert!(err.contains("workers"), "{err}");
}

#[test]
fn unknown_toml_keys_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_err(&with_file(dir.path(), "lisen = \"0.0.0.0:80\"\n"));
    assert!(err.contains("unknown field `lisen`"), "{err}");
    assert!(err.contains("koogate.toml"), "{err}");
    let err = load_err(&with_file(dir.path(), "[keys]\nbasci = \"k\"\n"));
    assert!(err.contains("unknown field `basci`"), "{err}");
    let err = load_err(&with_file(dir.path(), "[openapi]\nregion = \"cn\"\n"));
    assert!(err.contains("unknown field `region`"), "{err}");
    let err = load_err(&with_file(dir.path(), "[server]\nlisten = \"x\"\n"));
    assert!(err.contains("unknown field `server`"), "{err}");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn prepare_data_dir_generates_keys_once() {
    let dir = tempfile::tempdir().unwrap();
    let args = args_in(dir.path());
    let data = dir.path().join("data");

    let mut first = Config::load(&args).unwrap();
    let start = first.prepare_data_dir().unwrap();
    assert_eq!(
        start.generated,
        [
            "basic_key",
            "kit_key",
            "license_key",
            "generic_key",
            "data_key"
        ]
    );
    let k = &first.keys;
    let all = [&k.basic, &k.kit, &k.license, &k.generic].map(|k| {
        let k = k.as_ref().unwrap().expose_secret().to_owned();
        assert_eq!(k.len(), 32);
        assert!(k.chars().all(|c| c.is_ascii_alphanumeric()), "{k}");
        k
    });
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            assert_ne!(all[i], all[j]);
        }
    }
    assert_eq!(k.v1.as_ref().unwrap().expose_secret(), all[0]);
    assert_eq!(first.sources["basic_key"], Source::Generated);
    assert_eq!(first.sources["v1_key"], Source::Default);
    assert!(first.data_key.is_some());
    #[cfg(unix)]
    {
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("keys.toml")), 0o600);
        assert_eq!(mode(&data.join("data.key")), 0o600);
    }

    let mut second = Config::load(&args).unwrap();
    assert!(second.keys.basic.is_none());
    let start = second.prepare_data_dir().unwrap();
    assert!(start.generated.is_empty());
    let k2 = &second.keys;
    let again = [&k2.basic, &k2.kit, &k2.license, &k2.generic]
        .map(|k| k.as_ref().unwrap().expose_secret().to_owned());
    assert_eq!(again, all);
    assert_eq!(
        second.data_key.as_ref().unwrap().expose_secret(),
        first.data_key.as_ref().unwrap().expose_secret()
    );
    // Only temporary-free, expected files are left behind.
    let mut names: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["data.key", "keys.toml"]);
}

#[test]
fn configured_keys_are_not_generated() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args_in(dir.path());
    args.basic_key = Some("console-basic-key".to_owned());
    args.data_key = Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned());
    let mut c = Config::load(&args).unwrap();
    let start = c.prepare_data_dir().unwrap();
    assert_eq!(start.generated, ["kit_key", "license_key", "generic_key"]);
    assert_eq!(
        c.keys.v1.as_ref().unwrap().expose_secret(),
        "console-basic-key"
    );
    let stored = std::fs::read_to_string(dir.path().join("data/keys.toml")).unwrap();
    assert!(!stored.contains("basic"));
    assert!(!dir.path().join("data/data.key").exists());
}

#[test]
fn read_data_dir_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let args = args_in(dir.path());
    let mut c = Config::load(&args).unwrap();
    c.read_data_dir().unwrap();
    assert!(c.keys.basic.is_none());
    assert!(!dir.path().join("data").exists());
    Config::load(&args).unwrap().prepare_data_dir().unwrap();
    let mut c = Config::load(&args).unwrap();
    c.read_data_dir().unwrap();
    assert!(c.keys.basic.is_some() && c.data_key.is_some());
}

#[test]
fn equal_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args_in(dir.path());
    args.basic_key = Some("same-secret-key".to_owned());
    args.license_key = Some("same-secret-key".to_owned());
    let err = load_err(&args);
    assert!(
        err.starts_with("--basic-key and --license-key are equal"),
        "{err}"
    );
    assert!(!err.contains("same-secret-key"));

    // A configured key equal to one generated earlier.
    let mut args = args_in(dir.path());
    let mut c = Config::load(&args).unwrap();
    c.prepare_data_dir().unwrap();
    let basic = c.keys.basic.as_ref().unwrap().expose_secret().to_owned();
    args.kit_key = Some(basic.clone());
    let mut c = Config::load(&args).unwrap();
    let err = format!("{:#}", c.prepare_data_dir().unwrap_err());
    assert!(
        err.contains("keys.toml: basic and --kit-key are equal"),
        "{err}"
    );
    assert!(!err.contains(&basic));

    // V1 may equal another key (it defaults to the basic key).
    let mut args = args_in(dir.path());
    args.basic_key = Some("k-basic".to_owned());
    args.v1_key = Some("k-basic".to_owned());
    Config::load(&args).unwrap();
}

#[test]
fn secrets_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        "SECRET-basic-1111",
        "SECRET-kit-2222",
        "SECRET-license-3333",
        "SECRET-generic-4444",
        "SECRET-v1-5555",
        "SECRET-ak-6666",
        "SECRET-sk-7777",
        "SECRET-admin-token-8888",
        "SECRET-db-password",
    ];
    let data_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let mut args = args_in(dir.path());
    args.basic_key = Some(secrets[0].into());
    args.kit_key = Some(secrets[1].into());
    args.license_key = Some(secrets[2].into());
    args.generic_key = Some(secrets[3].into());
    args.v1_key = Some(secrets[4].into());
    args.ak = Some(secrets[5].into());
    args.sk = Some(secrets[6].into());
    args.admin_token = Some(secrets[7].into());
    args.database_url = Some(format!("postgres://kg:{}@db:5432/kg", secrets[8]));
    args.data_key = Some(data_key.into());
    let mut c = Config::load(&args).unwrap();
    c.prepare_data_dir().unwrap();
    let explained = c.explain();
    let shown = [
        explained.clone(),
        format!("{c:?}"),
        format!("{:?}", c.clone()),
        format!("{args:?}"),
        c.redacted_database_url(),
        c.warnings().join("\n"),
    ];
    for text in &shown {
        for secret in secrets.iter().chain([&data_key]) {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
    }
    assert!(
        explained.contains(&line("basic_key", "set (17 chars, from flag --basic-key)")),
        "{explained}"
    );
    assert!(explained.contains(&line("data_key", "set (32 bytes, from flag --data-key)")));
    assert!(explained.contains(&line("listen", "127.0.0.1:8080 (default)")));
    assert!(explained.contains("postgres://kg:***@db:5432/kg"));
    assert!(explained.contains("--basic-key on the command line is visible"));
}

#[test]
fn explain_shows_sources_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = with_file(dir.path(), "[keys]\nkit = \"kit-from-file\"\n");
    args.data_dir = Some(dir.path().join("data"));
    args.listen = Some("0.0.0.0:8080".parse().unwrap());
    let mut c = Config::load(&args).unwrap();
    let before = c.explain();
    assert!(before.contains(&line("basic_key", "not set (generated on first start into")));
    assert!(before.contains(&line("v1_key", "not set (defaults to the basic key)")));
    let kit = format!(
        "set (13 chars, from file {} key keys.kit)",
        dir.path().join("koogate.toml").display()
    );
    assert!(before.contains(&line("kit_key", &kit)), "{before}");
    assert!(before.contains("no AK/SK"));
    assert!(before.contains("without TLS"));
    assert!(before.contains("TLS-terminating proxy"));
    assert!(before.contains("SQLite supports a single node only"));
    c.prepare_data_dir().unwrap();
    let after = c.explain();
    assert!(after.contains(&line("basic_key", "set (32 chars, generated, stored in ")));
    assert!(after.contains(&line("v1_key", "set (32 chars, default: the basic key)")));

    let mut args = args_in(dir.path());
    args.database_url = Some("postgresql://kg@db/kg".into());
    let c = Config::load(&args).unwrap();
    let w = c.warnings().join("\n");
    assert!(
        w.contains("nodes sharing one PostgreSQL database must share them"),
        "{w}"
    );
    assert!(!w.contains("SQLite"));
}

#[test]
fn redacted_database_url_masks_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args_in(dir.path());
    for (url, redacted) in [
        (
            "postgres://kg:s3cret@db:5432/kg",
            "postgres://kg:***@db:5432/kg",
        ),
        (
            "postgresql://kg@db/kg?password=s3cret&sslmode=require",
            "postgresql://kg@db/kg?password=***&sslmode=require",
        ),
        ("postgres://db/kg", "postgres://db/kg"),
        (
            "sqlite:///var/lib/kg/koogate.db",
            "sqlite:///var/lib/kg/koogate.db",
        ),
    ] {
        args.database_url = Some(url.to_owned());
        let c = Config::load(&args).unwrap();
        assert_eq!(c.database_url, url);
        assert_eq!(c.redacted_database_url(), redacted);
    }
}

#[test]
fn templates_render() {
    let vars = TemplateVars {
        instance_id: "i-1",
        order_id: "CS1",
        customer_id: "c9",
    };
    assert_eq!(
        ProvisionerTemplates::render("https://{instance_id}.x/{order_id}?c={customer_id}", &vars),
        "https://i-1.x/CS1?c=c9"
    );
    assert_eq!(
        ProvisionerTemplates::render("{{literal}}", &vars),
        "{literal}"
    );
}

#[test]
fn webhooks_and_provisioners_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"
[webhooks]
retry_first_ms = 100
max_age_secs = 60

[[webhooks.endpoints]]
url = "https://app.example.com/hooks"
secret = "whsec_c2VjcmV0LWEtMDEyMzQ1Njc4OWFiY2RlZg=="
events = ["instance.ready"]

[[provisioners]]
product_id = "OFFI-1"
kind = "webhook"
url = "https://app.example.com/provision"
secret = "whsec_c2VjcmV0LWEtMDEyMzQ1Njc4OWFiY2RlZg=="

[[provisioners]]
kind = "exec"
command = ["/bin/true"]
max_attempts = 3
"#;
    let config = Config::load(&with_file(dir.path(), good)).unwrap();
    assert_eq!(config.webhooks.schedule.first_retry_ms, 100);
    assert_eq!(config.webhooks.schedule.max_age_ms, 60_000);
    assert_eq!(config.webhooks.endpoints[0].events, ["instance.ready"]);
    assert_eq!(config.provisioners.len(), 2);
    assert!(config.provisioners[0].matches(Some("OFFI-1"), None));
    assert!(!config.provisioners[0].matches(Some("OFFI-2"), None));
    assert!(config.provisioners[1].matches(None, None));
    assert_eq!(config.provisioners[1].max_attempts, 3);
    // The secrets never show in Debug.
    assert!(!format!("{config:?}").contains("c2VjcmV0"));

    for (toml, expected) in [
        (
            "[[webhooks.endpoints]]\nurl = \"https://x\"\nsecret = \"plain\"\n",
            "webhooks.endpoints[0]: secret must start with whsec_",
        ),
        (
            "[[webhooks.endpoints]]\nurl = \"ftp://x\"\nsecret = \"whsec_YWJj\"\n",
            "webhooks.endpoints[0]: url must be an http",
        ),
        (
            "[[webhooks.endpoints]]\nurl = \"https://x\"\nsecret = \"whsec_YWJj\"\nevents = [\"instance.exploded\"]\n",
            "unknown event type",
        ),
        (
            "[webhooks]\nretry_first_ms = 0\n",
            "webhooks.retry_first_ms",
        ),
        (
            "[[provisioners]]\nkind = \"magic\"\n",
            "provisioners[0]: kind must be",
        ),
        (
            "[[provisioners]]\nkind = \"exec\"\ncommand = []\n",
            "provisioners[0]: kind \"exec\" needs command",
        ),
        (
            "[[provisioners]]\nkind = \"webhook\"\nurl = \"https://x\"\n",
            "needs secret",
        ),
        (
            "[[provisioners]]\nkind = \"exec\"\ncommand = [\"x\"]\nmax_attempts = 0\n",
            "max_attempts",
        ),
    ] {
        let err = load_err(&with_file(dir.path(), toml));
        assert!(err.contains(expected), "{toml}: {err}");
    }
}

/// A database that holds data and a data directory whose key files are gone (deleted, or a
/// new directory): `serve` refuses to start instead of generating new keys, which would leave
/// every stored credential unreadable and every KooGallery call failing its signature; it
/// says what is missing and how to restore it, and it has written no new key.
#[tokio::test]
async fn serve_refuses_to_generate_keys_for_existing_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("sqlite://{}/koogate.db", data.display());
    let db = koogate::store::Db::open(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO instances (instance_id, create_key, protocol, order_id, state, created_at, updated_at) \
         VALUES ('i-1', 'v2|O|L', 'saas_v2', 'O', 'active', 0, 0)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db.close().await;

    let (code, _out, err) = crate::common::koogate_cli(
        &url,
        &data,
        &[("KOOGATE_LISTEN", "127.0.0.1:0")],
        &["serve"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already holds instances"), "{err}");
    assert!(
        err.contains("data.key") && err.contains("keys.toml"),
        "{err}"
    );
    assert!(err.contains("restore"), "{err}");
    assert!(
        !data.join("data.key").exists(),
        "a new data key was written"
    );
    assert!(
        !data.join("keys.toml").exists(),
        "new interface keys were written"
    );
}
