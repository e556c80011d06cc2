//! The real bot (its dispatcher, throttle, API client) against the real server over HTTP and
//! the Bot API emulator: what people see in their chat.

use std::net::SocketAddr;
use std::time::Duration;

use app::config::ServiceSettings;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

pub const TOKEN: &str = "123456:emulator-token";
pub const BOT_SECRET: &str = "bot-test-secret-bot-test-secret-0123456789";

/// The server, listening on a real port (the bot reaches it over HTTP).
pub async fn serve_app(db: sqlx::PgPool) -> (TestApp, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    serve_app_on(db, listener).await
}

/// The server on a given listener (a test may hold the port back to play a dead API).
pub async fn serve_app_on(
    db: sqlx::PgPool,
    listener: tokio::net::TcpListener,
) -> (TestApp, String) {
    serve_app_with_settings(db, listener, bot_settings()).await
}

/// Test settings with the bot's token and its service permissions.
pub fn bot_settings() -> app::config::Settings {
    let mut settings = test_settings();
    settings.telegram_bot_token = Some(SecretString::from(TOKEN));
    settings.services.insert(
        "bot".into(),
        ServiceSettings {
            secret: SecretString::from(BOT_SECRET),
            permissions: vec![
                "users:read".into(),
                "telegram:link".into(),
                "telegram:updates".into(),
                "documents:upload".into(),
                "documents:read".into(),
                "rag:query".into(),
            ],
        },
    );
    settings
}

/// The server with the given settings on a given listener.
pub async fn serve_app_with_settings(
    db: sqlx::PgPool,
    listener: tokio::net::TcpListener,
    settings: app::config::Settings,
) -> (TestApp, String) {
    let app = spawn_app_with(db, settings).await;
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = app.router.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    (app, url)
}

pub struct Emulator {
    url: String,
    http: reqwest::Client,
}

impl Emulator {
    pub async fn start(limits: tgemu::Limits) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let config = tgemu::Config {
            limits,
            ..tgemu::Config::default()
        };
        tokio::spawn(async move {
            axum::serve(listener, tgemu::router(config))
                .await
                .expect("serve");
        });
        Self {
            url,
            http: reqwest::Client::new(),
        }
    }

    pub async fn say(&self, user: i64, text: &str, language: &str) -> Value {
        self.post(
            &format!("/control/users/{user}/messages"),
            json!({"text": text, "first_name": "Ann <b>", "language_code": language}),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("emulator");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("json")
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("emulator")
            .json()
            .await
            .expect("json")
    }

    pub async fn get_bytes(&self, path: &str) -> Vec<u8> {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("emulator")
            .bytes()
            .await
            .expect("bytes")
            .to_vec()
    }

    pub async fn sent(&self, chat: i64) -> Vec<Value> {
        self.get(&format!("/control/chats/{chat}/sent"))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until the bot has sent `count` messages to `chat`, and returns them.
    pub async fn wait_for(&self, chat: i64, count: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let sent = self.sent(chat).await;
            if sent.len() >= count {
                return sent;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {count} messages to chat {chat}; got {}: {sent:#?}",
                sent.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn bot_config(emulator: &Emulator, api_url: &str, limits: (u32, u32)) -> bot::Config {
    bot::Config {
        token: bot::config::Token::new(TOKEN.into()),
        bot_api_url: Some(url::Url::parse(&format!("{}/", emulator.url)).expect("url")),
        api_url: url::Url::parse(api_url).expect("url"),
        public_url: url::Url::parse("http://localhost:3000").expect("url"),
        service: "bot".into(),
        service_secret: SecretString::from(BOT_SECRET),
        mode: bot::Mode::Polling,
        per_chat_per_sec: limits.0,
        overall_per_sec: limits.1,
        poll_timeout: Duration::from_secs(5),
        nats: None,
        max_file_bytes: 20 * 1024 * 1024,
        metrics_listen: None,
        api_retry_for: bot::api::RETRY_FOR,
        journal_dir: None,
    }
}

pub struct RunningBot {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<std::sync::Arc<bot::Ctx>>>,
}

impl RunningBot {
    pub fn start(config: bot::Config) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bot::run(config, shutdown.clone()));
        Self { shutdown, task }
    }

    /// Whether the bot has stopped (or failed) on its own.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Ends the bot at once, as `kill -9` would: nothing of it runs on, nothing is drained.
    pub fn kill(self) {
        self.task.abort();
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let ctx = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the bot stops within the drain period")
            .expect("join")
            .expect("the bot ran without error");
        drop(ctx);
    }
}

pub fn text(message: &Value) -> &str {
    message["text"].as_str().unwrap_or("")
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn commands_menus_and_odd_messages_get_the_right_replies(db: sqlx::PgPool) {
    let (_app, api_url) = serve_app(db.clone()).await;
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let running = RunningBot::start(bot_config(&emulator, &api_url, (1, 30)));

    // The command menu and the Mini App menu button are set at start-up.
    eventually("the command menu", Duration::from_secs(15), || async {
        emulator
            .get("/control/commands")
            .await
            .as_array()
            .is_some_and(|c| c.len() == 6)
    })
    .await;
    let menu = emulator.get("/control/menu-button").await;
    assert_eq!(menu["type"], "web_app");
    assert_eq!(menu["web_app"]["url"], "http://localhost:3000/miniapp");

    emulator.say(501, "/start", "en").await;
    let sent = emulator.wait_for(501, 1).await;
    assert!(
        text(&sent[0]).starts_with("Hello, Ann <b>!"),
        "{}",
        text(&sent[0])
    );
    assert!(text(&sent[0]).contains("http://localhost:3000/settings"));
    // The bot recorded the person and their chat through the API.
    let (chat_id, language): (Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT chat_id, language_code FROM telegram_accounts WHERE telegram_user_id = 501",
    )
    .fetch_one(&db)
    .await
    .expect("recorded");
    assert_eq!((chat_id, language.as_deref()), (Some(501), Some("en")));

    emulator.say(501, "/help", "en").await;
    emulator.say(501, "/settings", "en").await;
    emulator.say(501, "/docs", "en").await;
    emulator.say(501, "/frobnicate", "en").await;
    emulator
        .post("/control/users/501/raw", json!({"sticker": {"file_id": "x", "file_unique_id": "y", "type": "regular", "width": 512, "height": 512, "is_animated": false, "is_video": false}}))
        .await;
    emulator
        .post(
            "/control/users/501/raw",
            json!({"voice": {"file_id": "v", "file_unique_id": "w", "duration": 3}}),
        )
        .await;
    let sent = emulator.wait_for(501, 7).await;
    assert!(
        text(&sent[1]).contains("/docs — your documents"),
        "{}",
        text(&sent[1])
    );
    assert_eq!(
        sent[2]["reply_markup"]["inline_keyboard"][0][0]["web_app"]["url"],
        "http://localhost:3000/miniapp/preferences"
    );
    assert!(text(&sent[3]).contains("not linked"), "{}", text(&sent[3]));
    assert_eq!(
        text(&sent[4]),
        "I don't know the command /frobnicate. Try /help."
    );
    assert!(text(&sent[5]).contains("Stickers"), "{}", text(&sent[5]));
    assert!(
        text(&sent[6]).contains("voice messages"),
        "{}",
        text(&sent[6])
    );

    // Russian from the user's language code.
    emulator.say(502, "/help", "ru-RU").await;
    let sent = emulator.wait_for(502, 1).await;
    assert!(
        text(&sent[0]).contains("хранит ваши бумаги"),
        "{}",
        text(&sent[0])
    );

    // A button press the bot does not know is answered, not ignored.
    let markup = json!({"inline_keyboard": [[{"text": "Old", "callback_data": "stale:1"}]]});
    let old: Value = emulator
        .http
        .post(format!("{}/bot{TOKEN}/sendMessage", emulator.url))
        .json(&json!({"chat_id": 503, "text": "old keyboard", "reply_markup": markup}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    emulator
        .post(
            "/control/users/503/callbacks",
            json!({"message_id": old["result"]["message_id"], "data": "stale:1"}),
        )
        .await;
    eventually(
        "the callback is answered",
        Duration::from_secs(15),
        || async {
            emulator
                .get("/control/callback-answers")
                .await
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    let answers = emulator.get("/control/callback-answers").await;
    assert_eq!(answers[0]["text"], "This button has expired.");

    running.stop().await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_burst_of_200_messages_to_one_chat_gets_200_ordered_replies_and_no_429(db: sqlx::PgPool) {
    let (_app, api_url) = serve_app(db).await;
    // Telegram's rates scaled up 40× so the test takes seconds, not minutes.
    let emulator = Emulator::start(tgemu::Limits {
        per_chat_per_sec: 40,
        overall_per_sec: 120,
        ..tgemu::Limits::default()
    })
    .await;
    let running = RunningBot::start(bot_config(&emulator, &api_url, (40, 120)));
    for n in 0..200 {
        emulator.say(777, &format!("/c{n}"), "en").await;
    }
    let sent = emulator.wait_for(777, 200).await;
    let expected: Vec<String> = (0..200)
        .map(|n| format!("I don't know the command /c{n}. Try /help."))
        .collect();
    let got: Vec<String> = sent.iter().map(|m| text(m).to_owned()).collect();
    assert_eq!(got, expected, "every message answered once, in order");
    let stats = emulator.get("/control/stats").await;
    assert_eq!(
        stats["too_many_requests"], 0,
        "the throttle never tripped a 429"
    );
    running.stop().await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_restart_loses_no_update_and_repeats_none(db: sqlx::PgPool) {
    let (_app, api_url) = serve_app(db).await;
    let emulator = Emulator::start(tgemu::Limits {
        per_chat_per_sec: 20,
        overall_per_sec: 100,
        ..tgemu::Limits::default()
    })
    .await;
    // Ten chats, four messages each; the bot is stopped while replies are still going out.
    for n in 0..40 {
        emulator.say(900 + n % 10, &format!("/r{n}"), "en").await;
    }
    let first = RunningBot::start(bot_config(&emulator, &api_url, (2, 100)));
    eventually("some replies", Duration::from_secs(30), || async {
        let mut total = 0;
        for chat in 900..910 {
            total += emulator.sent(chat).await.len();
        }
        total >= 10
    })
    .await;
    first.stop().await;
    for n in 40..60 {
        emulator.say(900 + n % 10, &format!("/r{n}"), "en").await;
    }
    let second = RunningBot::start(bot_config(&emulator, &api_url, (2, 100)));
    for chat in 900..910 {
        emulator.wait_for(chat, 6).await;
    }
    second.stop().await;
    for chat in 900..910 {
        let got: Vec<String> = emulator
            .sent(chat)
            .await
            .iter()
            .map(|m| text(m).to_owned())
            .collect();
        let expected: Vec<String> = (0..60)
            .filter(|n| 900 + n % 10 == chat)
            .map(|n| format!("I don't know the command /r{n}. Try /help."))
            .collect();
        assert_eq!(
            got, expected,
            "chat {chat}: each message answered exactly once, in order"
        );
    }
}

/// The bot's API client, as a test plays another bot process.
pub fn bot_api(api_url: &str) -> bot::api::Api {
    bot::api::Api::new(
        url::Url::parse(api_url).expect("url"),
        "bot".into(),
        SecretString::from(BOT_SECRET),
    )
    .expect("api")
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn an_update_a_killed_process_left_unfinished_is_handled_again_and_a_finished_one_is_not(
    db: sqlx::PgPool,
) {
    use app::telegram::UpdateClaims;
    let (_app, api_url) = serve_app(db.clone()).await;
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    // Updates 1, 2 and 3 of the emulator.
    for n in 1..=3 {
        emulator.say(951, &format!("/r{n}"), "en").await;
    }
    let api = bot_api(&api_url);
    // The emulator's bot is 123456 (the token's prefix).
    let claim_for = |bot_id: i64, ids: Vec<i64>, holder: &'static str, takeover: u32| {
        let api = api.clone();
        async move {
            api.call::<_, UpdateClaims>(
                "telegram/updates/claim",
                None,
                &json!({"bot_id": bot_id, "update_ids": ids, "holder": holder, "takeover_after_secs": takeover}),
            )
            .await
            .expect("claim")
        }
    };
    let claim = |ids: Vec<i64>, holder: &'static str, takeover: u32| {
        claim_for(123_456, ids, holder, takeover)
    };
    // A process that was killed: it claimed 1 and 2, sent a status message about 1, finished 2.
    let first = claim(vec![1, 2, 2], "dead-1", 0).await;
    assert_eq!(
        first
            .claimed
            .iter()
            .map(|c| (c.update_id, c.attempt))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 1)],
        "new ids are claimed once each, in order"
    );
    api.call::<_, ()>(
        "telegram/updates/reply",
        None,
        &json!({"bot_id": 123_456, "update_id": 1, "holder": "dead-1", "message_id": 77}),
    )
    .await
    .expect("reply");
    api.call::<_, ()>(
        "telegram/updates/done",
        None,
        &json!({"bot_id": 123_456, "update_ids": [2]}),
    )
    .await
    .expect("done");
    // Another bot's update 2 is its own: claimed, not read as the first bot's finished one.
    let other_bot = claim_for(777, vec![2], "other-bot", 0).await;
    assert_eq!(
        other_bot
            .claimed
            .iter()
            .map(|c| (c.update_id, c.attempt))
            .collect::<Vec<_>>(),
        vec![(2, 1)],
        "{other_bot:?}"
    );
    assert!(other_bot.done.is_empty());
    // And finishing it there leaves the first bot's claims alone.
    api.call::<_, ()>(
        "telegram/updates/done",
        None,
        &json!({"bot_id": 777, "update_ids": [1]}),
    )
    .await
    .expect("done");
    // A webhook replica does not take over a fresh claim of another holder: neither list.
    let peer = claim(vec![1, 2], "peer-2", 120).await;
    assert!(peer.claimed.is_empty(), "{peer:?}");
    assert_eq!(peer.done, vec![2]);
    // Malformed holders are refused.
    let refused = api
        .call::<_, UpdateClaims>(
            "telegram/updates/claim",
            None,
            &json!({"bot_id": 123_456, "update_ids": [1], "holder": "a b", "takeover_after_secs": 0}),
        )
        .await;
    assert!(
        matches!(refused, Err(app::error::ApiError::Validation { .. })),
        "{refused:?}"
    );

    // The next poller takes update 1 over (learning of message 77), skips 2, handles 3.
    let taken = claim(vec![1], "probe-3", 0).await;
    assert_eq!(taken.claimed[0].attempt, 2);
    assert_eq!(taken.claimed[0].reply_message_id, Some(77));
    let running = RunningBot::start(bot_config(&emulator, &api_url, (20, 100)));
    emulator.wait_for(951, 2).await;
    running.stop().await;
    let texts: Vec<String> = emulator
        .sent(951)
        .await
        .iter()
        .map(|m| text(m).to_owned())
        .collect();
    assert_eq!(
        texts,
        vec![
            "I don't know the command /r1. Try /help.",
            "I don't know the command /r3. Try /help.",
        ]
    );
    let rows: Vec<(i64, i32, bool)> = sqlx::query_as(
        "SELECT update_id, attempts, done_at IS NOT NULL FROM telegram_updates
          WHERE bot_id = 123456 ORDER BY update_id",
    )
    .fetch_all(&db)
    .await
    .expect("rows");
    assert_eq!(rows, vec![(1, 3, true), (2, 1, true), (3, 1, true)]);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn webhook_mode_answers_updates_and_refuses_a_wrong_secret(db: sqlx::PgPool) {
    let (_app, api_url) = serve_app(db).await;
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let hook_url = format!("http://{listen}{}", bot::webhook::PATH);
    let mut config = bot_config(&emulator, &api_url, (1, 30));
    config.mode = bot::Mode::Webhook(bot::config::WebhookConfig {
        listen,
        url: url::Url::parse(&hook_url).expect("url"),
        secret: SecretString::from("hook_secret-123"),
    });
    let running = RunningBot::start(config);
    eventually("the webhook is set", Duration::from_secs(15), || async {
        emulator.get("/control/webhook").await["url"] == hook_url.as_str()
    })
    .await;
    emulator.say(601, "/help", "en").await;
    let sent = emulator.wait_for(601, 1).await;
    assert!(text(&sent[0]).contains("Dossier"));

    let http = reqwest::Client::new();
    let forged = json!({"update_id": 999_999, "message": {"message_id": 1, "date": 0, "chat": {"id": 602, "type": "private"}, "from": {"id": 602, "is_bot": false, "first_name": "Mallory"}, "text": "/help"}});
    for secret in [None, Some("wrong"), Some("hook_secret-12")] {
        let mut request = http.post(&hook_url).json(&forged);
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 401, "secret {secret:?}");
    }
    assert!(emulator.sent(602).await.is_empty());

    // Telegram redelivers when an answer is lost: the same update is handled once.
    for _ in 0..2 {
        let response = http
            .post(&hook_url)
            .header("X-Telegram-Bot-Api-Secret-Token", "hook_secret-123")
            .json(&forged)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(emulator.sent(602).await.len(), 1);
    running.stop().await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn two_replicas_elect_one_poller_and_the_standby_takes_over(db: sqlx::PgPool) {
    let (app, api_url) = serve_app(db).await;
    let emulator = Emulator::start(tgemu::Limits {
        per_chat_per_sec: 20,
        overall_per_sec: 200,
        ..tgemu::Limits::default()
    })
    .await;
    let with_lease = || {
        let mut config = bot_config(&emulator, &api_url, (20, 200));
        config.nats = Some(bot::config::Nats {
            url: nats_url(),
            env: app.state.settings.env.clone(),
            lease_ttl: Duration::from_secs(2),
            replicas: 1,
        });
        config
    };
    // The first replica takes the lease (it is alone), then a second one stands by.
    let first = RunningBot::start(with_lease());
    for n in 0..20 {
        emulator.say(1100 + n % 20, &format!("/p{n}"), "en").await;
    }
    for chat in 1100..1120 {
        emulator.wait_for(chat, 1).await;
    }
    let second = RunningBot::start(with_lease());
    for n in 20..40 {
        emulator.say(1100 + n % 20, &format!("/p{n}"), "en").await;
    }
    for chat in 1100..1120 {
        emulator.wait_for(chat, 2).await;
    }
    let stats = emulator.get("/control/stats").await;
    assert_eq!(stats["conflicts"], 0, "the standby never called getUpdates");

    // The poller stops cleanly; the standby takes over at once.
    first.stop().await;
    for n in 40..60 {
        emulator.say(1100 + n % 20, &format!("/p{n}"), "en").await;
    }
    for chat in 1100..1120 {
        let got: Vec<String> = emulator
            .wait_for(chat, 3)
            .await
            .iter()
            .map(|m| text(m).to_owned())
            .collect();
        let expected: Vec<String> = (0..60)
            .filter(|n| 1100 + n % 20 == chat)
            .map(|n| format!("I don't know the command /p{n}. Try /help."))
            .collect();
        assert_eq!(got, expected, "chat {chat}");
    }
    second.stop().await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_429_makes_the_bot_wait_retry_after_and_send_again(db: sqlx::PgPool) {
    let (_app, api_url) = serve_app(db).await;
    // Telegram allows one message a second in this chat; the bot is misconfigured to send ten.
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    let running = RunningBot::start(bot_config(&emulator, &api_url, (10, 30)));
    for n in 0..3 {
        emulator.say(1300, &format!("/q{n}"), "en").await;
    }
    let got: Vec<String> = emulator
        .wait_for(1300, 3)
        .await
        .iter()
        .map(|m| text(m).to_owned())
        .collect();
    let expected: Vec<String> = (0..3)
        .map(|n| format!("I don't know the command /q{n}. Try /help."))
        .collect();
    assert_eq!(got, expected, "nothing lost, order kept");
    let stats = emulator.get("/control/stats").await;
    assert!(
        stats["too_many_requests"].as_u64().unwrap_or(0) >= 1,
        "the emulator did push back: {stats}"
    );
    running.stop().await;
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn updates_wait_while_the_api_is_down_and_are_handled_once_it_is_back(db: sqlx::PgPool) {
    let emulator = Emulator::start(tgemu::Limits::default()).await;
    // A port with nothing behind it yet: the API is "down".
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let api_url = format!("http://127.0.0.1:{port}");
    let running = RunningBot::start(bot_config(&emulator, &api_url, (1, 30)));
    emulator.say(1400, "/help", "en").await;
    emulator.say(1400, "/settings", "en").await;
    // The bot fetches the updates, cannot claim them, and fetches them again later.
    eventually(
        "several fetch attempts",
        Duration::from_secs(15),
        || async {
            emulator.get("/control/stats").await["polls"]
                .as_u64()
                .unwrap_or(0)
                >= 3
        },
    )
    .await;
    assert!(
        emulator.sent(1400).await.is_empty(),
        "nothing is handled without the API"
    );

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the API comes back on its port");
    let (_app, _) = serve_app_on(db, listener).await;
    let sent = emulator.wait_for(1400, 2).await;
    assert!(
        text(&sent[0]).contains("Dossier keeps your papers"),
        "{}",
        text(&sent[0])
    );
    assert!(text(&sent[1]).contains("Settings"), "{}", text(&sent[1]));
    running.stop().await;
    assert_eq!(emulator.sent(1400).await.len(), 2, "each handled once");
}
