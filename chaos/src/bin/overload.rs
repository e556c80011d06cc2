//! Overload run: questions and uploads at a normal rate, then at ten times that rate, against
//! the real server (its own PostgreSQL and NATS). The server must shed the excess at once with
//! 503 `busy` (or 429 from a person's own limit), with `Retry-After`, keep the latency of what it
//! admits within 2× of normal, and keep its memory bounded; people asking in Telegram during
//! the overload get an answer or "busy", never silence. Exit status 1 otherwise.
//!
//! Settings (environment): `OVERLOAD_QUESTIONS_PER_SEC` (normal rate, 5), `OVERLOAD_SECS` (per
//! phase, 20), `OVERLOAD_PEOPLE` (200).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chaos::{Stack, number, percentiles, wait_until};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::Lcg;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("overload: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// One call's outcome.
#[derive(Debug, Clone)]
struct Outcome {
    status: u16,
    code: Option<String>,
    retry_after: bool,
    took: Duration,
}

#[derive(Default)]
struct Phase {
    questions: Vec<Outcome>,
    uploads: Vec<Outcome>,
    rss_max: u64,
}

struct Person {
    cookie: String,
}

const TELEGRAM_ASKERS: usize = 20;

async fn run() -> anyhow::Result<bool> {
    let rate = number("OVERLOAD_QUESTIONS_PER_SEC", 5).max(1);
    let secs = number("OVERLOAD_SECS", 20).max(1);
    let people_count = usize::try_from(number("OVERLOAD_PEOPLE", 200))?.max(TELEGRAM_ASKERS);
    let stack = Stack::start_run("overload", "OVERLOAD_DIR").await?;
    let dir = stack.layout.dir.clone();
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&stack.layout.database_url())
        .await?;
    let people = Arc::new(people(&db, people_count).await?);
    let origin = format!("http://localhost:{}", stack.layout.server_port);
    let base = stack.layout.server_url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?;

    // Something to find: a document for each of the first people, processed.
    for (i, person) in people.iter().take(TELEGRAM_ASKERS).enumerate() {
        let pdf = testkit::text_pdf(&[&format!(
            "Invoice {i}\nTotal {}.00 EUR\nDue 2026-12-31",
            100 + i
        )]);
        let outcome = upload(
            &http,
            &base,
            &origin,
            &person.cookie,
            &format!("seed-{i}.pdf"),
            pdf,
        )
        .await;
        anyhow::ensure!(outcome.status == 200, "a seed upload failed: {outcome:?}");
    }
    wait_until("the seed documents", Duration::from_secs(180), || {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM documents WHERE stage = 'done'")
                .fetch_one(&db)
                .await
                .is_ok_and(|n| usize::try_from(n).unwrap_or(0) >= TELEGRAM_ASKERS)
        }
    })
    .await?;
    let rss_idle = stack.server.rss_bytes().unwrap_or(0);

    let mut rng = Lcg(u64::from(std::process::id()));
    println!(
        "overload: {people_count} people; normal rate {rate} questions/s and {} uploads/s for {secs} s, then ten times that",
        rate as f64 / 10.0
    );
    let normal = phase(&stack, &http, &base, &origin, &people, rate, secs, &mut rng).await;
    // During the overload, people in Telegram ask too.
    for i in 0..TELEGRAM_ASKERS {
        let response = stack
            .http
            .post(format!("{}/control/users/{}/messages", stack.layout.tgemu_url(), 8_000_000 + i))
            .json(&json!({"text": format!("what is the total of invoice {i}?"), "first_name": "Busy", "language_code": "en"}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the emulator refused a message"
        );
    }
    let over = phase(
        &stack,
        &http,
        &base,
        &origin,
        &people,
        rate * 10,
        secs,
        &mut rng,
    )
    .await;

    // Each Telegram asker gets an answer or "busy".
    let mut telegram = (0usize, 0usize, 0usize);
    let replied = wait_until("replies in Telegram", Duration::from_secs(120), || {
        let stack = &stack;
        async move {
            let mut all = true;
            for i in 0..TELEGRAM_ASKERS {
                all &= !chat(stack, 8_000_000 + i64::try_from(i).unwrap_or(0))
                    .await
                    .is_empty();
            }
            all
        }
    })
    .await;
    for i in 0..TELEGRAM_ASKERS {
        for text in chat(&stack, 8_000_000 + i64::try_from(i)?).await {
            if text.contains("busy") {
                telegram.1 += 1;
            } else if text.contains("went wrong") {
                telegram.2 += 1;
                println!("overload: an error in Telegram: {text}");
            } else {
                telegram.0 += 1;
            }
        }
    }

    let summary = |label: &str, outcomes: &[Outcome]| {
        let mut admitted: Vec<Duration> = outcomes
            .iter()
            .filter(|o| o.status == 200)
            .map(|o| o.took)
            .collect();
        let shed = outcomes
            .iter()
            .filter(|o| o.status == 503 && o.code.as_deref() == Some("busy"))
            .count();
        let limited = outcomes.iter().filter(|o| o.status == 429).count();
        let other = outcomes.len() - admitted.len() - shed - limited;
        let (p50, p95, p99, max) = percentiles(&mut admitted);
        println!(
            "overload: {label:<22} {:>5} sent, {:>5} admitted (p50 {:>6.1} ms, p95 {:>6.1} ms, p99 {:>6.1} ms, max {:>6.1} ms), {:>5} shed busy, {:>4} rate-limited, {} other",
            outcomes.len(),
            admitted.len(),
            p50.as_secs_f64() * 1e3,
            p95.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            shed,
            limited,
            other
        );
        (p95, shed + limited, other)
    };
    println!("overload: ---- report ----");
    let (normal_p95, normal_shed, normal_other) = summary("questions, normal", &normal.questions);
    let (_, _, normal_upload_other) = summary("uploads, normal", &normal.uploads);
    let (over_p95, over_shed, over_other) = summary("questions, 10×", &over.questions);
    let (_, upload_shed, over_upload_other) = summary("uploads, 10×", &over.uploads);
    let ratio = over_p95.as_secs_f64() / normal_p95.as_secs_f64().max(1e-6);
    let without_retry_after = over
        .questions
        .iter()
        .chain(&over.uploads)
        .filter(|o| matches!(o.status, 429 | 503) && !o.retry_after)
        .count();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("overload: admitted p95 at 10× / normal p95: {ratio:.2} (must be ≤ 2)");
    println!(
        "overload: server memory: idle {:.0} MiB, normal max {:.0} MiB, 10× max {:.0} MiB (must stay within normal + 256 MiB)",
        mib(rss_idle),
        mib(normal.rss_max),
        mib(over.rss_max)
    );
    println!(
        "overload: Telegram: {} answered, {} told busy, {} other, of {TELEGRAM_ASKERS} asking",
        telegram.0, telegram.1, telegram.2
    );
    let checks = [
        (
            "nothing but 200s at the normal rate",
            normal_shed == 0 && normal_other == 0 && normal_upload_other == 0,
        ),
        ("the excess is shed", over_shed + upload_shed > 0),
        (
            "every refusal is 503 busy or 429, with Retry-After",
            over_other == 0 && over_upload_other == 0 && without_retry_after == 0,
        ),
        ("admitted latency within 2× of normal", ratio <= 2.0),
        (
            "memory bounded",
            over.rss_max <= normal.rss_max.max(rss_idle) + 256 * 1024 * 1024,
        ),
        (
            "every Telegram asker answered or told busy",
            replied.is_ok() && telegram.2 == 0 && telegram.0 + telegram.1 >= TELEGRAM_ASKERS,
        ),
    ];
    let mut ok = true;
    for (what, held) in checks {
        println!("overload: {} {what}", if held { "ok  " } else { "FAIL" });
        ok &= held;
    }
    db.close().await;
    stack.stop().await;
    if ok {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("overload: logs in {}", dir.join("logs").display());
    }
    Ok(ok)
}

/// People made directly in the database with a web session each (signing up 200 people
/// through argon2 is not what this run measures); the first `TELEGRAM_ASKERS` linked.
async fn people(db: &sqlx::PgPool, count: usize) -> anyhow::Result<Vec<Person>> {
    let mut people = Vec::with_capacity(count);
    for i in 0..count {
        let id = uuid::Uuid::new_v4();
        let email = format!("busy{i}@overload.test");
        sqlx::query("INSERT INTO users (id, email, email_normalized) VALUES ($1, $2, $2)")
            .bind(id)
            .bind(&email)
            .execute(db)
            .await
            .context("cannot create a person")?;
        // As the server makes them: 32 random bytes, URL-safe base64 (43 characters).
        let mut bytes = uuid::Uuid::new_v4().into_bytes().to_vec();
        bytes.extend(uuid::Uuid::new_v4().into_bytes());
        let token =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, kind, expires_at, sliding)
             VALUES ($1, $2, 'web', now() + interval '1 day', true)",
        )
        .bind(Sha256::digest(token.as_bytes()).to_vec())
        .bind(id)
        .execute(db)
        .await?;
        if i < TELEGRAM_ASKERS {
            sqlx::query(
                "INSERT INTO telegram_accounts (telegram_user_id, user_id, chat_id, first_name, language_code, linked_at)
                 VALUES ($1, $2, $1, 'Busy', 'en', now())",
            )
            .bind(8_000_000 + i64::try_from(i)?)
            .bind(id)
            .execute(db)
            .await?;
        }
        people.push(Person {
            cookie: format!("dossier_session={token}"),
        });
    }
    Ok(people)
}

async fn outcome(response: Result<reqwest::Response, reqwest::Error>, started: Instant) -> Outcome {
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Outcome {
                status,
                code: body["code"].as_str().map(str::to_owned),
                retry_after,
                took: started.elapsed(),
            }
        }
        Err(_) => Outcome {
            status: 0,
            code: None,
            retry_after: false,
            took: started.elapsed(),
        },
    }
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    origin: &str,
    cookie: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Outcome {
    let started = Instant::now();
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
    let response = http
        .post(format!("{base}/api/documents/upload"))
        .header("origin", origin)
        .header("cookie", cookie)
        .header("accept", "application/json")
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await;
    outcome(response, started).await
}

/// `per_sec` questions a second (and a tenth of that in uploads) for `secs`, evenly spaced,
/// each from a random person with a question nobody asked before (no cache hits).
#[allow(clippy::too_many_arguments)]
async fn phase(
    stack: &Stack,
    http: &reqwest::Client,
    base: &str,
    origin: &str,
    people: &Arc<Vec<Person>>,
    per_sec: u64,
    secs: u64,
    rng: &mut Lcg,
) -> Phase {
    let results = Arc::new(Mutex::new(Phase::default()));
    let total = per_sec * secs;
    let gap = Duration::from_secs_f64(1.0 / per_sec as f64);
    let mut tick = tokio::time::interval(gap);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        tick.tick().await;
        if let Some(rss) = stack.server.rss_bytes() {
            let mut phase = results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            phase.rss_max = phase.rss_max.max(rss);
        }
        let person = rng.below(people.len());
        let question = format!(
            "what was the total on invoice {} from {}?",
            rng.next_u32(),
            rng.next_u32()
        );
        let is_upload = n % 10 == 9;
        let pdf = is_upload.then(|| {
            testkit::text_pdf(&[&format!("Receipt {n}-{}\nTotal 9.99 EUR", rng.next_u32())])
        });
        let (http, base, origin, people, results) = (
            http.clone(),
            base.to_owned(),
            origin.to_owned(),
            people.clone(),
            results.clone(),
        );
        tasks.spawn(async move {
            let cookie = &people[person].cookie;
            if let Some(pdf) = pdf {
                let result = upload(&http, &base, &origin, cookie, &format!("r{n}.pdf"), pdf).await;
                results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .uploads
                    .push(result);
            }
            let started = Instant::now();
            let response = http
                .post(format!("{base}/api/rag/ask"))
                .header("origin", &origin)
                .header("cookie", cookie)
                .json(&json!({"question": question, "stream": null}))
                .send()
                .await;
            let result = outcome(response, started).await;
            results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .questions
                .push(result);
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut phase = results
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::mem::take(&mut *phase)
}

async fn chat(stack: &Stack, chat: i64) -> Vec<String> {
    let Ok(response) = stack
        .http
        .get(format!(
            "{}/control/chats/{chat}/sent",
            stack.layout.tgemu_url()
        ))
        .send()
        .await
    else {
        return Vec::new();
    };
    let sent: Vec<Value> = response.json().await.unwrap_or_default();
    sent.iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .filter(|t| !t.is_empty())
        .collect()
}
