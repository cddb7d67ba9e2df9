//! The catalogue of events the merchant's application can receive (docs/integration.md), and
//! the checks of what an endpoint subscribes with. A leaf: configuration, the REST API and the
//! delivery workers all use it.

/// Every event type, in catalogue order (docs/integration.md). New types are added at the end;
/// a receiver must ignore types it does not know.
pub const EVENT_TYPES: &[&str] = &[
    "instance.created",
    "instance.ready",
    "instance.provisioning_failed",
    "instance.renewed",
    "instance.frozen",
    "instance.unfrozen",
    "instance.upgraded",
    "instance.specification_changed",
    "instance.released",
    "instance.credentials_rotated",
    "order.fetched",
    "webhook.test",
    "usage.rejected",
];

/// The event type of an instance history entry (`instance_events.kind`), if it is published.
pub fn instance_event_type(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "created" => "instance.created",
        "provisioned" => "instance.ready",
        "provision_failed" => "instance.provisioning_failed",
        "renewed" => "instance.renewed",
        "frozen" => "instance.frozen",
        "unfrozen" => "instance.unfrozen",
        "upgraded" => "instance.upgraded",
        "specification_changed" => "instance.specification_changed",
        "released" => "instance.released",
        "credentials_rotated" => "instance.credentials_rotated",
        _ => return None,
    })
}

/// Checks a secret is usable: `whsec_` followed by base64.
pub fn check_secret(secret: &str) -> Result<(), String> {
    match secret.strip_prefix("whsec_") {
        Some(rest) if !rest.is_empty() => standardwebhooks::Webhook::new(secret)
            .map(|_| ())
            .map_err(|_| "the part after whsec_ must be base64".to_owned()),
        _ => Err(
            "must start with whsec_ followed by base64 (as Standard Webhooks secrets do)"
                .to_owned(),
        ),
    }
}

/// Checks an event-type filter: known types, or `*`.
pub fn check_event_types(types: &[String]) -> Result<(), String> {
    for t in types {
        if t != "*" && !EVENT_TYPES.contains(&t.as_str()) {
            return Err(format!(
                "unknown event type {t:?}; known: {}",
                EVENT_TYPES.join(", ")
            ));
        }
    }
    Ok(())
}
