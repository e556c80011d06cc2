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

/// `/start <token>`: claims the token; nothing is linked yet.
async fn claim(api: &bot::api::Api, telegram_user: i64, token: &str) -> Result<String, ApiError> {
    api.call(
        "telegram/link/claim",
        Some(telegram_user),
        &json!({ "token": token }),
    )
    .await
}

async fn confirm(
    api: &bot::api::Api,
    telegram_user: i64,
    token: &str,
    approve: bool,
) -> Result<app::telegram::link::LinkConfirmed, ApiError> {
    api.call(
        "telegram/link/confirm",
        Some(telegram_user),
        &json!({ "token": token, "approve": approve }),
    )
    .await
}

/// The whole consent flow: the bot records the person, they open the link, they approve.
async fn link(api: &bot::api::Api, telegram_user: i64, token: &str) -> Result<String, ApiError> {
    hello(api, telegram_user).await;
    claim(api, telegram_user, token).await?;
    confirm(api, telegram_user, token, true)
        .await
        .map(|confirmed| confirmed.email)
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
    assert_eq!(claim(&api, 4242, &token).await, Err(ApiError::LinkUsed));
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
        assert_eq!(reply.status, 200, "{}", reply.body);
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

    // Unknown to the bot: a request like any other, that nobody receives.
    let unknown = push_request(&app, &ann, "@annt").await;
    assert_eq!(unknown.status, 200, "{}", unknown.body);

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
    // It says which site asks, and that nobody verified the address.
    assert!(
        text(&question).contains("127.0.0.1") || text(&question).contains("localhost"),
        "{question}"
    );
    assert!(
        text(&question).contains("nobody has verified"),
        "{question}"
    );
    let buttons = &question["reply_markup"]["inline_keyboard"][0];
    assert_eq!(buttons[0]["text"], "✅ Approve");
    assert_eq!(
        question["reply_markup"]["inline_keyboard"][1][0]["text"],
        "🚫 Block such requests"
    );

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
    assert!(text(&question).contains("связать"), "{question}");
    emulator
        // Pressed too late for Telegram to take an answer: the question is edited all the same.
        .post("/control/users/9002/callbacks", json!({"message_id": question["message_id"], "data": question["reply_markup"]["inline_keyboard"][0][1]["callback_data"], "language_code": "ru", "stale": true}))
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

async fn pending(app: &TestApp, cookie: &str) -> serde_json::Value {
    status(app, cookie).await["pending"].clone()
}

/// Moves a token's own lifetime into the past, as if its 5 minutes had passed (the bucket's
/// TTL would also drop it by then; the stored expiry is what the API checks).
async fn outlive(app: &TestApp, token: &str) {
    let store = app
        .state
        .jetstream
        .get_key_value(app.state.subjects.link_tokens_bucket())
        .await
        .expect("bucket");
    let mut entry: serde_json::Value =
        serde_json::from_slice(&store.get(token).await.expect("get").expect("entry"))
            .expect("json");
    entry["expires_at"] = json!(time::OffsetDateTime::now_utc().unix_timestamp() - 1);
    store
        .put(token, serde_json::to_vec(&entry).expect("json").into())
        .await
        .expect("put");
}

/// Audit finding 1: a deep link made by someone else must not link a stranger's chat with one
/// tap. Opening it only asks; the web owner sees who is confirming; only Approve links.
#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_deep_link_links_only_after_the_telegram_user_approves(db: sqlx::PgPool) {
    let (app, api_url) = serve_app(db).await;
    let api = bot_api(&api_url);
    let mallory = sign_up(&app, "mallory@example.org").await;
    let token = new_token(&app, &mallory).await;

    // The victim opens Mallory's link: they are asked, nothing is linked.
    hello(&api, 8101).await;
    assert_eq!(
        claim(&api, 8101, &token).await,
        Ok("mallory@example.org".to_owned())
    );
    assert_eq!(status(&app, &mallory).await["linked"], false);
    assert!(!hello(&api, 8101).await.linked);
    // The web user sees who is confirming, before anything takes effect.
    assert_eq!(
        pending(&app, &mallory).await,
        json!({"first_name": "Ann", "username": null, "declined": false})
    );
    // Nobody else can answer, or take the claimed link over.
    hello(&api, 8102).await;
    assert_eq!(
        confirm(&api, 8102, &token, true).await,
        Err(ApiError::Forbidden)
    );
    assert_eq!(claim(&api, 8102, &token).await, Err(ApiError::LinkUsed));
    // Opening it again (a retried update) asks again.
    assert!(claim(&api, 8101, &token).await.is_ok());

    // The victim declines: nothing linked, the link is spent, the page says so.
    let declined = confirm(&api, 8101, &token, false).await.expect("declined");
    assert_eq!(declined.outcome, app::telegram::link::LinkOutcome::Declined);
    assert_eq!(status(&app, &mallory).await["linked"], false);
    assert_eq!(pending(&app, &mallory).await["declined"], true);
    assert!(!hello(&api, 8101).await.linked);
    assert_eq!(
        confirm(&api, 8101, &token, true).await,
        Err(ApiError::LinkUsed)
    );
    assert_eq!(claim(&api, 8101, &token).await, Err(ApiError::LinkUsed));

    // Their own link, approved: linked, and the pending note is gone.
    let ann = sign_up(&app, "ann@example.org").await;
    let own = new_token(&app, &ann).await;
    assert!(claim(&api, 8101, &own).await.is_ok());
    let approved = confirm(&api, 8101, &own, true).await.expect("approved");
    assert_eq!(approved.outcome, app::telegram::link::LinkOutcome::Linked);
    assert_eq!(approved.email, "ann@example.org");
    assert_eq!(status(&app, &ann).await["linked"], true);
    assert_eq!(status(&app, &ann).await["pending"], json!(null));

    // A linked chat is never re-linked by a token: refused, and the token is not spent.
    let another = new_token(&app, &mallory).await;
    assert!(matches!(
        claim(&api, 8101, &another).await,
        Err(ApiError::Conflict { .. })
    ));
    assert_eq!(pending(&app, &mallory).await["declined"], true);
    assert_eq!(
        link(&api, 8103, &another).await,
        Ok("mallory@example.org".to_owned())
    );
    // A token for an account already linked to another Telegram user: refused unspent.
    let third = new_token(&app, &ann).await;
    hello(&api, 8104).await;
    assert!(matches!(
        claim(&api, 8104, &third).await,
        Err(ApiError::Conflict { .. })
    ));
}

/// A confirmation pressed after the token's 5 minutes is refused, and links nothing.
#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_confirmation_after_the_token_expired_links_nothing(db: sqlx::PgPool) {
    let (app, api_url) = serve_app(db).await;
    let api = bot_api(&api_url);
    let ann = sign_up(&app, "ann@example.org").await;
    let token = new_token(&app, &ann).await;
    hello(&api, 8201).await;
    assert!(claim(&api, 8201, &token).await.is_ok());
    outlive(&app, &token).await;
    assert_eq!(
        confirm(&api, 8201, &token, true).await,
        Err(ApiError::LinkExpired)
    );
    assert_eq!(status(&app, &ann).await["linked"], false);
    // An outlived token cannot be claimed either.
    let late = new_token(&app, &ann).await;
    outlive(&app, &late).await;
    assert_eq!(claim(&api, 8201, &late).await, Err(ApiError::LinkExpired));
}

/// In Telegram: the question names the account, Approve links (even when the press reaches
/// the bot too late for Telegram to take its answer: audit finding 6), and a link sent in a
/// group is never used.
#[sqlx::test(migrator = "server::MIGRATOR")]
async fn in_telegram_the_person_is_asked_before_a_link_is_made(db: sqlx::PgPool) {
    use crate::bot::{Emulator, RunningBot, bot_config, text};
    let (app, api_url) = serve_app(db).await;
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let running = RunningBot::start(bot_config(&emulator, &api_url, (1, 30)));
    let mallory = sign_up(&app, "mallory@example.org").await;

    // Mallory's link, opened by the victim.
    let token = new_token(&app, &mallory).await;
    emulator.say(9301, &format!("/start {token}"), "en").await;
    let question = emulator.wait_for(9301, 1).await[0].clone();
    assert!(
        text(&question)
            .contains("Link this Telegram account to the Dossier account mallory@example.org?"),
        "{question}"
    );
    assert!(!text(&question).contains("linked:"), "{question}");
    assert_eq!(status(&app, &mallory).await["linked"], false);
    let buttons = question["reply_markup"]["inline_keyboard"][0].clone();
    assert_eq!(buttons[0]["text"], "✅ Approve");
    assert_eq!(buttons[1]["text"], "❌ Decline");
    emulator
        .post(
            "/control/users/9301/callbacks",
            json!({"message_id": question["message_id"], "data": buttons[1]["callback_data"]}),
        )
        .await;
    eventually(
        "the question becomes 'declined'",
        std::time::Duration::from_secs(15),
        || async { text(&emulator.sent(9301).await[0]).contains("Declined") },
    )
    .await;
    assert_eq!(status(&app, &mallory).await["linked"], false);

    // Ann's own link; her Approve reaches the bot after Telegram's window for an answer.
    let ann = sign_up(&app, "ann@example.org").await;
    let own = new_token(&app, &ann).await;
    emulator.say(9301, &format!("/start {own}"), "en").await;
    let question = emulator.wait_for(9301, 2).await[1].clone();
    emulator
        .post(
            "/control/users/9301/callbacks",
            json!({
                "message_id": question["message_id"],
                "data": question["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
                "stale": true,
            }),
        )
        .await;
    eventually(
        "the question becomes 'linked'",
        std::time::Duration::from_secs(15),
        || async {
            text(&emulator.sent(9301).await[1]).contains("Account linked: ann@example.org")
        },
    )
    .await;
    assert_eq!(status(&app, &ann).await["linked"], true);

    // A linked chat opening someone's link is told so; nothing moves.
    let again = new_token(&app, &mallory).await;
    emulator.say(9301, &format!("/start {again}"), "en").await;
    let refused = emulator.wait_for(9301, 3).await[2].clone();
    assert!(
        text(&refused).contains("already linked to ann@example.org"),
        "{refused}"
    );

    // A link sent in a group: the sender is told to use the private chat; the token is unused.
    let group_token = new_token(&app, &mallory).await;
    emulator
        .post(
            "/control/users/9302/messages",
            json!({"text": format!("/start {group_token}"), "group": -4001}),
        )
        .await;
    let note = emulator.wait_for(-4001, 1).await[0].clone();
    assert!(text(&note).contains("only in a private chat"), "{note}");
    assert_eq!(status(&app, &mallory).await["pending"]["declined"], true);
    running.stop().await;
}

/// Every answer to a push request the requester can see: the reply's status and shape, and the
/// request's status.
async fn push_outcome(
    app: &TestApp,
    cookie: &str,
    username: &str,
) -> (u16, Vec<String>, serde_json::Value, String) {
    let reply = push_request(app, cookie, username).await;
    let mut keys: Vec<String> = reply
        .json()
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    let id = reply.json()["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let state = push_status(app, cookie, &id).await.json();
    (reply.status, keys, state, id)
}

async fn seen(
    db: &sqlx::PgPool,
    telegram_user: i64,
    username: &str,
    linked_to: Option<uuid::Uuid>,
) {
    sqlx::query(
        "INSERT INTO telegram_accounts (telegram_user_id, chat_id, username, first_name, user_id)
         VALUES ($1, $1, $2, 'T', $3)",
    )
    .bind(telegram_user)
    .bind(username)
    .bind(linked_to)
    .execute(db)
    .await
    .expect("seen");
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_push_request_tells_the_requester_nothing_about_the_username(db: sqlx::PgPool) {
    let (app, api_url) = serve_app(db.clone()).await;
    let sub = app
        .state
        .nats
        .subscribe(app.state.subjects.push_link_requested())
        .await
        .expect("subscribe");
    let mut sub = sub;
    let mallory = sign_up(&app, "mallory@example.org").await;
    sign_up(&app, "other@example.org").await;
    let (owner,): (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM users WHERE email = 'other@example.org'")
            .fetch_one(&db)
            .await
            .expect("id");
    seen(&db, 7001, "fresh", None).await;
    seen(&db, 7002, "taken", Some(owner)).await;
    seen(&db, 7003, "blocker", None).await;
    sqlx::query(
        "UPDATE telegram_accounts SET push_blocked_at = now() WHERE telegram_user_id = 7003",
    )
    .execute(&db)
    .await
    .expect("block");

    let never = push_outcome(&app, &mallory, "ghost").await;
    let linked = push_outcome(&app, &mallory, "taken").await;
    let blocked = push_outcome(&app, &mallory, "blocker").await;
    let sent = push_outcome(&app, &mallory, "fresh").await;
    for (what, outcome) in [
        ("never talked", &never),
        ("linked elsewhere", &linked),
        ("blocked", &blocked),
    ] {
        assert_eq!(
            (outcome.0, &outcome.1, &outcome.2),
            (sent.0, &sent.1, &sent.2),
            "{what} reads differently from a request that was sent"
        );
    }
    assert_eq!(sent.0, 200);
    assert_eq!(sent.2, json!("pending"));
    // Only the askable user was asked.
    let event = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        futures::StreamExt::next(&mut sub),
    )
    .await
    .expect("one question")
    .expect("message");
    let event: app::telegram::push::PushLinkRequested =
        serde_json::from_slice(&event.payload).expect("event");
    assert_eq!(
        (event.chat_id, event.request_id.as_str()),
        (7001, sent.3.as_str())
    );

    // Per target: three questions an hour, from whoever asks; the fourth is not sent, and
    // reads the same.
    let ann = sign_up(&app, "ann@example.org").await;
    for _ in 0..2 {
        let again = push_outcome(&app, &ann, "fresh").await;
        assert_eq!(again.2, json!("pending"));
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            futures::StreamExt::next(&mut sub),
        )
        .await
        .expect("sent")
        .expect("message");
    }
    let beyond = push_outcome(&app, &ann, "fresh").await;
    assert_eq!((beyond.0, &beyond.1, &beyond.2), (sent.0, &sent.1, &sent.2));
    // Nothing was published for the unaskable ones or the fourth: a flush after them leaves
    // the subscription empty.
    app.state.nats.flush().await.expect("flush");
    let none = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        futures::StreamExt::next(&mut sub),
    )
    .await;
    assert!(none.is_err(), "an unsent request was published: {none:?}");

    // Nobody can answer a request that was sent to nobody.
    let api = bot_api(&api_url);
    for (telegram_user, id) in [(7002, &linked.3), (7003, &blocked.3)] {
        let answered: Result<app::telegram::push::PushAnswer, ApiError> = api
            .call(
                "telegram/push-link/answer",
                Some(telegram_user),
                &json!({"request_id": id, "approve": true}),
            )
            .await;
        assert_eq!(answered, Err(ApiError::Forbidden));
    }
}

async fn hello_named(api: &bot::api::Api, telegram_user: i64, username: &str) {
    let profile = json!({"chat_id": telegram_user, "first_name": "T", "last_name": null, "username": username, "language_code": "en"});
    let _: app::telegram::TelegramStatus = api
        .call(
            "telegram/hello",
            Some(telegram_user),
            &json!({ "profile": profile }),
        )
        .await
        .expect("hello");
}

async fn next_question(sub: &mut async_nats::Subscriber) -> app::telegram::push::PushLinkRequested {
    let message = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        futures::StreamExt::next(sub),
    )
    .await
    .expect("a question was published")
    .expect("message");
    serde_json::from_slice(&message.payload).expect("event")
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_push_request_reaches_the_names_current_owner_who_may_block_them(db: sqlx::PgPool) {
    let (app, api_url) = serve_app(db.clone()).await;
    let api = bot_api(&api_url);
    let mut sub = app
        .state
        .nats
        .subscribe(app.state.subjects.push_link_requested())
        .await
        .expect("subscribe");
    let ann = sign_up(&app, "ann@example.org").await;
    // 8001 was @sam; the name now belongs to 8002 (who talked to the bot after).
    hello_named(&api, 8001, "sam").await;
    hello_named(&api, 8002, "Sam").await;
    let (names,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM telegram_accounts WHERE lower(username) = 'sam'")
            .fetch_one(&db)
            .await
            .expect("count");
    assert_eq!(names, 1, "the older row forgot the name");
    let first = push_outcome(&app, &ann, "@sam").await;
    assert_eq!(next_question(&mut sub).await.chat_id, 8002);

    // Block: the request is declined, and no more questions reach 8002.
    let blocked: app::telegram::push::PushAnswer = api
        .call(
            "telegram/push-link/block",
            Some(8002),
            &json!({"request_id": first.3}),
        )
        .await
        .expect("block");
    assert_eq!(blocked.status, app::telegram::push::PushStatus::Declined);
    assert_eq!(
        push_status(&app, &ann, &first.3).await.json(),
        json!("declined")
    );
    let after = push_outcome(&app, &ann, "sam").await;
    assert_eq!(after.2, json!("pending"));
    app.state.nats.flush().await.expect("flush");
    let none = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        futures::StreamExt::next(&mut sub),
    )
    .await;
    assert!(none.is_err(), "a blocked user was asked again");
    // Another's request cannot be blocked by a third party.
    let bob = sign_up(&app, "bob@example.org").await;
    hello_named(&api, 8003, "kim").await;
    let to_kim = push_outcome(&app, &bob, "kim").await;
    next_question(&mut sub).await;
    let foreign: Result<app::telegram::push::PushAnswer, ApiError> = api
        .call(
            "telegram/push-link/block",
            Some(8002),
            &json!({"request_id": to_kim.3}),
        )
        .await;
    assert_eq!(foreign, Err(ApiError::Forbidden));

    // The answer is recorded before the link is made: Bob links another way meanwhile, Kim's
    // Approve then fails, and the request reads as failed and answered, never pending again.
    let token = new_token(&app, &bob).await;
    link(&api, 8004, &token).await.expect("linked by deep link");
    let approved: Result<app::telegram::push::PushAnswer, ApiError> = api
        .call(
            "telegram/push-link/answer",
            Some(8003),
            &json!({"request_id": to_kim.3, "approve": true}),
        )
        .await;
    assert!(
        matches!(approved, Err(ApiError::Conflict { .. })),
        "{approved:?}"
    );
    assert_eq!(
        push_status(&app, &bob, &to_kim.3).await.json(),
        json!("failed")
    );
    let again: Result<app::telegram::push::PushAnswer, ApiError> = api
        .call(
            "telegram/push-link/answer",
            Some(8003),
            &json!({"request_id": to_kim.3, "approve": false}),
        )
        .await;
    assert_eq!(again, Err(ApiError::LinkUsed));
}
