//! Every timestamp format KooGallery uses (security.md §3.1), parsed strictly and formatted
//! exactly, and the freshness window (§3.2) as a pure function of an injected "now".
//!
//! | format | where | functions |
//! |---|---|---|
//! | `yyyyMMddHHmmssSSS`, UTC | V1 `timeStamp`, `statisticalTime` | [`parse_millis17`], [`format_millis17`] |
//! | `yyyyMMddHHmmssSSS`, UTC+8 | kit body `timeStamp`, `currentSyncTime` | [`parse_kit_timestamp`], [`format_kit_timestamp`] |
//! | `yyyyMMddHHmmss` (or 17 digits), UTC | `expireTime`, `createTime`, license-code times | [`parse_expire_time`], [`format_expire_time`] |
//! | Unix epoch ms (≤ 10 digits read as s) | V2 `timestamp`, kit `x-timestamp`, usage `ts` | [`parse_epoch_millis`], [`check_window`] |
//! | `yyyyMMdd'T'HHmmss'Z'`, UTC | APIG `X-Sdk-Date`, usage record times | [`parse_sdk_date`], [`format_sdk_date`] |
//! | `yyyy-MM-dd HH:mm:ss z`, UTC | online-License `effectiveTime`/`expireTime` | [`parse_license_datetime`], [`format_license_datetime`] |

use ::time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::{AuthError, TimeError};

/// The default V2/kit freshness window: 60 s (security.md §3.2).
pub const DEFAULT_WINDOW_MS: u64 = 60_000;
/// The recommended V1 window: 300 s, since V1 documents none (security.md §3.3).
pub const DEFAULT_V1_WINDOW_MS: u64 = 300_000;

const UTC8: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Parses a Unix-epoch timestamp in milliseconds. Decimal ASCII digits only, in the one form
/// `Long.toString` writes (no sign, point, whitespace or leading zero); a value of 10 digits or
/// fewer is read as seconds (security.md §3.2).
///
/// The form is strict because the signature covers `nonce + timestamp` concatenated: were
/// `01680508066618` accepted, a captured request's nonce ending in `0` could be moved into the
/// timestamp, giving the same signature with a "new" nonce — a replay.
pub fn parse_epoch_millis(s: &str) -> Result<i64, TimeError> {
    if s.is_empty() {
        return Err(TimeError::Empty);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimeError::NotDigits);
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(TimeError::LeadingZero);
    }
    // 16 digits reach the year 318857; anything longer is not a timestamp.
    if s.len() > 16 {
        return Err(TimeError::OutOfRange);
    }
    let n: i64 = s.parse().map_err(|_| TimeError::OutOfRange)?;
    Ok(if s.len() <= 10 { n * 1000 } else { n })
}

/// Checks `|now − ts| ≤ window`, in both directions (security.md §3.2: the official sample
/// accepts any future timestamp; we do not).
pub fn check_window(ts_ms: i64, now_ms: i64, window_ms: u64) -> Result<(), AuthError> {
    let skew_ms = ts_ms.saturating_sub(now_ms);
    if skew_ms.unsigned_abs() > window_ms {
        return Err(AuthError::StaleTimestamp { skew_ms, window_ms });
    }
    Ok(())
}

/// Parses a request timestamp named `field` and checks it against the window.
pub fn check_fresh(
    field: &'static str,
    value: Option<&str>,
    now_ms: i64,
    window_ms: u64,
) -> Result<i64, AuthError> {
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::MissingTimestamp(field))?;
    let ts = parse_epoch_millis(value).map_err(|_| AuthError::MalformedTimestamp(field))?;
    check_window(ts, now_ms, window_ms)?;
    Ok(ts)
}

/// Milliseconds since the Unix epoch of a date-time.
pub fn epoch_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The date-time of a Unix-epoch millisecond value; `None` outside the representable range.
pub fn from_epoch_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Reads `yyyyMMddHHmmss` plus optional `SSS` from fixed-width digits.
fn parse_digits(
    s: &str,
    offset: UtcOffset,
    allow14: bool,
    allow17: bool,
) -> Result<OffsetDateTime, TimeError> {
    let expected = match (allow14, allow17) {
        (true, true) => "14 or 17",
        (true, false) => "14",
        _ => "17",
    };
    if s.is_empty() {
        return Err(TimeError::Empty);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimeError::NotDigits);
    }
    let ok_len = (allow14 && s.len() == 14) || (allow17 && s.len() == 17);
    if !ok_len {
        return Err(TimeError::BadLength {
            got: s.len(),
            expected,
        });
    }
    let n = |from: usize, to: usize| -> u32 {
        s.as_bytes()[from..to]
            .iter()
            .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'))
    };
    let millis = if s.len() == 17 { n(14, 17) } else { 0 };
    build(
        n(0, 4),
        n(4, 6),
        n(6, 8),
        n(8, 10),
        n(10, 12),
        n(12, 14),
        millis,
        offset,
    )
}

#[allow(clippy::too_many_arguments)]
fn build(
    year: u32,
    month: u32,
    day: u32,
    h: u32,
    m: u32,
    s: u32,
    ms: u32,
    offset: UtcOffset,
) -> Result<OffsetDateTime, TimeError> {
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or(TimeError::OutOfRange)?;
    let year = i32::try_from(year).map_err(|_| TimeError::OutOfRange)?;
    let small = |v: u32| u8::try_from(v).map_err(|_| TimeError::OutOfRange);
    let date =
        Date::from_calendar_date(year, month, small(day)?).map_err(|_| TimeError::OutOfRange)?;
    let ms = u16::try_from(ms).map_err(|_| TimeError::OutOfRange)?;
    let time = Time::from_hms_milli(small(h)?, small(m)?, small(s)?, ms)
        .map_err(|_| TimeError::OutOfRange)?;
    Ok(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

fn format_digits(t: OffsetDateTime, offset: UtcOffset, millis: bool) -> String {
    let t = t.to_offset(offset);
    let mut s = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if millis {
        s.push_str(&format!("{:03}", t.millisecond()));
    }
    s
}

/// `yyyyMMddHHmmssSSS` in UTC: V1 `timeStamp`, `statisticalTime`.
pub fn parse_millis17(s: &str) -> Result<OffsetDateTime, TimeError> {
    parse_digits(s, UtcOffset::UTC, false, true)
}

/// Formats as `yyyyMMddHHmmssSSS` in UTC.
pub fn format_millis17(t: OffsetDateTime) -> String {
    format_digits(t, UtcOffset::UTC, true)
}

/// Kit body `timeStamp`: `yyyyMMddHHmmssSSS` in UTC+8 (jointop.md, security.md §3.1).
pub fn parse_kit_timestamp(s: &str) -> Result<OffsetDateTime, TimeError> {
    parse_digits(s, UTC8, false, true)
}

/// Formats as the kit's `yyyyMMddHHmmssSSS` in UTC+8.
pub fn format_kit_timestamp(t: OffsetDateTime) -> String {
    format_digits(t, UTC8, true)
}

/// `expireTime` and other `yyyyMMddHHmmss` times, UTC; 17 digits (with milliseconds) are
/// accepted too, as one published V2 example carries them.
pub fn parse_expire_time(s: &str) -> Result<OffsetDateTime, TimeError> {
    parse_digits(s, UtcOffset::UTC, true, true)
}

/// Formats as `yyyyMMddHHmmss` in UTC (milliseconds dropped).
pub fn format_expire_time(t: OffsetDateTime) -> String {
    format_digits(t, UtcOffset::UTC, false)
}

/// APIG `X-Sdk-Date` and usage-record times: `yyyyMMdd'T'HHmmss'Z'`, UTC.
pub fn parse_sdk_date(s: &str) -> Result<OffsetDateTime, TimeError> {
    let b = s.as_bytes();
    if s.is_empty() {
        return Err(TimeError::Empty);
    }
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(TimeError::BadLength {
            got: s.len(),
            expected: "16 (yyyyMMddTHHmmssZ)",
        });
    }
    let digits = format!("{}{}", &s[..8], &s[9..15]);
    parse_digits(&digits, UtcOffset::UTC, true, false)
}

/// Formats as `yyyyMMdd'T'HHmmss'Z'` in UTC.
pub fn format_sdk_date(t: OffsetDateTime) -> String {
    let d = format_digits(t, UtcOffset::UTC, false);
    format!("{}T{}Z", &d[..8], &d[8..])
}

/// Online-License `effectiveTime`/`expireTime`, e.g. `2023-10-27 10:30:15 z` (license.md §2.3):
/// `yyyy-MM-dd HH:mm:ss`, then optionally whitespace and a `z`/`Z`/`UTC` marker; always UTC.
pub fn parse_license_datetime(s: &str) -> Result<OffsetDateTime, TimeError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(TimeError::Empty);
    }
    if s.len() < 19 || !s.is_char_boundary(19) {
        return Err(TimeError::BadLength {
            got: s.len(),
            expected: "19 or more (yyyy-MM-dd HH:mm:ss)",
        });
    }
    let (main, zone) = s.split_at(19);
    let zone = zone.trim();
    if !(zone.is_empty() || zone.eq_ignore_ascii_case("z") || zone.eq_ignore_ascii_case("utc")) {
        return Err(TimeError::OutOfRange);
    }
    let b = main.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b[i] != c) {
        return Err(TimeError::NotDigits);
    }
    let digits: String = main.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 14 {
        return Err(TimeError::NotDigits);
    }
    parse_digits(&digits, UtcOffset::UTC, true, false)
}

/// Formats as `yyyy-MM-dd HH:mm:ss z`, the documented example form.
pub fn format_license_datetime(t: OffsetDateTime) -> String {
    let d = format_digits(t, UtcOffset::UTC, false);
    format!(
        "{}-{}-{} {}:{}:{} z",
        &d[..4],
        &d[4..6],
        &d[6..8],
        &d[8..10],
        &d[10..12],
        &d[12..14]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_millis_rules() {
        assert_eq!(parse_epoch_millis("1680508066618"), Ok(1_680_508_066_618));
        assert_eq!(parse_epoch_millis("1680508060"), Ok(1_680_508_060_000));
        assert_eq!(parse_epoch_millis(""), Err(TimeError::Empty));
        assert_eq!(
            parse_epoch_millis("01680508066618"),
            Err(TimeError::LeadingZero)
        );
        assert_eq!(parse_epoch_millis("0"), Ok(0));
        assert_eq!(
            parse_epoch_millis("1680508066618.0"),
            Err(TimeError::NotDigits)
        );
        assert_eq!(
            parse_epoch_millis("-1680508066618"),
            Err(TimeError::NotDigits)
        );
        assert_eq!(
            parse_epoch_millis(" 1680508066618"),
            Err(TimeError::NotDigits)
        );
        assert_eq!(
            parse_epoch_millis("99999999999999999999"),
            Err(TimeError::OutOfRange)
        );
    }

    #[test]
    fn window_is_symmetric() {
        let now = 1_680_508_066_618;
        assert!(check_window(now - 60_000, now, 60_000).is_ok());
        assert!(check_window(now + 60_000, now, 60_000).is_ok());
        assert_eq!(
            check_window(now - 60_001, now, 60_000),
            Err(AuthError::StaleTimestamp {
                skew_ms: -60_001,
                window_ms: 60_000
            })
        );
        assert!(check_window(now + 61_000, now, 60_000).is_err());
        assert!(check_window(i64::MIN, i64::MAX, 60_000).is_err());
        assert_eq!(
            check_fresh("timestamp", None, now, 1),
            Err(AuthError::MissingTimestamp("timestamp"))
        );
        assert_eq!(
            check_fresh("timestamp", Some("x"), now, 1),
            Err(AuthError::MalformedTimestamp("timestamp"))
        );
    }

    #[test]
    fn v1_and_kit_timestamps() {
        let t = parse_millis17("20170725025113409").unwrap();
        assert_eq!(epoch_millis(t), 1_500_951_073_409);
        assert_eq!(format_millis17(t), "20170725025113409");
        // The kit's UTC+8 clock reads eight hours ahead of UTC for the same instant.
        let k = parse_kit_timestamp("20220413093539534").unwrap();
        assert_eq!(format_millis17(k), "20220413013539534");
        assert_eq!(format_kit_timestamp(k), "20220413093539534");
        assert!(matches!(
            parse_millis17("2017072502511340"),
            Err(TimeError::BadLength { .. })
        ));
        assert_eq!(
            parse_millis17("20171325025113409"),
            Err(TimeError::OutOfRange)
        );
        assert_eq!(
            parse_millis17("20170230025113409"),
            Err(TimeError::OutOfRange)
        );
    }

    #[test]
    fn expire_time_14_or_17_digits() {
        let a = parse_expire_time("20221124023618").unwrap();
        let b = parse_expire_time("20221124023618256").unwrap();
        assert_eq!(epoch_millis(b) - epoch_millis(a), 256);
        assert_eq!(format_expire_time(b), "20221124023618");
        assert!(parse_expire_time("2022112402361").is_err());
        assert_eq!(
            parse_expire_time("20221124246000"),
            Err(TimeError::OutOfRange)
        );
    }

    #[test]
    fn sdk_date_and_license_datetime() {
        let t = parse_sdk_date("20191115T033655Z").unwrap();
        assert_eq!(format_sdk_date(t), "20191115T033655Z");
        assert_eq!(format_expire_time(t), "20191115033655");
        assert!(parse_sdk_date("20191115033655Z").is_err());
        assert!(parse_sdk_date("20191115T033655").is_err());
        let l = parse_license_datetime("2023-10-27 10:30:15 z").unwrap();
        assert_eq!(format_expire_time(l), "20231027103015");
        assert_eq!(format_license_datetime(l), "2023-10-27 10:30:15 z");
        assert_eq!(parse_license_datetime("2023-10-27 10:30:15Z"), Ok(l));
        assert_eq!(parse_license_datetime("2023-10-27 10:30:15"), Ok(l));
        assert!(parse_license_datetime("2023-10-27T10:30:15 z").is_err());
        assert!(parse_license_datetime("2023-10-27 10:30:15 +08").is_err());
        assert!(parse_license_datetime("2023-10-27 10:30:1中").is_err());
    }
}
