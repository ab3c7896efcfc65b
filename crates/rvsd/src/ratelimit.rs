//! A log rate limiter for lines a packet can trigger: at most `burst` lines per `interval_ms`, then silence with a
//! count of what was suppressed. Owned by one worker: no locks, no allocation.

/// Token-bucket-like limiter over a caller-supplied millisecond clock.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    interval_ms: u64,
    burst: u32,
    window_start: u64,
    used: u32,
    suppressed: u64,
}

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Log it; `suppressed` lines were dropped since the last admitted one.
    Yes { suppressed: u64 },
    /// Do not log.
    No,
}

impl RateLimiter {
    /// At most `burst` events per `interval_ms`.
    pub const fn new(burst: u32, interval_ms: u64) -> Self {
        Self {
            interval_ms,
            burst,
            window_start: 0,
            used: 0,
            suppressed: 0,
        }
    }

    /// Ask to log one event at time `now_ms`.
    pub fn admit(&mut self, now_ms: u64) -> Admit {
        if now_ms.saturating_sub(self.window_start) >= self.interval_ms
            || now_ms < self.window_start
        {
            self.window_start = now_ms;
            self.used = 0;
        }
        if self.used < self.burst {
            self.used += 1;
            let suppressed = std::mem::take(&mut self.suppressed);
            Admit::Yes { suppressed }
        } else {
            self.suppressed += 1;
            Admit::No
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_silence_then_next_window_reports_suppressed() {
        let mut r = RateLimiter::new(2, 1000);
        assert_eq!(r.admit(5000), Admit::Yes { suppressed: 0 });
        assert_eq!(r.admit(5001), Admit::Yes { suppressed: 0 });
        for t in 0..10 {
            assert_eq!(r.admit(5002 + t), Admit::No);
        }
        assert_eq!(r.admit(6000), Admit::Yes { suppressed: 10 });
        assert_eq!(r.admit(6001), Admit::Yes { suppressed: 0 });
        assert_eq!(r.admit(6002), Admit::No);
    }

    #[test]
    fn clock_going_backwards_opens_a_new_window() {
        let mut r = RateLimiter::new(1, 1000);
        assert_eq!(r.admit(10_000), Admit::Yes { suppressed: 0 });
        assert_eq!(r.admit(10_001), Admit::No);
        assert_eq!(r.admit(5), Admit::Yes { suppressed: 1 });
    }
}
