//! `koogate tools`: every KooGallery signature and cipher as a command, for debugging a
//! merchant integration by hand. Each prints only its result on stdout.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use koogallery::canonical;
use koogallery::crypto::{FieldCipher, KeySize, Sha1Prng};
use koogallery::query::decode_query;
use koogallery::sign::{SignedRequest, apig, body_sign, kit, usage, v1, v2};

#[derive(Debug, Args)]
pub struct ToolsArgs {
    #[command(subcommand)]
    pub tool: Tool,
}

/// The request or response body: given inline, or read from a file (`-` for stdin). The bytes
/// are used exactly as given: no trailing newline is added or removed.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Body {
    /// The body text.
    #[arg(long)]
    pub body: Option<String>,
    /// Read the body from this file (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
}

/// Like [`Body`], but optional (an empty body when neither is given).
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct OptionalBody {
    /// The body text.
    #[arg(long)]
    pub body: Option<String>,
    /// Read the body from this file (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
}

fn read_body(body: Option<String>, file: Option<PathBuf>) -> Result<Vec<u8>> {
    match (body, file) {
        (Some(b), _) => Ok(b.into_bytes()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read the body from standard input")?;
            Ok(buf)
        }
        (None, Some(path)) => std::fs::read(&path)
            .with_context(|| format!("cannot read body file {}", path.display())),
        (None, None) => Ok(Vec::new()),
    }
}

impl Body {
    fn read(self) -> Result<Vec<u8>> {
        read_body(self.body, self.body_file)
    }
}

impl OptionalBody {
    fn read(self) -> Result<Vec<u8>> {
        read_body(self.body, self.body_file)
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Bits {
    #[value(name = "128")]
    B128,
    #[value(name = "256")]
    B256,
}

impl From<Bits> for KeySize {
    fn from(b: Bits) -> Self {
        match b {
            Bits::B128 => KeySize::Aes128,
            Bits::B256 => KeySize::Aes256,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Tool {
    /// V1 authToken of query parameters: Base64 HMAC-SHA256, key = access key + timeStamp.
    #[command(name = "v1-token")]
    V1Token {
        /// The product's access key.
        #[arg(long)]
        key: String,
        /// The query string, URL-encoded as on the wire, including timeStamp (authToken, if
        /// present, is ignored), e.g. 'activity=newInstance&orderId=X&timeStamp=20200727073711903'.
        #[arg(long)]
        params: String,
    },
    /// V2 URL signature (lower-case hex) of a body, as KooGallery puts it in `signature=`.
    #[command(name = "v2-sign")]
    V2Sign {
        #[arg(long)]
        key: String,
        #[arg(long)]
        nonce: String,
        /// Unix epoch milliseconds, exactly as it will appear in the URL.
        #[arg(long)]
        timestamp: String,
        #[command(flatten)]
        body: Body,
    },
    /// Joint-operation kit `x-sign` (lower-case hex) of a body.
    #[command(name = "kit-sign")]
    KitSign {
        #[arg(long)]
        key: String,
        #[arg(long)]
        nonce: String,
        /// Unix epoch milliseconds, exactly as sent in `x-timestamp`.
        #[arg(long)]
        timestamp: String,
        #[command(flatten)]
        body: Body,
    },
    /// The complete `Body-Sign` response header value for a response body.
    #[command(name = "body-sign")]
    BodySign {
        #[arg(long)]
        key: String,
        #[command(flatten)]
        body: Body,
    },
    /// Usage-push body signature (Base64) for the `signature` header.
    #[command(name = "usage-sign")]
    UsageSign {
        /// The basic-interface key.
        #[arg(long)]
        key: String,
        /// Unix epoch milliseconds, exactly as sent in the `ts` header.
        #[arg(long)]
        ts: String,
        #[arg(long)]
        nonce: String,
        #[command(flatten)]
        body: Body,
    },
    /// API Gateway SDK-HMAC-SHA256 `Authorization` header for an open-API request.
    #[command(name = "apig-sign")]
    ApigSign {
        /// Account access key ID.
        #[arg(long)]
        ak: String,
        /// Account secret access key.
        #[arg(long)]
        sk: String,
        /// HTTP method, e.g. GET or POST.
        #[arg(long)]
        method: String,
        /// The full request URL, e.g. 'https://mkt.myhuaweicloud.com/api/mkp-openapi-public/global/v1/order/query?orderId=X'.
        #[arg(long)]
        url: String,
        /// X-Sdk-Date, yyyyMMddTHHmmssZ (UTC).
        #[arg(long)]
        date: String,
        /// A header that is sent and signed, as 'Name: value' (repeatable).
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        #[command(flatten)]
        body: OptionalBody,
        /// Print every intermediate (canonical request, string to sign, headers to add) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Encrypt a field value: 16-character IV + Base64(AES-CBC-PKCS5), key from SHA1PRNG(access key).
    Encrypt {
        #[arg(long)]
        key: String,
        /// AES key size (encryptType "1" = 256, "2" = 128).
        #[arg(long, value_enum, default_value = "256")]
        bits: Bits,
        /// A fixed 16-character IV (default: random alphanumeric).
        #[arg(long)]
        iv: Option<String>,
        plaintext: String,
    },
    /// Decrypt a field value (a space in the value is read as a mangled `+`).
    Decrypt {
        #[arg(long)]
        key: String,
        /// AES key size (encryptType "1" = 256, "2" = 128).
        #[arg(long, value_enum, default_value = "256")]
        bits: Bits,
        value: String,
    },
    /// The first N bytes (hex) of Java's SHA1PRNG stream for a seed: the AES key derivation.
    Sha1prng {
        /// Seed text (its UTF-8 bytes are used).
        #[arg(long)]
        seed: String,
        /// Number of bytes (16 = AES-128 key, 32 = AES-256 key).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
        len: u32,
    },
    /// The canonical (Jackson) form of a JSON body that KooGallery signatures may cover.
    Canonical {
        #[command(flatten)]
        body: Body,
    },
    /// Verify a V2 request: prints which form of the body matched (raw or canonical), or fails
    /// with the reason and the result code KooGallery would get.
    #[command(name = "verify-v2")]
    VerifyV2 {
        #[arg(long)]
        key: String,
        /// The full request URL with signature, timestamp and nonce.
        #[arg(long)]
        url: String,
        /// The request body file (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        body_file: PathBuf,
        /// "Now" in Unix epoch milliseconds (default: this machine's clock).
        #[arg(long)]
        now_ms: Option<i64>,
        /// The freshness window in milliseconds.
        #[arg(long, default_value_t = koogallery::time::DEFAULT_WINDOW_MS)]
        window_ms: u64,
    },
}

pub fn run(args: ToolsArgs) -> Result<String> {
    match args.tool {
        Tool::V1Token { key, params } => {
            let params = decode_query(params.trim_start_matches('?'));
            Ok(v1::auth_token(&key, &params)?)
        }
        Tool::V2Sign {
            key,
            nonce,
            timestamp,
            body,
        } => Ok(v2::sign(&key, &nonce, &timestamp, &body.read()?)),
        Tool::KitSign {
            key,
            nonce,
            timestamp,
            body,
        } => Ok(kit::sign(&key, &nonce, &timestamp, &body.read()?)),
        Tool::BodySign { key, body } => Ok(body_sign::header_value(&key, &body.read()?)),
        Tool::UsageSign {
            key,
            ts,
            nonce,
            body,
        } => Ok(usage::sign(&key, &ts, &nonce, &body.read()?)),
        Tool::ApigSign {
            ak,
            sk,
            method,
            url,
            date,
            headers,
            body,
            json,
        } => apig_sign(
            &ak,
            &sk,
            &method,
            &url,
            &date,
            &headers,
            &body.read()?,
            json,
        ),
        Tool::Encrypt {
            key,
            bits,
            iv,
            plaintext,
        } => {
            let cipher = FieldCipher::new(&key, bits.into());
            match iv {
                Some(iv) => Ok(cipher.encrypt_with_iv(&plaintext, &iv)?),
                None => Ok(cipher.encrypt(&plaintext)),
            }
        }
        Tool::Decrypt { key, bits, value } => {
            Ok(FieldCipher::new(&key, bits.into()).decrypt(&value)?)
        }
        Tool::Sha1prng { seed, len } => {
            let len = usize::try_from(len).context("length does not fit this machine")?;
            Ok(hex::encode(Sha1Prng::new(seed.as_bytes()).next_bytes(len)))
        }
        Tool::Canonical { body } => Ok(canonical::canonicalize(&body.read()?)?),
        Tool::VerifyV2 {
            key,
            url,
            body_file,
            now_ms,
            window_ms,
        } => {
            let body = read_body(None, Some(body_file))?;
            let now_ms = now_ms.unwrap_or_else(now_millis);
            verify_v2(&key, &url, &body, now_ms, window_ms)
        }
    }
}

fn now_millis() -> i64 {
    koogallery::time::epoch_millis(::time::OffsetDateTime::now_utc())
}

#[allow(clippy::too_many_arguments)]
fn apig_sign(
    ak: &str,
    sk: &str,
    method: &str,
    url: &str,
    date: &str,
    headers: &[String],
    body: &[u8],
    json: bool,
) -> Result<String> {
    koogallery::time::parse_sdk_date(date)
        .context("--date must be yyyyMMddTHHmmssZ, e.g. 20191115T033655Z")?;
    let url = url::Url::parse(url).with_context(|| format!("--url {url:?} is not a valid URL"))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => bail!("--url has no host"),
    };
    let query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let headers = headers
        .iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?} must be 'Name: value'"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<Result<Vec<_>>>()?;
    let req = apig::Request {
        method,
        host: &host,
        path: url.path(),
        query: &query,
        headers: &headers,
        body,
    };
    let signed = apig::sign(&req, ak, sk, date);
    if !json {
        return Ok(signed.authorization);
    }
    let added: serde_json::Map<String, serde_json::Value> = signed
        .added_headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "authorization": signed.authorization,
        "signed_headers": signed.signed_headers,
        "signature": signed.signature,
        "canonical_request": signed.canonical_request,
        "string_to_sign": signed.string_to_sign,
        "headers_to_add": added,
        "canonical_query": apig::canonical_query(&query),
    }))?)
}

fn verify_v2(key: &str, url: &str, body: &[u8], now_ms: i64, window_ms: u64) -> Result<String> {
    let query = match url.split_once('?') {
        Some((_, q)) => q,
        None => bail!("--url has no query string: expected ...?signature=…&timestamp=…&nonce=…"),
    };
    let params = decode_query(query);
    let get = |name: &str| koogallery::query::param(&params, name);
    let req = SignedRequest {
        signature: get("signature"),
        timestamp: get("timestamp"),
        nonce: get("nonce"),
    };
    match v2::verify(key, &req, body, now_ms, window_ms) {
        Ok(form) => Ok(form.as_str().to_owned()),
        Err(e) => {
            let mut msg = format!(
                "verification failed: {e} (KooGallery would get resultCode {})",
                e.result_code()
            );
            if v2::matches_plain_sha256_variant(key, &req, body) {
                msg.push_str("; note: the signature matches a variant with a plain SHA-256 inner hash, which KooGallery does not use");
            }
            bail!(msg)
        }
    }
}
