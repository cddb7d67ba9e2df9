//! Metering (docs/metering.md): usage events from the merchant's application are ingested
//! ([`ingest`]), aggregated into per-instance windows (hourly, or daily per product), sealed once
//! the window and a grace period have passed, and pushed to KooGallery's usage API
//! ([`push`], openapi.md §3).
//!
//! Quantities are exact: decimal text parsed with `rust_decimal`, stored as integers of 1e-4
//! units ([`SCALE`]), so every sum is exact in SQL and in memory. Every time is UTC epoch ms.

pub mod ingest;
pub mod push;

pub use crate::config::MeteringSettings as Settings;
use std::str::FromStr;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// One unit of usage in stored integers: 4 decimals, as KooGallery requires.
pub const SCALE: i64 = 10_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// KooGallery refuses a record whose `begin_time` is older than this (`MKT.9004`).
pub const MAX_AGE_MS: i64 = 21 * DAY_MS;
/// The largest quantity of one event: Double(12,4) (saas.md §5.2, openapi.md §3.2).
pub const MAX_EVENT_QUANTITY: i64 = 999_999_999_999;
/// How far in the future an event's `occurred_at` may lie (clock skew of the application).
pub const FUTURE_TOLERANCE_MS: i64 = 60_000;

impl Settings {
    /// The window length of a product: a day when it is billed daily, else an hour.
    pub fn window_ms(&self, product_id: Option<&str>) -> i64 {
        match product_id {
            Some(p) if self.daily_products.iter().any(|d| d == p) => DAY_MS,
            _ => HOUR_MS,
        }
    }

    /// The delay before the next push attempt after `attempts` failed ones.
    pub fn backoff_ms(&self, attempts: i64) -> i64 {
        crate::backoff::Backoff {
            first_ms: self.retry_first_ms,
            max_ms: self.retry_max_ms,
        }
        .delay_ms(attempts)
    }
}

/// Parses a quantity: decimal text, > 0, at most 4 decimals, at most [`MAX_EVENT_QUANTITY`];
/// returns it in 1e-4 units.
pub fn parse_quantity(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let d = Decimal::from_str_exact(text)
        .or_else(|_| Decimal::from_str(text))
        .map_err(|_| format!("quantity {text:?} is not a decimal number"))?;
    if d <= Decimal::ZERO {
        return Err(format!("quantity {text} must be greater than 0"));
    }
    if d.normalize().scale() > 4 {
        return Err(format!("quantity {text} has more than 4 decimals"));
    }
    let scaled = d
        .checked_mul(Decimal::from(SCALE))
        .and_then(|s| s.to_i64())
        .filter(|s| *s <= MAX_EVENT_QUANTITY)
        .ok_or_else(|| format!("quantity {text} is larger than 99999999.9999"))?;
    Ok(scaled)
}

/// A quantity in 1e-4 units as decimal text without trailing zeros (`"1.5"`, `"99"`).
pub fn format_quantity(scaled: i64) -> String {
    Decimal::new(scaled, 4).normalize().to_string()
}

/// The start of the window of length `window_ms` holding `t` (UTC).
pub fn window_start(t: i64, window_ms: i64) -> i64 {
    t.div_euclid(window_ms) * window_ms
}

/// The `metering_sn` of a window: deterministic, so a retry of the same record carries the
/// same serial and KooGallery recognises it (openapi.md §3.4 #7). UUID-shaped, from SHA-256.
pub fn metering_sn(instance_id: &str, pkg_instance: &str, start: i64, end: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!(
        "koogate-usage|{instance_id}|{pkg_instance}|{start}|{end}"
    ));
    let h = hex::encode(&digest[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// UTC `yyyyMMdd'T'HHmmss'Z'` (record, begin and end times of a usage record).
pub fn sdk_time(ms: i64) -> String {
    koogallery::time::from_epoch_millis(ms)
        .map(koogallery::time::format_sdk_date)
        .unwrap_or_default()
}

/// RFC 3339, for views.
pub fn rfc3339(ms: i64) -> String {
    koogallery::time::from_epoch_millis(ms)
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Parses an RFC 3339 time or Unix epoch milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .map_err(|_| format!("time {text:?} is out of range"));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(koogallery::time::epoch_millis)
        .map_err(|_| format!("time {text:?} is neither RFC 3339 nor epoch milliseconds"))
}

/// The `usageInfo` of `queryInstance` (saas.md §5.2): for an on-demand instance its cumulative
/// usage; for a package instance the amount used, per on-demand instance (`relatedInstanceId`).
/// Refused windows are not counted. `None` for instances that neither are on demand nor have
/// usage.
pub async fn usage_info(
    gateway: &crate::app::Gateway,
    conn: &mut sqlx::AnyConnection,
    inst: &crate::store::instances::Instance,
) -> Result<Option<Vec<koogallery::model::saas_v2::UsageInfo>>, crate::store::StoreError> {
    use koogallery::model::saas_v2::UsageInfo;
    let (own, packages) = crate::store::usage::totals(conn, &inst.instance_id).await?;
    let statistical_time = koogallery::time::from_epoch_millis(gateway.clock.now_ms())
        .map(koogallery::time::format_millis17)
        .unwrap_or_default();
    let dashboard_url = gateway
        .metering
        .dashboard_url
        .as_ref()
        .map(|u| u.replace("{instance_id}", &inst.instance_id))
        .filter(|u| u.chars().count() <= 512);
    let entry = |related: Option<String>, used: i64| UsageInfo {
        related_instance_id: related,
        usage_value: format_quantity(used),
        statistical_time: statistical_time.clone(),
        dashboard_url: dashboard_url.clone(),
    };
    let mode = inst.charging_mode.as_deref();
    let mut out = Vec::new();
    if own.is_some() || mode == Some("ON_DEMAND") {
        out.push(entry(None, own.unwrap_or(0)));
    }
    for (related, used) in packages {
        out.push(entry(Some(related), used));
    }
    if out.is_empty() && mode == Some("ON_DEMAND_PKG") {
        out.push(entry(None, 0));
    }
    Ok((!out.is_empty()).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1"), Ok(10_000));
        assert_eq!(parse_quantity("0.0001"), Ok(1));
        assert_eq!(parse_quantity("1.50000"), Ok(15_000));
        assert_eq!(parse_quantity(" 99999999.9999 "), Ok(MAX_EVENT_QUANTITY));
        for bad in [
            "0",
            "-1",
            "0.00001",
            "NaN",
            "inf",
            "",
            "1e-5",
            "abc",
            "100000000",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
        // Scientific notation is exact too (a JSON number's text may use it).
        assert_eq!(parse_quantity("1e3"), Ok(10_000_000));
        assert_eq!(format_quantity(15_000), "1.5");
        assert_eq!(format_quantity(990_000), "99");
        assert_eq!(format_quantity(1), "0.0001");
    }

    #[test]
    fn windows_and_serials() {
        assert_eq!(window_start(HOUR_MS + 5, HOUR_MS), HOUR_MS);
        assert_eq!(window_start(-1, HOUR_MS), -HOUR_MS);
        let a = metering_sn("i", "", 0, HOUR_MS);
        assert_eq!(a, metering_sn("i", "", 0, HOUR_MS));
        assert_ne!(a, metering_sn("i", "p", 0, HOUR_MS));
        assert_eq!(a.len(), 36);
        assert_eq!(sdk_time(0), "19700101T000000Z");
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time("1500"), Ok(1500));
        assert!(parse_time("yesterday").is_err());
    }
}
