//! Long polling: no update skipped, none handled again once finished, across restarts and
//! crashes.
//!
//! Each batch from getUpdates is claimed through the API by this process (`Ctx::holder`):
//! new ids, and ids a previous process claimed and did not finish (it was killed), are
//! handled; finished ones are skipped. Each update is marked done once handled, chats in
//! parallel, each chat in order; the batch is then confirmed by the next getUpdates' offset,
//! up to the first update that could not be marked done (it is fetched and claimed again).
//! On shutdown the current batch gets `DRAIN` to finish and the offset is confirmed before
//! the process exits. If the API cannot be reached, nothing is claimed or confirmed: the batch
//! comes again on the next poll.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde_json::json;
use teloxide::ApiError as TgApiError;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::AllowedUpdate;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use app::error::ApiError;
use app::telegram::{ClaimedUpdate, UpdateClaims};

use crate::{Ctx, DRAIN, handlers};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A batch after its claim.
pub struct Claimed {
    /// To handle now, each with what an earlier attempt left (if one was cut short).
    pub handle: Vec<(Update, ClaimedUpdate)>,
    /// Being handled by another live process (webhook replicas only): ask again later.
    pub busy: usize,
}

/// Claims the updates through the API; `None` when the API cannot say (retry later).
/// `takeover_after_secs`: see `telegram/updates/claim` (0 for the one polling process).
pub async fn claim(ctx: &Ctx, updates: Vec<Update>, takeover_after_secs: u32) -> Option<Claimed> {
    let ids: Vec<i64> = updates.iter().map(|u| i64::from(u.id.0)).collect();
    match ctx
        .api
        .call::<_, UpdateClaims>(
            "telegram/updates/claim",
            None,
            &json!({
                "bot_id": ctx.bot_id,
                "update_ids": ids,
                "holder": ctx.holder,
                "takeover_after_secs": takeover_after_secs,
            }),
        )
        .await
    {
        Ok(claims) => {
            if !claims.done.is_empty() {
                tracing::info!(
                    bot_id = ctx.bot_id,
                    skipped = ?claims.done,
                    "updates handled before (by this bot, before a restart) were skipped"
                );
            }
            let resumed = claims.claimed.iter().filter(|c| c.attempt > 1).count();
            if resumed > 0 {
                tracing::info!(resumed, "updates cut short by a restart are handled again");
            }
            let busy = ids.len() - claims.claimed.len() - claims.done.len();
            let mut claimed: std::collections::HashMap<i64, ClaimedUpdate> = claims
                .claimed
                .into_iter()
                .map(|c| (c.update_id, c))
                .collect();
            let handle = updates
                .into_iter()
                .filter_map(|u| claimed.remove(&i64::from(u.id.0)).map(|c| (u, c)))
                .collect();
            Some(Claimed { handle, busy })
        }
        Err(error) => {
            tracing::warn!(%error, "cannot claim updates; they will be fetched again");
            None
        }
    }
}

/// Marks an update handled (retried while the API is unavailable); false if it could not be.
async fn finish(ctx: &Ctx, update_id: i64) -> bool {
    let done: Result<(), ApiError> = ctx
        .api
        .call_retrying(
            "telegram/updates/done",
            None,
            &json!({ "bot_id": ctx.bot_id, "update_ids": [update_id] }),
        )
        .await;
    match done {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(update_id, %error, "an update could not be marked handled");
            false
        }
    }
}

/// Handles a batch: chats in parallel, each chat's updates in order, each marked done once
/// handled. A handler that panics is logged and its update marked done (it would panic again).
/// When `shutdown` fires, the batch gets `DRAIN` to finish; what is still running after that
/// is aborted. Returns the ids left unfinished (aborted, or not marked done because the API
/// stayed away), in ascending order: they must be fetched and claimed again.
pub async fn handle_batch(
    ctx: &Arc<Ctx>,
    updates: Vec<(Update, ClaimedUpdate)>,
    shutdown: &CancellationToken,
) -> Vec<i64> {
    let mut unfinished: BTreeSet<i64> = updates.iter().map(|(_, c)| c.update_id).collect();
    let mut by_chat: BTreeMap<i64, Vec<(Update, ClaimedUpdate)>> = BTreeMap::new();
    for (update, claim) in updates {
        by_chat
            .entry(handlers::chat_of(&update))
            .or_default()
            .push((update, claim));
    }
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let mut tasks = JoinSet::new();
    for (_, chat_updates) in by_chat {
        let ctx = ctx.clone();
        let finished = finished_tx.clone();
        tasks.spawn(async move {
            for (update, claim) in chat_updates {
                let update_id = claim.update_id;
                let handled = AssertUnwindSafe(handlers::handle(&ctx, update, &claim))
                    .catch_unwind()
                    .await;
                if handled.is_err() {
                    tracing::error!(update_id, "an update's handler panicked");
                }
                if finish(&ctx, update_id).await {
                    let _ = finished.send(update_id);
                }
            }
        });
    }
    drop(finished_tx);
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
    while let Ok(update_id) = finished_rx.try_recv() {
        unfinished.remove(&update_id);
    }
    unfinished.into_iter().collect()
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
        let Some(claimed) = claim(&ctx, updates, 0).await else {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        if claimed.busy > 0 {
            // Cannot happen for the one poller (it takes over anything unfinished); never
            // confirm past updates nobody has handled.
            tracing::warn!(
                busy = claimed.busy,
                "updates held by another process; polling again"
            );
            continue;
        }
        let unfinished = handle_batch(&ctx, claimed.handle, &shutdown).await;
        // Confirm up to the first update left unfinished: it comes again with the next batch
        // and is claimed again; those after it that were finished are skipped as done.
        let next = unfinished
            .first()
            .map_or(i64::from(last) + 1, |&first| first);
        if !unfinished.is_empty() {
            tracing::warn!(
                unfinished = unfinished.len(),
                "updates not marked handled are fetched again"
            );
        }
        offset = i32::try_from(next).unwrap_or(i32::MAX);
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
        // Renewed by a task that ends with this future (a process that dies renews nothing).
        let mut holder = JoinSet::new();
        holder.spawn({
            let lease = lease.clone();
            let release = release.clone();
            let scope = scope.clone();
            async move { lease.hold(revision, release, scope).await }
        });
        let polled = run(raw.clone(), ctx.clone(), timeout, scope).await;
        // Released only after the last batch was confirmed, so a standby starts after it.
        release.cancel();
        while holder.join_next().await.is_some() {}
        polled?;
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}
