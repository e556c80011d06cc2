//! Administration: the live NATS traffic page. Administrators are the first account, accounts
//! whose email is in `admin_emails`, and anyone an operator marks with `users.is_admin`.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[cfg(feature = "ssr")]
pub mod traffic;

/// Message rates of one subject, as seen by this server's subscription to every subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectRate {
    /// The environment: the subject's first token (`staging`, `production`, …), or `$KV`.
    pub env: String,
    /// The subject with id-like tokens folded to `*`, so the table stays bounded.
    pub subject: String,
    /// Messages per second over the last 10 seconds.
    pub per_sec: f64,
    /// Messages in the last 60 seconds.
    pub last_minute: u64,
    /// Messages since the counting started.
    pub total: u64,
}

/// How far behind one JetStream consumer (a pipeline stage, the bot's notification worker) is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerLag {
    pub stream: String,
    pub consumer: String,
    /// Messages the consumer has not been given yet.
    pub pending: u64,
    /// Given, not acknowledged yet.
    pub ack_pending: u64,
    pub redelivered: u64,
    /// Durable (named in config) rather than ephemeral.
    pub durable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficSnapshot {
    /// Busiest first.
    pub subjects: Vec<SubjectRate>,
    pub consumers: Vec<ConsumerLag>,
    /// Seconds since this server started counting.
    pub counting_for_secs: u64,
}

/// One snapshot of the traffic (the page then follows `/admin/traffic/events`). Administrators
/// only; starts the counting on first use.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "admin/traffic")]
pub async fn get_traffic() -> Result<TrafficSnapshot, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            let parts = crate::auth::principal::request_parts()?;
            traffic::authorize_admin(&state, &parts).await?;
            traffic::snapshot(&state).await
        }
        .await,
    )
}
