//! The one place NATS names are built. Every subject, stream and bucket carries the
//! environment, so staging and production can share a cluster without crosstalk.

/// Builds NATS names for one environment (`dev`, `staging`, `production`, a test's own id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    env: String,
}

impl Subjects {
    /// `env` must already be validated (see `Settings::validate`).
    pub fn new(env: impl Into<String>) -> Self {
        Self { env: env.into() }
    }

    pub fn env(&self) -> &str {
        &self.env
    }

    /// `{env}.archives.documents.{stage}.requested`
    pub fn document_stage(&self, stage: &str) -> String {
        format!("{}.archives.documents.{stage}.requested", self.env)
    }

    /// `{env}.archives.documents.>`: everything the documents stream captures.
    pub fn documents_wildcard(&self) -> String {
        format!("{}.archives.documents.>", self.env)
    }

    /// `{ENV}_DOCUMENTS` (stream names may not contain '-', so it becomes '_').
    pub fn documents_stream(&self) -> String {
        format!("{}_DOCUMENTS", self.env.to_uppercase().replace('-', "_"))
    }

    /// `{env}.archives.documents.embeddings.completed`: a document went through every stage.
    pub fn document_completed(&self) -> String {
        format!("{}.archives.documents.embeddings.completed", self.env)
    }

    /// `{env}.archives.documents.failed`: a document ended failed or unsupported.
    pub fn document_failed(&self) -> String {
        format!("{}.archives.documents.failed", self.env)
    }

    /// `{ENV}_NOTIFICATIONS`: notifications waiting for the bot (kept an hour).
    pub fn notifications_stream(&self) -> String {
        format!(
            "{}_NOTIFICATIONS",
            self.env.to_uppercase().replace('-', "_")
        )
    }

    /// `{env}.notifications.>`
    pub fn notifications_wildcard(&self) -> String {
        format!("{}.notifications.>", self.env)
    }

    /// `{env}.notifications.telegram`
    pub fn telegram_notifications(&self) -> String {
        format!("{}.notifications.telegram", self.env)
    }

    /// `{env}.telegram.push-link.requested`
    pub fn push_link_requested(&self) -> String {
        format!("{}.telegram.push-link.requested", self.env)
    }

    /// `{env}.telegram.documents.send`: request/reply, API → one bot replica (queue group):
    /// send a person's document to their chat.
    pub fn send_document(&self) -> String {
        format!("{}.telegram.documents.send", self.env)
    }

    /// KV bucket `{env}-link-tokens`
    pub fn link_tokens_bucket(&self) -> String {
        format!("{}-link-tokens", self.env)
    }

    /// KV bucket `{env}-push-link`
    pub fn push_link_bucket(&self) -> String {
        format!("{}-push-link", self.env)
    }

    /// KV bucket `{env}-answers`: the answer cache.
    pub fn answers_bucket(&self) -> String {
        format!("{}-answers", self.env)
    }

    /// `{env}.rag.answers.{id}`: a generated answer as it grows (core NATS).
    pub fn answer_stream(&self, id: &str) -> String {
        format!("{}.rag.answers.{id}", self.env)
    }
}

/// How long a notification waits for the bot (a bot down for longer misses it).
pub const NOTIFICATION_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Creates (or updates) the streams Dossier publishes to. Idempotent: every replica may call it.
pub async fn ensure_streams(
    jetstream: &async_nats::jetstream::Context,
    subjects: &Subjects,
    replicas: usize,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
    // Documents: one work queue; each stage's consumer takes its own subject, and messages
    // leave the stream once a stage acknowledged them.
    jetstream
        .create_or_update_stream(Config {
            name: subjects.documents_stream(),
            subjects: vec![subjects.documents_wildcard()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            duplicate_window: std::time::Duration::from_secs(120),
            num_replicas: replicas,
            ..Config::default()
        })
        .await
        .context("failed to create the documents stream")?;
    // Notifications: kept an hour for a bot that is down, de-duplicated over that hour so a
    // republished notification is stored once.
    jetstream
        .create_or_update_stream(Config {
            name: subjects.notifications_stream(),
            subjects: vec![subjects.notifications_wildcard()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            max_age: NOTIFICATION_MAX_AGE,
            duplicate_window: NOTIFICATION_MAX_AGE,
            num_replicas: replicas,
            ..Config::default()
        })
        .await
        .context("failed to create the notifications stream")?;
    Ok(())
}

/// Publishes to a stream and waits for the server's acknowledgement. `id` de-duplicates:
/// the same id within the stream's window is stored once.
pub async fn publish(
    jetstream: &async_nats::jetstream::Context,
    subject: String,
    id: &str,
    payload: Vec<u8>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use async_nats::jetstream::message::PublishMessage as Publish;
    jetstream
        .send_publish(
            subject.clone(),
            Publish::build().payload(payload.into()).message_id(id),
        )
        .await
        .with_context(|| format!("failed to publish to {subject}"))?
        .await
        .with_context(|| format!("no acknowledgement for {subject}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_environment() {
        let s = Subjects::new("staging");
        assert_eq!(
            s.document_stage("ocr"),
            "staging.archives.documents.ocr.requested"
        );
        assert_eq!(s.documents_stream(), "STAGING_DOCUMENTS");
        assert_eq!(s.telegram_notifications(), "staging.notifications.telegram");
        assert_eq!(
            s.push_link_requested(),
            "staging.telegram.push-link.requested"
        );
        assert_eq!(s.link_tokens_bucket(), "staging-link-tokens");
        assert_eq!(s.push_link_bucket(), "staging-push-link");
        assert_eq!(Subjects::new("t-1").documents_stream(), "T_1_DOCUMENTS");
    }
}
