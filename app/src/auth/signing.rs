//! Signed service calls (the bot → the API). Each request carries the service name, a unix
//! timestamp, a random nonce, the acting user and an HMAC-SHA256 over those plus the method,
//! the path with query, the `Content-Type` (which decides how the body is decoded, so it is
//! signed too) and the SHA-256 of the body. The server rejects stale timestamps,
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
    /// The request's `Content-Type` header, empty when it has none.
    pub content_type: &'a str,
    /// SHA-256 of the body ([`body_sha256`]), so a verifier may hash while it streams.
    pub body_sha256: [u8; 32],
}

/// The body digest a signature covers.
pub fn body_sha256(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

impl SignedParts<'_> {
    /// The canonical string: versioned, newline-separated, body by its hash.
    pub fn canonical(&self) -> String {
        format!(
            "dossier-v2\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.service,
            self.timestamp,
            self.nonce,
            self.method.to_ascii_uppercase(),
            self.path_and_query,
            self.acting_user,
            self.content_type,
            hex::encode(self.body_sha256),
        )
    }

    /// Lower-case hex HMAC-SHA256 under `secret`.
    pub fn sign(&self, secret: &[u8]) -> String {
        hex::encode(self.mac(secret).finalize().into_bytes())
    }

    /// Constant-time check of a hex signature. Parts with a line break are refused outright:
    /// the canonical string separates fields by newlines, so one could otherwise pass for
    /// two (HTTP header values cannot carry them anyway).
    pub fn verify(&self, secret: &[u8], signature_hex: &str) -> bool {
        let fields = [
            self.service,
            self.nonce,
            self.method,
            self.path_and_query,
            self.acting_user,
            self.content_type,
        ];
        if fields.iter().any(|field| field.contains(['\n', '\r'])) {
            return false;
        }
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
    // Digits only, no sign and no leading zero: one spelling per id.
    let id: i64 = value
        .strip_prefix("tg:")
        .filter(|id| id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0'))
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
            content_type: "application/json",
            body_sha256: body_sha256(body),
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
        let mut other = parts(b"{}");
        other.content_type = "application/x-www-form-urlencoded";
        assert!(!other.verify(secret, &signature), "content type");
        assert!(!parts(b"{}").verify(secret, "not hex"));
        assert!(!parts(b"{}").verify(secret, ""));
    }

    use proptest::prelude::*;

    /// Owned parts, for generated cases.
    #[derive(Debug, Clone, PartialEq)]
    struct Owned {
        service: String,
        timestamp: i64,
        nonce: String,
        method: String,
        path: String,
        acting: String,
        content_type: String,
        body: Vec<u8>,
    }

    impl Owned {
        fn parts(&self) -> SignedParts<'_> {
            SignedParts {
                service: &self.service,
                timestamp: self.timestamp,
                nonce: &self.nonce,
                method: &self.method,
                path_and_query: &self.path,
                acting_user: &self.acting,
                content_type: &self.content_type,
                body_sha256: body_sha256(&self.body),
            }
        }
    }

    fn owned() -> impl Strategy<Value = Owned> {
        (
            "[a-z]{1,8}",
            any::<i64>(),
            "[ -~]{0,24}",
            prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"]),
            "/[ -~]{0,40}",
            "(tg:[0-9]{1,12})?",
            prop::sample::select(vec![
                "",
                "application/json",
                "multipart/form-data; boundary=x",
            ]),
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |(service, timestamp, nonce, method, path, acting, content_type, body)| Owned {
                    service,
                    timestamp,
                    nonce,
                    method: method.to_owned(),
                    path,
                    acting,
                    content_type: content_type.to_owned(),
                    body,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_signature_covers_every_part(a in owned(), b in owned(), secret in prop::collection::vec(any::<u8>(), 1..48)) {
            let signature = a.parts().sign(&secret);
            prop_assert!(a.parts().verify(&secret, &signature));
            // Upper-case hex is the same signature.
            prop_assert!(a.parts().verify(&secret, &signature.to_ascii_uppercase()));
            // Different parts never verify under it (the method is compared case-blind).
            let same = Owned { method: b.method.to_ascii_uppercase(), ..b.clone() }
                == Owned { method: a.method.to_ascii_uppercase(), ..a.clone() };
            prop_assert_eq!(b.parts().verify(&secret, &signature), same);
            // Nor under another secret.
            let mut other = secret.clone();
            other[0] ^= 1;
            prop_assert!(!a.parts().verify(&other, &signature));
        }

        #[test]
        fn arbitrary_signatures_are_refused_without_panicking(a in owned(), signature in ".{0,140}") {
            let real = a.parts().sign(b"secret");
            prop_assume!(!signature.eq_ignore_ascii_case(&real));
            prop_assert!(!a.parts().verify(b"secret", &signature));
        }

        #[test]
        fn a_line_break_in_any_field_is_refused(a in owned(), which in 0usize..6, at in 0usize..8) {
            let mut forged = a.clone();
            let field = match which {
                0 => &mut forged.service,
                1 => &mut forged.nonce,
                2 => &mut forged.method,
                3 => &mut forged.path,
                4 => &mut forged.content_type,
                _ => &mut forged.acting,
            };
            let at = at.min(field.len());
            field.insert(at, '\n');
            let signature = forged.parts().sign(b"secret");
            prop_assert!(!forged.parts().verify(b"secret", &signature));
        }

        #[test]
        fn acting_user_parsing_never_panics(value in ".{0,30}") {
            if let Ok(Some(id)) = parse_acting_user(&value) {
                prop_assert!(id > 0);
                prop_assert_eq!(acting_telegram_user(id), value);
            }
        }
    }

    #[test]
    fn acting_users_parse_strictly() {
        assert_eq!(parse_acting_user(""), Ok(None));
        assert_eq!(parse_acting_user(&acting_telegram_user(42)), Ok(Some(42)));
        for bad in [
            "42", "tg:", "tg:-1", "tg:0", "tg:4x", "user:1", "tg:+5", "tg:007", "tg: 5",
        ] {
            assert!(parse_acting_user(bad).is_err(), "{bad}");
        }
    }
}
