//! Webhook delivery: while a webhook is set, pending updates are POSTed to it one at a time, in
//! order, with `X-Telegram-Bot-Api-Secret-Token` when a secret was given. A non-2xx answer or a
//! network error is retried with backoff (and shown in getWebhookInfo), as Telegram does.

use std::time::Duration;

use serde_json::Value;

use crate::{Emulator, now_secs};

const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub async fn deliver(emulator: Emulator) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let notified = emulator.arrived.notified();
        let next: Option<(String, Option<String>, Value)> = {
            let world = emulator.world.lock().await;
            match (&world.webhook, world.pending.front()) {
                (Some(hook), Some(update)) => {
                    Some((hook.url.clone(), hook.secret_token.clone(), update.clone()))
                }
                _ => None,
            }
        };
        let Some((url, secret, update)) = next else {
            notified.await;
            continue;
        };
        let mut request = emulator.http.post(&url).json(&update);
        if let Some(secret) = &secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        let outcome = match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!(
                "Wrong response from the webhook: {}",
                response.status()
            )),
            Err(error) if error.is_connect() => Err("Connection refused".to_owned()),
            Err(error) if error.is_timeout() => Err("Timeout expired".to_owned()),
            Err(_) => Err("Failed to send the request".to_owned()),
        };
        let mut world = emulator.world.lock().await;
        match outcome {
            Ok(()) => {
                backoff = Duration::from_millis(100);
                // Confirm it, unless the webhook changed or the queue was dropped meanwhile.
                if world.pending.front().map(|u| &u["update_id"]) == Some(&update["update_id"]) {
                    world.pending.pop_front();
                }
            }
            Err(message) => {
                if let Some(hook) = world.webhook.as_mut() {
                    hook.last_error = Some((now_secs(), message));
                }
                drop(world);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
