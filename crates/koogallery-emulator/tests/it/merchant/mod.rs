#![allow(clippy::unwrap_used, dead_code)]
//! A small test merchant: a production interface that verifies every call with the
//! `koogallery` crate (V2 URL signature, V1 `authToken`, the kit's `x-sign` headers on the kit
//! paths `/produceAPI/v2/<name>`), records it, and answers as scripted.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use koogallery::sign::{SignedRequest, body_sign, kit, v1, v2};
use koogallery_emulator::catalog::MerchantKeys;
use koogallery_emulator::clock::{EmuClock, wall_clock_ms};
use koogallery_emulator::{Marketplace, OpenApi, Settings};
use serde_json::{Value, json};

pub const KEY: &str = "basic-key-emulator-test";
pub const LICENSE_KEY: &str = "license-key-emulator-test";
pub const GENERIC_KEY: &str = "generic-key-emulator-test";
pub const KIT_KEY: &str = "kit-key-emulator-test";
/// The merchant's RSA key pair (3072 bits), shared with the `koogallery` crate's tests.
pub const PUBLIC_KEY_PEM: &str =
    include_str!("../../../../koogallery/tests/fixtures/rsa3072_test_pub.pem");
pub const PRIVATE_KEY_PEM: &str =
    include_str!("../../../../koogallery/tests/fixtures/rsa3072_test_key.pem");
pub const AK: &str = "EMUTESTAK0000000";
pub const SK: &str = "EMUTESTSK000000000000000000000000000000";

/// One call the merchant received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub activity: String,
    /// The JSON body (V2) or the decoded parameters as an object (V1).
    pub fields: Value,
    /// Whether its signature verified (with the basic or the license key).
    pub verified: bool,
    /// `basic`, `license`, `generic` or `kit`: the key that verified it.
    pub key: &'static str,
    /// Kit calls: the path called and the `x-sign` header as received.
    pub path: String,
    pub x_sign: Option<String>,
    /// Kit calls: the body bytes as received.
    pub raw: Vec<u8>,
}

impl Received {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

/// How the merchant answers.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// `newInstance` result code (default `000000`).
    pub create_code: Option<String>,
    /// How many `queryInstance` calls answer `000004` before the instance is ready.
    pub query_pending: u32,
    pub content_type: Option<String>,
    pub omit_instance_id: bool,
    /// Answer this HTTP status to every call.
    pub status: Option<u16>,
    /// Answer this HTTP status to this activity only.
    pub fail_activity: Option<(String, u16)>,
    /// V1: sign answers with the wrong key.
    pub bad_body_sign: bool,
    /// `changeInstanceCheck` refuses.
    pub refuse_change: bool,
    /// A kit interface (`tenantSync` …) answers this `resultCode`.
    pub kit_code: Option<(String, String)>,
}

#[derive(Default)]
pub struct Inner {
    pub calls: Vec<Received>,
    pub script: Script,
}

/// The merchant: shared state and its server task.
#[derive(Clone)]
pub struct Merchant {
    pub inner: Arc<Mutex<Inner>>,
    pub addr: SocketAddr,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Merchant {
    pub async fn start() -> Merchant {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn start_at(addr: SocketAddr) -> Merchant {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let mut m = Merchant {
            inner,
            addr,
            server: Arc::new(Mutex::new(None)),
        };
        m.up().await;
        m
    }

    /// Starts serving (again) on the same address.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/produce", any(handle))
            .route("/produce/produceAPI/v2/{name}", post(handle_kit))
            .with_state(self.inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// Stops serving: the port refuses connections.
    pub async fn down(&self) {
        let task = self.server.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/produce", self.addr)
    }

    pub fn script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.inner.lock().unwrap().script);
    }

    pub fn calls(&self) -> Vec<Received> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn activities(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.activity).collect()
    }

    pub fn clear(&self) {
        self.inner.lock().unwrap().calls.clear();
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = koogallery::query::decode_query(uri.query().unwrap_or_default());
    let now = wall_clock_ms();
    let (v1_call, fields, key) = if method == Method::POST {
        let req = SignedRequest {
            signature: koogallery::query::param(&params, "signature"),
            timestamp: koogallery::query::param(&params, "timestamp"),
            nonce: koogallery::query::param(&params, "nonce"),
        };
        let canonical = koogallery::canonical::is_canonical(&body);
        let key = if v2::verify(KEY, &req, &body, now, 60_000).is_ok() && canonical {
            "basic"
        } else if v2::verify(LICENSE_KEY, &req, &body, now, 60_000).is_ok() && canonical {
            "license"
        } else if v2::verify(GENERIC_KEY, &req, &body, now, 60_000).is_ok() && canonical {
            "generic"
        } else {
            ""
        };
        let fields: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (false, fields, key)
    } else {
        let ts = koogallery::query::param(&params, "timeStamp").unwrap_or_default();
        let ok =
            v1::verify_get(KEY, &params).is_ok() && v1::check_v1_window(ts, now, 300_000).is_ok();
        let mut map = serde_json::Map::new();
        for (k, v) in &params {
            map.insert(k.clone(), Value::String(v.clone()));
        }
        (true, Value::Object(map), if ok { "basic" } else { "" })
    };
    let activity = fields
        .get("activity")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut g = inner.lock().unwrap();
    g.calls.push(Received {
        method: method.to_string(),
        activity: activity.clone(),
        fields: fields.clone(),
        verified: !key.is_empty(),
        key,
        path: uri.path().to_owned(),
        x_sign: None,
        raw: body.to_vec(),
    });
    let script = g.script.clone();
    let field = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let answer = match activity.as_str() {
        "newInstance" => {
            let line = if v1_call {
                field("orderId")
            } else {
                field("orderLineId")
            };
            let id = format!("inst-{line}");
            let mut a = json!({
                "resultCode": script.create_code.clone().unwrap_or_else(|| "000000".to_owned()),
                "resultMsg": "success.",
                "instanceId": id,
            });
            if v1_call {
                a["appInfo"] = json!({"frontEndUrl": format!("https://app.example.com/{id}"), "userName": "admin"});
            }
            if script.omit_instance_id {
                a.as_object_mut().unwrap().remove("instanceId");
            }
            a
        }
        "queryInstance" => {
            let id = field("instanceId");
            if g.script.query_pending > 0 {
                g.script.query_pending -= 1;
                json!({"resultCode": "000004", "resultMsg": "request is processing", "info": []})
            } else {
                json!({"resultCode": "000000", "resultMsg": "success.", "info": [{
                    "instanceId": id,
                    "appInfo": {"frontEndUrl": format!("https://app.example.com/{id}"), "userName": "admin", "password": "S3cret!pw"}
                }]})
            }
        }
        "getLicense" => json!({
            "resultCode": "000000",
            "resultMsg": "success.",
            "license": format!("LICENSE-{}", field("orderId")),
            "instanceId": format!("inst-{}", field("orderId")),
        }),
        "changeInstanceCheck" if script.refuse_change => {
            json!({"resultCode": "000002", "resultMsg": "cannot downgrade"})
        }
        _ => json!({"resultCode": "000000", "resultMsg": "success."}),
    };
    drop(g);
    let bytes = serde_json::to_vec(&answer).unwrap();
    let status = script
        .fail_activity
        .as_ref()
        .filter(|(a, _)| *a == activity)
        .map(|(_, s)| *s)
        .or(script.status)
        .unwrap_or(200);
    let mut response = (
        axum::http::StatusCode::from_u16(status).unwrap(),
        bytes.clone(),
    )
        .into_response();
    let h = response.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_str(script.content_type.as_deref().unwrap_or("application/json"))
            .unwrap(),
    );
    let sign_key = if script.bad_body_sign {
        "wrong-key"
    } else {
        KEY
    };
    h.insert(
        body_sign::HEADER,
        HeaderValue::from_str(&body_sign::header_value(sign_key, &bytes)).unwrap(),
    );
    response
}

/// A kit call: the `x-sign` headers checked with [`KIT_KEY`] (security.md §10, 60 s window),
/// then answered as scripted, without `Body-Sign`.
async fn handle_kit(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let req = SignedRequest {
        signature: header(kit::HEADER_SIGN),
        timestamp: header(kit::HEADER_TIMESTAMP),
        nonce: header(kit::HEADER_NONCE),
    };
    let json_type = header("content-type").is_some_and(|t| t.starts_with("application/json"));
    let verified = kit::verify(KIT_KEY, &req, &body, wall_clock_ms(), 60_000).is_ok() && json_type;
    let fields: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut g = inner.lock().unwrap();
    g.calls.push(Received {
        method: "POST".to_owned(),
        activity: name.clone(),
        fields,
        verified,
        key: if verified { "kit" } else { "" },
        path: uri.path().to_owned(),
        x_sign: header(kit::HEADER_SIGN).map(str::to_owned),
        raw: body.to_vec(),
    });
    let script = g.script.clone();
    drop(g);
    let code = script
        .kit_code
        .as_ref()
        .filter(|(n, _)| *n == name)
        .map_or("000000", |(_, c)| c.as_str());
    let status = script
        .fail_activity
        .as_ref()
        .filter(|(a, _)| *a == name)
        .map(|(_, s)| *s)
        .or(script.status)
        .unwrap_or(200);
    let answer = json!({"resultCode": code, "resultMsg": "kit answer"});
    let mut response = (
        axum::http::StatusCode::from_u16(status).unwrap(),
        serde_json::to_vec(&answer).unwrap(),
    )
        .into_response();
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_str(script.content_type.as_deref().unwrap_or("application/json"))
            .unwrap(),
    );
    response
}

/// A marketplace on a manual clock (at the real time), calling `merchant` with [`KEY`] (and the
/// other keys, and the merchant's [`PUBLIC_KEY_PEM`] for the kit).
pub fn marketplace(merchant: &Merchant) -> (Arc<Marketplace>, Arc<OpenApi>) {
    marketplace_with(merchant, Some(PUBLIC_KEY_PEM))
}

/// The same, with this merchant public key (or none).
pub fn marketplace_with(
    merchant: &Merchant,
    public_key: Option<&str>,
) -> (Arc<Marketplace>, Arc<OpenApi>) {
    let openapi = Arc::new(OpenApi::new([(AK, SK)]));
    let clock = Arc::new(EmuClock::manual(wall_clock_ms()));
    let settings = Settings {
        merchant_url: Some(merchant.url()),
        keys: MerchantKeys {
            basic: Some(KEY.to_owned()),
            license: Some(LICENSE_KEY.to_owned()),
            generic: Some(GENERIC_KEY.to_owned()),
            kit: Some(KIT_KEY.to_owned()),
        },
        kit_public_key: public_key.map(str::to_owned),
        ..Settings::default()
    };
    (
        Arc::new(Marketplace::new(settings, clock, openapi.clone())),
        openapi,
    )
}
