use std::path::PathBuf;

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let file = std::env::var_os("DOSSIER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("dossier.toml"));
    let settings = server::settings::load(Some(&file))?;
    server::telemetry::init_tracing(settings.log_format);
    tracing::info!(env = %settings.env, "starting dossier server");
    let state = server::build_state(settings)
        .await
        .context("failed to start")?;
    server::serve(state).await
}
