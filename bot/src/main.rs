//! The Dossier Telegram bot. It talks to the Bot API (Telegram's, or the emulator's) and to
//! the Dossier server's API; it has no database, object-store or vector driver.

use anyhow::Context;
use teloxide::prelude::*;
use teloxide::utils::command::BotCommands;

#[derive(BotCommands, Clone, Debug)]
#[command(rename_rule = "lowercase")]
enum Command {
    /// Link this chat to your Dossier account
    Start(String),
    /// What this bot can do
    Help,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let token = std::env::var("TELEGRAM_BOT_TOKEN").context("TELEGRAM_BOT_TOKEN is not set")?;
    let mut bot = Bot::new(token);
    if let Ok(api_url) = std::env::var("DOSSIER_BOT_API_URL") {
        let url = url::Url::parse(&api_url).context("DOSSIER_BOT_API_URL is not a URL")?;
        bot = bot.set_api_url(url);
    }
    let me = bot.get_me().await.context("failed to reach the Bot API")?;
    tracing::info!(username = %me.username(), "bot started");
    bot.set_my_commands(Command::bot_commands())
        .await
        .context("failed to register the command menu")?;

    let handler = Update::filter_message()
        .filter_command::<Command>()
        .endpoint(answer);
    Dispatcher::builder(bot, handler)
        .enable_ctrlc_handler()
        .build()
        .dispatch()
        .await;
    Ok(())
}

async fn answer(bot: Bot, message: Message, command: Command) -> ResponseResult<()> {
    let text = match command {
        Command::Start(payload) => {
            tracing::info!(with_payload = !payload.is_empty(), "start");
            Command::descriptions().to_string()
        }
        Command::Help => Command::descriptions().to_string(),
    };
    bot.send_message(message.chat.id, text).await?;
    Ok(())
}
