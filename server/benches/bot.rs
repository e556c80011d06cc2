//! `make bench`: the bot's throughput and latency through the Bot API emulator, with the real
//! server (its API, PostgreSQL) behind it. The emulator's and the bot's rate limits are lifted
//! so the figures measure the bot, not Telegram's flood limits.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Scratch, report};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "123456:emulator-token";
const SECRET: &str = "bench-bot-secret-bench-bot-secret-0123456789";
const CHATS: i64 = 100;
const UPDATES: i64 = 4_000;

async fn listen() -> anyhow::Result<(tokio::net::TcpListener, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((listener, url))
}

async fn total_sent(http: &reqwest::Client, emulator: &str) -> anyhow::Result<usize> {
    let mut total = 0;
    for chat in 0..CHATS {
        let sent: Vec<Value> = http
            .get(format!("{emulator}/control/chats/{}/sent", 10_000 + chat))
            .send()
            .await?
            .json()
            .await?;
        total += sent.len();
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scratch = Scratch::create("bot").await?;
    let mut settings = scratch.settings();
    settings.telegram_bot_token = Some(TOKEN.to_owned().into());
    settings.services.insert(
        "bot".into(),
        app::config::ServiceSettings {
            secret: SecretString::from(SECRET),
            permissions: vec!["users:read".into(), "telegram:updates".into()],
        },
    );
    let state = server::build_state(settings).await?;
    let (listener, api_url) = listen().await?;
    let router = server::router(state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let (listener, emulator) = listen().await?;
    let config = tgemu::Config {
        limits: tgemu::Limits {
            per_chat_per_sec: 1_000_000,
            overall_per_sec: 1_000_000,
            ..tgemu::Limits::default()
        },
        ..tgemu::Config::default()
    };
    tokio::spawn(async move { axum::serve(listener, tgemu::router(config)).await });

    let bot_config = bot::Config {
        token: bot::config::Token::new(TOKEN.into()),
        bot_api_url: Some(url::Url::parse(&format!("{emulator}/"))?),
        api_url: url::Url::parse(&api_url)?,
        public_url: url::Url::parse("http://localhost:3000")?,
        service: "bot".into(),
        service_secret: SecretString::from(SECRET),
        mode: bot::Mode::Polling,
        per_chat_per_sec: 1_000_000,
        overall_per_sec: 1_000_000,
        poll_timeout: Duration::from_secs(5),
        nats: None,
        max_file_bytes: 20 * 1024 * 1024,
        metrics_listen: None,
        api_retry_for: bot::api::RETRY_FOR,
        journal_dir: None,
    };
    let shutdown = CancellationToken::new();
    let (raw, ctx) = bot::context(&bot_config)?;
    bot::set_up(&raw, &ctx).await?;
    let polling = tokio::spawn(bot::polling::run(
        raw,
        ctx.clone(),
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    let http = reqwest::Client::new();

    // Warm-up: every chat once (connections, the first rows of each Telegram account).
    for chat in 0..CHATS {
        http.post(format!(
            "{emulator}/control/users/{}/messages",
            10_000 + chat
        ))
        .json(&json!({"text": "/help"}))
        .send()
        .await?;
    }
    while total_sent(&http, &emulator).await? < CHATS as usize {
        tokio::task::yield_now().await;
    }
    ctx.stats.drain();

    // Throughput: a backlog of updates across many chats, injected as fast as possible.
    let started = Instant::now();
    let injectors: Vec<_> = (0..8)
        .map(|worker| {
            let http = http.clone();
            let emulator = emulator.clone();
            tokio::spawn(async move {
                let mut n = worker;
                while n < UPDATES {
                    let chat = 10_000 + n % CHATS;
                    http.post(format!("{emulator}/control/users/{chat}/messages"))
                        .json(&json!({"text": format!("/x{n}")}))
                        .send()
                        .await?;
                    n += 8;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for injector in injectors {
        injector.await??;
    }
    let expected = (CHATS + UPDATES) as usize;
    loop {
        if total_sent(&http, &emulator).await? >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "bot throughput (emulator + API + PG, {CHATS} chats)   {UPDATES} updates in {elapsed:.2?} = {:.0} updates/s",
        UPDATES as f64 / elapsed.as_secs_f64()
    );
    report(
        "bot time per update (claim excl., hello + reply)",
        ctx.stats.drain(),
    );

    // Latency: one update at a time, from injection to the reply being visible.
    let mut samples = Vec::new();
    for n in 0..500 {
        let chat = 10_000 + n % CHATS;
        let before = http
            .get(format!("{emulator}/control/chats/{chat}/sent"))
            .send()
            .await?
            .json::<Vec<Value>>()
            .await?
            .len();
        let t0 = Instant::now();
        http.post(format!("{emulator}/control/users/{chat}/messages"))
            .json(&json!({"text": "/help"}))
            .send()
            .await?;
        loop {
            let now = http
                .get(format!("{emulator}/control/chats/{chat}/sent"))
                .send()
                .await?
                .json::<Vec<Value>>()
                .await?
                .len();
            if now > before {
                break;
            }
        }
        samples.push(t0.elapsed());
    }
    report("update → reply, end to end, one at a time", samples);
    report("bot time per update, one at a time", ctx.stats.drain());

    shutdown.cancel();
    polling.await??;
    scratch.drop_db(state).await?;
    Ok(())
}
