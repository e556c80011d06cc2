//! Long polling with exactly-once handling across graceful restarts.
//!
//! Each batch from getUpdates is claimed through the API (only ids never claimed before are
//! handled), handled with per-chat order (chats in parallel), and only then confirmed, by the
//! next getUpdates' offset. On shutdown the current batch gets `DRAIN` to finish and the offset
//! is confirmed before the process exits. If the API cannot be reached, nothing is claimed or
//! confirmed: the batch comes again on the next poll.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use teloxide::ApiError as TgApiError;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::AllowedUpdate;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Ctx, DRAIN, handlers};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Claims the updates through the API; `None` when the API cannot say (retry later).
pub async fn claim(ctx: &Ctx, updates: Vec<Update>) -> Option<Vec<Update>> {
    let ids: Vec<i64> = updates.iter().map(|u| i64::from(u.id.0)).collect();
    match ctx
        .api
        .call::<_, Vec<i64>>(
            "telegram/updates/claim",
            None,
            &json!({ "update_ids": ids }),
        )
        .await
    {
        Ok(claimed) => {
            let claimed: std::collections::HashSet<i64> = claimed.into_iter().collect();
            let skipped = updates.len() - claimed.len();
            if skipped > 0 {
                tracing::info!(
                    skipped,
                    "updates already handled before a restart were skipped"
                );
            }
            Some(
                updates
                    .into_iter()
                    .filter(|u| claimed.contains(&i64::from(u.id.0)))
                    .collect(),
            )
        }
        Err(error) => {
            tracing::warn!(%error, "cannot claim updates; they will be fetched again");
            None
        }
    }
}

/// Handles a batch: chats in parallel, each chat's updates in order. When `shutdown` fires,
/// the batch gets `DRAIN` to finish; what is still running after that is aborted.
pub async fn handle_batch(ctx: &Arc<Ctx>, updates: Vec<Update>, shutdown: &CancellationToken) {
    let mut by_chat: BTreeMap<i64, Vec<Update>> = BTreeMap::new();
    for update in updates {
        by_chat
            .entry(handlers::chat_of(&update))
            .or_default()
            .push(update);
    }
    let mut tasks = JoinSet::new();
    for (_, chat_updates) in by_chat {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            for update in chat_updates {
                handlers::handle(&ctx, update).await;
            }
        });
    }
    let all = async { while tasks.join_next().await.is_some() {} };
    tokio::pin!(all);
    tokio::select! {
        () = &mut all => {}
        () = shutdown.cancelled() => {
            if tokio::time::timeout(DRAIN, &mut all).await.is_err() {
                tracing::warn!("handlers still running after the drain period were stopped");
            }
        }
    }
}

pub async fn run(
    raw: Bot,
    ctx: Arc<Ctx>,
    timeout: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Make sure no webhook is set, or getUpdates is refused.
    raw.delete_webhook().await?;
    let mut offset: i32 = 0;
    let mut backoff = Duration::from_millis(250);
    let timeout_secs = u32::try_from(timeout.as_secs()).unwrap_or(25);
    while !shutdown.is_cancelled() {
        let request = raw
            .get_updates()
            .offset(offset)
            .timeout(timeout_secs)
            .allowed_updates([AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
        let result = tokio::select! {
            () = shutdown.cancelled() => break,
            result = crate::metrics::observed(&request) => result,
        };
        let updates = match result {
            Ok(updates) => {
                backoff = Duration::from_millis(250);
                updates
            }
            Err(error) => {
                match &error {
                    RequestError::Api(TgApiError::TerminatedByOtherGetUpdates) => {
                        tracing::warn!("another instance is polling this bot; backing off");
                    }
                    _ => tracing::warn!(%error, "getUpdates failed; retrying"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let Some(last) = updates.last().map(|u| u.id.0) else {
            continue;
        };
        let Some(claimed) = claim(&ctx, updates).await else {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        handle_batch(&ctx, claimed, &shutdown).await;
        offset = i32::try_from(last).unwrap_or(i32::MAX).saturating_add(1);
    }
    // Confirm what was handled, so a restart does not fetch it again.
    if offset > 0
        && let Err(error) = raw.get_updates().offset(offset).limit(1).timeout(0).await
    {
        tracing::warn!(%error, "could not confirm the last handled updates");
    }
    Ok(())
}

/// Polls while this replica holds `lease` (always, without one); stands by otherwise.
pub async fn run_with_lease(
    raw: Bot,
    ctx: Arc<Ctx>,
    timeout: Duration,
    shutdown: CancellationToken,
    lease: Option<crate::lease::Lease>,
) -> anyhow::Result<()> {
    let Some(lease) = lease else {
        return run(raw, ctx, timeout, shutdown).await;
    };
    loop {
        let Some(revision) = lease.acquire(&shutdown).await else {
            return Ok(());
        };
        tracing::info!("this replica now polls Telegram");
        let scope = shutdown.child_token();
        let release = CancellationToken::new();
        let holder = tokio::spawn({
            let lease = lease.clone();
            let release = release.clone();
            let scope = scope.clone();
            async move { lease.hold(revision, release, scope).await }
        });
        let polled = run(raw.clone(), ctx.clone(), timeout, scope).await;
        // Released only after the last batch was confirmed, so a standby starts after it.
        release.cancel();
        let _ = holder.await;
        polled?;
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}
