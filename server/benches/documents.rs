//! `make bench`: documents through the whole system — a file sent to the bot in the emulator,
//! downloaded by the bot, uploaded to the API, processed by the JetStream pipeline (poppler,
//! Tesseract, the embedding model, PostgreSQL) and announced back in the chat. The emulator's
//! and the bot's rate limits are lifted so the figures measure Dossier, not Telegram's limits.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Scratch, percentile};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "123456:emulator-token";
const SECRET: &str = "bench-bot-secret-bench-bot-secret-0123456789";
const CHAT: i64 = 4242;

async fn listen() -> anyhow::Result<(tokio::net::TcpListener, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((listener, url))
}

struct Chat {
    http: reqwest::Client,
    emulator: String,
}

impl Chat {
    /// The bot's messages in the chat so far whose text satisfies `matches`.
    async fn bot_texts(&self, matches: impl Fn(&str) -> bool) -> anyhow::Result<usize> {
        let history: Vec<Value> = self
            .http
            .get(format!("{}/control/chats/{CHAT}/history", self.emulator))
            .send()
            .await?
            .json()
            .await?;
        Ok(history
            .iter()
            .filter(|m| m["from"]["is_bot"] == true)
            .filter(|m| m["text"].as_str().is_some_and(&matches))
            .count())
    }

    async fn processed(&self) -> anyhow::Result<usize> {
        self.bot_texts(|t| t.contains(" processed — ")).await
    }

    /// The bot's answers to questions so far.
    async fn answers(&self) -> anyhow::Result<usize> {
        self.bot_texts(|t| t.contains("Sources") || t.contains("could not find this"))
            .await
    }

    async fn say(&self, text: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/control/users/{CHAT}/messages", self.emulator))
            .json(&json!({ "text": text, "first_name": "Bench" }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the emulator refused a message"
        );
        Ok(())
    }

    async fn send(&self, kind: &str, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/control/users/{CHAT}/{kind}", self.emulator))
            .json(&json!({
                "file_name": name,
                "content_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
                "first_name": "Bench",
            }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the emulator refused a file"
        );
        Ok(())
    }

    /// Sends one file and waits for its "processed" notification.
    async fn round_trip(&self, kind: &str, name: &str, bytes: &[u8]) -> anyhow::Result<Duration> {
        let before = self.processed().await?;
        let started = Instant::now();
        self.send(kind, name, bytes).await?;
        let deadline = started + Duration::from_secs(120);
        while self.processed().await? == before {
            anyhow::ensure!(Instant::now() < deadline, "no notification for {name}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(started.elapsed())
    }
}

fn invoice_pages(n: usize, pages: usize) -> Vec<String> {
    (0..pages)
        .map(|p| {
            format!(
                "INVOICE\nInvoice No. BENCH-{n}-{p}\nDate: 12.03.2026\nConsulting services {n}{p}0.00 EUR\nVAT 19% 190.00 EUR\nTotal 1,190.00 EUR\nPayment due: 2026-04-12\nIBAN: DE89 3704 0044 0532 0130 00\n\nThe services were rendered in March as agreed in the framework contract. Payment is due within thirty days of the invoice date."
            )
        })
        .collect()
}

fn line(name: &str, samples: &mut [Duration]) {
    let p50 = percentile(samples, 0.50);
    let p95 = percentile(samples, 0.95);
    let max = percentile(samples, 1.0);
    println!(
        "{name:<52} n={:<4} p50={:>9.3?} p95={:>9.3?} max={:>9.3?}",
        samples.len(),
        p50,
        p95,
        max
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scratch = Scratch::create("documents").await?;
    let mut settings = scratch.settings();
    settings.env = format!("bench-docs-{}", std::process::id());
    settings.data_dir = std::env::temp_dir().join(&settings.env);
    if let Some(dir) = std::env::var_os("DOSSIER_MODEL_DIR") {
        settings.model_dir = dir.into();
    }
    settings.telegram_bot_token = Some(TOKEN.to_owned().into());
    settings.services.insert(
        "bot".into(),
        app::config::ServiceSettings {
            secret: SecretString::from(SECRET),
            permissions: vec![
                "users:read".into(),
                "telegram:updates".into(),
                "documents:upload".into(),
                "documents:read".into(),
                "rag:query".into(),
            ],
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
    let shutdown = CancellationToken::new();
    let workers = server::pipeline::start(state.clone(), shutdown.clone()).await?;
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
        nats: Some(bot::config::Nats {
            url: state.settings.nats_url.clone(),
            env: state.settings.env.clone(),
            lease_ttl: Duration::from_secs(10),
            replicas: 1,
        }),
        max_file_bytes: 20 * 1024 * 1024,
        metrics_listen: None,
        api_retry_for: bot::api::RETRY_FOR,
        journal_dir: None,
    };
    let bot = tokio::spawn(bot::run(bot_config, shutdown.clone()));

    // One linked person.
    let user = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, email_normalized) VALUES ($1, 'bench@example.org', 'bench@example.org')")
        .bind(user)
        .execute(&state.db)
        .await?;
    sqlx::query(
        "INSERT INTO telegram_accounts (telegram_user_id, user_id, chat_id, first_name, language_code, linked_at)
         VALUES ($1, $2, $1, 'Bench', 'en', now())",
    )
    .bind(CHAT)
    .bind(user)
    .execute(&state.db)
    .await?;
    let chat = Chat {
        http: reqwest::Client::new(),
        emulator,
    };

    // Warm-up: loads the model, fills connection pools.
    chat.round_trip(
        "documents",
        "warm.pdf",
        &testkit::text_pdf(&[&invoice_pages(999, 1)[0]]),
    )
    .await?;

    let mut samples = Vec::new();
    for n in 0..20 {
        let pages = invoice_pages(n, 1);
        let pdf = testkit::text_pdf(&[&pages[0]]);
        samples.push(
            chat.round_trip("documents", &format!("invoice-{n}.pdf"), &pdf)
                .await?,
        );
    }
    line(
        "text PDF (1 page) sent → \"processed\" notification",
        &mut samples,
    );

    let mut samples = Vec::new();
    for n in 0..5 {
        let image = testkit::render_text(
            &[
                "RECEIPT",
                &format!("Receipt No. {n}-{}", std::process::id()),
                "Cashier: Anna",
                "Coffee 3.50 EUR",
                "Total 3.50 EUR",
                "Thank you for your visit",
            ],
            &testkit::Render {
                noise: true,
                ..testkit::Render::default()
            },
        );
        samples.push(
            chat.round_trip("photos", &format!("scan-{n}.png"), &testkit::png(&image))
                .await?,
        );
    }
    line("scanned page (PNG, OCR) sent → \"processed\"", &mut samples);

    // Sustained: a burst of 3-page text PDFs, all in flight at once.
    const DOCS: usize = 30;
    const PAGES: usize = 3;
    let before = chat.processed().await?;
    let started = Instant::now();
    for n in 0..DOCS {
        let pages = invoice_pages(1000 + n, PAGES);
        let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
        chat.send(
            "documents",
            &format!("batch-{n}.pdf"),
            &testkit::text_pdf(&refs),
        )
        .await?;
    }
    while chat.processed().await? < before + DOCS {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the burst did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "sustained: {DOCS} × {PAGES}-page text PDFs in {elapsed:.2?} = {:.1} pages/s, {:.2} documents/s",
        (DOCS * PAGES) as f64 / elapsed.as_secs_f64(),
        DOCS as f64 / elapsed.as_secs_f64()
    );

    // Questions in the chat: a message sent → the answer visible (extractive, with sources).
    // Each question is new, so no answer comes from the cache.
    let mut samples = Vec::new();
    for n in 0..20 {
        let before = chat.answers().await?;
        let started = Instant::now();
        chat.say(&format!("What is the total of invoice INV-{n}? ({n})"))
            .await?;
        while chat.answers().await? == before {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "no answer");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples.push(started.elapsed());
    }
    line("question sent → answer with sources visible", &mut samples);

    shutdown.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    let _ = bot.await;
    let data_dir = state.settings.data_dir.clone();
    scratch.drop_db(state).await?;
    let _ = std::fs::remove_dir_all(data_dir);
    Ok(())
}
