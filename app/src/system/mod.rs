//! System status: what the home page shows and what `/readyz` reports.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The health of the parts this server depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub environment: String,
    pub database: bool,
    pub nats: bool,
    pub nats_server_version: Option<String>,
}

impl StatusReport {
    pub fn ready(&self) -> bool {
        self.database && self.nats
    }
}

#[cfg(feature = "ssr")]
pub mod service {
    use std::time::Duration;

    use super::StatusReport;
    use crate::state::AppState;

    const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

    /// Probes PostgreSQL and NATS, each bounded by a timeout so a hung dependency reads as down.
    pub async fn probe(state: &AppState) -> StatusReport {
        let database = async {
            matches!(
                tokio::time::timeout(
                    PROBE_TIMEOUT,
                    sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db)
                )
                .await,
                Ok(Ok(1))
            )
        };
        // A JetStream account query is a real round trip (a flush only fills the socket's
        // buffer, which succeeds for a while after the server is gone) and proves JetStream.
        let nats = async {
            state.nats.connection_state() == async_nats::connection::State::Connected
                && matches!(
                    tokio::time::timeout(PROBE_TIMEOUT, state.jetstream.query_account()).await,
                    Ok(Ok(_))
                )
        };
        let (database, nats) = tokio::join!(database, nats);
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            environment: state.settings.env.clone(),
            database,
            nats,
            nats_server_version: nats.then(|| state.nats.server_info().version),
        }
    }
}

/// Reports whether the server's dependencies answer. Public: it reveals nothing private.
#[server(prefix = "/api", client = crate::client::ApiClient, endpoint = "system/status")]
pub async fn system_status() -> Result<StatusReport, ApiError> {
    crate::error::respond(
        async {
            let state = crate::state::app_state()?;
            Ok(service::probe(&state).await)
        }
        .await,
    )
}
