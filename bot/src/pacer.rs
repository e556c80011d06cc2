//! Outbound pacing under Telegram's flood limits: at most `per_chat_per_sec` messages to one
//! chat and `overall_per_sec` in all, spaced evenly rather than in bursts. Each chat's
//! handler sends in order and waits its turn here, so per-chat order is kept. A 429 that gets
//! through anyway (another process using the same bot, say) pauses that chat for the
//! `retry_after` Telegram asked for, and the message is sent again.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use teloxide::RequestError;
use teloxide::requests::{Output, Request};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct Pacer {
    interval: Duration,
    overall_per_sec: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The earliest moment each chat may be sent to again.
    next: HashMap<i64, Instant>,
    /// Send times within the last second, for the overall limit.
    recent: VecDeque<Instant>,
}

const SECOND: Duration = Duration::from_secs(1);

impl Pacer {
    pub fn new(per_chat_per_sec: u32, overall_per_sec: u32) -> Self {
        Self {
            interval: SECOND / per_chat_per_sec.max(1),
            overall_per_sec: overall_per_sec.max(1) as usize,
            state: Mutex::new(State::default()),
        }
    }

    /// Waits until a message may go to `chat`, and books that slot.
    pub async fn wait(&self, chat: i64) {
        self.wait_until(chat, None).await;
    }

    /// `wait`, giving up (false, nothing booked) when the slot would come after `deadline`.
    async fn wait_until(&self, chat: i64, deadline: Option<Instant>) -> bool {
        loop {
            let until = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                while state
                    .recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= SECOND)
                {
                    state.recent.pop_front();
                }
                let chat_ready = state.next.get(&chat).copied().unwrap_or(now);
                let overall_ready = if state.recent.len() < self.overall_per_sec {
                    now
                } else {
                    state.recent.front().map_or(now, |t| *t + SECOND)
                };
                let ready = chat_ready.max(overall_ready);
                if ready <= now {
                    state.next.insert(chat, now + self.interval);
                    state.recent.push_back(now);
                    if state.next.len() > 10_000 {
                        state.next.retain(|_, t| *t > now);
                    }
                    return true;
                }
                if deadline.is_some_and(|deadline| ready > deadline) {
                    return false;
                }
                ready
            };
            tokio::time::sleep_until(until).await;
        }
    }

    /// Holds `chat` back for `pause` (Telegram's `retry_after`).
    pub async fn pause(&self, chat: i64, pause: Duration) {
        let until = Instant::now() + pause;
        let mut state = self.state.lock().await;
        let next = state.next.entry(chat).or_insert(until);
        *next = (*next).max(until);
    }

    /// Sends `request` to `chat` in its turn; on a 429 waits `retry_after` and sends it again.
    pub async fn send<R>(&self, chat: i64, request: R) -> Result<Output<R>, RequestError>
    where
        R: Request<Err = RequestError>,
    {
        loop {
            self.wait(chat).await;
            match crate::metrics::observed(&request).await {
                Err(RequestError::RetryAfter(after)) => {
                    tracing::warn!(chat, retry_after = ?after.duration(), "Telegram asked to slow down");
                    self.pause(chat, after.duration()).await;
                }
                other => return other,
            }
        }
    }

    /// `send`, if its turn comes by `deadline`; `Ok(None)` (nothing sent) if not. Only the
    /// wait is bounded: a request that has started is never cut off, so "not sent" is certain.
    pub async fn send_by<R>(
        &self,
        chat: i64,
        request: R,
        deadline: Instant,
    ) -> Result<Option<Output<R>>, RequestError>
    where
        R: Request<Err = RequestError>,
    {
        loop {
            if !self.wait_until(chat, Some(deadline)).await {
                return Ok(None);
            }
            match crate::metrics::observed(&request).await {
                Err(RequestError::RetryAfter(after)) => {
                    tracing::warn!(chat, retry_after = ?after.duration(), "Telegram asked to slow down");
                    self.pause(chat, after.duration()).await;
                }
                other => return other.map(Some),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sends_are_spaced_per_chat_and_capped_overall() {
        let pacer = Pacer::new(2, 3);
        let start = Instant::now();
        pacer.wait(1).await;
        pacer.wait(1).await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        // Two other chats use the rest of the overall budget within the second.
        pacer.wait(2).await;
        pacer.wait(3).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        pacer.pause(4, Duration::from_secs(5)).await;
        pacer.wait(4).await;
        assert_eq!(start.elapsed(), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_its_deadline_gives_up_at_once_and_books_nothing() {
        let pacer = Pacer::new(1, 30);
        let start = Instant::now();
        pacer.pause(7, Duration::from_secs(10)).await;
        assert!(
            !pacer
                .wait_until(7, Some(start + Duration::from_secs(5)))
                .await
        );
        assert_eq!(start.elapsed(), Duration::ZERO, "no time spent waiting");
        assert!(
            pacer
                .wait_until(7, Some(start + Duration::from_secs(10)))
                .await
        );
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // The slot given up was not booked: the next one is a second after the last send.
        pacer.wait(7).await;
        assert_eq!(start.elapsed(), Duration::from_secs(11));
    }
}
