//! The one retry policy of every leased queue (jobs, webhook deliveries, usage pushes): a first
//! delay, doubled after each further failure, up to a ceiling. Each queue has its own numbers.

/// Exponential back-off: `first_ms` after the first failure, doubled after each further one,
/// never more than `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first_ms: i64,
    pub max_ms: i64,
}

impl Backoff {
    /// The delay after `failures` failed attempts (1-based: 1 is the first failure; less counts
    /// as 1).
    pub fn delay_ms(&self, failures: i64) -> i64 {
        let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
        self.first_ms
            .saturating_mul(2i64.saturating_pow(doublings))
            .min(self.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_delay_to_the_ceiling_without_overflow() {
        let b = Backoff {
            first_ms: 1_000,
            max_ms: 60_000,
        };
        assert_eq!(b.delay_ms(0), 1_000);
        assert_eq!(b.delay_ms(1), 1_000);
        assert_eq!(b.delay_ms(2), 2_000);
        assert_eq!(b.delay_ms(6), 32_000);
        assert_eq!(b.delay_ms(7), 60_000);
        assert_eq!(b.delay_ms(i64::MAX), 60_000);
    }
}
