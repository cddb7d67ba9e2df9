//! The emulated clock: KooGallery's business time (order times, expiries, retry schedules),
//! which runs `scale` emulated seconds per real second and can be advanced by hand.
//!
//! Signatures are *not* stamped with this clock: a merchant checks V2 `timestamp` and V1
//! `timeStamp` against its own wall clock (security.md §3), so the dispatcher signs with the
//! real time (see [`wall_clock_ms`]) however far the emulated clock has been advanced.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Milliseconds in a second, minute, hour and day.
pub const SECOND_MS: i64 = 1_000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The machine's time, Unix epoch milliseconds.
pub fn wall_clock_ms() -> i64 {
    koogallery::time::epoch_millis(time::OffsetDateTime::now_utc())
}

#[derive(Debug)]
struct State {
    /// Emulated time at `base_real`.
    base_ms: i64,
    base_real: Instant,
    /// Emulated milliseconds per real millisecond; 0 = the clock moves only when advanced.
    scale: f64,
}

/// KooGallery's emulated time, Unix epoch milliseconds.
#[derive(Debug)]
pub struct EmuClock {
    state: Mutex<State>,
}

impl EmuClock {
    /// A clock standing at `start_ms` that moves only when [`advance`](Self::advance)d (tests).
    pub fn manual(start_ms: i64) -> Self {
        Self::scaled(start_ms, 0.0)
    }

    /// A clock starting at `start_ms` and running `scale` emulated seconds per real second.
    /// A negative or non-finite scale is taken as 0.
    pub fn scaled(start_ms: i64, scale: f64) -> Self {
        Self {
            state: Mutex::new(State {
                base_ms: start_ms,
                base_real: Instant::now(),
                scale: sanitize(scale),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The emulated time now.
    pub fn now_ms(&self) -> i64 {
        now_of(&self.lock())
    }

    /// Moves the emulated time forward by `ms` (a negative amount is ignored: time never runs
    /// backwards). Returns the new time.
    pub fn advance(&self, ms: i64) -> i64 {
        let mut s = self.lock();
        let now = now_of(&s);
        s.base_ms = now.saturating_add(ms.max(0));
        s.base_real = Instant::now();
        s.base_ms
    }

    /// The time scale (emulated seconds per real second).
    pub fn scale(&self) -> f64 {
        self.lock().scale
    }

    /// Changes the time scale from now on.
    pub fn set_scale(&self, scale: f64) {
        let mut s = self.lock();
        let now = now_of(&s);
        s.base_ms = now;
        s.base_real = Instant::now();
        s.scale = sanitize(scale);
    }

    /// Real time until the emulated clock reaches `at_ms`, or `None` if it never will on its own
    /// (scale 0). Zero when `at_ms` has passed.
    pub fn real_until(&self, at_ms: i64) -> Option<std::time::Duration> {
        let s = self.lock();
        let now = now_of(&s);
        if at_ms <= now {
            return Some(std::time::Duration::ZERO);
        }
        if s.scale <= 0.0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let real_ms = (at_ms - now) as f64 / s.scale;
        Some(std::time::Duration::from_secs_f64(
            (real_ms / 1000.0).min(86_400.0),
        ))
    }
}

fn sanitize(scale: f64) -> f64 {
    if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        0.0
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
fn now_of(s: &State) -> i64 {
    if s.scale <= 0.0 {
        return s.base_ms;
    }
    let real_ms = s.base_real.elapsed().as_secs_f64() * 1000.0;
    s.base_ms.saturating_add((real_ms * s.scale) as i64)
}

/// Parses a duration such as `90`, `90s`, `15m`, `3h`, `16d`, `1d12h` or `500ms` into
/// milliseconds (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if let Ok(secs) = text.parse::<i64>() {
        return secs
            .checked_mul(SECOND_MS)
            .filter(|ms| *ms >= 0)
            .ok_or_else(|| format!("duration {text:?} is out of range"));
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?} (use e.g. 90s, 15m, 3h, 16d)"
            ));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let factor = match unit {
            "ms" => 1,
            "s" | "" => SECOND_MS,
            "m" | "min" => MINUTE_MS,
            "h" => HOUR_MS,
            "d" => DAY_MS,
            _ => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        let n: i64 = number
            .parse()
            .map_err(|_| format!("duration {text:?} is out of range"))?;
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {text:?} is out of range"))?;
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = EmuClock::manual(1_000);
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.advance(HOUR_MS), 1_000 + HOUR_MS);
        assert_eq!(c.advance(-5), 1_000 + HOUR_MS);
        assert_eq!(c.real_until(c.now_ms() + 1), None);
        assert_eq!(c.real_until(0), Some(std::time::Duration::ZERO));
    }

    #[test]
    fn scaled_clock_runs_faster() {
        let c = EmuClock::scaled(0, 3600.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(c.now_ms() >= 60_000, "{}", c.now_ms());
        c.set_scale(f64::NAN);
        let t = c.now_ms();
        assert_eq!(c.now_ms(), t);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), 90_000);
        assert_eq!(parse_duration("90s").unwrap(), 90_000);
        assert_eq!(parse_duration("15m").unwrap(), 15 * MINUTE_MS);
        assert_eq!(parse_duration("1d12h").unwrap(), DAY_MS + 12 * HOUR_MS);
        assert_eq!(parse_duration("500ms").unwrap(), 500);
        assert!(parse_duration("").is_err());
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
