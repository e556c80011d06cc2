//! Signed service calls (the bot → the API). Each request carries the service name, a unix
//! timestamp, a random nonce, the acting user and an HMAC-SHA256 over those plus the method,
//! the path with query and the SHA-256 of the body. The server rejects stale timestamps,
//! reused nonces, unknown services and bad signatures before any server function runs.
//!
//! This module is shared: the bot signs, the server verifies.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const HEADER_SERVICE: &str = "x-dossier-service";
pub const HEADER_TIMESTAMP: &str = "x-dossier-timestamp";
pub const HEADER_NONCE: &str = "x-dossier-nonce";
pub const HEADER_ACTING_USER: &str = "x-dossier-acting-user";
pub const HEADER_SIGNATURE: &str = "x-dossier-signature";

/// Signatures older (or newer) than this are rejected.
pub const MAX_SKEW_SECS: i64 = 300;

/// Everything a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    pub service: &'a str,
    pub timestamp: i64,
    pub nonce: &'a str,
    pub method: &'a str,
    pub path_and_query: &'a str,
    /// `tg:<telegram user id>` or empty when the call acts for nobody in particular.
    pub acting_user: &'a str,
    pub body: &'a [u8],
}

impl SignedParts<'_> {
    /// The canonical string: versioned, newline-separated, body by its hash.
    pub fn canonical(&self) -> String {
        format!(
            "dossier-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.service,
            self.timestamp,
            self.nonce,
            self.method.to_ascii_uppercase(),
            self.path_and_query,
            self.acting_user,
            hex::encode(Sha256::digest(self.body)),
        )
    }

    /// Lower-case hex HMAC-SHA256 under `secret`.
    pub fn sign(&self, secret: &[u8]) -> String {
        hex::encode(self.mac(secret).finalize().into_bytes())
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, secret: &[u8], signature_hex: &str) -> bool {
        let Ok(signature) = hex::decode(signature_hex) else {
            return false;
        };
        self.mac(secret).verify_slice(&signature).is_ok()
    }

    fn mac(&self, secret: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
        mac.update(self.canonical().as_bytes());
        mac
    }
}

/// The acting-user header value for a Telegram user.
pub fn acting_telegram_user(telegram_user_id: i64) -> String {
    format!("tg:{telegram_user_id}")
}

/// An acting-user header that is neither empty nor `tg:<positive id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadActingUser;

/// Parses an acting-user header value.
pub fn parse_acting_user(value: &str) -> Result<Option<i64>, BadActingUser> {
    if value.is_empty() {
        return Ok(None);
    }
    let id: i64 = value
        .strip_prefix("tg:")
        .and_then(|id| id.parse().ok())
        .ok_or(BadActingUser)?;
    if id <= 0 {
        return Err(BadActingUser);
    }
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(body: &[u8]) -> SignedParts<'_> {
        SignedParts {
            service: "bot",
            timestamp: 1_800_000_000,
            nonce: "n1",
            method: "post",
            path_and_query: "/api/rag/ask",
            acting_user: "tg:42",
            body,
        }
    }

    #[test]
    fn a_signature_verifies_only_for_exactly_what_was_signed() {
        let secret = b"s3cret";
        let signature = parts(b"{}").sign(secret);
        assert!(parts(b"{}").verify(secret, &signature));
        assert!(!parts(b"{ }").verify(secret, &signature), "body");
        assert!(!parts(b"{}").verify(b"other", &signature), "secret");
        let mut other = parts(b"{}");
        other.acting_user = "tg:43";
        assert!(!other.verify(secret, &signature), "acting user");
        let mut other = parts(b"{}");
        other.path_and_query = "/api/rag/ask?x=1";
        assert!(!other.verify(secret, &signature), "path");
        let mut other = parts(b"{}");
        other.nonce = "n2";
        assert!(!other.verify(secret, &signature), "nonce");
        assert!(!parts(b"{}").verify(secret, "not hex"));
        assert!(!parts(b"{}").verify(secret, ""));
    }

    #[test]
    fn acting_users_parse_strictly() {
        assert_eq!(parse_acting_user(""), Ok(None));
        assert_eq!(parse_acting_user(&acting_telegram_user(42)), Ok(Some(42)));
        for bad in ["42", "tg:", "tg:-1", "tg:0", "tg:4x", "user:1"] {
            assert!(parse_acting_user(bad).is_err(), "{bad}");
        }
    }
}
