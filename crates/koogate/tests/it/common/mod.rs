//! Black-box test harness: a fresh database per test (a temporary SQLite file, or a new
//! PostgreSQL database created through `KOOGATE_TEST_POSTGRES_URL`), the real server on an
//! ephemeral port, and a client that signs requests exactly as KooGallery does.
//!
//! A test that runs on both databases is an `async fn name(backend: Backend)` announced by
//! `backend_tests!(name);`, which makes it two tests, `name::sqlite` and `name::postgres`.
//! Without `KOOGATE_TEST_POSTGRES_URL`, a PostgreSQL test fails if `KOOGATE_REQUIRE_POSTGRES`
//! is set (as `scripts/test.sh` does), and otherwise says on stderr that it is skipped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod receiver;

use std::sync::Arc;
use std::time::Duration;

use koogate::config::{Config, ConfigArgs};
use koogate::store::Db;
use serde_json::Value;
use sqlx::Row;
use tokio::sync::watch;

pub const BASIC_KEY: &str = "basic-key-test-0001";
pub const KIT_KEY: &str = "kit-key-test-0002";
pub const LICENSE_KEY: &str = "license-key-test-0003";
pub const GENERIC_KEY: &str = "generic-key-test-0004";
pub const AK: &str = "TESTAK0000000001";
pub const SK: &str = "TESTSK00000000000000000000000000000001";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Makes `async fn $name(backend: Backend)` two `#[tokio::test]`s, `$name::sqlite` and
/// `$name::postgres` (the latter checks [`postgres_available`] first). Extra arguments go to
/// `#[tokio::test(...)]`: `backend_tests!(name, flavor = "multi_thread", worker_threads = 2);`.
/// `backend_tests!(fn name);` does the same for a synchronous `fn name(backend: Backend)`, as
/// `#[test]`s.
macro_rules! backend_tests {
    (fn $name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::common::Backend::Sqlite)
            }

            #[test]
            fn postgres() {
                if $crate::common::postgres_available() {
                    super::$name($crate::common::Backend::Postgres)
                }
            }
        }
    };
    ($name:ident $(, $($tokio_args:tt)*)?) => {
        mod $name {
            #[tokio::test$(($($tokio_args)*))?]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }

            #[tokio::test$(($($tokio_args)*))?]
            async fn postgres() {
                if $crate::common::postgres_available() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        }
    };
}
pub(crate) use backend_tests;

/// The admin URL the PostgreSQL tests create their databases through, if one is set.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("KOOGATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether a PostgreSQL test can run: call it first, and return at once if not. Without
/// `KOOGATE_TEST_POSTGRES_URL` it panics when `KOOGATE_REQUIRE_POSTGRES` is set (non-empty),
/// so that CI cannot pass without running them; otherwise it says on stderr that the test is
/// skipped, and why.
pub fn postgres_available() -> bool {
    if postgres_admin_url().is_some() {
        return true;
    }
    // libtest names each test's thread after the test.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a PostgreSQL test");
    let required = std::env::var_os("KOOGATE_REQUIRE_POSTGRES").is_some_and(|v| !v.is_empty());
    assert!(
        !required,
        "{test}: KOOGATE_REQUIRE_POSTGRES is set but KOOGATE_TEST_POSTGRES_URL is not, so this \
         PostgreSQL test cannot run. Set KOOGATE_TEST_POSTGRES_URL to an admin URL whose role \
         may CREATE DATABASE, or run `bash scripts/test.sh`, which starts a throwaway PostgreSQL"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: KOOGATE_TEST_POSTGRES_URL is not set (set it, or run `bash scripts/test.sh`; \
         with KOOGATE_REQUIRE_POSTGRES=1 this is a failure)"
    );
    false
}

/// A fresh, empty database.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn fresh(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}/koogate.db", dir.path().display()),
            Backend::Postgres => {
                let admin = postgres_admin_url().expect(
                    "the PostgreSQL tests need KOOGATE_TEST_POSTGRES_URL (an admin URL that may CREATE DATABASE); \
                     `bash scripts/test.sh` starts a throwaway PostgreSQL and sets it",
                );
                let name = format!("koogate_test_{}", uuid::Uuid::new_v4().simple());
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("cannot connect to KOOGATE_TEST_POSTGRES_URL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&format!("/{name}"));
                url.to_string()
            }
        };
        TestDb { backend, url, dir }
    }
}

/// Options of a test server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Base URL of a KooGallery open API (the emulator), with the test AK/SK.
    pub openapi_url: Option<String>,
    pub workers: Option<usize>,
    pub max_body_bytes: Option<usize>,
    /// Contents of a config file (`--config`), e.g. `[webhooks]` and `[[provisioners]]`.
    pub config_toml: Option<String>,
    /// `KOOGATE_ADMIN_TOKEN`: enables the REST API.
    pub admin_token: Option<String>,
    /// Where to listen (default: a free port).
    pub listen: Option<std::net::SocketAddr>,
}

/// The admin token tests use for the REST API.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running production interface.
pub struct TestServer {
    pub base: String,
    pub db: Db,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub data: tempfile::TempDir,
}

pub fn config_args(db_url: &str, data_dir: &std::path::Path, opts: &Options) -> ConfigArgs {
    ConfigArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.to_path_buf()),
        database_url: Some(db_url.to_owned()),
        basic_key: Some(BASIC_KEY.to_owned()),
        kit_key: Some(KIT_KEY.to_owned()),
        license_key: Some(LICENSE_KEY.to_owned()),
        generic_key: Some(GENERIC_KEY.to_owned()),
        ak: opts.openapi_url.as_ref().map(|_| AK.to_owned()),
        sk: opts.openapi_url.as_ref().map(|_| SK.to_owned()),
        openapi_url: opts.openapi_url.clone(),
        workers: opts.workers,
        max_body_bytes: opts.max_body_bytes,
        admin_token: opts.admin_token.clone(),
        config: opts.config_toml.as_ref().map(|toml| {
            let path = data_dir.join("koogate.toml");
            std::fs::write(&path, toml).unwrap();
            path
        }),
        ..ConfigArgs::default()
    }
}

impl TestServer {
    pub async fn start(db: &TestDb, opts: Options) -> TestServer {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config::load(&config_args(&db.url, data.path(), &opts)).unwrap();
        config.prepare_data_dir().unwrap();
        let store = Db::open(&config.database_url).await.unwrap();
        let addr = opts
            .listen
            .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(koogate::cli::serve::run_server(
            config,
            store.clone(),
            listener,
            shutdown,
        ));
        TestServer {
            base,
            db: store,
            stop,
            task,
            data,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }

    pub fn produce_url(&self) -> String {
        format!("{}/produce", self.base)
    }

    /// Sends a V2 call signed with `key` (fresh nonce, current time).
    pub async fn v2_with(&self, key: &str, body: &str) -> Reply {
        call_v2(&self.base, key, body).await
    }

    /// Sends a V2 call signed with the basic key.
    pub async fn v2(&self, body: &str) -> Reply {
        self.v2_with(BASIC_KEY, body).await
    }

    /// Posts `body` with an explicit query string.
    pub async fn post(&self, query: &str, body: &str) -> Reply {
        let response = http()
            .post(format!("{}?{query}", self.produce_url()))
            .header("Content-Type", "application/json;charset=utf8")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        Reply::read(response).await
    }

    /// Sends a V1 GET with these parameters plus `timeStamp` and a valid `authToken`.
    ///
    /// Each call gets a later `timeStamp` than the one before: V1 has no nonce, so two calls
    /// with the same parameters in the same millisecond would carry the same `authToken` — a
    /// replay, which KooGallery never sends (its retries are signed anew).
    pub async fn v1(&self, params: &[(&str, &str)]) -> Reply {
        static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let now = now_ms();
        let ms = LAST
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |last| Some(now.max(last + 1)),
            )
            .map_or(now, |last| now.max(last + 1));
        let ts = koogallery::time::format_millis17(
            koogallery::time::from_epoch_millis(ms).expect("a current time"),
        );
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all.push(("timeStamp".into(), ts));
        let token = koogallery::sign::v1::auth_token(BASIC_KEY, &all).unwrap();
        all.push(("authToken".into(), token));
        self.get(&koogallery::query::encode_query(&all)).await
    }

    pub async fn get(&self, query: &str) -> Reply {
        let response = http()
            .get(format!("{}?{query}", self.produce_url()))
            .send()
            .await
            .unwrap();
        Reply::read(response).await
    }

    /// Runs a scalar SQL count.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sql)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
            .get::<i64, _>(0)
    }

    /// Waits (bounded) until `sql` counts `expected`, polling the database: the jobs run
    /// asynchronously, so this is the condition to wait for, not a fixed sleep.
    pub async fn wait_count(&self, sql: &str, expected: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let n = self.count(sql).await;
            if n == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for `{sql}` to be {expected}, it is {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until an instance reaches `state`.
    pub async fn wait_state(&self, instance_id: &str, state: &str) {
        self.wait_count(&format!("SELECT COUNT(*) FROM instances WHERE instance_id = '{instance_id}' AND state = '{state}'"), 1).await;
    }
}

/// Runs the real `koogate` binary on a database and data directory, with `env` added and no
/// config file from the working directory; returns the exit code, stdout and stderr.
pub fn koogate_cli(
    db_url: &str,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args(args)
        .env("KOOGATE_DATABASE_URL", db_url)
        .env("KOOGATE_DATA_DIR", data_dir)
        .envs(env.iter().copied())
        .env_remove("KOOGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends a V2 call to the server at `base`, signed with `key` (fresh nonce, current time).
pub async fn call_v2(base: &str, key: &str, body: &str) -> Reply {
    let ts = now_ms().to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let sig = koogallery::sign::v2::sign(key, &nonce, &ts, body.as_bytes());
    let response = http()
        .post(format!(
            "{base}/produce?signature={sig}&timestamp={ts}&nonce={nonce}"
        ))
        .header("Content-Type", "application/json;charset=utf8")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    Reply::read(response).await
}

pub fn now_ms() -> i64 {
    koogallery::time::epoch_millis(time::OffsetDateTime::now_utc())
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A response as KooGallery sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body_sign: Option<String>,
    pub body: Vec<u8>,
    pub json: Value,
}

impl Reply {
    async fn read(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let header = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type");
        let body_sign = header("body-sign");
        let body = r.bytes().await.unwrap().to_vec();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            body_sign,
            body,
            json,
        }
    }

    pub fn code(&self) -> &str {
        self.json["resultCode"].as_str().unwrap_or("<none>")
    }

    pub fn msg(&self) -> &str {
        self.json["resultMsg"].as_str().unwrap_or("")
    }

    /// Asserts what KooGallery checks on every answer: HTTP 200, `application/json`, JSON with
    /// `resultCode`, and a `Body-Sign` over the exact bytes with `key`.
    pub fn assert_wellformed(&self, key: &str) -> &Reply {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
        assert!(self.json["resultCode"].is_string(), "{self:?}");
        assert!(self.json["resultMsg"].is_string(), "{self:?}");
        koogallery::sign::body_sign::verify(key, &self.body, self.body_sign.as_deref()).unwrap();
        assert!(self.body.is_ascii(), "non-ASCII must be escaped");
        self
    }

    /// Asserts the result code only (for servers signing with a key the caller checks itself).
    pub fn expect_code(&self, code: &str) -> &Reply {
        assert_eq!(self.code(), code, "{}", String::from_utf8_lossy(&self.body));
        self
    }

    pub fn expect(&self, code: &str) -> &Reply {
        assert_eq!(self.code(), code, "{}", String::from_utf8_lossy(&self.body));
        self.assert_wellformed(BASIC_KEY)
    }
}

/// Starts the emulator's open API with the test AK/SK; returns its base URL.
pub async fn openapi() -> (String, Arc<koogallery_emulator::OpenApi>) {
    let api = Arc::new(koogallery_emulator::OpenApi::new([(AK, SK)]));
    let (addr, _task) = koogallery_emulator::openapi::spawn(api.clone())
        .await
        .unwrap();
    (format!("http://{addr}"), api)
}
