//! The notification worker: a durable JetStream consumer of `{env}.notifications.telegram`
//! (stream `{ENV}_NOTIFICATIONS`, kept an hour). A notification published while the bot is
//! down waits in the stream; replicas share the consumer, so each goes to one of them.
//!
//! Each notification id is claimed through the API by this process before it is sent, marked
//! sent after, then acknowledged: a redelivery of a sent one is only acknowledged, and one whose
//! sender was killed before it was sent is claimed again and sent, so none is lost. A sent one
//! is written to the local journal the moment Telegram answers, so a sender killed while the
//! API could not record it (restarting) leaves it known to its successor on the same host, which
//! only marks it. (Telegram has no idempotent send: what remains is a kill in the instant
//! between Telegram's answer and the journal write, or a successor on another host.)

use std::sync::Arc;
use std::time::Duration;

use app::error::ApiError;
use app::notifications::{NotificationClaims, NotificationEvent, TelegramNotification};
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use futures::StreamExt;
use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::ParseMode;
use tokio_util::sync::CancellationToken;

use crate::Ctx;
use crate::i18n::{Lang, Text};
use crate::journal::{Entry, State};

const CONSUMER: &str = "telegram-bot";
/// Notifications sent at once (the pacer keeps each chat within Telegram's limits).
const CONCURRENCY: usize = 8;

pub async fn run(
    ctx: Arc<Ctx>,
    nats: async_nats::Client,
    env: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(consumer) = consumer(&nats, &env, &shutdown).await else {
        return Ok(());
    };
    loop {
        let messages = match consumer
            .stream()
            .max_messages_per_batch(CONCURRENCY)
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "cannot pull notifications; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        messages
            .take_until(shutdown.cancelled())
            .for_each_concurrent(CONCURRENCY, |message| {
                let ctx = ctx.clone();
                async move {
                    match message {
                        Ok(message) => handle(&ctx, message).await,
                        Err(error) => tracing::warn!(%error, "a notification pull failed"),
                    }
                }
            })
            .await;
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// The server creates the stream; until it exists (the server starting), wait for it.
async fn consumer(
    nats: &async_nats::Client,
    env: &str,
    shutdown: &CancellationToken,
) -> Option<PullConsumer> {
    let jetstream = async_nats::jetstream::new(nats.clone());
    let stream_name = format!("{}_NOTIFICATIONS", env.to_uppercase().replace('-', "_"));
    loop {
        let attempt = async {
            let stream = jetstream.get_stream(&stream_name).await?;
            let consumer = stream
                .get_or_create_consumer(
                    CONSUMER,
                    pull::Config {
                        durable_name: Some(CONSUMER.to_owned()),
                        filter_subject: format!("{env}.notifications.telegram"),
                        ack_policy: AckPolicy::Explicit,
                        ack_wait: Duration::from_secs(30),
                        max_ack_pending: 256,
                        ..pull::Config::default()
                    },
                )
                .await?;
            Ok::<_, async_nats::Error>(consumer)
        };
        match attempt.await {
            Ok(consumer) => return Some(consumer),
            Err(error) => {
                tracing::info!(%error, "waiting for the notification stream");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}

async fn handle(ctx: &Ctx, message: async_nats::jetstream::Message) {
    let notification: TelegramNotification = match serde_json::from_slice(&message.payload) {
        Ok(notification) => notification,
        Err(error) => {
            tracing::warn!(%error, "an undecodable notification was dropped");
            crate::metrics::notification("dropped");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let retry_later = AckKind::Nak(Some(Duration::from_secs(5)));
    // The stream delivers a notification again if its acknowledgement is late (the API slow to
    // record it): never two attempts at one notification in this process at once.
    let Some(_in_flight) = InFlight::enter(&ctx.notifying, &notification.id) else {
        if let Err(error) = message.ack_with(retry_later).await {
            tracing::warn!(%error, "a notification acknowledgement was lost");
        }
        return;
    };
    let claimed: Result<NotificationClaims, ApiError> = ctx
        .api
        .call(
            "telegram/notifications/claim",
            None,
            &json!({ "ids": [notification.id], "holder": ctx.holder }),
        )
        .await;
    let ack = match claimed {
        Ok(claims) if claims.claimed.is_empty() => {
            // Sent before (a redelivery after a restart): only acknowledge it.
            crate::metrics::notification("duplicate");
            message.ack().await
        }
        Ok(_) => {
            let entry = Entry::Notification(&notification.id);
            // Claimed again after an attempt that sent it and died before the API recorded
            // that (the API was down): this host's journal knows.
            let journalled = match ctx.journal.as_ref().map(|journal| journal.state(entry)) {
                Some(State::Sent(_)) => true,
                Some(State::Intended) => {
                    // Sent again: a notification missing is worse than one twice.
                    tracing::warn!(
                        id = %notification.id,
                        "a notification may have been sent by a process killed mid-send"
                    );
                    false
                }
                Some(State::Absent) | None => false,
            };
            let sent = if journalled {
                tracing::info!(
                    id = %notification.id,
                    "notification taken from the journal: not sent again"
                );
                crate::metrics::notification("duplicate");
                Sent::Done
            } else {
                send(ctx, &notification).await
            };
            match sent {
                Sent::Done => {
                    // Marked sent before the acknowledgement: a redelivery then finds it done.
                    let finished: Result<(), ApiError> = ctx
                        .api
                        .call_retrying(
                            "telegram/notifications/done",
                            None,
                            &json!({ "ids": [notification.id] }),
                        )
                        .await;
                    match finished {
                        Ok(()) => {
                            if let Some(journal) = &ctx.journal {
                                journal.forget(entry);
                            }
                        }
                        // Sent all the same: acknowledged, so it is not sent again (the
                        // journal keeps the entry until it is pruned).
                        Err(error) => {
                            tracing::warn!(%error, "a sent notification could not be marked sent");
                        }
                    }
                    message.ack().await
                }
                Sent::Retry => message.ack_with(retry_later).await,
            }
        }
        Err(error) => {
            tracing::warn!(%error, "a notification could not be claimed; retrying");
            crate::metrics::notification("retried");
            message.ack_with(retry_later).await
        }
    };
    if let Err(error) = ack {
        tracing::warn!(%error, "a notification acknowledgement was lost");
    }
}

pub fn render(notification: &TelegramNotification) -> String {
    let lang = Lang::from_code(notification.language_code.as_deref());
    let text = match &notification.event {
        NotificationEvent::DocumentProcessed {
            file_name,
            doc_type,
            key_fields,
            ..
        } => Text::Processed {
            name: file_name.clone(),
            doc_type: *doc_type,
            key_fields: key_fields.clone(),
        },
        NotificationEvent::DocumentFailed {
            file_name, reason, ..
        } => Text::ProcessingFailed {
            name: file_name.clone(),
            reason: reason.clone(),
        },
    };
    text.render(lang)
}

/// What became of a send.
enum Sent {
    /// Sent, or refused for good (the person blocked the bot, the chat is gone).
    Done,
    /// Telegram could not be reached in time: the message comes again.
    Retry,
}

/// The longest a notification waits for its chat's turn (below the consumer's acknowledgement
/// deadline, 30 s). Only the wait: a request that has started is never cut off, since
/// Telegram may already have delivered it.
const SEND_WITHIN: Duration = Duration::from_secs(20);

/// Notification ids being handled by this process; an id leaves when its handling ends,
/// however it ends.
struct InFlight<'a> {
    ids: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    id: String,
}

impl<'a> InFlight<'a> {
    fn enter(
        ids: &'a std::sync::Mutex<std::collections::HashSet<String>>,
        id: &str,
    ) -> Option<Self> {
        let mut set = ids.lock().ok()?;
        set.insert(id.to_owned()).then(|| Self {
            ids,
            id: id.to_owned(),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.ids.lock() {
            set.remove(&self.id);
        }
    }
}

async fn send(ctx: &Ctx, notification: &TelegramNotification) -> Sent {
    let request = ctx
        .bot
        .send_message(ChatId(notification.chat_id), render(notification))
        .parse_mode(ParseMode::Html);
    let deadline = tokio::time::Instant::now() + SEND_WITHIN;
    let entry = Entry::Notification(&notification.id);
    if let Some(journal) = &ctx.journal {
        journal.intend(entry);
    }
    match ctx
        .pacer
        .send_by(notification.chat_id, request, deadline)
        .await
    {
        Ok(Some(sent)) => {
            // First of all: the journal, in case this process dies before the API has it.
            if let Some(journal) = &ctx.journal {
                journal.record(Entry::Notification(&notification.id), sent.id.0);
            }
            crate::metrics::notification("sent");
            Sent::Done
        }
        Err(teloxide::RequestError::Api(error)) => {
            // Blocked bot, deleted chat: nothing to retry.
            crate::metrics::notification("failed");
            tracing::warn!(%error, "a notification could not be sent");
            if let Some(journal) = &ctx.journal {
                journal.record(Entry::Notification(&notification.id), 0);
            }
            Sent::Done
        }
        Err(error) => {
            crate::metrics::notification("retried");
            tracing::warn!(%error, "a notification could not reach Telegram; retrying");
            Sent::Retry
        }
        Ok(None) => {
            // Certainly not sent: nothing was asked of Telegram.
            if let Some(journal) = &ctx.journal {
                journal.forget(entry);
            }
            crate::metrics::notification("retried");
            tracing::warn!("a notification's chat is busy; retrying");
            Sent::Retry
        }
    }
}
