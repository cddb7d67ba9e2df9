//! A real HTTP receiver for webhooks and provisioning calls: verifies every Standard Webhooks
//! signature with the `standardwebhooks` library and records what arrived.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// 204 to events.
    Up,
    /// 503: the application is down.
    Down,
    /// This status and body (provisioning answers).
    Answer(u16, String),
    /// Hold the request until [`Receiver::release`] adds a permit, then answer this.
    Hold(u16, String),
}

/// One verified request.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub body: Value,
}

pub struct Receiver {
    pub url: String,
    secret: String,
    mode: Mutex<Mode>,
    received: Mutex<Vec<Received>>,
    /// Requests refused because the receiver was down.
    refused: Mutex<usize>,
    invalid: Mutex<VecDeque<String>>,
    arrived: Notify,
    permits: Semaphore,
    /// Requests currently held (mode Hold).
    pub held: Mutex<usize>,
}

impl Receiver {
    pub async fn start(secret: &str, mode: Mode) -> Arc<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Arc::new(Receiver {
            url: format!("http://{addr}/hook"),
            secret: secret.to_owned(),
            mode: Mutex::new(mode),
            received: Mutex::new(Vec::new()),
            refused: Mutex::new(0),
            invalid: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            permits: Semaphore::new(0),
            held: Mutex::new(0),
        });
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Lets one held request answer.
    pub fn release(&self) {
        self.permits.add_permits(1);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn refused(&self) -> usize {
        *self.refused.lock().unwrap()
    }

    /// Requests whose signature did not verify (must stay empty).
    pub fn invalid(&self) -> Vec<String> {
        self.invalid.lock().unwrap().iter().cloned().collect()
    }

    /// Waits (bounded) until `check` holds for what has arrived.
    pub async fn wait_until(&self, what: &str, check: impl Fn(&Receiver) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.arrived.notified();
            if check(self) {
                return;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "timed out waiting for {what}; received {:?}",
                self.received()
            );
        }
    }
}

async fn handle(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let verified =
        standardwebhooks::Webhook::new(&r.secret).and_then(|w| w.verify(&body, &headers));
    if let Err(e) = verified {
        r.invalid.lock().unwrap().push_back(e.to_string());
        r.arrived.notify_waiters();
        return (StatusCode::BAD_REQUEST, "bad signature").into_response();
    }
    let mode = r.mode.lock().unwrap().clone();
    let (status, text) = match mode {
        Mode::Down => {
            *r.refused.lock().unwrap() += 1;
            r.arrived.notify_waiters();
            return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
        }
        Mode::Up => (204, String::new()),
        Mode::Answer(status, text) => (status, text),
        Mode::Hold(status, text) => {
            *r.held.lock().unwrap() += 1;
            r.arrived.notify_waiters();
            let permit = r.permits.acquire().await.unwrap();
            permit.forget();
            *r.held.lock().unwrap() -= 1;
            (status, text)
        }
    };
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    r.received.lock().unwrap().push(Received {
        webhook_id,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    r.arrived.notify_waiters();
    let status = StatusCode::from_u16(status).unwrap();
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}
