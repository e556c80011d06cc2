//! The bot's way into Dossier: the same server functions the web uses, called over HTTP with
//! every request signed (service, timestamp, nonce, method, path, acting user, body hash).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use app::auth::signing::{self, SignedParts};
use app::error::ApiError;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: url::Url,
    service: String,
    secret: SecretString,
    retry_for: Duration,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base.as_str())
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// `multipart/form-data` (RFC 7578): `fields` as text parts, `files` as (field, file name,
/// bytes). File names are quoted with `"` and control characters (line breaks included)
/// replaced by spaces, as browsers do.
pub fn multipart_body(
    boundary: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> (String, Vec<u8>) {
    // No control character may be in a header (a Telegram file name may hold any).
    let quote = |value: &str| value.replace('"', "%22").replace(char::is_control, " ");
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n",
                quote(name)
            )
            .as_bytes(),
        );
    }
    for (name, file_name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                quote(name),
                quote(file_name)
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// How long a repeatable call is retried while the API is unavailable, unless configured
/// (`DOSSIER_BOT_API_RETRY_SECS`): long enough for a server, PostgreSQL or NATS restart, short
/// enough that a person is not left waiting silently.
pub const RETRY_FOR: Duration = Duration::from_secs(60);

/// Runs `attempt` until it gives anything but `Unavailable` or `Busy`, or `retry_for` has
/// passed, with pauses growing from 250 ms to 4 s (`Busy`: its `retry_after_secs`). Each
/// attempt is signed afresh (a new nonce).
async fn retrying<O, F, Fut>(retry_for: Duration, mut attempt: F) -> Result<O, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<O, ApiError>>,
{
    let deadline = tokio::time::Instant::now() + retry_for;
    let mut pause = Duration::from_millis(250);
    loop {
        match attempt().await {
            Err(ApiError::Unavailable) if tokio::time::Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(4));
            }
            // At capacity: come back when it says (the bot is one client among many; a
            // person's message waits rather than failing).
            Err(ApiError::Busy { retry_after_secs })
                if tokio::time::Instant::now() + Duration::from_secs(retry_after_secs)
                    < deadline =>
            {
                tokio::time::sleep(Duration::from_secs(retry_after_secs.max(1))).await;
            }
            result => return result,
        }
    }
}

fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Api {
    pub fn new(base: url::Url, service: String, secret: SecretString) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build()?;
        Ok(Self {
            http,
            base,
            service,
            secret,
            retry_for: RETRY_FOR,
        })
    }

    /// How long the `*_retrying` calls keep trying (`RETRY_FOR` unless set).
    #[must_use]
    pub fn retrying_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// Calls the server function at `/api/<endpoint>` with a JSON body, acting for
    /// `telegram_user` (or for nobody), and decodes its answer or its `ApiError`.
    pub async fn call<I: Serialize, O: DeserializeOwned>(
        &self,
        endpoint: &str,
        telegram_user: Option<i64>,
        input: &I,
    ) -> Result<O, ApiError> {
        let body = serde_json::to_vec(input).map_err(|e| ApiError::Request {
            message: e.to_string(),
        })?;
        self.send(endpoint, telegram_user, "application/json", body)
            .await
    }

    /// `call`, repeated while the API is unavailable (restarting, or its database or NATS is),
    /// for up to `retry_for`; for calls that are safe to repeat.
    pub async fn call_retrying<I: Serialize, O: DeserializeOwned>(
        &self,
        endpoint: &str,
        telegram_user: Option<i64>,
        input: &I,
    ) -> Result<O, ApiError> {
        retrying(self.retry_for, || self.call(endpoint, telegram_user, input)).await
    }

    /// `call_multipart`, repeated while the API is unavailable (see `call_retrying`).
    pub async fn call_multipart_retrying<O: DeserializeOwned>(
        &self,
        endpoint: &str,
        telegram_user: Option<i64>,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Result<O, ApiError> {
        retrying(self.retry_for, || {
            self.call_multipart(endpoint, telegram_user, fields, files)
        })
        .await
    }

    /// Calls a multipart server function (an upload): text fields and files, acting for
    /// `telegram_user`. The body is built here so that exactly the signed bytes are sent.
    pub async fn call_multipart<O: DeserializeOwned>(
        &self,
        endpoint: &str,
        telegram_user: Option<i64>,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Result<O, ApiError> {
        let boundary = format!("dossier-{}", nonce());
        let (content_type, body) = multipart_body(&boundary, fields, files);
        self.send(endpoint, telegram_user, &content_type, body)
            .await
    }

    /// GETs a file route (`/documents/{id}/file?part=1`) acting for `telegram_user`.
    pub async fn download(
        &self,
        path_and_query: &str,
        telegram_user: Option<i64>,
    ) -> Result<bytes::Bytes, ApiError> {
        let started = std::time::Instant::now();
        let result = self
            .download_unobserved(path_and_query, telegram_user)
            .await;
        crate::metrics::api_call("download", started.elapsed(), &result);
        result
    }

    async fn download_unobserved(
        &self,
        path_and_query: &str,
        telegram_user: Option<i64>,
    ) -> Result<bytes::Bytes, ApiError> {
        let url = self
            .base
            .join(path_and_query)
            .map_err(|e| ApiError::Request {
                message: e.to_string(),
            })?;
        let request = self.signed(
            self.http.get(url),
            "GET",
            path_and_query,
            telegram_user,
            "",
            &[],
        );
        let response = request.send().await.map_err(|error| {
            tracing::warn!(error = %error, "the Dossier API is unreachable");
            ApiError::Unavailable
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|_| ApiError::Unavailable)?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(
            serde_json::from_slice::<ApiError>(&bytes).unwrap_or(if status.is_server_error() {
                ApiError::Unavailable
            } else {
                ApiError::NotFound
            }),
        )
    }

    /// Adds the service signature headers to a request.
    fn signed(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        path_and_query: &str,
        telegram_user: Option<i64>,
        content_type: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let nonce = nonce();
        let acting_user = telegram_user
            .map(signing::acting_telegram_user)
            .unwrap_or_default();
        let signature = SignedParts {
            service: &self.service,
            timestamp,
            nonce: &nonce,
            method,
            path_and_query,
            acting_user: &acting_user,
            content_type,
            body_sha256: signing::body_sha256(body),
        }
        .sign(self.secret.expose_secret().as_bytes());
        let mut request = request
            .header(signing::HEADER_SERVICE, &self.service)
            .header(signing::HEADER_TIMESTAMP, timestamp.to_string())
            .header(signing::HEADER_NONCE, &nonce)
            .header(signing::HEADER_SIGNATURE, signature);
        if !acting_user.is_empty() {
            request = request.header(signing::HEADER_ACTING_USER, &acting_user);
        }
        request
    }

    async fn send<O: DeserializeOwned>(
        &self,
        endpoint: &str,
        telegram_user: Option<i64>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<O, ApiError> {
        let started = std::time::Instant::now();
        let result = self
            .send_unobserved(endpoint, telegram_user, content_type, body)
            .await;
        crate::metrics::api_call(endpoint, started.elapsed(), &result);
        result
    }

    async fn send_unobserved<O: DeserializeOwned>(
        &self,
        endpoint: &str,
        telegram_user: Option<i64>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<O, ApiError> {
        let path = format!("/api/{endpoint}");
        let url = self.base.join(&path).map_err(|e| ApiError::Request {
            message: e.to_string(),
        })?;
        let request = self.signed(
            self.http
                .post(url)
                .header("content-type", content_type)
                .header("accept", "application/json"),
            "POST",
            &path,
            telegram_user,
            content_type,
            &body,
        );
        let response = request.body(body).send().await.map_err(|error| {
            tracing::warn!(endpoint, error = %error, "the Dossier API is unreachable");
            ApiError::Unavailable
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|_| ApiError::Unavailable)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ApiError::Request {
                message: format!("undecodable answer from {endpoint}: {e}"),
            });
        }
        Err(
            serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| {
                if status.is_server_error() {
                    ApiError::Unavailable
                } else {
                    ApiError::Request {
                        message: format!("{endpoint} answered {status}"),
                    }
                }
            }),
        )
    }
}
