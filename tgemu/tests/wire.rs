//! The emulator answers in Telegram's wire format.

async fn spawn() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, tgemu::router(tgemu::BotIdentity::default()))
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
