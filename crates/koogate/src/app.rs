//! The handles of a running koogate, built once at start ([`Gateway::from_config`]): the
//! database, keys, ciphers, the open-API client, the provisioners. A leaf above the store: the
//! production interface, jobs, webhooks, metering and the REST API take it; it imports none of
//! them.

use std::sync::Arc;

use koogallery::crypto::FieldCipher;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::openapi::OpenApiClient;
use crate::seal::Sealer;
use crate::store::Db;

/// The access keys, one per interface type (spec README §3).
#[derive(Clone)]
pub struct Keys {
    pub basic: String,
    pub kit: String,
    pub license: String,
    pub generic: String,
    /// V1 `authToken`, `Body-Sign` and field cipher key; the basic key unless configured.
    pub v1: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Everything the production interface needs, built once at start.
#[derive(Debug)]
pub struct Gateway {
    pub db: Db,
    pub keys: Keys,
    pub clock: Arc<dyn Clock>,
    /// V2 freshness window.
    pub window_ms: u64,
    /// V1 freshness window.
    pub v1_window_ms: u64,
    /// V1 field cipher (request `mobilePhone`/`email`, response credentials).
    pub v1_cipher: FieldCipher,
    /// When set, V2 `queryInstance` credentials are encrypted with this cipher (basic key).
    pub v2_cipher: Option<FieldCipher>,
    pub sealer: Sealer,
    pub templates: crate::config::ProvisionerTemplates,
    /// KooGallery's open API, when account AK/SK are configured, so orders can be read.
    pub openapi: Option<Arc<OpenApiClient>>,
    /// Provisioners per product/SKU (first match); none matching: the built-in one.
    pub provisioners: Vec<crate::config::ProvisionerRule>,
    /// Client of provisioning webhooks.
    pub http: reqwest::Client,
    /// Wakes the job workers when a job is enqueued.
    pub jobs_ready: Arc<Notify>,
    /// Usage windows and push (docs/metering.md).
    pub metering: crate::config::MeteringSettings,
}

impl Gateway {
    /// The merchant's provisioner (`webhook`, `exec`) of a product/SKU: the first rule that
    /// matches, unless that one is the built-in provisioner or none matches.
    pub fn external_provisioner(
        &self,
        product_id: Option<&str>,
        sku_code: Option<&str>,
    ) -> Option<&crate::config::ProvisionerRule> {
        self.provisioners
            .iter()
            .find(|r| r.matches(product_id, sku_code))
            .filter(|r| !matches!(r.kind, crate::config::ProvisionerKind::Builtin))
    }
}
