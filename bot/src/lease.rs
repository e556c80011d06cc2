//! One poller among several replicas: a lease in a NATS KV bucket (`{env}-bot-poller`, entries
//! expire after the TTL). The holder renews it every third of the TTL; the others stand by
//! and try again every quarter of it, so at most one replica calls getUpdates and a standby
//! takes over within a TTL of the holder dying (at once when it stops cleanly).

use std::time::Duration;

use async_nats::jetstream::kv;
use tokio_util::sync::CancellationToken;

const KEY: &str = "poller";

#[derive(Clone)]
pub struct Lease {
    store: kv::Store,
    me: String,
    ttl: Duration,
}

impl Lease {
    pub async fn new(
        client: async_nats::Client,
        env: &str,
        ttl: Duration,
        replicas: usize,
    ) -> anyhow::Result<Self> {
        let jetstream = async_nats::jetstream::new(client);
        let store = jetstream
            .create_or_update_key_value(kv::Config {
                bucket: format!("{env}-bot-poller"),
                description: "which bot replica polls Telegram".into(),
                history: 1,
                max_age: ttl,
                num_replicas: replicas,
                ..kv::Config::default()
            })
            .await?;
        Ok(Self {
            store,
            me: crate::holder_id(),
            ttl,
        })
    }

    /// Waits until this replica holds the lease; `None` if `shutdown` comes first.
    pub async fn acquire(&self, shutdown: &CancellationToken) -> Option<u64> {
        let mut announced = false;
        loop {
            match self.store.create(KEY, self.me.clone().into()).await {
                Ok(revision) => return Some(revision),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if !announced {
                        tracing::info!("another replica polls Telegram; standing by");
                        announced = true;
                    }
                }
                Err(error) => tracing::warn!(%error, "the poller lease cannot be taken"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(self.ttl / 4) => {}
            }
        }
    }

    /// Renews the lease until `release` fires (then gives it up at once) or a renewal fails
    /// (then cancels `lost`, so the polling stops).
    pub async fn hold(
        &self,
        mut revision: u64,
        release: CancellationToken,
        lost: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = release.cancelled() => {
                    let _ = self.store.delete_expect_revision(KEY, Some(revision)).await;
                    return;
                }
                () = tokio::time::sleep(self.ttl / 3) => {}
            }
            match self
                .store
                .update(KEY, self.me.clone().into(), revision)
                .await
            {
                Ok(next) => revision = next,
                Err(error) => {
                    tracing::warn!(%error, "the poller lease was lost; stopping polling");
                    lost.cancel();
                    return;
                }
            }
        }
    }
}
