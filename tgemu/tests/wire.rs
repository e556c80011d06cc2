//! The emulator answers in Telegram's wire format.

use serde_json::{Value, json};

async fn spawn() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, tgemu::router(tgemu::Config::default()))
            .await
            .expect("serve");
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn get_me_answers_with_the_bot_and_a_wrong_token_is_unauthorized() {
    let base = spawn().await;
    let http = reqwest::Client::new();
    let token = tgemu::BotIdentity::default().token;

    let me: serde_json::Value = http
        .post(format!("{base}/bot{token}/getMe"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(me["ok"], true);
    assert_eq!(me["result"]["is_bot"], true);
    assert_eq!(me["result"]["username"], "dossier_dev_bot");

    let response = http
        .post(format!("{base}/bot1:wrong/getMe"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["ok"], false);
    assert_eq!(body["error_code"], 401);
}

#[tokio::test]
async fn updates_long_poll_and_offsets_confirm_them() {
    let base = spawn().await;
    let http = reqwest::Client::new();
    let token = tgemu::BotIdentity::default().token;
    let get_updates = |body: serde_json::Value| {
        let http = http.clone();
        let url = format!("{base}/bot{token}/GetUpdates");
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .expect("send")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };

    // A long poll waits until a user writes, then returns the update at once.
    let poll = tokio::spawn(get_updates(serde_json::json!({ "timeout": 30 })));
    let sent = http
        .post(format!("{base}/control/users/42/messages"))
        .json(&serde_json::json!({ "text": "/start hello" }))
        .send()
        .await
        .expect("send");
    assert_eq!(sent.status(), 201);
    let updates = poll.await.expect("join");
    let update = &updates["result"][0];
    assert_eq!(update["message"]["text"], "/start hello");
    assert_eq!(update["message"]["entities"][0]["type"], "bot_command");
    assert_eq!(update["message"]["entities"][0]["length"], 6);

    // Unconfirmed updates come again; an offset past them confirms them.
    let id = update["update_id"].as_i64().expect("id");
    let again = get_updates(serde_json::json!({ "offset": id })).await;
    assert_eq!(again["result"].as_array().expect("array").len(), 1);
    let after = get_updates(serde_json::json!({ "offset": id + 1 })).await;
    assert_eq!(after["result"], serde_json::json!([]));
}

#[tokio::test]
async fn sent_messages_are_recorded_and_limits_enforced() {
    let base = spawn().await;
    let http = reqwest::Client::new();
    let token = tgemu::BotIdentity::default().token;
    let send = |text: String| {
        http.post(format!("{base}/bot{token}/sendMessage"))
            .json(&serde_json::json!({ "chat_id": 42, "text": text }))
            .send()
    };
    let ok: serde_json::Value = send("hello".into())
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(ok["result"]["text"], "hello");
    let too_long = send("x".repeat(4097)).await.expect("send");
    assert_eq!(too_long.status(), 400);
    let sent: serde_json::Value = http
        .get(format!("{base}/control/chats/42/sent"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(sent.as_array().expect("array").len(), 1);
}

async fn spawn_with(limits: tgemu::Limits) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = tgemu::Config {
        limits,
        ..tgemu::Config::default()
    };
    tokio::spawn(async move {
        axum::serve(listener, tgemu::router(config))
            .await
            .expect("serve");
    });
    format!("http://{addr}")
}

fn method(base: &str, name: &str) -> String {
    format!("{base}/bot{}/{name}", tgemu::BotIdentity::default().token)
}

async fn call(http: &reqwest::Client, base: &str, name: &str, body: Value) -> (u16, Value) {
    let response = http
        .post(method(base, name))
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn bursts_above_telegram_rates_get_429_with_retry_after() {
    let base = spawn().await;
    let http = reqwest::Client::new();
    let (status, _) = call(
        &http,
        &base,
        "sendMessage",
        json!({"chat_id": 7, "text": "1"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &http,
        &base,
        "sendMessage",
        json!({"chat_id": 7, "text": "2"}),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(body["error_code"], 429);
    assert_eq!(body["parameters"]["retry_after"], 1);
    // Another chat is not affected; thirty chats in a second exhaust the overall budget.
    for chat in 100..129 {
        let (status, body) = call(
            &http,
            &base,
            "sendMessage",
            json!({"chat_id": chat, "text": "x"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = call(
        &http,
        &base,
        "sendMessage",
        json!({"chat_id": 500, "text": "x"}),
    )
    .await;
    assert_eq!(status, 429);
    let stats: Value = http
        .get(format!("{base}/control/stats"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["too_many_requests"], 2);
}

#[tokio::test]
async fn files_go_up_by_multipart_and_come_back_through_get_file() {
    let base = spawn_with(tgemu::Limits {
        per_chat_per_sec: 100,
        ..tgemu::Limits::default()
    })
    .await;
    let http = reqwest::Client::new();
    let form = reqwest::multipart::Form::new()
        .text("chat_id", "42")
        .text("caption", "<b>Your</b> file")
        .text("parse_mode", "HTML")
        .part(
            "document",
            reqwest::multipart::Part::bytes(b"%PDF-1.4 hello".to_vec())
                .file_name("report.pdf")
                .mime_str("application/pdf")
                .expect("mime"),
        );
    let sent: Value = http
        .post(method(&base, "sendDocument"))
        .multipart(form)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let document = &sent["result"]["document"];
    assert_eq!(document["file_name"], "report.pdf");
    assert_eq!(sent["result"]["caption"], "Your file");
    assert_eq!(sent["result"]["caption_entities"][0]["type"], "bold");
    let file_id = document["file_id"].as_str().expect("file_id");

    let (_, file) = call(&http, &base, "getFile", json!({"file_id": file_id})).await;
    let path = file["result"]["file_path"].as_str().expect("path");
    let token = tgemu::BotIdentity::default().token;
    let bytes = http
        .get(format!("{base}/file/bot{token}/{path}"))
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&bytes[..], b"%PDF-1.4 hello");

    // Sending again by file_id reuses the file; an unknown id is refused.
    let (status, again) = call(
        &http,
        &base,
        "sendDocument",
        json!({"chat_id": 42, "document": file_id}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["result"]["document"]["file_id"], file_id);
    let (status, _) = call(
        &http,
        &base,
        "sendDocument",
        json!({"chat_id": 43, "document": "nope"}),
    )
    .await;
    assert_eq!(status, 400);

    // A user's 21 MB document can be seen but not downloaded through the public Bot API.
    let big = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![0u8; 21 * 1024 * 1024]).file_name("big.bin"),
    );
    let update: Value = http
        .post(format!("{base}/control/users/9/documents"))
        .multipart(big)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let big_id = update["message"]["document"]["file_id"]
        .as_str()
        .expect("id");
    assert_eq!(update["message"]["document"]["file_size"], 21 * 1024 * 1024);
    let (status, body) = call(&http, &base, "getFile", json!({"file_id": big_id})).await;
    assert_eq!(status, 400);
    assert_eq!(body["description"], "Bad Request: file is too big");
}

#[tokio::test]
async fn buttons_callbacks_edits_and_deletes_behave_like_telegram() {
    let base = spawn_with(tgemu::Limits {
        per_chat_per_sec: 100,
        ..tgemu::Limits::default()
    })
    .await;
    let http = reqwest::Client::new();
    let keyboard = json!({"inline_keyboard": [[{"text": "Approve", "callback_data": "link:ok"}]]});
    let (_, sent) = call(
        &http,
        &base,
        "sendMessage",
        json!({"chat_id": 5, "text": "Link?", "reply_markup": keyboard}),
    )
    .await;
    let message_id = sent["result"]["message_id"].as_i64().expect("id");

    let (status, body) = call(
        &http,
        &base,
        "sendMessage",
        json!({"chat_id": 5, "text": "x", "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "y".repeat(65)}]]}}),
    )
    .await;
    assert_eq!(
        (status, body["description"].as_str()),
        (400, Some("Bad Request: BUTTON_DATA_INVALID"))
    );
    let (status, _) = call(
        &http,
        &base,
        "sendMessage",
        json!({"chat_id": 5, "text": "a < b", "parse_mode": "HTML"}),
    )
    .await;
    assert_eq!(status, 400);

    let press: Value = http
        .post(format!("{base}/control/users/5/callbacks"))
        .json(&json!({"message_id": message_id, "data": "link:ok"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let query_id = press["callback_query"]["id"].as_str().expect("id");
    assert_eq!(press["callback_query"]["message"]["message_id"], message_id);
    let (status, _) = call(
        &http,
        &base,
        "answerCallbackQuery",
        json!({"callback_query_id": query_id, "text": "Done"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &http,
        &base,
        "answerCallbackQuery",
        json!({"callback_query_id": query_id}),
    )
    .await;
    assert_eq!(status, 400, "a query is answered once");

    let (status, edited) = call(
        &http,
        &base,
        "editMessageText",
        json!({"chat_id": 5, "message_id": message_id, "text": "Linked"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        edited["result"]["reply_markup"].is_null(),
        "an edit without markup drops the keyboard"
    );
    let (status, same) = call(
        &http,
        &base,
        "editMessageText",
        json!({"chat_id": 5, "message_id": message_id, "text": "Linked"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        same["description"]
            .as_str()
            .expect("text")
            .contains("message is not modified")
    );
    let (status, _) = call(
        &http,
        &base,
        "deleteMessage",
        json!({"chat_id": 5, "message_id": message_id}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &http,
        &base,
        "deleteMessage",
        json!({"chat_id": 5, "message_id": message_id}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &http,
        &base,
        "sendChatAction",
        json!({"chat_id": 5, "action": "typing"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &http,
        &base,
        "sendChatAction",
        json!({"chat_id": 5, "action": "dancing"}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn webhooks_receive_updates_with_the_secret_and_are_retried() {
    use std::sync::{Arc, Mutex};
    let base = spawn().await;
    let http = reqwest::Client::new();
    // A webhook that fails the first delivery, then records what it gets.
    type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;
    let seen: Seen = Arc::default();
    let failures = Arc::new(Mutex::new(1));
    let app = {
        let seen = seen.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, axum::Json(update): axum::Json<Value>| {
                    let seen = seen.clone();
                    let failures = failures.clone();
                    async move {
                        let mut left = failures.lock().expect("lock");
                        if *left > 0 {
                            *left -= 1;
                            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        let secret = headers
                            .get("x-telegram-bot-api-secret-token")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        seen.lock().expect("lock").push((secret, update));
                        axum::http::StatusCode::OK
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let (status, _) = call(
        &http,
        &base,
        "setWebhook",
        json!({"url": hook, "secret_token": "s3cret_token"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&http, &base, "getUpdates", json!({})).await;
    assert_eq!(status, 409, "no polling while a webhook is set");
    for text in ["one", "two"] {
        http.post(format!("{base}/control/users/3/messages"))
            .json(&json!({"text": text}))
            .send()
            .await
            .expect("send");
    }
    for _ in 0..200 {
        if seen.lock().expect("lock").len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "both delivered after one failure");
    assert_eq!(seen[0].0.as_deref(), Some("s3cret_token"));
    assert_eq!(seen[0].1["message"]["text"], "one");
    assert_eq!(seen[1].1["message"]["text"], "two");
    let (_, info) = call(&http, &base, "getWebhookInfo", json!({})).await;
    assert_eq!(info["result"]["pending_update_count"], 0);
    assert!(info["result"]["last_error_message"].is_string());
}

#[tokio::test]
async fn a_second_poller_ends_the_first_with_409() {
    let base = spawn().await;
    let http = reqwest::Client::new();
    let first = tokio::spawn({
        let http = http.clone();
        let base = base.clone();
        async move { call(&http, &base, "getUpdates", json!({"timeout": 20})).await }
    });
    // Wait until the emulator has registered the first poll.
    for _ in 0..400 {
        let stats: Value = http
            .get(format!("{base}/control/stats"))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        if stats["polls"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let second = call(&http, &base, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(second.0, 200);
    let (status, body) = first.await.expect("join");
    assert_eq!(status, 409);
    assert!(
        body["description"]
            .as_str()
            .expect("text")
            .contains("terminated by other getUpdates")
    );
}
