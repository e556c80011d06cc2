//! The notification worker: a durable JetStream consumer of `{env}.notifications.telegram`
//! (stream `{ENV}_NOTIFICATIONS`, kept an hour). A notification published while the bot is
//! down waits in the stream; replicas share the consumer, so each goes to one of them.
//!
//! Each notification id is claimed through the API before it is sent and acknowledged after,
//! so one redelivered after a crash is never sent twice. (A bot killed between the claim and
//! the send loses that one message rather than repeating it.)

use std::sync::Arc;
use std::time::Duration;

use app::error::ApiError;
use app::notifications::{NotificationEvent, TelegramNotification};
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use futures::StreamExt;
use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::ParseMode;
use tokio_util::sync::CancellationToken;

use crate::Ctx;
use crate::i18n::{Lang, Text};

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
    let claimed: Result<Vec<String>, ApiError> = ctx
        .api
        .call(
            "telegram/notifications/claim",
            None,
            &json!({ "ids": [notification.id] }),
        )
        .await;
    let ack = match claimed {
        Ok(claimed) if claimed.is_empty() => {
            // Sent before (a redelivery after a restart): only acknowledge it.
            crate::metrics::notification("duplicate");
            message.ack().await
        }
        Ok(_) => {
            send(ctx, &notification).await;
            message.ack().await
        }
        Err(error) => {
            tracing::warn!(%error, "a notification could not be claimed; retrying");
            crate::metrics::notification("retried");
            message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await
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

async fn send(ctx: &Ctx, notification: &TelegramNotification) {
    let request = ctx
        .bot
        .send_message(ChatId(notification.chat_id), render(notification))
        .parse_mode(ParseMode::Html);
    match ctx.pacer.send(notification.chat_id, request).await {
        Ok(_) => crate::metrics::notification("sent"),
        // Blocked bot, deleted chat: nothing to retry.
        Err(error) => {
            crate::metrics::notification("failed");
            tracing::warn!(%error, "a notification could not be sent");
        }
    }
}
