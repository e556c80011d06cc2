//! Linking Telegram with a deep-link token: issued on the web, consumed once by the bot.

use app::error::ApiError;
use secrecy::SecretString;
use serde_json::json;

use crate::bot::{BOT_SECRET, serve_app};
use crate::helpers::*;

fn bot_api(api_url: &str) -> bot::api::Api {
    bot::api::Api::new(
        url::Url::parse(api_url).expect("url"),
        "bot".into(),
        SecretString::from(BOT_SECRET),
    )
    .expect("client")
}

async fn new_token(app: &TestApp, cookie: &str) -> String {
    let reply = call(
        app,
        "/api/telegram/link-token",
        "",
        &[("origin", ORIGIN), ("cookie", cookie)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 43);
    assert!(
        reply.json()["url"]
            .as_str()
            .expect("url")
            .ends_with(&format!("?start={token}"))
    );
    assert!(
        reply.json()["qr_svg"]
            .as_str()
            .expect("svg")
            .starts_with("<?xml")
    );
    token
}

async fn link(api: &bot::api::Api, telegram_user: i64, token: &str) -> Result<String, ApiError> {
    api.call(
        "telegram/link",
        Some(telegram_user),
        &json!({ "token": token }),
    )
    .await
}

async fn hello(api: &bot::api::Api, telegram_user: i64) -> app::telegram::TelegramStatus {
    let profile = json!({"chat_id": telegram_user, "first_name": "Ann", "last_name": null, "username": null, "language_code": "en"});
    api.call(
        "telegram/hello",
        Some(telegram_user),
        &json!({ "profile": profile }),
    )
    .await
    .expect("hello")
}

async fn push_request(app: &TestApp, cookie: &str, username: &str) -> Reply {
    call(
        app,
        "/api/telegram/push-link",
        &form(&[("username", username)]),
        &[("origin", ORIGIN), ("cookie", cookie)],
    )
    .await
}

async fn push_status(app: &TestApp, cookie: &str, request_id: &str) -> Reply {
    call(
        app,
        "/api/telegram/push-link/status",
        &form(&[("request_id", request_id)]),
        &[("origin", ORIGIN), ("cookie", cookie)],
    )
    .await
}

async fn status(app: &TestApp, cookie: &str) -> serde_json::Value {
    call(
        app,
        "/api/telegram/status",
        "",
        &[("origin", ORIGIN), ("cookie", cookie)],
    )
    .await
    .json()
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_token_links_once_and_then_reads_as_used(db: sqlx::PgPool) {
    let (app, api_url) = serve_app(db).await;
    let api = bot_api(&api_url);
    let anonymous = call(&app, "/api/telegram/link-token", "", &[("origin", ORIGIN)]).await;
    assert_eq!(anonymous.status, 401);

    let cookie = sign_up(&app, "ann@example.org").await;
    assert_eq!(status(&app, &cookie).await["linked"], false);
    let token = new_token(&app, &cookie).await;
    assert_eq!(
        link(&api, 4242, &token).await,
        Ok("ann@example.org".to_owned())
    );
    assert_eq!(link(&api, 4242, &token).await, Err(ApiError::LinkUsed));
    assert_eq!(link(&api, 4343, &token).await, Err(ApiError::LinkUsed));
    let unknown = "A".repeat(43);
    assert_eq!(link(&api, 4242, &unknown).await, Err(ApiError::LinkExpired));
    assert_eq!(
        link(&api, 4242, "../../etc").await,
        Err(ApiError::LinkExpired)
    );
    assert_eq!(status(&app, &cookie).await["linked"], true);

    // The bot now acts for Ann in this chat.
    assert_eq!(
        hello(&api, 4242).await.email.as_deref(),
        Some("ann@example.org")
    );

    // Unlink from the web; the chat is no longer Ann's.
    let reply = call_json(
        &app,
        "/api/telegram/unlink",
        &json!({}),
        &[("origin", ORIGIN), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(status(&app, &cookie).await["linked"], false);
    assert!(!hello(&api, 4242).await.linked);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn two_concurrent_starts_with_one_token_link_exactly_once(db: sqlx::PgPool) {
    let (app, api_url) = serve_app(db.clone()).await;
    let api = bot_api(&api_url);
    let cookie = sign_up(&app, "ann@example.org").await;
    for round in 0..10 {
        let token = new_token(&app, &cookie).await;
        let (a, b) = tokio::join!(
            link(&api, 5000 + round, &token),
            link(&api, 6000 + round, &token)
        );
        let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {a:?} {b:?}");
        let loser = if a.is_ok() { b } else { a };
        assert!(
            matches!(
                loser,
                Err(ApiError::LinkUsed) | Err(ApiError::Conflict { .. })
            ),
            "{loser:?}"
        );
        let (linked,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM telegram_accounts WHERE user_id IS NOT NULL")
                .fetch_one(&db)
                .await
                .expect("count");
        assert_eq!(linked, 1);
        let reply = call_json(
            &app,
            "/api/telegram/unlink",
            &json!({}),
            &[("origin", ORIGIN), ("cookie", &cookie)],
        )
        .await;
        assert_eq!(reply.status, 200);
    }
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn one_telegram_user_for_one_account(db: sqlx::PgPool) {
    let (app, api_url) = serve_app(db).await;
    let api = bot_api(&api_url);
    let ann = sign_up(&app, "ann@example.org").await;
    let bob = sign_up(&app, "bob@example.org").await;
    let token = new_token(&app, &ann).await;
    assert!(link(&api, 7001, &token).await.is_ok());

    // Bob's token in Ann's chat: refused, and Bob's token is not spent.
    let bobs = new_token(&app, &bob).await;
    assert!(matches!(
        link(&api, 7001, &bobs).await,
        Err(ApiError::Conflict { .. })
    ));
    // Ann's second token in another chat: her account is already linked.
    let again = new_token(&app, &ann).await;
    assert!(matches!(
        link(&api, 7002, &again).await,
        Err(ApiError::Conflict { .. })
    ));
    // Bob's unspent token still works in a fresh chat.
    assert_eq!(
        link(&api, 7003, &bobs).await,
        Ok("bob@example.org".to_owned())
    );

    // The bot can unlink its own chat (/unlink); then the chat can link again.
    let unlinked: Result<bool, ApiError> =
        api.call("telegram/unlink", Some(7001), &json!({})).await;
    assert_eq!(unlinked, Ok(true));
    let fresh = new_token(&app, &ann).await;
    assert!(link(&api, 7001, &fresh).await.is_ok());
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn link_tokens_are_rate_limited_per_account(db: sqlx::PgPool) {
    let (app, _) = serve_app(db).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    for _ in 0..10 {
        new_token(&app, &cookie).await;
    }
    let reply = call(
        &app,
        "/api/telegram/link-token",
        "",
        &[("origin", ORIGIN), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["code"], "rate_limited");

    // Push requests: five per ten minutes, counted even when the username is unknown.
    for _ in 0..5 {
        let reply = push_request(&app, &cookie, "nobody").await;
        assert_eq!(reply.status, 400, "{}", reply.body);
    }
    let reply = push_request(&app, &cookie, "nobody").await;
    assert_eq!(reply.status, 429);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn push_approval_links_on_approve_and_not_on_decline(db: sqlx::PgPool) {
    use crate::bot::{Emulator, RunningBot, bot_config, text};
    let (app, api_url) = serve_app(db).await;
    let api = bot_api(&api_url);
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let mut config = bot_config(&emulator, &api_url, (1, 30));
    config.nats = Some(bot::config::Nats {
        url: nats_url(),
        env: app.state.settings.env.clone(),
        lease_ttl: std::time::Duration::from_secs(5),
        replicas: 1,
    });
    let running = RunningBot::start(config);
    let ann = sign_up(&app, "ann@example.org").await;

    // Unknown to the bot: the person is told to press Start first.
    let unknown = push_request(&app, &ann, "@annt").await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert_eq!(unknown.json()["fields"][0]["field"], "username");

    // Ann's Telegram (username annt) has talked to the bot.
    emulator
        .post(
            "/control/users/9001/messages",
            json!({"text": "/start", "username": "annt"}),
        )
        .await;
    emulator.wait_for(9001, 1).await;
    let started = push_request(&app, &ann, "@AnnT").await;
    assert_eq!(started.status, 200, "{}", started.body);
    let request_id = started.json()["request_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let pending = push_status(&app, &ann, &request_id).await;
    assert_eq!(pending.json(), json!("pending"));

    let question = emulator.wait_for(9001, 2).await[1].clone();
    assert!(text(&question).contains("ann@example.org"), "{question}");
    let buttons = &question["reply_markup"]["inline_keyboard"][0];
    assert_eq!(buttons[0]["text"], "✅ Approve");

    // Someone else cannot answer it (the API checks the acting Telegram user).
    let foreign: Result<app::telegram::push::PushAnswer, ApiError> = api
        .call(
            "telegram/push-link/answer",
            Some(9999),
            &json!({"request_id": request_id, "approve": true}),
        )
        .await;
    assert_eq!(foreign, Err(ApiError::Forbidden));

    emulator
        .post(
            "/control/users/9001/callbacks",
            json!({"message_id": question["message_id"], "data": buttons[0]["callback_data"]}),
        )
        .await;
    eventually(
        "the question becomes its outcome",
        std::time::Duration::from_secs(15),
        || async { text(&emulator.sent(9001).await[1]).contains("Account linked") },
    )
    .await;
    let approved = push_status(&app, &ann, &request_id).await;
    assert_eq!(approved.json(), json!("approved"));
    assert_eq!(status(&app, &ann).await["linked"], true);
    // A second tap is not a second answer.
    let again: Result<app::telegram::push::PushAnswer, ApiError> = api
        .call(
            "telegram/push-link/answer",
            Some(9001),
            &json!({"request_id": request_id, "approve": false}),
        )
        .await;
    assert_eq!(again, Err(ApiError::LinkUsed));

    // Bob declines.
    let bob = sign_up(&app, "bob@example.org").await;
    emulator
        .post(
            "/control/users/9002/messages",
            json!({"text": "/start", "username": "bobt", "language_code": "ru"}),
        )
        .await;
    emulator.wait_for(9002, 1).await;
    let started = push_request(&app, &bob, "bobt").await;
    let request_id = started.json()["request_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let question = emulator.wait_for(9002, 2).await[1].clone();
    assert!(text(&question).contains("Связать"), "{question}");
    emulator
        .post("/control/users/9002/callbacks", json!({"message_id": question["message_id"], "data": question["reply_markup"]["inline_keyboard"][0][1]["callback_data"], "language_code": "ru"}))
        .await;
    eventually(
        "the decline is shown",
        std::time::Duration::from_secs(15),
        || async { text(&emulator.sent(9002).await[1]).contains("Отклонено") },
    )
    .await;
    let declined = push_status(&app, &bob, &request_id).await;
    assert_eq!(declined.json(), json!("declined"));
    assert_eq!(status(&app, &bob).await["linked"], false);
    // Ann cannot read Bob's request.
    let nosy = push_status(&app, &ann, &request_id).await;
    assert_eq!(nosy.status, 404);
    running.stop().await;
}
