//! A minimal HTTP/1.1 client that keeps what KooGallery's checker sees and a general-purpose
//! client hides: the exact bytes of the body and the header names exactly as written on the
//! wire (`Body-Sign` is checked case-sensitively, security.md §7; hyper and reqwest lower-case
//! every name). One request per connection (`Connection: close`), no proxy, no redirects,
//! HTTPS with the Mozilla root store (webpki-roots), TLS ≥ 1.2.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

/// KooGallery's debugging tool gives up after 20 s (saas.md §2.1, §10).
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// Largest answer read: a production interface answers a few hundred bytes.
const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// Where requests go: parsed once from `--url`.
pub struct Target {
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    /// Host for the connection (IPv6 without brackets) and port.
    host: String,
    port: u16,
    /// The `Host` header.
    host_header: String,
    /// Path and query of `--url` (`/` at least).
    path_and_query: String,
}

/// Why no answer came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection (DNS, refused, TLS handshake).
    Unreachable(String),
    /// No complete answer within [`TIMEOUT`].
    Timeout,
    /// An answer that is not HTTP/1.x.
    Malformed(String),
}

/// An answer as received.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Header names exactly as on the wire, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes after de-chunking (no content decoding is ever requested).
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of the first header whose name equals `name` case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of the first header named exactly `name` (case-sensitive).
    pub fn header_exact(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The name of a header matching `name` case-insensitively, as written on the wire.
    pub fn header_name(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, _)| n.as_str())
    }
}

impl Target {
    /// A target for `url`; HTTPS trusts the Mozilla roots plus `extra_roots` (DER).
    pub fn new(url: &str, extra_roots: &[Vec<u8>]) -> Result<Target, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let https = match parsed.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("unsupported scheme {other}")),
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("the URL has no host".to_owned()),
        };
        let port = parsed
            .port_or_known_default()
            .ok_or("the URL has no port")?;
        let host_str = parsed.host_str().unwrap_or_default();
        let host_header = match parsed.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_owned(),
        };
        let mut path_and_query = parsed.path().to_owned();
        if path_and_query.is_empty() {
            path_and_query.push('/');
        }
        if let Some(q) = parsed.query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        let tls = if https {
            let mut roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            for der in extra_roots {
                roots
                    .add(rustls::pki_types::CertificateDer::from(der.clone()))
                    .map_err(|e| format!("cannot use a --ca-cert certificate: {e}"))?;
            }
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("not a TLS server name: {e}"))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Target {
            tls,
            host,
            port,
            host_header,
            path_and_query,
        })
    }

    /// `--url` with `extra` appended to its query, as a request target.
    pub fn request_target(&self, extra: &str) -> String {
        if extra.is_empty() {
            return self.path_and_query.clone();
        }
        crate::signed_call::with_query(&self.path_and_query, extra)
    }

    /// `--url`'s path (without its query) followed by `suffix`, e.g. the kit's
    /// `/produceAPI/v2/tenantSync` (jointop.md §1).
    pub fn path_target(&self, suffix: &str) -> String {
        let path = self
            .path_and_query
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        format!("{path}{suffix}")
    }

    /// Sends one request (`body` makes it a JSON POST, otherwise a GET) with `headers` added,
    /// and reads the whole answer, within [`TIMEOUT`].
    pub async fn send(
        &self,
        request_target: &str,
        body: Option<&[u8]>,
        headers: &[(String, String)],
    ) -> Result<Answer, Failure> {
        match tokio::time::timeout(TIMEOUT, self.exchange(request_target, body, headers)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        }
    }

    async fn exchange(
        &self,
        request_target: &str,
        body: Option<&[u8]>,
        headers: &[(String, String)],
    ) -> Result<Answer, Failure> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut head = match body {
            Some(b) => format!(
                "POST {request_target} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nContent-Type: application/json;charset=utf8\r\nContent-Length: {}\r\n",
                self.host_header,
                b.len()
            ),
            None => format!(
                "GET {request_target} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n",
                self.host_header
            ),
        };
        for (name, value) in headers {
            // Values come from the runner (signatures, times, nonces): no line breaks.
            if !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("User-Agent: koogate-conformance\r\nConnection: close\r\n\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body.unwrap_or_default());
        let raw = match &self.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| Failure::Unreachable(format!("TLS: {e}")))?;
                roundtrip(tls, &request).await?
            }
            None => roundtrip(stream, &request).await?,
        };
        parse_response(&raw)
    }
}

/// Writes the request and reads until the server closes (or the answer is complete).
async fn roundtrip<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<Vec<u8>, Failure> {
    stream
        .write_all(request)
        .await
        .map_err(|e| Failure::Unreachable(format!("cannot send the request: {e}")))?;
    let _ = stream.flush().await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify, or a reset after a complete
            // answer: keep what arrived; an incomplete answer is reported by the parser.
            Err(_) if !raw.is_empty() => break,
            Err(e) => return Err(Failure::Malformed(format!("no answer: {e}"))),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_RESPONSE {
            return Err(Failure::Malformed(format!(
                "the answer is larger than {MAX_RESPONSE} bytes"
            )));
        }
        if complete(&raw) {
            break;
        }
    }
    if raw.is_empty() {
        return Err(Failure::Malformed(
            "the connection closed without an answer".to_owned(),
        ));
    }
    Ok(raw)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether `raw` holds a whole answer with a `Content-Length` (so a server that keeps the
/// connection open despite `Connection: close` does not stall the run).
fn complete(raw: &[u8]) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let Ok((status, headers)) = parse_head(&raw[..end]) else {
        return false;
    };
    if (100..200).contains(&status) {
        return false;
    }
    if headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        return raw.ends_with(b"0\r\n\r\n") && dechunk(&raw[end + 4..]).is_ok();
    }
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .is_some_and(|len| raw.len().saturating_sub(end + 4) >= len)
}

type Head = (u16, Vec<(String, String)>);

fn parse_head(head: &[u8]) -> Result<Head, Failure> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(Failure::Malformed(format!(
            "not an HTTP/1.x answer: {:?}",
            truncate(status_line, 80)
        )));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| {
            Failure::Malformed(format!("bad status line {:?}", truncate(status_line, 80)))
        })?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Failure::Malformed(format!(
                "bad header line {:?}",
                truncate(line, 80)
            )));
        };
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok((status, headers))
}

/// Parses a whole HTTP/1.x answer (skipping interim 1xx answers).
pub fn parse_response(mut raw: &[u8]) -> Result<Answer, Failure> {
    loop {
        let end = find(raw, b"\r\n\r\n")
            .ok_or_else(|| Failure::Malformed("the answer ended inside its headers".to_owned()))?;
        let (status, headers) = parse_head(&raw[..end])?;
        let rest = &raw[end + 4..];
        if (100..200).contains(&status) {
            raw = rest;
            continue;
        }
        let chunked = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        });
        let body = if chunked {
            dechunk(rest)?
        } else if let Some((_, v)) = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            let len: usize = v
                .trim()
                .parse()
                .map_err(|_| Failure::Malformed(format!("bad Content-Length {v:?}")))?;
            if rest.len() < len {
                return Err(Failure::Malformed(format!(
                    "the body is shorter than its Content-Length ({} of {len} bytes)",
                    rest.len()
                )));
            }
            rest[..len].to_vec()
        } else {
            rest.to_vec()
        };
        return Ok(Answer {
            status,
            headers,
            body,
        });
    }
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, Failure> {
    let bad = |what: &str| Failure::Malformed(format!("bad chunked body: {what}"));
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| bad("no chunk size"))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).ok_or_else(|| bad("truncated chunk"))?;
    }
}

/// At most `max` characters of `s`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_chunked_and_close_delimited() {
        let a = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nBody-Sign: x\r\nContent-Length: 2\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.body, b"{}");
        assert_eq!(a.header_exact("Body-Sign"), Some("x"));
        assert_eq!(a.header_exact("body-sign"), None);
        assert_eq!(a.header("body-sign"), Some("x"));
        let a = parse_response(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n1;x=y\r\n}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(a.body, b"{\"}");
        let a = parse_response(b"HTTP/1.0 500 Oops\r\n\r\nboom").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (500, b"boom".as_slice()));
        for bad in [
            b"".as_slice(),
            b"garbage\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        ] {
            assert!(parse_response(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn completeness_by_content_length() {
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}"));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n{}"
        ));
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n{}")
                .is_err()
        );
        assert!(!complete(b"HTTP/1.1 200 OK\r\n\r\n{}"));
        assert!(complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        ));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"
        ));
    }
}
