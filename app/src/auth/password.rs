//! Password hashing with argon2id (OWASP parameters), off the async runtime.

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's argon2id recommendation: m = 19 MiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("failed to hash a password: {e}"))
    })
    .await
    .context("password hashing task failed")?
}

/// Verifies `password` against a PHC string. A `None` hash still costs one verification, so
/// timing does not reveal whether an account exists.
pub async fn verify(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
        let ok = argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && hash != DUMMY_HASH)
    })
    .await
    .context("password verification task failed")?
}

/// An argon2id hash of a random string, verified against when no account matches.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3wuR9bM6hnnF0rO7nJHPxfeKxR6VY6c7ZAlvZV6Ci0Q";

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hash = super::hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            super::verify("correct horse".into(), Some(hash.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !super::verify("wrong horse".into(), Some(hash))
                .await
                .expect("verify")
        );
        assert!(
            !super::verify("anything".into(), None)
                .await
                .expect("verify")
        );
    }
}
