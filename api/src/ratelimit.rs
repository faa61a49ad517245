//! BPG's fixed limit on the two list endpoints: 20 requests per second each, per node.

use std::sync::Mutex;
use std::time::Instant;

/// A non-blocking token bucket.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub(crate) fn new(per_second: u32) -> TokenBucket {
        TokenBucket { per_second: f64::from(per_second), state: Mutex::new((f64::from(per_second), Instant::now())) }
    }

    /// Takes a token if one is there.
    pub(crate) fn try_take(&self) -> bool {
        // No await inside: a std mutex.
        let mut s = self.state.lock().expect("token bucket poisoned");
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.per_second).min(self.per_second);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The two buckets.
#[derive(Debug)]
pub(crate) struct ListLimits {
    pub(crate) my_submissions: TokenBucket,
    pub(crate) admin_submissions: TokenBucket,
}

impl Default for ListLimits {
    fn default() -> Self {
        ListLimits { my_submissions: TokenBucket::new(20), admin_submissions: TokenBucket::new(20) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_rate_is_refused() {
        let b = TokenBucket::new(20);
        let granted = (0..100).filter(|_| b.try_take()).count();
        // The burst is taken within microseconds: 20 tokens, plus at most one refilled.
        assert!((20..=21).contains(&granted), "{granted}");
    }
}
