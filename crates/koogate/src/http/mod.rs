//! The HTTP layer: thin axum handlers over [`Gateway`], served by hyper with title-case header
//! names. KooGallery's checker reads the response header name case-sensitively (`Body-Sign`),
//! and hyper writes lower-case names unless told otherwise (security.md §7).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::app::Gateway;
use crate::produce::Answer;

#[derive(Clone)]
struct AppState {
    gateway: Arc<Gateway>,
    max_body_bytes: usize,
}

/// The routes: the production path (POST = V2, GET = V1), `/healthz`, `/readyz`, and the
/// merchant REST API under `/api/v1` ([`crate::api`]).
pub fn router(
    gateway: Arc<Gateway>,
    produce_path: &str,
    max_body_bytes: usize,
    admin_token: Option<secrecy::SecretString>,
) -> Router {
    let api = crate::api::router(gateway.clone(), admin_token);
    Router::new()
        .route(produce_path, get(produce_v1).post(produce_v2))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            gateway,
            max_body_bytes,
        })
        .merge(api)
}

async fn produce_v2(State(s): State<AppState>, RawQuery(query): RawQuery, body: Body) -> Response {
    let answer = match axum::body::to_bytes(body, s.max_body_bytes).await {
        Ok(bytes) => {
            s.gateway
                .handle_v2(query.as_deref().unwrap_or_default(), &bytes)
                .await
        }
        Err(_) => s.gateway.reject_oversized(s.max_body_bytes).await,
    };
    signed_json(answer)
}

async fn produce_v1(State(s): State<AppState>, RawQuery(query): RawQuery) -> Response {
    signed_json(
        s.gateway
            .handle_v1(query.as_deref().unwrap_or_default())
            .await,
    )
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.gateway.db.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
    }
}

/// HTTP 200, `application/json`, the exact signed bytes, and their `Body-Sign`.
fn signed_json(answer: Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Base64 and ASCII punctuation only: always a valid header value.
    if let Ok(v) = HeaderValue::from_str(&answer.body_sign) {
        headers.insert(koogallery::sign::body_sign::HEADER, v);
    }
    response
}

/// Accepts connections until `shutdown` turns true, then lets open requests finish (up to
/// 10 s). With `tls`, every connection is TLS (rustls).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.title_case_headers(true)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30));
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        watcher
                            .watch(http.serve_connection(TokioIo::new(stream), service))
                            .await
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; closing them");
    }
}

/// A TLS acceptor from PEM files (certificate chain, private key).
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert)
            .with_context(|| format!("cannot open TLS certificate {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("TLS certificate {} is not valid PEM", cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "TLS certificate file {} holds no certificate",
        cert.display()
    );
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key)
            .with_context(|| format!("cannot open TLS key {}", key.display()))?,
    ))
    .with_context(|| format!("TLS key {} is not valid PEM", key.display()))?
    .with_context(|| format!("TLS key file {} holds no private key", key.display()))?;
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("TLS certificate and key do not match")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
