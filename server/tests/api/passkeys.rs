//! Passkeys end to end through the HTTP API, with a software authenticator that builds real
//! WebAuthn messages (CBOR attestation, P-256 signatures) the way a browser hands them over.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

const RP_ID: &str = "localhost";
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
        .expect("base64 from the server")
}

/// One discoverable credential on a pretend platform authenticator.
struct SoftAuthenticator {
    key: p256::ecdsa::SigningKey,
    credential_id: Vec<u8>,
    user_handle: Vec<u8>,
    counter: u32,
}

impl SoftAuthenticator {
    fn new(seed: u8) -> Self {
        Self {
            key: p256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("a valid scalar"),
            credential_id: vec![seed; 32],
            user_handle: Vec::new(),
            counter: 0,
        }
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    fn auth_data(&self, flags: u8, attested: Option<Vec<u8>>) -> Vec<u8> {
        let mut data = Sha256::digest(RP_ID.as_bytes()).to_vec();
        data.push(flags);
        data.extend_from_slice(&self.counter.to_be_bytes());
        if let Some(attested) = attested {
            data.extend_from_slice(&attested);
        }
        data
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let x = point.x().expect("uncompressed point").to_vec();
        let y = point.y().expect("uncompressed point").to_vec();
        let map: BTreeMap<Cbor, Cbor> = [
            (Cbor::Integer(1), Cbor::Integer(2)),  // kty: EC2
            (Cbor::Integer(3), Cbor::Integer(-7)), // alg: ES256
            (Cbor::Integer(-1), Cbor::Integer(1)), // crv: P-256
            (Cbor::Integer(-2), Cbor::Bytes(x)),
            (Cbor::Integer(-3), Cbor::Bytes(y)),
        ]
        .into_iter()
        .collect();
        serde_cbor_2::to_vec(&Cbor::Map(map)).expect("cbor")
    }

    /// `navigator.credentials.create` for the options the server sent.
    fn create(&mut self, options: &Value, origin: &str) -> Value {
        let public_key = &options["publicKey"];
        self.user_handle = unb64(public_key["user"]["id"].as_str().expect("user id"));
        let challenge = public_key["challenge"].as_str().expect("challenge");
        let client_data = Self::client_data("webauthn.create", challenge, origin);
        let mut attested = vec![0u8; 16]; // AAGUID
        attested.extend_from_slice(
            &u16::try_from(self.credential_id.len())
                .expect("len")
                .to_be_bytes(),
        );
        attested.extend_from_slice(&self.credential_id);
        attested.extend_from_slice(&self.cose_key());
        let auth_data = self.auth_data(UP | UV | AT, Some(attested));
        let attestation: BTreeMap<Cbor, Cbor> = [
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new())),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]
        .into_iter()
        .collect();
        let attestation = serde_cbor_2::to_vec(&Cbor::Map(attestation)).expect("cbor");
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
        })
    }

    /// `navigator.credentials.get`, with the given flags (a real one sets UP and UV).
    fn get(&mut self, options: &Value, origin: &str, flags: u8) -> Value {
        self.counter += 1;
        let challenge = options["publicKey"]["challenge"]
            .as_str()
            .expect("challenge");
        let client_data = Self::client_data("webauthn.get", challenge, origin);
        let auth_data = self.auth_data(flags, None);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: p256::ecdsa::Signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&self.user_handle),
            },
        })
    }
}

fn with_cookie(cookie: &str) -> [(&str, &str); 2] {
    [("origin", ORIGIN), ("cookie", cookie)]
}

/// Registers a passkey for the signed-in `cookie` and returns the server's answer to `finish`.
async fn register(
    app: &TestApp,
    cookie: &str,
    device: &mut SoftAuthenticator,
    name: &str,
) -> Reply {
    let start = call(
        app,
        "/api/auth/passkeys/register/start",
        "",
        &with_cookie(cookie),
    )
    .await;
    assert_eq!(start.status, 200, "{}", start.body);
    let start = start.json();
    let credential = device.create(&start["options"], ORIGIN);
    call_json(
        app,
        "/api/auth/passkeys/register/finish",
        &json!({"ceremony": start["ceremony"], "name": name, "credential": credential}),
        &with_cookie(cookie),
    )
    .await
}

async fn start_sign_in(app: &TestApp) -> Value {
    let start = call(app, "/api/auth/passkeys/sign-in/start", "", &[]).await;
    assert_eq!(start.status, 200, "{}", start.body);
    start.json()
}

async fn finish_sign_in(app: &TestApp, ceremony: &Value, credential: &Value) -> Reply {
    call_json(
        app,
        "/api/auth/passkeys/sign-in/finish",
        &json!({"ceremony": ceremony, "credential": credential}),
        &[("origin", ORIGIN)],
    )
    .await
}

async fn list(app: &TestApp, cookie: &str) -> Vec<Value> {
    let reply = call(app, "/api/auth/passkeys/list", "", &with_cookie(cookie)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json().as_array().cloned().expect("a list")
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_registered_passkey_signs_in_without_a_username(db: sqlx::PgPool) {
    let app = spawn_app(db.clone()).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let mut device = SoftAuthenticator::new(7);

    // The options ask for a discoverable credential with user verification, for our RP id.
    let start = call(
        &app,
        "/api/auth/passkeys/register/start",
        "",
        &with_cookie(&cookie),
    )
    .await;
    let options = start.json()["options"]["publicKey"].clone();
    assert_eq!(options["rp"]["id"], RP_ID);
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );

    let added = register(&app, &cookie, &mut device, "  Laptop  ").await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.json()["name"], "Laptop");
    let listed = list(&app, &cookie).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["last_used_at"], Value::Null);

    // Sign in: no allow-list (the authenticator discovers the credential), modal mediation.
    let start = start_sign_in(&app).await;
    assert_eq!(start["options"]["publicKey"]["allowCredentials"], json!([]));
    assert!(start["options"].get("mediation").is_none(), "{start}");
    let assertion = device.get(&start["options"], ORIGIN, UP | UV);
    let signed_in = finish_sign_in(&app, &start["ceremony"], &assertion).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(signed_in.json()["email"], "ann@example.org");
    let session = session_cookie(&signed_in.cookie.expect("a session cookie"));
    assert_eq!(me(&app, &session).await.json()["email"], "ann@example.org");

    // The use is recorded, and the signature counter stored.
    let listed = list(&app, &cookie).await;
    assert!(listed[0]["last_used_at"].is_string(), "{listed:?}");
    let (counter,): (i64,) =
        sqlx::query_as("SELECT (passkey->'cred'->>'counter')::bigint FROM passkeys")
            .fetch_one(&db)
            .await
            .expect("stored passkey");
    assert_eq!(counter, 1);

    // Replaying the same answer: the ceremony was consumed.
    let replay = finish_sign_in(&app, &start["ceremony"], &assertion).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("expired"), "{}", replay.body);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn forged_or_careless_assertions_are_refused(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let cookie = sign_up(&app, "ann@example.org").await;
    let mut device = SoftAuthenticator::new(9);
    assert_eq!(
        register(&app, &cookie, &mut device, "Phone").await.status,
        200
    );

    // Without user verification (no PIN or biometrics).
    let start = start_sign_in(&app).await;
    let answer = device.get(&start["options"], ORIGIN, UP);
    let reply = finish_sign_in(&app, &start["ceremony"], &answer).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.cookie.is_none());

    // Signed for another site's origin.
    let start = start_sign_in(&app).await;
    let answer = device.get(&start["options"], "https://evil.example", UP | UV);
    assert_eq!(
        finish_sign_in(&app, &start["ceremony"], &answer)
            .await
            .status,
        400
    );

    // Signed by a different key that claims the same credential id.
    let mut impostor = SoftAuthenticator::new(9);
    impostor.key = p256::ecdsa::SigningKey::from_slice(&[3; 32]).expect("scalar");
    impostor.user_handle = device.user_handle.clone();
    let start = start_sign_in(&app).await;
    let answer = impostor.get(&start["options"], ORIGIN, UP | UV);
    assert_eq!(
        finish_sign_in(&app, &start["ceremony"], &answer)
            .await
            .status,
        400
    );

    // An answer to one challenge presented for another ceremony.
    let first = start_sign_in(&app).await;
    let second = start_sign_in(&app).await;
    let answer = device.get(&first["options"], ORIGIN, UP | UV);
    assert_eq!(
        finish_sign_in(&app, &second["ceremony"], &answer)
            .await
            .status,
        400
    );

    // A cloned authenticator: its counter goes backwards.
    let start = start_sign_in(&app).await;
    device.counter = 10;
    let answer = device.get(&start["options"], ORIGIN, UP | UV);
    assert_eq!(
        finish_sign_in(&app, &start["ceremony"], &answer)
            .await
            .status,
        200
    );
    let start = start_sign_in(&app).await;
    device.counter = 3;
    let answer = device.get(&start["options"], ORIGIN, UP | UV);
    let reply = finish_sign_in(&app, &start["ceremony"], &answer).await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    // A passkey this server never registered.
    let mut stranger = SoftAuthenticator::new(11);
    stranger.user_handle = device.user_handle.clone();
    let start = start_sign_in(&app).await;
    let answer = stranger.get(&start["options"], ORIGIN, UP | UV);
    let reply = finish_sign_in(&app, &start["ceremony"], &answer).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("not registered"), "{}", reply.body);

    // A cross-site page cannot finish a sign-in (login CSRF).
    let start = start_sign_in(&app).await;
    let answer = device.get(&start["options"], ORIGIN, UP | UV);
    let reply = call_json(
        &app,
        "/api/auth/passkeys/sign-in/finish",
        &json!({"ceremony": start["ceremony"], "credential": answer}),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn registration_needs_a_session_and_its_own_ceremony(db: sqlx::PgPool) {
    let app = spawn_app(db).await;
    let ann = sign_up(&app, "ann@example.org").await;
    let bob = sign_up(&app, "bob@example.org").await;

    let anonymous = call(
        &app,
        "/api/auth/passkeys/register/start",
        "",
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let cross_site = call(
        &app,
        "/api/auth/passkeys/register/start",
        "",
        &[("origin", "https://evil.example"), ("cookie", &ann)],
    )
    .await;
    assert_eq!(cross_site.status, 403, "{}", cross_site.body);

    // Bob cannot finish Ann's ceremony, and a finished ceremony cannot be reused.
    let start = call(
        &app,
        "/api/auth/passkeys/register/start",
        "",
        &with_cookie(&ann),
    )
    .await
    .json();
    let mut device = SoftAuthenticator::new(5);
    let credential = device.create(&start["options"], ORIGIN);
    let body = json!({"ceremony": start["ceremony"], "name": "Key", "credential": credential});
    let stolen = call_json(
        &app,
        "/api/auth/passkeys/register/finish",
        &body,
        &with_cookie(&bob),
    )
    .await;
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    let own = call_json(
        &app,
        "/api/auth/passkeys/register/finish",
        &body,
        &with_cookie(&ann),
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.body);
    let again = call_json(
        &app,
        "/api/auth/passkeys/register/finish",
        &body,
        &with_cookie(&ann),
    )
    .await;
    assert_eq!(again.status, 400, "{}", again.body);

    // The same authenticator credential cannot be registered twice.
    let twice = register(&app, &ann, &mut device, "Key again").await;
    assert_eq!(twice.status, 409, "{}", twice.body);

    // A bad name is refused before the ceremony is touched.
    let start = call(
        &app,
        "/api/auth/passkeys/register/start",
        "",
        &with_cookie(&ann),
    )
    .await
    .json();
    let credential = SoftAuthenticator::new(6).create(&start["options"], ORIGIN);
    let unnamed = call_json(
        &app,
        "/api/auth/passkeys/register/finish",
        &json!({"ceremony": start["ceremony"], "name": "  ", "credential": credential}),
        &with_cookie(&ann),
    )
    .await;
    assert_eq!(unnamed.status, 400);
    assert_eq!(unnamed.json()["fields"][0]["field"], "name");
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn people_manage_only_their_own_passkeys(db: sqlx::PgPool) {
    let app = spawn_app(db.clone()).await;
    let ann = sign_up(&app, "ann@example.org").await;
    let bob = sign_up(&app, "bob@example.org").await;
    let added = register(&app, &ann, &mut SoftAuthenticator::new(1), "Laptop").await;
    let id = added.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(
        register(&app, &ann, &mut SoftAuthenticator::new(2), "Phone")
            .await
            .status,
        200
    );

    assert!(list(&app, &bob).await.is_empty());
    let rename = form(&[("id", &id), ("name", "Mine now")]);
    let reply = call(
        &app,
        "/api/auth/passkeys/rename",
        &rename,
        &with_cookie(&bob),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    let reply = call(
        &app,
        "/api/auth/passkeys/delete",
        &form(&[("id", &id)]),
        &with_cookie(&bob),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);

    let reply = call(
        &app,
        "/api/auth/passkeys/rename",
        &form(&[("id", &id), ("name", "Work laptop")]),
        &with_cookie(&ann),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let names: Vec<Value> = list(&app, &ann)
        .await
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("Work laptop"), json!("Phone")]);

    let reply = call(
        &app,
        "/api/auth/passkeys/delete",
        &form(&[("id", &id)]),
        &with_cookie(&ann),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(list(&app, &ann).await.len(), 1);

    // Without a password, the last passkey is the only way in: it cannot be deleted.
    sqlx::query("UPDATE users SET password_hash = NULL WHERE email_normalized = 'ann@example.org'")
        .execute(&db)
        .await
        .expect("drop the password");
    let last = list(&app, &ann).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let reply = call(
        &app,
        "/api/auth/passkeys/delete",
        &form(&[("id", &last)]),
        &with_cookie(&ann),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(list(&app, &ann).await.len(), 1);

    let anonymous = call(&app, "/api/auth/passkeys/list", "", &[]).await;
    assert_eq!(anonymous.status, 401);
}

#[sqlx::test(migrator = "server::MIGRATOR")]
async fn passkeys_are_off_when_the_public_url_is_an_ip_address(db: sqlx::PgPool) {
    let settings = app::config::Settings {
        public_url: "http://127.0.0.1:3000".into(),
        ..test_settings()
    };
    let app = spawn_app_with(db, settings).await;
    let reply = call(&app, "/api/auth/passkeys/sign-in/start", "", &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.json()["code"], "unavailable");
}

/// The Mini App's fallback: a one-time link opens the system browser, which registers the
/// passkey without any session; the Mini App learns the result through the status call.
#[sqlx::test(migrator = "server::MIGRATOR")]
async fn a_setup_link_adds_a_passkey_in_the_browser_once(db: sqlx::PgPool) {
    let app = spawn_app(db.clone()).await;
    let ann = sign_up(&app, "ann@example.org").await;
    let bob = sign_up(&app, "bob@example.org").await;

    let link = call(
        &app,
        "/api/auth/passkeys/setup-link",
        "",
        &with_cookie(&ann),
    )
    .await;
    assert_eq!(link.status, 200, "{}", link.body);
    let link = link.json();
    let setup = link["setup"].as_str().expect("setup id").to_owned();
    let url = link["url"].as_str().expect("url");
    assert_eq!(link["expires_in_secs"], 600);
    // The token is in the fragment: it never reaches a server log or a Referer header.
    let (page, token) = url.split_once('#').expect("a fragment");
    assert_eq!(page, format!("{ORIGIN}/passkeys/setup"));
    assert_eq!(token.len(), 43);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM one_time_links")
        .fetch_one(&db)
        .await
        .expect("stored");
    assert_ne!(stored, token.as_bytes(), "only the hash is stored");

    let status = |cookie: String| {
        let app = &app;
        let setup = setup.clone();
        async move {
            call(
                app,
                "/api/auth/passkeys/setup/status",
                &form(&[("setup", &setup)]),
                &with_cookie(&cookie),
            )
            .await
        }
    };
    assert_eq!(status(ann.clone()).await.json()["state"], "waiting");
    // Only its owner may ask.
    assert_eq!(status(bob.clone()).await.status, 404);

    // The system browser: no cookie, no Origin of a session; the token alone.
    let start = call(
        &app,
        "/api/auth/passkeys/setup/start",
        &form(&[("token", token)]),
        &[],
    )
    .await;
    assert_eq!(start.status, 200, "{}", start.body);
    let start = start.json();
    assert_eq!(start["email"], "ann@example.org");
    assert_eq!(status(ann.clone()).await.json()["state"], "opened");
    // The link works once.
    let again = call(
        &app,
        "/api/auth/passkeys/setup/start",
        &form(&[("token", token)]),
        &[],
    )
    .await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(
        again.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("expired or was already used")
    );
    let forged = call(
        &app,
        "/api/auth/passkeys/setup/start",
        &form(&[("token", &"A".repeat(43))]),
        &[],
    )
    .await;
    assert_eq!(forged.status, 400);

    let mut device = SoftAuthenticator::new(9);
    let credential = device.create(&start["ceremony"]["options"], ORIGIN);
    let finish_body = json!({
        "setup": setup,
        "ceremony": start["ceremony"]["ceremony"],
        "name": "Phone",
        "credential": credential,
    });
    let finished = call_json(&app, "/api/auth/passkeys/setup/finish", &finish_body, &[]).await;
    assert_eq!(finished.status, 200, "{}", finished.body);
    assert_eq!(finished.json()["name"], "Phone");
    let done = status(ann.clone()).await.json();
    assert_eq!(done["state"], "done");
    assert_eq!(done["name"], "Phone");
    // Ann's, not Bob's; and the finished setup cannot be finished twice.
    assert_eq!(list(&app, &ann).await.len(), 1);
    assert_eq!(list(&app, &bob).await.len(), 0);
    let replay = call_json(&app, "/api/auth/passkeys/setup/finish", &finish_body, &[]).await;
    assert_eq!(replay.status, 400, "{}", replay.body);

    // An unopened link stops working after its ten minutes.
    let late = call(
        &app,
        "/api/auth/passkeys/setup-link",
        "",
        &with_cookie(&ann),
    )
    .await
    .json();
    sqlx::query("UPDATE one_time_links SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(
            late["setup"]
                .as_str()
                .expect("id")
                .parse::<uuid::Uuid>()
                .expect("uuid"),
        )
        .execute(&db)
        .await
        .expect("expire");
    let late_token = late["url"]
        .as_str()
        .expect("url")
        .split_once('#')
        .expect("#")
        .1
        .to_owned();
    let expired = call(
        &app,
        "/api/auth/passkeys/setup/start",
        &form(&[("token", &late_token)]),
        &[],
    )
    .await;
    assert_eq!(expired.status, 400);
    let state = call(
        &app,
        "/api/auth/passkeys/setup/status",
        &form(&[("setup", late["setup"].as_str().expect("id"))]),
        &with_cookie(&ann),
    )
    .await;
    assert_eq!(state.json()["state"], "expired");
}
