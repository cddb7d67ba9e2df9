//! Usage ingestion: a batch of events is validated, de-duplicated by idempotency key and stored
//! with its window aggregates in one transaction, before the call answers.
//!
//! Late events: an event whose own window is already sealed (its end plus the grace period has
//! passed) is attributed to the window open at ingestion (the window holding "now") of the same
//! instance and package. It is therefore billed exactly once, one window late, never lost and
//! never added to a window that may already have been pushed. The event keeps its `occurred_at`
//! and is flagged `late`.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FUTURE_TOLERANCE_MS, MAX_AGE_MS, Settings, metering_sn, parse_quantity, window_start};
use crate::store::usage::{self, BucketDelta, EventRow};
use crate::store::{Db, StoreError};

/// Longest idempotency key.
pub const MAX_KEY_CHARS: usize = 128;
/// Most events in one ingestion call.
pub const MAX_BATCH: usize = 10_000;

/// One event as received: every field optional, so a bad event is refused alone, with a reason.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawEvent {
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Decimal text (recommended) or a JSON number, read from its text (never as a float).
    #[serde(default)]
    pub quantity: Option<TextOrNumber>,
    /// RFC 3339 or Unix epoch milliseconds.
    #[serde(default)]
    pub occurred_at: Option<TextOrNumber>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The use-until-exhausted package instance this usage is deducted from.
    #[serde(default)]
    pub relate_pkg_instance: Option<String>,
}

/// A JSON string or number, kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextOrNumber {
    Text(String),
    Number(serde_json::Number),
}

impl<'de> Deserialize<'de> for TextOrNumber {
    /// By hand rather than `#[serde(untagged)]`, which buffers every value and builds an error
    /// for each variant that does not fit: a third of the parsing time of a batch.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TextOrNumber;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TextOrNumber, E> {
                Ok(TextOrNumber::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<TextOrNumber, E> {
                Ok(TextOrNumber::Text(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TextOrNumber, E> {
                Ok(TextOrNumber::Number(v.into()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TextOrNumber, E> {
                Ok(TextOrNumber::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<TextOrNumber, E> {
                serde_json::Number::from_f64(v)
                    .map(TextOrNumber::Number)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
        }
        d.deserialize_any(V)
    }
}

impl TextOrNumber {
    fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Number(n) => n.to_string(),
        }
    }
}

/// An event refused, with its position in the batch (0-based) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    pub index: usize,
    pub idempotency_key: Option<String>,
    pub reason: String,
}

/// What an ingestion call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Events in the batch.
    pub received: usize,
    /// Events stored by this call.
    pub accepted: usize,
    /// Events whose idempotency key was already stored (or repeated in the batch): counted once.
    pub duplicates: usize,
    /// Accepted events attributed to a later window because their own was sealed.
    pub late: usize,
    /// Refused events.
    pub rejected: Vec<Rejection>,
}

/// Parses a batch: a JSON array of events, or NDJSON (one event per line). An element that is
/// not an event object is refused alone; a body that is neither form is an error.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Result<RawEvent, String>>, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let events: Vec<Result<RawEvent, String>> = match first {
        None => return Err("the body holds no event".to_owned()),
        Some(b'[') => match serde_json::from_slice::<Vec<RawEvent>>(body) {
            Ok(events) => events.into_iter().map(Ok).collect(),
            Err(_) => serde_json::from_slice::<Vec<Value>>(body)
                .map_err(|e| format!("the body is not a JSON array of events: {e}"))?
                .into_iter()
                .map(|v| {
                    serde_json::from_value::<RawEvent>(v).map_err(|e| format!("not an event: {e}"))
                })
                .collect(),
        },
        Some(_) => body
            .split(|b| *b == b'\n')
            .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
            .map(|line| {
                serde_json::from_slice::<RawEvent>(line).map_err(|e| format!("not an event: {e}"))
            })
            .collect(),
    };
    if events.len() > MAX_BATCH {
        return Err(format!(
            "a batch holds at most {MAX_BATCH} events, got {}",
            events.len()
        ));
    }
    Ok(events)
}

/// An event that passed the checks that need no database.
#[derive(Debug, Clone)]
struct Checked {
    index: usize,
    key: String,
    instance_id: String,
    pkg_instance: String,
    quantity: i64,
    occurred_at: i64,
}

fn check(index: usize, e: RawEvent, now_ms: i64) -> Result<Checked, String> {
    let key = e
        .idempotency_key
        .filter(|k| !k.trim().is_empty())
        .ok_or("idempotency_key is required")?;
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(format!(
            "idempotency_key is longer than {MAX_KEY_CHARS} characters"
        ));
    }
    let instance_id = e
        .instance_id
        .filter(|i| !i.is_empty())
        .ok_or("instance_id is required")?;
    if instance_id.chars().count() > 64 {
        return Err("instance_id is longer than 64 characters".to_owned());
    }
    let pkg_instance = e.relate_pkg_instance.unwrap_or_default();
    if pkg_instance.chars().count() > 64 {
        return Err("relate_pkg_instance is longer than 64 characters".to_owned());
    }
    let quantity = parse_quantity(&e.quantity.ok_or("quantity is required")?.text())?;
    let occurred_at = super::parse_time(&e.occurred_at.ok_or("occurred_at is required")?.text())?;
    if occurred_at > now_ms.saturating_add(FUTURE_TOLERANCE_MS) {
        return Err("occurred_at is in the future".to_owned());
    }
    if occurred_at < now_ms.saturating_sub(MAX_AGE_MS) {
        return Err(
            "occurred_at is older than 21 days: KooGallery no longer accepts it (MKT.9004)"
                .to_owned(),
        );
    }
    Ok(Checked {
        index,
        key,
        instance_id,
        pkg_instance,
        quantity,
        occurred_at,
    })
}

/// Validates and stores a batch in one transaction; answers only once it is durable.
pub async fn ingest(
    db: &Db,
    settings: &Settings,
    events: Vec<Result<RawEvent, String>>,
    now_ms: i64,
) -> Result<IngestReport, StoreError> {
    let mut report = IngestReport {
        received: events.len(),
        ..IngestReport::default()
    };
    let mut checked = Vec::with_capacity(events.len());
    let mut seen = HashSet::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        let key = event.as_ref().ok().and_then(|e| e.idempotency_key.clone());
        match event.and_then(|e| check(index, e, now_ms)) {
            Ok(c) => {
                if seen.insert(c.key.clone()) {
                    checked.push(c);
                } else {
                    report.duplicates += 1;
                }
            }
            Err(reason) => report.rejected.push(Rejection {
                index,
                idempotency_key: key,
                reason,
            }),
        }
    }
    if !checked.is_empty() {
        // A concurrent call that stored one of these keys first (PostgreSQL, several callers):
        // the transaction is rolled back and the batch judged again, which then sees the key.
        let mut stored = None;
        for _ in 0..3 {
            stored = store_batch(db, settings, &checked, now_ms).await?;
            if stored.is_some() {
                break;
            }
        }
        let stored = stored.ok_or_else(|| {
            StoreError::Corrupt(
                "usage events kept colliding with concurrent calls; try again".to_owned(),
            )
        })?;
        report.accepted = stored.accepted;
        report.duplicates += stored.duplicates;
        report.late = stored.late;
        report.rejected.extend(stored.rejected);
    }
    report.rejected.sort_by_key(|r| r.index);
    Ok(report)
}

/// What one transaction stored.
struct Stored {
    accepted: usize,
    duplicates: usize,
    late: usize,
    rejected: Vec<Rejection>,
}

/// Checks the events against the instances and stores them with their window totals, in one
/// transaction. `None` (rolled back) when a concurrent call stored one of the keys meanwhile.
async fn store_batch(
    db: &Db,
    settings: &Settings,
    checked: &[Checked],
    now_ms: i64,
) -> Result<Option<Stored>, StoreError> {
    let mut out = Stored {
        accepted: 0,
        duplicates: 0,
        late: 0,
        rejected: Vec::new(),
    };
    let mut tx = db.begin().await?;
    let mut ids: Vec<&str> = checked
        .iter()
        .flat_map(|c| [c.instance_id.as_str(), c.pkg_instance.as_str()])
        .filter(|id| !id.is_empty())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let facts = usage::instance_facts(&mut tx, &ids).await?;
    let mut rows = Vec::with_capacity(checked.len());
    for c in checked {
        let reason = match facts.get(&c.instance_id) {
            None => Some(format!("unknown instance {}", c.instance_id)),
            Some(f) if f.state == "released" => Some(format!(
                "instance {} is released: usage can no longer be billed",
                c.instance_id
            )),
            Some(f) if f.state == "failed" => {
                Some(format!("instance {} failed provisioning", c.instance_id))
            }
            Some(f) if matches!(f.charging_mode.as_deref(), Some("PERIOD" | "ONE_TIME")) => {
                Some(format!(
                    "instance {} is not billed on demand ({})",
                    c.instance_id,
                    f.charging_mode.as_deref().unwrap_or_default()
                ))
            }
            Some(f) if c.occurred_at < f.created_at => Some(format!(
                "occurred_at is before instance {} was created",
                c.instance_id
            )),
            Some(_) if !c.pkg_instance.is_empty() && !facts.contains_key(&c.pkg_instance) => {
                Some(format!("unknown package instance {}", c.pkg_instance))
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            out.rejected.push(Rejection {
                index: c.index,
                idempotency_key: Some(c.key.clone()),
                reason,
            });
            continue;
        }
        let product = facts
            .get(&c.instance_id)
            .and_then(|f| f.product_id.as_deref());
        let length = settings.window_ms(product);
        let own = window_start(c.occurred_at, length);
        let late = own + length + settings.grace_ms <= now_ms;
        rows.push((
            EventRow {
                idempotency_key: c.key.clone(),
                instance_id: c.instance_id.clone(),
                pkg_instance: c.pkg_instance.clone(),
                quantity: c.quantity,
                occurred_at: c.occurred_at,
                window_start: if late {
                    window_start(now_ms, length)
                } else {
                    own
                },
                late,
            },
            length,
        ));
    }
    let keys: Vec<&str> = rows
        .iter()
        .map(|(r, _)| r.idempotency_key.as_str())
        .collect();
    let existing = usage::existing_keys(&mut tx, &keys).await?;
    let (fresh, repeated): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|(r, _)| !existing.contains(&r.idempotency_key));
    out.duplicates = repeated.len();
    let (events, lengths): (Vec<EventRow>, Vec<i64>) = fresh.into_iter().unzip();
    let inserted = usage::insert_events(&mut tx, &events, now_ms).await?;
    if usize::try_from(inserted).ok() != Some(events.len()) {
        return Ok(None);
    }
    out.accepted = events.len();
    out.late = events.iter().filter(|e| e.late).count();
    let fresh: Vec<(&EventRow, i64)> = events.iter().zip(lengths).collect();
    let deltas = aggregate(fresh.iter().map(|(r, len)| (*r, r.window_start, *len)));
    let applied = usage::add_to_buckets(&mut tx, &deltas, now_ms).await?;
    if usize::try_from(applied).ok() != Some(deltas.len()) {
        // A window sealed between the time rule and this transaction (another node's clock,
        // or a concurrent seal): its events go to the window open now, like any late event.
        let sns: Vec<&str> = deltas.iter().map(|d| d.metering_sn.as_str()).collect();
        let closed = usage::closed_buckets(&mut tx, &sns).await?;
        let mut moved = Vec::new();
        for (r, length) in &fresh {
            let sn = metering_sn(
                &r.instance_id,
                &r.pkg_instance,
                r.window_start,
                r.window_start + length,
            );
            if !closed.contains(&sn) {
                continue;
            }
            let open = window_start(now_ms, *length).max(r.window_start + length);
            usage::reattribute_event(&mut tx, &r.idempotency_key, open).await?;
            if !r.late {
                out.late += 1;
            }
            moved.push((*r, open, *length));
        }
        let moved = aggregate(moved.into_iter());
        let applied = usage::add_to_buckets(&mut tx, &moved, now_ms).await?;
        if usize::try_from(applied).ok() != Some(moved.len()) {
            return Err(StoreError::Corrupt(
                "the usage window open now is already sealed (clock moved backwards?)".to_owned(),
            ));
        }
    }
    tx.commit().await?;
    Ok(Some(out))
}

/// Sums events per window: (event, window start, window length) → one delta per window.
fn aggregate<'a>(events: impl Iterator<Item = (&'a EventRow, i64, i64)>) -> Vec<BucketDelta> {
    let mut sums: BTreeMap<(&str, &str, i64, i64), (i64, i64)> = BTreeMap::new();
    for (r, start, length) in events {
        let sum = sums
            .entry((&r.instance_id, &r.pkg_instance, start, start + length))
            .or_insert((0, 0));
        sum.0 = sum.0.saturating_add(r.quantity);
        sum.1 += 1;
    }
    sums.into_iter()
        .map(
            |((instance, pkg, start, end), (quantity, events))| BucketDelta {
                metering_sn: metering_sn(instance, pkg, start, end),
                instance_id: instance.to_owned(),
                pkg_instance: pkg.to_owned(),
                window_start: start,
                window_end: end,
                quantity,
                events,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arrays_and_ndjson() {
        let a = parse_batch(
            br#"[{"instance_id":"i","quantity":"1.5","occurred_at":1,"idempotency_key":"k"}, 3]"#,
        )
        .unwrap();
        assert_eq!(a.len(), 2);
        assert!(a[0].is_ok() && a[1].is_err());
        let n = parse_batch(
            b"{\"instance_id\":\"i\",\"quantity\":2}\n\n  \n{\"quantity\":\"x\"}\nnope\n",
        )
        .unwrap();
        assert_eq!(n.len(), 3);
        assert!(n[0].is_ok() && n[1].is_ok() && n[2].is_err());
        assert!(parse_batch(b"  ").is_err());
        assert!(parse_batch(b"[1,").is_err());
    }

    #[test]
    fn checks_need_no_database() {
        let now = 100 * super::super::DAY_MS;
        let ev = |q: &str, at: i64| RawEvent {
            instance_id: Some("i".into()),
            quantity: Some(TextOrNumber::Text(q.into())),
            occurred_at: Some(TextOrNumber::Number(at.into())),
            idempotency_key: Some("k".into()),
            relate_pkg_instance: None,
        };
        assert!(check(0, ev("1", now), now).is_ok());
        assert!(check(0, ev("0", now), now).is_err());
        assert!(check(0, ev("NaN", now), now).is_err());
        assert!(check(0, ev("1", now + FUTURE_TOLERANCE_MS + 1), now).is_err());
        assert!(check(0, ev("1", now - MAX_AGE_MS), now).is_ok());
        assert!(check(0, ev("1", now - MAX_AGE_MS - 1), now).is_err());
        let mut no_key = ev("1", now);
        no_key.idempotency_key = None;
        assert!(check(0, no_key, now).is_err());
    }
}
