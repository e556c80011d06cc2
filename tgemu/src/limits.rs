//! Telegram's flood limits on sending: about one message per second in a chat and thirty per
//! second overall. Counted over a sliding one-second window of arrivals, shortened by a small
//! slack so a client that spaces its sends correctly is never punished for network jitter.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_chat_per_sec: u32,
    pub overall_per_sec: u32,
    /// How much of the one-second window is forgiven (arrival jitter).
    pub slack: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_chat_per_sec: 1,
            overall_per_sec: 30,
            slack: Duration::from_millis(50),
        }
    }
}

impl Limits {
    /// Reads `TGEMU_PER_CHAT_PER_SEC` and `TGEMU_OVERALL_PER_SEC`, defaulting to Telegram's.
    pub fn from_env() -> Self {
        let read = |name: &str, default: u32| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|v: &u32| *v > 0)
                .unwrap_or(default)
        };
        let default = Self::default();
        Self {
            per_chat_per_sec: read("TGEMU_PER_CHAT_PER_SEC", default.per_chat_per_sec),
            overall_per_sec: read("TGEMU_OVERALL_PER_SEC", default.overall_per_sec),
            ..default
        }
    }
}

#[derive(Debug, Default)]
pub struct Limiter {
    limits: Limits,
    overall: VecDeque<Instant>,
    per_chat: HashMap<i64, VecDeque<Instant>>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Records a send to `chat` now, or returns the seconds to wait (`retry_after`).
    pub fn admit(&mut self, chat: i64, now: Instant) -> Result<(), u64> {
        let window = Duration::from_secs(1).saturating_sub(self.limits.slack);
        let expire = |queue: &mut VecDeque<Instant>| {
            while queue
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                queue.pop_front();
            }
        };
        expire(&mut self.overall);
        let chat_queue = self.per_chat.entry(chat).or_default();
        expire(chat_queue);
        let full = |queue: &VecDeque<Instant>, max: u32| queue.len() >= max as usize;
        if full(chat_queue, self.limits.per_chat_per_sec)
            || full(&self.overall, self.limits.overall_per_sec)
        {
            return Err(1);
        }
        chat_queue.push_back(now);
        self.overall.push_back(now);
        if self.per_chat.len() > 10_000 {
            self.per_chat.retain(|_, queue| !queue.is_empty());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_per_second_per_chat_and_thirty_overall() {
        let mut limiter = Limiter::new(Limits::default());
        let t0 = Instant::now();
        assert!(limiter.admit(1, t0).is_ok());
        assert_eq!(limiter.admit(1, t0 + Duration::from_millis(500)), Err(1));
        assert!(limiter.admit(1, t0 + Duration::from_millis(1000)).is_ok());
        // Slightly early arrivals (jitter) are forgiven.
        assert!(limiter.admit(1, t0 + Duration::from_millis(1960)).is_ok());

        let t1 = t0 + Duration::from_secs(10);
        for chat in 0..30 {
            assert!(limiter.admit(100 + chat, t1).is_ok());
        }
        assert_eq!(limiter.admit(999, t1), Err(1));
        assert!(limiter.admit(999, t1 + Duration::from_secs(1)).is_ok());
    }
}
