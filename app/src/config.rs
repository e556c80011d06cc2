//! Typed settings. The `server` binary fills them from defaults, an optional TOML file and
//! `DOSSIER_*` environment variables; everything else receives them ready-made.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// A service allowed to call the API with signed requests (the bot, say).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceSettings {
    #[serde(serialize_with = "expose")]
    pub secret: SecretString,
    /// Permission names: `users:read`, `telegram:link`, `documents:upload`, …
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// All settings of the server. `Debug` redacts every secret (they are `SecretString`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Environment name; prefixes every NATS subject, stream, bucket and object key.
    pub env: String,
    /// Where the HTTP server listens.
    pub listen_addr: SocketAddr,
    /// Where `/metrics` (and a `/healthz`) are served for the operator, apart from the public
    /// port: an address, or `off`.
    pub metrics_listen: String,
    /// The public origin people use (checked against `Origin` for CSRF, used in links and as
    /// the WebAuthn relying party).
    pub public_url: String,
    #[serde(serialize_with = "expose")]
    pub database_url: SecretString,
    pub database_max_connections: u32,
    pub nats_url: String,
    /// JetStream replicas of Dossier's streams and KV buckets: 1 on one server, 3 on a
    /// three-node cluster (applied when they are created or updated).
    pub nats_replicas: usize,
    pub log_format: LogFormat,
    /// Local files (object store, model cache) live under this directory.
    pub data_dir: PathBuf,
    /// Where cargo-leptos put the compiled site (wasm, js, css, public assets).
    pub site_root: PathBuf,
    pub site_pkg_dir: String,
    /// The Telegram bot's username (without `@`), for deep links.
    pub telegram_bot_username: String,
    /// The bot token, needed to verify Mini App initData. Unset: Mini App sign-in is refused.
    #[serde(default, serialize_with = "expose_opt")]
    pub telegram_bot_token: Option<SecretString>,
    /// Hex Ed25519 public key: when set, initData must also carry a valid `signature`.
    #[serde(default)]
    pub telegram_initdata_public_key: Option<String>,
    /// How old a Mini App initData may be.
    pub initdata_max_age_secs: i64,
    /// Idle timeout of a web session (it slides with use).
    pub web_session_idle_hours: i64,
    /// Fixed lifetime of a Mini App session.
    pub miniapp_session_minutes: i64,
    /// How many reverse proxies stand in front of the server, each appending to
    /// `X-Forwarded-For` (0: none, the header is ignored). Rate limits count the address the
    /// outermost one saw; see `auth::principal::client_ip`.
    pub trusted_proxies: usize,
    /// The old yes/no setting, refused at start-up (it trusted the client-written first hop).
    #[serde(default, skip_serializing)]
    pub trust_forwarded_for: Option<bool>,
    /// Comma-separated emails whose accounts are administrators (besides the first account).
    #[serde(default)]
    pub admin_emails: String,
    /// Services that may call the API with signed requests, by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSettings>,
    /// S3 or an S3-compatible server for documents; without a bucket, local files are used.
    #[serde(default)]
    pub s3: S3Settings,
    /// The local embedding model (all-MiniLM-L6-v2: model.safetensors, tokenizer.json,
    /// config.json).
    pub model_dir: PathBuf,
    /// Uploads and the document pipeline.
    #[serde(default)]
    pub documents: DocumentSettings,
    /// How many costly requests one server runs at once.
    #[serde(default)]
    pub admission: AdmissionSettings,
    /// A Qdrant server (gRPC, e.g. `http://127.0.0.1:6334`): chunks' vectors are upserted
    /// there too and searched there. Unset: vectors live only in PostgreSQL.
    #[serde(default)]
    pub qdrant_url: Option<String>,
    #[serde(default, serialize_with = "expose_opt")]
    pub qdrant_api_key: Option<SecretString>,
    /// An Ollama server (e.g. `http://127.0.0.1:11434`): classification, field extraction and
    /// answers by its chat model, and embeddings by its embedding model when one is named.
    /// Unset: the local rules, the local embedding model and extractive answers.
    #[serde(default)]
    pub ollama_url: Option<String>,
    #[serde(default)]
    pub ollama: OllamaSettings,
}

/// `DOSSIER_OLLAMA__CHAT_MODEL`, … (used only when `ollama_url` is set).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OllamaSettings {
    /// The chat model for classification, extraction and answers.
    pub chat_model: String,
    /// An embedding model (e.g. `nomic-embed-text`); unset keeps the local model.
    pub embed_model: Option<String>,
    /// Longest wait for a response (or, when streaming, between two chunks).
    pub timeout_secs: u64,
    /// Further attempts after a failed call (connection refused, 5xx).
    pub retries: u32,
}

impl Default for OllamaSettings {
    fn default() -> Self {
        Self {
            chat_model: "llama3.1:8b".into(),
            embed_model: None,
            timeout_secs: 120,
            retries: 2,
        }
    }
}

/// `DOSSIER_ADMISSION__QUESTIONS`, `DOSSIER_ADMISSION__UPLOADS`. Admission control: requests
/// of a costly kind running at once in one server; beyond that they are refused at once (503
/// `busy` with `Retry-After`) before any work or body buffering, so admitted ones keep their
/// latency and memory stays bounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdmissionSettings {
    /// `rag/ask` calls at once (CPU: embedding and search). Default: half the cores (at least
    /// one), leaving the rest to the pipeline and to answering everything else: measured on
    /// 2 cores, two at once tripled the admitted latency, one kept it near normal.
    pub questions: usize,
    /// `documents/upload` calls at once (memory: each may hold a file of `max_upload_mb`).
    pub uploads: usize,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            questions: std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            uploads: 8,
        }
    }
}

/// `DOSSIER_DOCUMENTS__MAX_UPLOAD_MB`, … (all optional).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DocumentSettings {
    /// Largest file accepted, from the web or the bot.
    pub max_upload_mb: u64,
    /// Tesseract languages for OCR (`+`-separated).
    pub ocr_languages: String,
    /// A stage's message is redelivered when a worker neither finishes nor reports progress
    /// for this long (a crashed worker's work resumes after it).
    pub ack_wait_secs: u64,
    /// Documents read (text / OCR) at once by one server; OCR is CPU-bound.
    pub text_workers: usize,
    /// Run the pipeline workers in this process (servers that only serve the web can opt out).
    pub workers: bool,
    /// A document without progress for this long is announced again (a message lost with a
    /// crashed process; stages are idempotent, so a slow one is not harmed).
    pub stalled_after_secs: u64,
    /// A stored object that no document row names is deleted once it is this old (the file
    /// of an upload whose process died before its row was written). Must exceed the longest
    /// upload.
    pub orphan_grace_secs: u64,
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            max_upload_mb: 50,
            ocr_languages: "eng+rus".into(),
            ack_wait_secs: 30,
            text_workers: 2,
            workers: true,
            stalled_after_secs: 600,
            orphan_grace_secs: 3600,
        }
    }
}

impl DocumentSettings {
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_mb.saturating_mul(1024 * 1024)
    }

    pub fn ack_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ack_wait_secs.max(1))
    }
}

/// `DOSSIER_S3__BUCKET`, `DOSSIER_S3__ENDPOINT`, … (all optional).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Settings {
    pub bucket: Option<String>,
    /// For MinIO and other S3-compatible servers, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style URLs (`endpoint/bucket/key`), which MinIO and most self-hosted servers need.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    #[serde(default, serialize_with = "expose_opt")]
    pub secret_access_key: Option<SecretString>,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            bucket: None,
            endpoint: None,
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

fn expose<S: serde::Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    serializer.serialize_str(secret.expose_secret())
}

fn expose_opt<S: serde::Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            env: "dev".into(),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            metrics_listen: "127.0.0.1:3001".into(),
            public_url: "http://localhost:3000".into(),
            database_url: SecretString::from("postgres://postgres@127.0.0.1:5432/dossier"),
            database_max_connections: 10,
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_replicas: 1,
            log_format: LogFormat::Pretty,
            data_dir: PathBuf::from("data"),
            site_root: PathBuf::from("target/site"),
            site_pkg_dir: "pkg".into(),
            telegram_bot_username: "dossier_dev_bot".into(),
            telegram_bot_token: None,
            telegram_initdata_public_key: None,
            initdata_max_age_secs: 300,
            web_session_idle_hours: 24 * 14,
            miniapp_session_minutes: 15,
            trusted_proxies: 0,
            trust_forwarded_for: None,
            admin_emails: String::new(),
            services: BTreeMap::new(),
            s3: S3Settings::default(),
            model_dir: PathBuf::from("data/models/all-MiniLM-L6-v2"),
            documents: DocumentSettings::default(),
            admission: AdmissionSettings::default(),
            qdrant_url: None,
            qdrant_api_key: None,
            ollama_url: None,
            ollama: OllamaSettings::default(),
        }
    }
}

impl Settings {
    /// The metrics listener's address; `None` when `metrics_listen` is `off`.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, String> {
        match self.metrics_listen.trim() {
            "off" | "" => Ok(None),
            addr => {
                let addr: SocketAddr = addr.parse().map_err(|_| {
                    format!("metrics_listen {addr:?} must be host:port (an IP address) or off")
                })?;
                if addr == self.listen_addr {
                    return Err("metrics_listen must not be the public listen_addr".into());
                }
                Ok(Some(addr))
            }
        }
    }

    /// Checks what types alone cannot: the environment name must be safe inside NATS subjects,
    /// stream names and object keys; the public URL must be an origin.
    pub fn validate(&self) -> Result<(), String> {
        let env_ok = !self.env.is_empty()
            && self.env.len() <= 32
            && self
                .env
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !env_ok {
            return Err(format!(
                "env {:?} must be 1-32 characters of a-z, 0-9 and '-'",
                self.env
            ));
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(format!(
                "public_url {:?} must start with http:// or https://",
                self.public_url
            ));
        }
        let authority = self
            .public_url
            .split_once("://")
            .map_or("", |(_, rest)| rest);
        if authority.is_empty() || authority.contains('/') {
            return Err(format!(
                "public_url {:?} must be an origin (no path, no trailing '/')",
                self.public_url
            ));
        }
        if !(1..=5).contains(&self.nats_replicas) {
            return Err("nats_replicas must be between 1 and 5".into());
        }
        self.metrics_addr()?;
        if self.trust_forwarded_for.is_some() {
            return Err("trust_forwarded_for is gone: set trusted_proxies to the number of reverse proxies in front of the server (DOSSIER_TRUSTED_PROXIES=1 behind one ingress)".into());
        }
        if self.trusted_proxies > 8 {
            return Err("trusted_proxies counts the proxies in front of the server: 0 to 8".into());
        }
        if !(1..=2048).contains(&self.documents.max_upload_mb) {
            return Err("documents.max_upload_mb must be between 1 and 2048".into());
        }
        for (name, service) in &self.services {
            use secrecy::ExposeSecret;
            if service.secret.expose_secret().len() < 32 {
                return Err(format!(
                    "services.{name}.secret must be at least 32 characters"
                ));
            }
        }
        Ok(())
    }

    /// Whether `normalized_email` (lower-case) is named in `admin_emails`.
    pub fn is_admin_email(&self, normalized_email: &str) -> bool {
        self.admin_emails
            .split(',')
            .map(str::trim)
            .any(|admin| !admin.is_empty() && admin.eq_ignore_ascii_case(normalized_email))
    }

    /// The public origin's host, the WebAuthn relying-party id.
    /// How long a web session may sit idle before it ends (it slides on every use).
    pub fn web_session_idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            u64::try_from(self.web_session_idle_hours.max(1)).unwrap_or(1) * 3600,
        )
    }

    /// The fixed lifetime of a Mini App session.
    pub fn miniapp_session(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            u64::try_from(self.miniapp_session_minutes.max(1)).unwrap_or(15) * 60,
        )
    }

    pub fn public_host(&self) -> &str {
        let rest = self
            .public_url
            .split_once("://")
            .map_or(self.public_url.as_str(), |(_, rest)| rest);
        rest.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(rest, |(host, _)| host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_the_database_url() {
        let settings = Settings {
            database_url: SecretString::from("postgres://u:hunter2@db/x"),
            ..Settings::default()
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn env_names_that_would_break_subjects_are_rejected() {
        for bad in ["", "Prod", "a.b", "a b", "x>"] {
            let settings = Settings {
                env: bad.into(),
                ..Settings::default()
            };
            assert!(settings.validate().is_err(), "{bad:?} accepted");
        }
        assert!(Settings::default().validate().is_ok());
    }
}
