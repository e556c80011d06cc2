//! Outbound pacing under Telegram's flood limits: at most `per_chat_per_sec` messages to one
//! chat and `overall_per_sec` in all, spaced evenly rather than in bursts. Requests to one chat
//! (messages and edits, from any task: an update's handler, a notification, an answer's
//! stream) go out one at a time in the order they were handed to the pacer: each chat has a
//! fair (first come, first served) lock held from the wait for a slot to Telegram's answer, so
//! an edit decided before a notification reaches the chat before it. A 429 that gets through
//! anyway (another process using the same bot, say) pauses that chat for the `retry_after`
//! Telegram asked for, and the message is sent again, still ahead of those queued behind it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use teloxide::RequestError;
use teloxide::requests::{Output, Request};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct Pacer {
    interval: Duration,
    overall_per_sec: usize,
    state: Mutex<State>,
    /// Each chat's turn (tokio's mutex queues its waiters in order).
    turns: std::sync::Mutex<HashMap<i64, Arc<Mutex<()>>>>,
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
            turns: std::sync::Mutex::default(),
        }
    }

    /// The chat's turn lock (chats nobody is waiting for are forgotten now and then).
    fn turn(&self, chat: i64) -> Arc<Mutex<()>> {
        let mut turns = self
            .turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if turns.len() > 10_000 {
            turns.retain(|_, turn| Arc::strong_count(turn) > 1);
        }
        turns.entry(chat).or_default().clone()
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
        match self
            .paced(chat, None, || crate::metrics::observed(&request))
            .await?
        {
            Some(sent) => Ok(sent),
            None => unreachable!("without a deadline every request is sent"),
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
        self.paced(chat, Some(deadline), || crate::metrics::observed(&request))
            .await
    }

    /// Makes `attempt` (one request to Telegram) in `chat`'s turn and slot, again after each
    /// 429; `None` when the turn or the slot would come after `deadline`.
    async fn paced<T, F, Fut>(
        &self,
        chat: i64,
        deadline: Option<Instant>,
        mut attempt: F,
    ) -> Result<Option<T>, RequestError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RequestError>>,
    {
        let turn = self.turn(chat);
        let _turn = match deadline {
            None => turn.lock().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, turn.lock()).await {
                Ok(turn) => turn,
                Err(_) => return Ok(None),
            },
        };
        loop {
            if !self.wait_until(chat, deadline).await {
                return Ok(None);
            }
            match attempt().await {
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

    /// What a test request does: records its name in the order Telegram would receive it.
    #[derive(Clone)]
    struct Probe {
        name: &'static str,
        log: Arc<std::sync::Mutex<Vec<&'static str>>>,
    }

    impl Probe {
        /// Through the pacer's own path; the "request" takes 50 ms to be answered.
        async fn send(&self, pacer: &Pacer, chat: i64) {
            pacer
                .paced(chat, None, || async {
                    self.log.lock().expect("log").push(self.name);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, RequestError>(())
                })
                .await
                .expect("sent");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_to_one_chat_reach_it_in_the_order_they_were_handed_over() {
        let pacer = Arc::new(Pacer::new(1, 30));
        let log = Arc::default();
        let probe = |name| Probe {
            name,
            log: Arc::clone(&log),
        };
        // "Uploading…" was just sent; the edit to "Uploaded, processing…" is handed over, then
        // (the pipeline being quick) the "processed" notification, then a third message.
        probe("uploading").send(&pacer, 5).await;
        let mut tasks = tokio::task::JoinSet::new();
        for (name, after_ms) in [("edit", 300), ("processed", 500), ("later", 700)] {
            let pacer = Arc::clone(&pacer);
            let probe = probe(name);
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                probe.send(&pacer, 5).await;
            });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(
            *log.lock().expect("log"),
            ["uploading", "edit", "processed", "later"]
        );
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
