//! The Dossier Telegram bot. It talks to the Bot API (Telegram's, or the emulator's) and to the
//! Dossier server's API over signed calls; it has no database, object-store or vector driver.
//!
//! Updates arrive by long polling (default) or by webhook. Either way each update id is claimed
//! through the API before it is handled and marked done after, so a restarted bot neither
//! skips one nor handles a finished one again, and updates of one chat are handled in order. Sending goes through `pacer::Pacer`, which keeps
//! under Telegram's rates and, on a 429, waits `retry_after` and retries.

pub mod api;
pub mod ask;
pub mod config;
pub mod documents;
pub mod handlers;
pub mod i18n;
pub mod journal;
pub mod lease;
pub mod link;
pub mod metrics;
pub mod notify;
pub mod pacer;
pub mod polling;
pub mod push;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use teloxide::prelude::*;
use teloxide::types::{BotCommand, MenuButton, WebAppInfo};
use tokio_util::sync::CancellationToken;

pub use config::{Config, Mode};

/// How long in-flight handlers may run after a shutdown request.
pub const DRAIN: Duration = Duration::from_secs(2);

/// What handlers need.
pub struct Ctx {
    pub bot: Bot,
    pub pacer: pacer::Pacer,
    pub api: api::Api,
    pub public_url: url::Url,
    pub stats: Stats,
    /// Largest file downloaded from Telegram.
    pub max_file_bytes: u64,
    /// Status messages of albums being received.
    pub albums: documents::Albums,
    /// NATS and the environment, once connected: growing answers arrive there.
    pub answers: std::sync::OnceLock<(async_nats::Client, String)>,
    /// This process in claims of updates and notifications (its pid and 64 random bits): what
    /// it claimed and did not finish is taken over by the next process.
    pub holder: String,
    /// This bot's Telegram id (the token's prefix): update ids are numbered per bot, and so
    /// are their claims.
    pub bot_id: i64,
    /// Messages sent and not yet recorded through the API (see `journal`); none if off.
    pub journal: Option<journal::Journal>,
    /// Notification ids this process is handling (a redelivery meanwhile waits its turn).
    pub notifying: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Per-update handling times, for `make bench` (bounded; oldest dropped).
#[derive(Default)]
pub struct Stats {
    samples: std::sync::Mutex<std::collections::VecDeque<Duration>>,
}

impl Stats {
    const CAPACITY: usize = 100_000;

    pub fn record(&self, took: Duration) {
        if let Ok(mut samples) = self.samples.lock() {
            if samples.len() == Self::CAPACITY {
                samples.pop_front();
            }
            samples.push_back(took);
        }
    }

    /// Takes the recorded samples.
    pub fn drain(&self) -> Vec<Duration> {
        self.samples
            .lock()
            .map(|mut samples| samples.drain(..).collect())
            .unwrap_or_default()
    }
}

impl Ctx {
    pub fn mini_app_url(&self, page: &str) -> url::Url {
        self.public_url
            .join(page)
            .unwrap_or_else(|_| self.public_url.clone())
    }
}

fn commands(lang: i18n::Lang) -> Vec<BotCommand> {
    use i18n::Lang::{En, Ru};
    let describe = |en: &str, ru: &str| match lang {
        En => en.to_owned(),
        Ru => ru.to_owned(),
    };
    vec![
        BotCommand::new(
            "start",
            describe("Start and link your account", "Начать и связать аккаунт"),
        ),
        BotCommand::new("docs", describe("Your documents", "Ваши документы")),
        BotCommand::new(
            "ask",
            describe("Ask about your documents", "Вопрос по документам"),
        ),
        BotCommand::new(
            "settings",
            describe("Settings and notifications", "Настройки и уведомления"),
        ),
        BotCommand::new("help", describe("What this bot can do", "Что умеет бот")),
        BotCommand::new(
            "unlink",
            describe(
                "Unlink this chat from your account",
                "Отвязать этот чат от аккаунта",
            ),
        ),
    ]
}

/// Builds the Bot API client, its pacer (the configured rates) and the API client.
pub fn context(config: &Config) -> anyhow::Result<(Bot, Arc<Ctx>)> {
    // teloxide's default client gives up after 17 s, shorter than a long poll: every idle poll
    // would fail and back off. Allow the poll's own timeout plus a margin.
    let http = teloxide::net::default_reqwest_settings()
        .timeout(config.poll_timeout + Duration::from_secs(15))
        .build()
        .context("failed to build the Bot API client")?;
    let mut raw = Bot::with_client(config.token.expose(), http);
    if let Some(url) = &config.bot_api_url {
        raw = raw.set_api_url(url.clone());
    }
    let api = api::Api::new(
        config.api_url.clone(),
        config.service.clone(),
        config.service_secret.clone(),
    )?
    .retrying_for(config.api_retry_for);
    let journal = match &config.journal_dir {
        Some(dir) => Some(
            journal::Journal::open(dir, journal::bot_id(&config.token.expose()))
                .with_context(|| format!("cannot open the journal in {}", dir.display()))?,
        ),
        None => None,
    };
    Ok((
        raw.clone(),
        Arc::new(Ctx {
            bot: raw,
            pacer: pacer::Pacer::new(config.per_chat_per_sec, config.overall_per_sec),
            api,
            public_url: config.public_url.clone(),
            stats: Stats::default(),
            max_file_bytes: config.max_file_bytes,
            albums: documents::Albums::default(),
            answers: std::sync::OnceLock::new(),
            holder: holder_id(),
            bot_id: i64::try_from(journal::bot_id(&config.token.expose())).unwrap_or(0),
            journal,
            notifying: std::sync::Mutex::default(),
        }),
    ))
}

/// `{pid}-{16 hex digits}`: unique per process, and readable in the claims tables.
pub fn holder_id() -> String {
    let mut id = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
    format!("{}-{}", std::process::id(), hex::encode(id))
}

/// Registers the command menu (English by default, Russian for Russian-speaking users) and the
/// menu button that opens the Mini App.
pub async fn set_up(raw: &Bot, ctx: &Ctx) -> anyhow::Result<()> {
    raw.set_my_commands(commands(i18n::Lang::En))
        .await
        .context("failed to register the command menu")?;
    raw.set_my_commands(commands(i18n::Lang::Ru))
        .language_code("ru")
        .await
        .context("failed to register the Russian command menu")?;
    let menu = MenuButton::WebApp {
        text: i18n::Text::MenuButton.render(i18n::Lang::En),
        web_app: WebAppInfo {
            url: ctx.mini_app_url("/miniapp"),
        },
    };
    // Telegram refuses a Mini App without HTTPS; the bot still works without the menu button.
    if let Err(error) = raw.set_chat_menu_button().menu_button(menu).await {
        tracing::warn!(%error, "the menu button (Mini App) could not be set; is public_url HTTPS?");
    }
    Ok(())
}

/// How long the bot waits at start-up for the Bot API or NATS (restarting, or started after
/// the bot) before it gives up.
pub const START_WAIT: Duration = Duration::from_secs(60);

/// Runs `attempt` until it succeeds, retrying every second for up to `START_WAIT` (or until
/// `shutdown`).
async fn until_up<T, E, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> anyhow::Result<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + START_WAIT;
    let mut logged = false;
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{what} could not be reached for {START_WAIT:?}: {error}");
        }
        if !logged {
            tracing::warn!(%error, "{what} cannot be reached yet; waiting");
            logged = true;
        }
        tokio::select! {
            () = shutdown.cancelled() => anyhow::bail!("stopped while waiting for {what}"),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Runs the bot until `shutdown` is cancelled; in-flight handlers get `DRAIN` to finish.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<Arc<Ctx>> {
    let (raw, ctx) = context(&config)?;
    // Health and metrics answer from the start, also while the Bot API is still unreachable.
    // Owned by this future, like every task below: a dropped bot leaves nothing running.
    let mut metrics = tokio::task::JoinSet::new();
    if let Some(addr) = config.metrics_listen {
        let shutdown = shutdown.clone();
        metrics.spawn(async move {
            if let Err(error) = metrics::serve(addr, shutdown).await {
                tracing::warn!(error = ?error, "no /metrics and /healthz");
            }
        });
    }
    // What the bot needs may be (re)starting too: each is waited for, not given up on at once.
    let me = until_up("the Bot API", &shutdown, || raw.get_me().send()).await?;
    // Update claims are keyed by the bot's id, taken from the token: it must be the bot's.
    anyhow::ensure!(
        i64::try_from(me.id.0).ok() == Some(ctx.bot_id),
        "the bot token's id ({}) is not the bot's id from getMe ({})",
        ctx.bot_id,
        me.id.0
    );
    tracing::info!(username = %me.username(), mode = ?config.mode, "bot started");
    until_up("the Bot API (command menu)", &shutdown, || {
        set_up(&raw, &ctx)
    })
    .await?;
    let nats = match &config.nats {
        Some(nats) => Some((
            until_up("NATS", &shutdown, || {
                async_nats::ConnectOptions::new()
                    .name("dossier-bot")
                    .connection_timeout(Duration::from_secs(5))
                    .connect(&nats.url)
            })
            .await?,
            nats,
        )),
        None => None,
    };
    if let Some((client, nats)) = &nats {
        let _ = ctx.answers.set((client.clone(), nats.env.clone()));
    }
    // Push-link requests and notifications arrive over NATS while updates are handled. In a
    // set owned by this future: dropped (the process ending), they end with it.
    let mut workers = tokio::task::JoinSet::new();
    if let Some((client, nats)) = &nats {
        workers.spawn(push::run(
            ctx.clone(),
            client.clone(),
            nats.env.clone(),
            shutdown.clone(),
        ));
        workers.spawn(notify::run(
            ctx.clone(),
            client.clone(),
            nats.env.clone(),
            shutdown.clone(),
        ));
        workers.spawn(ask::run_sends(
            ctx.clone(),
            client.clone(),
            nats.env.clone(),
            shutdown.clone(),
        ));
    }
    let served = match &config.mode {
        Mode::Polling => {
            let lease = match &nats {
                Some((client, nats)) => Some(
                    until_up("the NATS lease bucket", &shutdown, || {
                        lease::Lease::new(client.clone(), &nats.env, nats.lease_ttl, nats.replicas)
                    })
                    .await?,
                ),
                None => None,
            };
            polling::run_with_lease(
                raw,
                ctx.clone(),
                config.poll_timeout,
                shutdown.clone(),
                lease,
            )
            .await
        }
        Mode::Webhook(hook) => webhook::run(raw, ctx.clone(), hook.clone(), shutdown.clone()).await,
    };
    shutdown.cancel();
    while workers.join_next().await.is_some() {}
    while metrics.join_next().await.is_some() {}
    served?;
    tracing::info!("bot stopped");
    Ok(ctx)
}
