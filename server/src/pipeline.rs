//! The document pipeline's workers: one durable JetStream pull consumer per stage on the
//! `{ENV}_DOCUMENTS` work queue, plus the completion consumer that decides notifications.
//!
//! A message is acknowledged only after its stage's result is committed and the next stage is
//! published; while a stage runs, progress acks keep it from being redelivered. A transient
//! failure is retried with growing delays; after `MAX_ATTEMPTS` deliveries (or at once, for a
//! permanent failure) the document is marked failed with a reason and the failure announced.
//! Several servers may run workers: the consumers are shared, so each message goes to one.

use std::time::Duration;

use anyhow::Context;
use app::documents::pipeline::{self, DocumentEvent, Outcome, Stage, StageError};
use app::state::AppState;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// Deliveries of one message before its document is marked failed.
pub const MAX_ATTEMPTS: i64 = 6;
/// JetStream's own ceiling, above ours so an album's waits never exhaust it.
const MAX_DELIVER: i64 = 20;
/// How often stalled documents and orphaned objects are looked for (more often when
/// `stalled_after_secs` is short).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

fn retry_delay(delivered: i64) -> Duration {
    match delivered {
        ..=1 => Duration::from_secs(1),
        2 => Duration::from_secs(5),
        3 => Duration::from_secs(15),
        _ => Duration::from_secs(60),
    }
}

/// What a consumer does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Stage(Stage),
    /// Completed or failed documents: the notification decision.
    Finished,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Self::Stage(stage) => stage.as_str(),
            Self::Finished => "notify",
        }
    }
}

/// Starts every consumer and the stalled-document sweep; they stop when `shutdown` fires.
pub async fn start(
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    pipeline::ensure_streams(&state).await?;
    let mut tasks = Vec::new();
    let text_workers = state.settings.documents.text_workers.max(1);
    for (work, concurrency) in [
        (Work::Stage(Stage::Text), text_workers),
        (Work::Stage(Stage::Classify), 1),
        (Work::Stage(Stage::Extract), 2),
        (Work::Stage(Stage::Embed), 1),
        (Work::Finished, 4),
    ] {
        let consumer = consumer(&state, work).await?;
        tasks.push(tokio::spawn(consume(
            state.clone(),
            consumer,
            work,
            concurrency,
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(sweep(state, shutdown)));
    Ok(tasks)
}

async fn consumer(state: &AppState, work: Work) -> anyhow::Result<PullConsumer> {
    let subjects = &state.subjects;
    let filter_subjects = match work {
        Work::Stage(stage) => vec![subjects.document_stage(stage.as_str())],
        Work::Finished => vec![subjects.document_completed(), subjects.document_failed()],
    };
    let stream = state
        .jetstream
        .get_stream(subjects.documents_stream())
        .await
        .context("failed to open the documents stream")?;
    stream
        .get_or_create_consumer(
            work.name(),
            pull::Config {
                durable_name: Some(work.name().to_owned()),
                filter_subjects,
                ack_policy: AckPolicy::Explicit,
                ack_wait: state.settings.documents.ack_wait(),
                max_deliver: MAX_DELIVER,
                max_ack_pending: 64,
                ..pull::Config::default()
            },
        )
        .await
        .with_context(|| format!("failed to create the {} consumer", work.name()))
}

async fn consume(
    state: AppState,
    consumer: PullConsumer,
    work: Work,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    loop {
        let messages = consumer
            .stream()
            .max_messages_per_batch(concurrency)
            .messages()
            .await;
        let messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, consumer = work.name(), "cannot pull messages; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        let handled = messages
            .take_until(shutdown.cancelled())
            .for_each_concurrent(concurrency, |message| {
                let state = state.clone();
                async move {
                    match message {
                        Ok(message) => handle(&state, work, message).await,
                        Err(error) => {
                            tracing::warn!(%error, consumer = work.name(), "a pull failed");
                        }
                    }
                }
            });
        handled.await;
        if shutdown.is_cancelled() {
            return;
        }
        tracing::warn!(
            consumer = work.name(),
            "the message stream ended; pulling again"
        );
    }
}

async fn handle(state: &AppState, work: Work, message: async_nats::jetstream::Message) {
    let delivered = message.info().map_or(1, |info| info.delivered);
    let Ok(event) = serde_json::from_slice::<DocumentEvent>(&message.payload) else {
        tracing::warn!(
            consumer = work.name(),
            "an undecodable pipeline message was dropped"
        );
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let id = event.document_id;
    // Keep the message ours while the stage runs (OCR of a long PDF takes a while). The guard
    // stops the ticker when this handler ends or is dropped mid-stage (shutdown, a crash of
    // the task), so an abandoned message is redelivered after the ack wait.
    let progress = AbortOnDrop({
        let message = message.clone();
        let every = state.settings.documents.ack_wait() / 3;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if message.ack_with(AckKind::Progress).await.is_err() {
                    return;
                }
            }
        })
    });
    let result = match work {
        Work::Stage(stage) => run_stage(state, stage, id, delivered).await,
        Work::Finished => match pipeline::notify(state, id).await {
            Ok(()) => Ok(Ack::Done),
            Err(error) => retry_or_give_up(state, id, delivered, error, false).await,
        },
    };
    drop(progress);
    let ack = match result {
        Ok(Ack::Done) => message.ack().await,
        Ok(Ack::Later(delay)) => message.ack_with(AckKind::Nak(Some(delay))).await,
        Err(error) => {
            // Nothing could be recorded (the database is down, say): try again later.
            tracing::warn!(error = ?error, document = %id, consumer = work.name(), "a pipeline message will be retried");
            message
                .ack_with(AckKind::Nak(Some(retry_delay(delivered))))
                .await
        }
    };
    if let Err(error) = ack {
        tracing::warn!(%error, document = %id, "an acknowledgement was lost; the message will come again");
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Ack {
    Done,
    Later(Duration),
}

async fn run_stage(
    state: &AppState,
    stage: Stage,
    id: uuid::Uuid,
    delivered: i64,
) -> anyhow::Result<Ack> {
    let outcome = match pipeline::run(state, stage, id).await {
        Ok(Outcome::Wait(delay)) => return Ok(Ack::Later(delay)),
        Ok(outcome) => outcome,
        Err(StageError::Permanent {
            unsupported,
            reason,
        }) => {
            tracing::info!(document = %id, stage = stage.as_str(), %reason, "a document cannot be processed");
            pipeline::fail(state, id, unsupported, &reason).await?
        }
        Err(StageError::Transient(error)) => {
            return retry_or_give_up(state, id, delivered, error, true).await;
        }
    };
    pipeline::announce(state, id, outcome).await?;
    Ok(Ack::Done)
}

/// A transient failure: retried later, unless this was the last attempt, which ends the
/// document as failed (for a stage) so it never hangs half-done.
async fn retry_or_give_up(
    state: &AppState,
    id: uuid::Uuid,
    delivered: i64,
    error: anyhow::Error,
    is_stage: bool,
) -> anyhow::Result<Ack> {
    if delivered < MAX_ATTEMPTS {
        tracing::warn!(error = ?error, document = %id, attempt = delivered, "a pipeline step failed; retrying");
        return Ok(Ack::Later(retry_delay(delivered)));
    }
    tracing::error!(error = ?error, document = %id, "a pipeline step failed for the last time");
    if is_stage {
        let outcome = pipeline::fail(
            state,
            id,
            false,
            "it could not be processed after several attempts",
        )
        .await?;
        pipeline::announce(state, id, outcome).await?;
    }
    Ok(Ack::Done)
}

async fn sweep(state: AppState, shutdown: CancellationToken) {
    let every = SWEEP_EVERY
        .min(Duration::from_secs(
            state.settings.documents.stalled_after_secs / 2,
        ))
        .max(Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let documents = &state.settings.documents;
        let stalled_after = Duration::from_secs(documents.stalled_after_secs.max(1));
        match pipeline::requeue_stalled(&state, stalled_after).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "re-queued stalled documents"),
            Err(error) => tracing::warn!(error = ?error, "the stalled-document sweep failed"),
        }
        let grace = Duration::from_secs(documents.orphan_grace_secs.max(1));
        match app::documents::service::remove_orphans(&state, grace).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "removed objects of uploads that never finished"),
            Err(error) => tracing::warn!(error = ?error, "the orphaned-object sweep failed"),
        }
    }
}
