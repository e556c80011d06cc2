//! The bot's configuration, read from the environment once at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

/// The bot token, never printed.
#[derive(Clone)]
pub struct Token(SecretString);

impl Token {
    pub fn new(token: String) -> Self {
        Self(SecretString::from(token))
    }

    pub fn expose(&self) -> String {
        self.0.expose_secret().to_owned()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Where this process listens for Telegram's POSTs.
    pub listen: SocketAddr,
    /// The public HTTPS URL Telegram posts to (ends in `/telegram/webhook`).
    pub url: url::Url,
    /// Sent by Telegram in `X-Telegram-Bot-Api-Secret-Token`; 1–256 of `A-Za-z0-9_-`.
    pub secret: SecretString,
}

/// NATS, for the poller lease among replicas (and, later, notifications).
#[derive(Clone, Debug)]
pub struct Nats {
    pub url: String,
    /// The environment name; prefixes the bucket.
    pub env: String,
    pub lease_ttl: Duration,
    /// JetStream replicas of the lease bucket (`DOSSIER_NATS_REPLICAS`, as the server's).
    pub replicas: usize,
}

#[derive(Clone, Debug)]
pub enum Mode {
    Polling,
    Webhook(WebhookConfig),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub token: Token,
    /// A Bot API server other than Telegram's (the emulator, or a local Bot API server).
    pub bot_api_url: Option<url::Url>,
    /// The Dossier server the bot calls.
    pub api_url: url::Url,
    /// The address people open (links and the Mini App).
    pub public_url: url::Url,
    pub service: String,
    pub service_secret: SecretString,
    pub mode: Mode,
    pub per_chat_per_sec: u32,
    pub overall_per_sec: u32,
    pub poll_timeout: Duration,
    /// Without NATS the bot polls alone (one replica) and sends no notifications.
    pub nats: Option<Nats>,
    /// Largest file the bot downloads from Telegram: 20 MB through Telegram's public Bot API;
    /// up to 2,000 MB with a local Bot API server.
    pub max_file_bytes: u64,
    /// Where `/metrics` and `/healthz` are served (`DOSSIER_BOT_METRICS_LISTEN`, default
    /// `127.0.0.1:3002`; `off` for none).
    pub metrics_listen: Option<SocketAddr>,
    /// How long calls that are safe to repeat are retried while the API is unavailable
    /// (`DOSSIER_BOT_API_RETRY_SECS`, default 60).
    pub api_retry_for: Duration,
    /// The local journal of messages sent and not yet recorded through the API
    /// (`DOSSIER_BOT_JOURNAL_DIR`, default `dossier-bot-journal` in the temporary directory;
    /// `off` for none). See `journal`.
    pub journal_dir: Option<std::path::PathBuf>,
}

/// Telegram's public Bot API lets a bot download files up to 20 MB.
pub const PUBLIC_BOT_API_MAX_FILE_MB: u32 = 20;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn url_var(name: &str, default: &str) -> anyhow::Result<url::Url> {
    let value = var(name).unwrap_or_else(|| default.to_owned());
    url::Url::parse(&value).with_context(|| format!("{name} is not a URL: {value:?}"))
}

fn number(name: &str, default: u32) -> anyhow::Result<u32> {
    match var(name) {
        None => Ok(default),
        Some(value) => value
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{name} must be a positive number")),
    }
}

pub fn valid_webhook_secret(secret: &str) -> bool {
    (1..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let token = var("TELEGRAM_BOT_TOKEN").context("TELEGRAM_BOT_TOKEN is not set")?;
        let service_secret = var("DOSSIER_BOT_SECRET")
            .context("DOSSIER_BOT_SECRET (the bot's service secret) is not set")?;
        if service_secret.len() < 32 {
            bail!("DOSSIER_BOT_SECRET must be at least 32 characters");
        }
        let mode = match var("DOSSIER_BOT_MODE").as_deref().unwrap_or("polling") {
            "polling" => Mode::Polling,
            "webhook" => {
                let secret = var("DOSSIER_BOT_WEBHOOK_SECRET")
                    .context("webhook mode needs DOSSIER_BOT_WEBHOOK_SECRET")?;
                if !valid_webhook_secret(&secret) {
                    bail!("DOSSIER_BOT_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -");
                }
                Mode::Webhook(WebhookConfig {
                    listen: var("DOSSIER_BOT_WEBHOOK_LISTEN")
                        .unwrap_or_else(|| "127.0.0.1:8443".into())
                        .parse()
                        .context("DOSSIER_BOT_WEBHOOK_LISTEN is not an address")?,
                    url: url_var("DOSSIER_BOT_WEBHOOK_URL", "")
                        .context("webhook mode needs DOSSIER_BOT_WEBHOOK_URL")?,
                    secret: SecretString::from(secret),
                })
            }
            other => bail!("DOSSIER_BOT_MODE must be polling or webhook, not {other:?}"),
        };
        let nats_replicas = number("DOSSIER_NATS_REPLICAS", 1)? as usize;
        if nats_replicas > 5 {
            bail!("DOSSIER_NATS_REPLICAS must be between 1 and 5");
        }
        Ok(Self {
            token: Token::new(token),
            bot_api_url: var("DOSSIER_BOT_API_URL")
                .map(|v| url::Url::parse(&v).context("DOSSIER_BOT_API_URL is not a URL"))
                .transpose()?,
            api_url: url_var("DOSSIER_API_URL", "http://127.0.0.1:3000")?,
            public_url: url_var("DOSSIER_PUBLIC_URL", "http://localhost:3000")?,
            service: var("DOSSIER_BOT_SERVICE").unwrap_or_else(|| "bot".into()),
            service_secret: SecretString::from(service_secret),
            mode,
            per_chat_per_sec: number("DOSSIER_BOT_PER_CHAT_PER_SEC", 1)?,
            overall_per_sec: number("DOSSIER_BOT_OVERALL_PER_SEC", 30)?,
            poll_timeout: Duration::from_secs(u64::from(number(
                "DOSSIER_BOT_POLL_TIMEOUT_SECS",
                25,
            )?)),
            nats: var("DOSSIER_NATS_URL").map(|url| Nats {
                url,
                env: var("DOSSIER_ENV").unwrap_or_else(|| "dev".into()),
                lease_ttl: Duration::from_secs(10),
                replicas: nats_replicas,
            }),
            max_file_bytes: {
                let mb = number("DOSSIER_BOT_MAX_FILE_MB", PUBLIC_BOT_API_MAX_FILE_MB)?;
                if mb > 2000 {
                    bail!(
                        "DOSSIER_BOT_MAX_FILE_MB must be at most 2000 (a local Bot API server's limit)"
                    );
                }
                u64::from(mb) * 1024 * 1024
            },
            metrics_listen: match var("DOSSIER_BOT_METRICS_LISTEN").as_deref() {
                Some("off") => None,
                Some(addr) => Some(
                    addr.parse()
                        .context("DOSSIER_BOT_METRICS_LISTEN is not an address (or off)")?,
                ),
                None => Some(SocketAddr::from(([127, 0, 0, 1], 3002))),
            },
            api_retry_for: Duration::from_secs(u64::from(number(
                "DOSSIER_BOT_API_RETRY_SECS",
                u32::try_from(crate::api::RETRY_FOR.as_secs()).unwrap_or(60),
            )?)),
            journal_dir: match var("DOSSIER_BOT_JOURNAL_DIR").as_deref() {
                Some("off") => None,
                Some(dir) => Some(dir.into()),
                None => Some(std::env::temp_dir().join("dossier-bot-journal")),
            },
        })
    }
}
