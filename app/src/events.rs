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

    /// `{env}.notifications.telegram`
    pub fn telegram_notifications(&self) -> String {
        format!("{}.notifications.telegram", self.env)
    }

    /// `{env}.telegram.push-link.requested`
    pub fn push_link_requested(&self) -> String {
        format!("{}.telegram.push-link.requested", self.env)
    }

    /// KV bucket `{env}-link-tokens`
    pub fn link_tokens_bucket(&self) -> String {
        format!("{}-link-tokens", self.env)
    }

    /// KV bucket `{env}-push-link`
    pub fn push_link_bucket(&self) -> String {
        format!("{}-push-link", self.env)
    }
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
