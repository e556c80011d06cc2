//! Live NATS traffic: one core subscription to every subject (`>`), counted per subject in
//! one-second buckets, and JetStream consumer lag read from the servers. Counting starts the
//! first time an administrator asks and runs for the life of the process; memory is bounded
//! (at most `MAX_SUBJECTS` subjects, 60 buckets each).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use http::request::Parts;
use tokio::sync::OnceCell;

use super::{ConsumerLag, SubjectRate, TrafficSnapshot};
use crate::auth::principal::{Permission, authorize_parts};
use crate::error::ApiError;
use crate::state::{AppState, internal};

/// Distinct (folded) subjects kept; the rest are counted under `(other)`.
pub const MAX_SUBJECTS: usize = 500;
const WINDOW_SECS: usize = 60;
const RATE_SECS: u64 = 10;
/// How long a read of consumer lag is reused (every viewer asks every second).
const LAG_TTL: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Traffic {
    started: OnceCell<Instant>,
    counts: Mutex<HashMap<String, Counter>>,
    lag: tokio::sync::Mutex<Option<(Instant, Vec<ConsumerLag>)>>,
}

/// Per-second counts in a ring indexed by second since the start, plus a running total.
struct Counter {
    buckets: [u64; WINDOW_SECS],
    /// The second each bucket holds; a bucket from an older second counts as zero.
    seconds: [u64; WINDOW_SECS],
    total: u64,
}

impl Counter {
    fn new() -> Self {
        Self {
            buckets: [0; WINDOW_SECS],
            seconds: [u64::MAX; WINDOW_SECS],
            total: 0,
        }
    }

    fn add(&mut self, second: u64) {
        let slot = (second % WINDOW_SECS as u64) as usize;
        if self.seconds[slot] != second {
            self.seconds[slot] = second;
            self.buckets[slot] = 0;
        }
        self.buckets[slot] += 1;
        self.total += 1;
    }

    /// Messages in the `span` seconds up to and including `now`.
    fn within(&self, now: u64, span: u64) -> u64 {
        self.seconds
            .iter()
            .zip(self.buckets.iter())
            .filter(|(second, _)| **second <= now && now - **second < span)
            .map(|(_, count)| *count)
            .sum()
    }
}

impl Traffic {
    /// Counts one message on `subject` at `second` (since the start).
    pub fn record(&self, subject: &str, second: u64) {
        let Some(folded) = fold(subject) else {
            return;
        };
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let key = if counts.contains_key(&folded) || counts.len() < MAX_SUBJECTS {
            folded
        } else {
            "(other)".to_owned()
        };
        counts.entry(key).or_insert_with(Counter::new).add(second);
    }

    /// The subjects, busiest first (by the last minute, then the total).
    pub fn rates(&self, second: u64) -> Vec<SubjectRate> {
        let Ok(counts) = self.counts.lock() else {
            return Vec::new();
        };
        let mut rates: Vec<SubjectRate> = counts
            .iter()
            .map(|(subject, counter)| SubjectRate {
                env: subject.split('.').next().unwrap_or_default().to_owned(),
                subject: subject.clone(),
                per_sec: counter.within(second, RATE_SECS) as f64 / RATE_SECS as f64,
                last_minute: counter.within(second, WINDOW_SECS as u64),
                total: counter.total,
            })
            .collect();
        rates.sort_by(|a, b| {
            (b.last_minute, b.total, &a.subject).cmp(&(a.last_minute, a.total, &b.subject))
        });
        rates
    }
}

/// The subject as the table shows it, or `None` for NATS's own request/reply plumbing.
/// Tokens that look like ids (digits, UUIDs, long hex or random tokens) become `*`, so one row
/// stands for e.g. every `{env}.rag.answers.<id>`.
pub fn fold(subject: &str) -> Option<String> {
    if subject.starts_with("_INBOX.") || subject.starts_with("$JS.") || subject.starts_with("$SYS.")
    {
        return None;
    }
    let folded: Vec<&str> = subject
        .split('.')
        .enumerate()
        .map(|(i, token)| {
            // `$KV.<bucket>.<key>`: keys are tokens and ids.
            if subject.starts_with("$KV.") && i >= 2 {
                return "*";
            }
            let id_like = token.len() > 24
                || (!token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()))
                || (token.len() >= 16
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_'));
            if id_like { "*" } else { token }
        })
        .collect();
    let mut folded = folded.join(".");
    folded.truncate(200);
    Some(folded)
}

/// Starts the subscription on first use; the counting then runs until the process ends.
async fn ensure_counting(state: &AppState) -> Result<Instant, ApiError> {
    let traffic = state.traffic.clone();
    let nats = state.nats.clone();
    state
        .traffic
        .started
        .get_or_try_init(|| async move {
            let mut messages = nats
                .subscribe(">")
                .await
                .context("failed to subscribe to NATS traffic")
                .map_err(internal)?;
            // The subscription is registered once the server has seen it.
            nats.flush()
                .await
                .context("failed to flush the traffic subscription")
                .map_err(internal)?;
            let started = Instant::now();
            tokio::spawn(async move {
                while let Some(message) = messages.next().await {
                    traffic.record(message.subject.as_str(), started.elapsed().as_secs());
                }
            });
            Ok::<Instant, ApiError>(started)
        })
        .await
        .copied()
}

/// Every consumer of every stream this account holds (all environments), read from JetStream.
pub async fn consumer_lags(
    jetstream: &async_nats::jetstream::Context,
) -> anyhow::Result<Vec<ConsumerLag>> {
    let names: Vec<String> = jetstream
        .stream_names()
        .try_collect()
        .await
        .context("failed to list streams")?;
    let mut lags = Vec::new();
    for name in names {
        let stream = match jetstream.get_stream(&name).await {
            Ok(stream) => stream,
            // Deleted between the listing and now.
            Err(_) => continue,
        };
        let consumers: Vec<async_nats::jetstream::consumer::Info> =
            match stream.consumers().try_collect().await {
                Ok(consumers) => consumers,
                // Deleted meanwhile as well.
                Err(error) => {
                    tracing::debug!(%error, stream = %name, "consumers could not be listed");
                    continue;
                }
            };
        lags.extend(consumers.into_iter().map(|info| ConsumerLag {
            stream: info.stream_name,
            consumer: info.name,
            pending: info.num_pending,
            ack_pending: info.num_ack_pending as u64,
            redelivered: info.num_redelivered as u64,
            durable: info.config.durable_name.is_some(),
        }));
    }
    lags.sort_by(|a, b| (&a.stream, &a.consumer).cmp(&(&b.stream, &b.consumer)));
    Ok(lags)
}

/// Consumer lag, read at most every `LAG_TTL`.
async fn cached_lags(state: &AppState) -> Result<Vec<ConsumerLag>, ApiError> {
    let mut cached = state.traffic.lag.lock().await;
    if let Some((at, lags)) = cached.as_ref()
        && at.elapsed() < LAG_TTL
    {
        return Ok(lags.clone());
    }
    let lags = consumer_lags(&state.jetstream).await.map_err(internal)?;
    *cached = Some((Instant::now(), lags.clone()));
    Ok(lags)
}

pub async fn snapshot(state: &AppState) -> Result<TrafficSnapshot, ApiError> {
    let started = ensure_counting(state).await?;
    let second = started.elapsed().as_secs();
    Ok(TrafficSnapshot {
        subjects: state.traffic.rates(second),
        consumers: cached_lags(state).await?,
        counting_for_secs: second,
    })
}

/// The caller must be a signed-in administrator (web or Mini App session; services never are).
pub async fn authorize_admin(state: &AppState, parts: &Parts) -> Result<uuid::Uuid, ApiError> {
    let caller = authorize_parts(state, parts, Permission::UsersRead).await?;
    if matches!(caller.via, crate::auth::principal::Via::Service { .. }) {
        return Err(ApiError::Forbidden);
    }
    let admin: Option<(bool, String)> =
        sqlx::query_as("SELECT is_admin, email_normalized FROM users WHERE id = $1")
            .bind(caller.user_id)
            .fetch_optional(&state.db)
            .await
            .context("failed to load a user's role")
            .map_err(internal)?;
    match admin {
        Some((is_admin, email)) if is_admin || state.settings.is_admin_email(&email) => {
            Ok(caller.user_id)
        }
        _ => Err(ApiError::Forbidden),
    }
}

/// `GET /admin/traffic/events`: the snapshot once a second as server-sent events
/// (`event: traffic`, JSON data) until the page goes away.
pub async fn events(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (parts, _) = request.into_parts();
    if let Err(error) = authorize_admin(&state, &parts).await {
        return error.into_response();
    }
    let ticks = tokio_stream_interval(Duration::from_secs(1));
    let stream = ticks.then(move |()| {
        let state = state.clone();
        async move {
            let event = match snapshot(&state).await {
                Ok(snapshot) => Event::default()
                    .event("traffic")
                    .json_data(&snapshot)
                    .unwrap_or_else(|_| Event::default().event("error")),
                Err(error) => Event::default().event("error").data(error.to_string()),
            };
            Ok::<_, std::convert::Infallible>(event)
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A tick right away, then every `period`.
fn tokio_stream_interval(period: Duration) -> impl futures::Stream<Item = ()> {
    futures::stream::unfold(tokio::time::interval(period), |mut interval| async move {
        interval.tick().await;
        Some(((), interval))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fold_and_plumbing_is_skipped() {
        assert_eq!(
            fold("staging.archives.documents.ocr.requested").as_deref(),
            Some("staging.archives.documents.ocr.requested")
        );
        assert_eq!(
            fold("prod.rag.answers.0193f1c2-7a4e-7c1a-9b1e-3f2a1b4c5d6e").as_deref(),
            Some("prod.rag.answers.*")
        );
        assert_eq!(fold("e2e.chat.123456789").as_deref(), Some("e2e.chat.*"));
        assert_eq!(
            fold("$KV.dev-link-tokens.Zx81kLq0").as_deref(),
            Some("$KV.dev-link-tokens.*")
        );
        assert_eq!(fold("_INBOX.abc.def"), None);
        assert_eq!(fold("$JS.API.STREAM.INFO.X"), None);
    }

    #[test]
    fn rates_cover_the_last_seconds_and_the_table_is_bounded() {
        let traffic = Traffic::default();
        for second in 0..70 {
            traffic.record("dev.a", second);
        }
        traffic.record("dev.b", 69);
        traffic.record("dev.b", 69);
        let rates = traffic.rates(69);
        assert_eq!(rates[0].subject, "dev.a");
        assert_eq!(rates[0].total, 70);
        assert_eq!(rates[0].last_minute, 60);
        assert!((rates[0].per_sec - 1.0).abs() < 1e-9);
        assert_eq!(rates[1].subject, "dev.b");
        assert!((rates[1].per_sec - 0.2).abs() < 1e-9);
        // A minute later nothing is recent, the totals stay.
        let later = traffic.rates(200);
        assert!(later.iter().all(|r| r.last_minute == 0 && r.per_sec == 0.0));
        assert_eq!(later.iter().map(|r| r.total).sum::<u64>(), 72);

        let many = Traffic::default();
        for i in 0..(MAX_SUBJECTS + 50) {
            many.record(&format!("dev.s{i}x"), 0);
        }
        let rates = many.rates(0);
        assert_eq!(rates.len(), MAX_SUBJECTS + 1);
        let other = rates.iter().find(|r| r.subject == "(other)");
        assert_eq!(other.map(|r| r.total), Some(50));
    }
}
