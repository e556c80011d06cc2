use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let addr = std::env::var("TGEMU_ADDR").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let mut config = tgemu::Config {
        limits: tgemu::Limits::from_env(),
        ..tgemu::Config::default()
    };
    if let Ok(token) = std::env::var("TGEMU_TOKEN") {
        config.bot.id = token
            .split(':')
            .next()
            .and_then(|id| id.parse().ok())
            .context("TGEMU_TOKEN must look like <bot id>:<secret>")?;
        config.bot.token = token;
    }
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))?;
    tracing::info!(%addr, "Telegram Bot API emulator listening (chat page at /)");
    axum::serve(listener, tgemu::router(config))
        .await
        .context("emulator failed")
}
