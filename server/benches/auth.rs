//! `make bench`: prints latency figures (never asserts them; timing belongs here, not in
//! tests). Runs against the real PostgreSQL named by DATABASE_URL.

mod common;

use std::time::Instant;

use common::{Scratch, report};

const BOT_TOKEN: &str = "123456:bench-token";

fn init_data(now: i64) -> String {
    app::auth::init_data::sign(
        &[
            (
                "user",
                r#"{"id":77,"first_name":"Ann","username":"ann_tg","language_code":"en"}"#,
            ),
            ("auth_date", &now.to_string()),
            ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
            ("chat_type", "sender"),
            ("chat_instance", "-1234567890"),
        ],
        BOT_TOKEN,
        None,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let raw = init_data(now);
    let verifier = app::auth::init_data::Verifier {
        bot_token: BOT_TOKEN,
        max_age_secs: 300,
        ed25519: None,
    };
    let samples = (0..20_000)
        .map(|_| {
            let started = Instant::now();
            let verified = verifier.verify(std::hint::black_box(&raw), now);
            let elapsed = started.elapsed();
            assert!(verified.is_ok());
            elapsed
        })
        .collect();
    report("initData verify (HMAC-SHA256, parse, user JSON)", samples);

    // The whole Mini App sign-in as the server runs it: verify, upsert the Telegram user,
    // create the session, load the account — against a scratch database.
    let scratch = Scratch::create("auth").await?;
    let mut settings = scratch.settings();
    settings.telegram_bot_token = Some(BOT_TOKEN.to_owned().into());
    let state = server::build_state(settings).await?;
    let user_id = "00000000-0000-7000-8000-000000000001";
    sqlx::query(
        "INSERT INTO users (id, email, email_normalized) VALUES ($1::uuid, 'a@b.c', 'a@b.c')",
    )
    .bind(user_id)
    .execute(&state.db)
    .await?;
    sqlx::query("INSERT INTO telegram_accounts (telegram_user_id, user_id) VALUES (77, $1::uuid)")
        .bind(user_id)
        .execute(&state.db)
        .await?;
    let mut samples = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let started = Instant::now();
        let session = app::auth::accounts::miniapp_sign_in(&state, &raw, now).await;
        samples.push(started.elapsed());
        assert!(session.is_ok(), "{session:?}");
    }
    report("Mini App sign-in (verify + 1 round trip, real PG)", samples);
    scratch.drop_db(state).await?;
    Ok(())
}
