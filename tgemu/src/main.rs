use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let addr = std::env::var("TGEMU_ADDR").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))?;
    tracing::info!(%addr, "Telegram Bot API emulator listening");
    axum::serve(listener, tgemu::router(tgemu::BotIdentity::default()))
        .await
        .context("emulator failed")
}
