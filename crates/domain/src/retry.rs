//! Reconnect delays: exponential backoff with full jitter.
//!
//! A thousand agents that lose the server at the same moment must not all
//! come back in the same second; full jitter spreads them over the whole
//! window.

use std::time::Duration;

/// The delay before reconnect attempt `attempt` (0-based): a uniform draw,
/// given as `fraction` in [0, 1), from `[0, min(cap, base * 2^attempt)]`.
pub fn backoff_delay(attempt: u32, base: Duration, cap: Duration, fraction: f64) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX));
    let window = exp.min(cap);
    window.mul_f64(fraction.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(30);
        assert_eq!(backoff_delay(0, base, cap, 1.0), Duration::from_millis(500));
        assert_eq!(backoff_delay(3, base, cap, 1.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(20, base, cap, 1.0), cap);
        assert_eq!(backoff_delay(200, base, cap, 1.0), cap);
        assert_eq!(backoff_delay(5, base, cap, 0.0), Duration::ZERO);
        assert_eq!(backoff_delay(5, base, cap, 0.5), Duration::from_secs(8));
    }
}
