//! Telegram Mini App `initData` validation, exactly as Telegram specifies:
//! `secret = HMAC_SHA256(key = "WebAppData", msg = bot_token)`,
//! `hash = hex(HMAC_SHA256(key = secret, msg = data_check_string))`, where the data-check
//! string is every received field except `hash`, sorted by key, as `key=value` joined by `\n`.
//! Optionally the Ed25519 `signature` (third-party validation) is checked too.

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest initData accepted; real ones are well under 2 KiB.
const MAX_INIT_DATA_LEN: usize = 8 * 1024;
/// A client clock may run a little ahead of ours.
const MAX_FUTURE_SKEW_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitDataError {
    #[error("initData is empty or too long")]
    Size,
    #[error("initData is not a valid query string")]
    Malformed,
    #[error("initData repeats the field {0:?}")]
    DuplicateField(String),
    #[error("initData has no hash")]
    MissingHash,
    #[error("initData hash is not 64 hex digits")]
    BadHashFormat,
    #[error("initData signature does not match")]
    BadHash,
    #[error("initData has no valid auth_date")]
    MissingAuthDate,
    #[error("initData is too old")]
    Expired,
    #[error("initData is dated in the future")]
    FromTheFuture,
    #[error("initData has no valid user")]
    MissingUser,
    #[error("initData Ed25519 signature is missing or invalid")]
    BadSignature,
}

/// The Telegram user inside initData (unknown extra fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebAppUser {
    pub id: i64,
    #[serde(default)]
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

/// A verified initData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitData {
    pub user: WebAppUser,
    pub auth_date: i64,
    pub query_id: Option<String>,
    pub start_param: Option<String>,
    /// Every field as received (decoded), for callers that need more.
    pub fields: BTreeMap<String, String>,
}

/// How to verify.
pub struct Verifier<'a> {
    pub bot_token: &'a str,
    /// Maximum age of `auth_date`, in seconds.
    pub max_age_secs: i64,
    /// When set, the Ed25519 `signature` must verify under this key for this bot id.
    pub ed25519: Option<(&'a ed25519_dalek::VerifyingKey, i64)>,
}

impl Verifier<'_> {
    /// Verifies `raw` (the exact string Telegram handed the Mini App) at time `now` (unix secs).
    pub fn verify(&self, raw: &str, now: i64) -> Result<InitData, InitDataError> {
        if raw.is_empty() || raw.len() > MAX_INIT_DATA_LEN {
            return Err(InitDataError::Size);
        }
        let fields = parse(raw)?;
        let hash = fields.get("hash").ok_or(InitDataError::MissingHash)?;
        let expected = decode_hash(hash)?;

        let check_string = data_check_string(&fields, &["hash"]);
        let mut mac = HmacSha256::new_from_slice(&secret_key(self.bot_token))
            .map_err(|_| InitDataError::BadHash)?;
        mac.update(check_string.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&expected)
            .map_err(|_| InitDataError::BadHash)?;

        if let Some((key, bot_id)) = self.ed25519 {
            verify_ed25519(&fields, key, bot_id)?;
        }

        let auth_date: i64 = fields
            .get("auth_date")
            .and_then(|v| v.parse().ok())
            .ok_or(InitDataError::MissingAuthDate)?;
        if now - auth_date > self.max_age_secs {
            return Err(InitDataError::Expired);
        }
        if auth_date - now > MAX_FUTURE_SKEW_SECS {
            return Err(InitDataError::FromTheFuture);
        }
        let user: WebAppUser = fields
            .get("user")
            .and_then(|v| serde_json::from_str(v).ok())
            .ok_or(InitDataError::MissingUser)?;
        if user.id <= 0 {
            return Err(InitDataError::MissingUser);
        }
        Ok(InitData {
            user,
            auth_date,
            query_id: fields.get("query_id").cloned(),
            start_param: fields.get("start_param").cloned(),
            fields,
        })
    }
}

/// `HMAC_SHA256(key = "WebAppData", msg = bot_token)`.
pub fn secret_key(bot_token: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(b"WebAppData").expect("HMAC accepts any key length");
    mac.update(bot_token.as_bytes());
    mac.finalize().into_bytes().into()
}

fn parse(raw: &str) -> Result<BTreeMap<String, String>, InitDataError> {
    let mut fields = BTreeMap::new();
    for pair in raw.split('&') {
        let (key, value) = pair.split_once('=').ok_or(InitDataError::Malformed)?;
        let key = percent_decode(key)?;
        let value = percent_decode(value)?;
        if key.is_empty() {
            return Err(InitDataError::Malformed);
        }
        if fields.insert(key.clone(), value).is_some() {
            return Err(InitDataError::DuplicateField(key));
        }
    }
    Ok(fields)
}

/// Query-string decoding: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, InitDataError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
                let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err(InitDataError::Malformed),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| InitDataError::Malformed)
}

fn decode_hash(hash: &str) -> Result<[u8; 32], InitDataError> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InitDataError::BadHashFormat);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hash, &mut out).map_err(|_| InitDataError::BadHashFormat)?;
    Ok(out)
}

/// Sorted `key=value` lines of every field except those in `skip`.
pub fn data_check_string(fields: &BTreeMap<String, String>, skip: &[&str]) -> String {
    fields
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn verify_ed25519(
    fields: &BTreeMap<String, String>,
    key: &ed25519_dalek::VerifyingKey,
    bot_id: i64,
) -> Result<(), InitDataError> {
    let signature = fields
        .get("signature")
        .filter(|s| !s.is_empty())
        .ok_or(InitDataError::BadSignature)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| InitDataError::BadSignature)?;
    let signature =
        ed25519_dalek::Signature::from_slice(&bytes).map_err(|_| InitDataError::BadSignature)?;
    let message = format!(
        "{bot_id}:WebAppData\n{}",
        data_check_string(fields, &["hash", "signature"])
    );
    key.verify_strict(message.as_bytes(), &signature)
        .map_err(|_| InitDataError::BadSignature)
}

/// Signs initData as Telegram would: used by the emulator and by tests. Returns the raw
/// query string with `hash` (and `signature` when a signing key is given) appended.
pub fn sign(
    fields: &[(&str, &str)],
    bot_token: &str,
    ed25519: Option<(&ed25519_dalek::SigningKey, i64)>,
) -> String {
    use ed25519_dalek::Signer;
    let mut map: BTreeMap<String, String> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if let Some((key, bot_id)) = ed25519 {
        let message = format!(
            "{bot_id}:WebAppData\n{}",
            data_check_string(&map, &["hash", "signature"])
        );
        let signature = key.sign(message.as_bytes());
        map.insert(
            "signature".into(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.to_bytes()),
        );
    }
    let mut mac = HmacSha256::new_from_slice(&secret_key(bot_token)).expect("any key length");
    mac.update(data_check_string(&map, &["hash"]).as_bytes());
    let hash = hex::encode(mac.finalize().into_bytes());
    map.insert("hash".into(), hash);
    map.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const TOKEN: &str = "123456:test-bot-token";
    pub(super) const NOW: i64 = 1_800_000_000;

    pub(super) fn verifier() -> Verifier<'static> {
        Verifier {
            bot_token: TOKEN,
            max_age_secs: 300,
            ed25519: None,
        }
    }

    fn user_json() -> &'static str {
        r#"{"id":42,"first_name":"Ann","username":"ann","language_code":"ru","allows_write_to_pm":true}"#
    }

    fn signed(auth_date: i64) -> String {
        let date = auth_date.to_string();
        sign(
            &[
                ("user", user_json()),
                ("auth_date", &date),
                ("query_id", "AAH"),
                ("chat_instance", "-123"),
                ("chat_type", "sender"),
            ],
            TOKEN,
            None,
        )
    }

    #[test]
    fn a_correctly_signed_string_is_accepted_with_unknown_fields() {
        let data = verifier().verify(&signed(NOW - 10), NOW).expect("valid");
        assert_eq!(data.user.id, 42);
        assert_eq!(data.user.username.as_deref(), Some("ann"));
        assert_eq!(data.user.language_code.as_deref(), Some("ru"));
        assert_eq!(data.fields["chat_type"], "sender");
    }

    #[test]
    fn a_known_vector_computed_independently_verifies() {
        // Computed with Python's hmac module:
        // hmac(hmac(b"WebAppData", token), b'auth_date=1800000000\nuser={"id":7}').hexdigest()
        let raw = "auth_date=1800000000&user=%7B%22id%22%3A7%7D&hash=\
            e0db01ceb42660e78e3702ed91340c6269f5d0dd323dfa8ddd0a1be1dfd616ed";
        let data = verifier()
            .verify(raw, NOW)
            .expect("the independent vector verifies");
        assert_eq!(data.user.id, 7);
    }

    #[test]
    fn an_empty_signature_field_is_part_of_the_hmac() {
        let raw = sign(
            &[
                ("user", user_json()),
                ("auth_date", "1800000000"),
                ("signature", ""),
            ],
            TOKEN,
            None,
        );
        assert!(verifier().verify(&raw, NOW).is_ok());
    }

    #[test]
    fn a_changed_field_is_rejected() {
        let raw = signed(NOW).replace("query_id=AAH", "query_id=AAI");
        assert_eq!(verifier().verify(&raw, NOW), Err(InitDataError::BadHash));
        let raw = signed(NOW).replace("%22id%22%3A42", "%22id%22%3A43");
        assert_eq!(verifier().verify(&raw, NOW), Err(InitDataError::BadHash));
    }

    /// Rewrites the `hash` field of a query string with `f`.
    fn with_hash(raw: &str, f: impl Fn(&str) -> String) -> String {
        raw.split('&')
            .map(|pair| match pair.strip_prefix("hash=") {
                Some(hash) => format!("hash={}", f(hash)),
                None => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn a_changed_hash_is_rejected() {
        let flipped = with_hash(&signed(NOW), |hash| {
            let first = if hash.starts_with('a') { "b" } else { "a" };
            format!("{first}{}", &hash[1..])
        });
        assert_eq!(
            verifier().verify(&flipped, NOW),
            Err(InitDataError::BadHash)
        );
    }

    #[test]
    fn a_wrong_bot_token_is_rejected() {
        let other = Verifier {
            bot_token: "999:other",
            ..verifier()
        };
        assert_eq!(other.verify(&signed(NOW), NOW), Err(InitDataError::BadHash));
    }

    #[test]
    fn stale_and_future_auth_dates_are_rejected() {
        assert_eq!(
            verifier().verify(&signed(NOW - 301), NOW),
            Err(InitDataError::Expired)
        );
        assert!(verifier().verify(&signed(NOW - 300), NOW).is_ok());
        assert_eq!(
            verifier().verify(&signed(NOW + 3600), NOW),
            Err(InitDataError::FromTheFuture)
        );
    }

    #[test]
    fn a_missing_hash_is_rejected() {
        let raw = signed(NOW);
        let without: Vec<&str> = raw.split('&').filter(|p| !p.starts_with("hash=")).collect();
        assert_eq!(
            verifier().verify(&without.join("&"), NOW),
            Err(InitDataError::MissingHash)
        );
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let raw = format!("auth_date=1&{}", signed(NOW));
        assert_eq!(
            verifier().verify(&raw, NOW),
            Err(InitDataError::DuplicateField("auth_date".into()))
        );
    }

    #[test]
    fn non_hex_and_non_ascii_hashes_are_rejected() {
        let raw = signed(NOW);
        for bad in [
            "z".repeat(64),
            "é".repeat(32),
            "%C3%A9".repeat(32),
            "ab".into(),
            "A".repeat(65),
        ] {
            let result = verifier().verify(&with_hash(&raw, |_| bad.clone()), NOW);
            assert!(
                matches!(
                    result,
                    Err(InitDataError::BadHashFormat | InitDataError::Malformed)
                ),
                "{bad}: {result:?}"
            );
        }
    }

    #[test]
    fn uppercase_hex_hashes_verify_like_lowercase() {
        let upper = with_hash(&signed(NOW), str::to_uppercase);
        assert_ne!(upper, signed(NOW));
        assert!(verifier().verify(&upper, NOW).is_ok());
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        for raw in ["", "&&&", "=", "a", "%", "%zz=1", "hash", &"x".repeat(9000)] {
            assert!(verifier().verify(raw, NOW).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn ed25519_signatures_are_checked_when_configured() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let public = signing.verifying_key();
        let raw = sign(
            &[("user", user_json()), ("auth_date", "1800000000")],
            TOKEN,
            Some((&signing, 123456)),
        );
        let strict = Verifier {
            ed25519: Some((&public, 123456)),
            ..verifier()
        };
        assert!(strict.verify(&raw, NOW).is_ok());
        let other_bot = Verifier {
            ed25519: Some((&public, 654321)),
            ..verifier()
        };
        assert_eq!(
            other_bot.verify(&raw, NOW),
            Err(InitDataError::BadSignature)
        );
        // HMAC-only initData (no signature) fails the strict check.
        assert_eq!(
            strict.verify(&signed(NOW), NOW),
            Err(InitDataError::BadSignature)
        );
    }
}

/// Property tests: the parser and verifier never panic, and never accept a string whose
/// decoded content differs from what was signed.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::tests::{NOW, TOKEN, verifier};
    use super::*;

    fn signed_fixture() -> String {
        sign(
            &[
                (
                    "user",
                    r#"{"id":42,"first_name":"Ann & Bob = ok","username":"ann"}"#,
                ),
                ("auth_date", "1800000000"),
                ("query_id", "AAH+x/y"),
                ("start_param", "ref_42"),
            ],
            TOKEN,
            None,
        )
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Replace(usize, u8),
        Delete(usize),
        Insert(usize, u8),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
            any::<usize>().prop_map(Mutation::Delete),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        ]
    }

    fn apply(raw: &str, mutations: &[Mutation]) -> Vec<u8> {
        let mut bytes = raw.as_bytes().to_vec();
        for m in mutations {
            match *m {
                Mutation::Replace(i, b) if !bytes.is_empty() => {
                    let i = i % bytes.len();
                    bytes[i] = b;
                }
                Mutation::Delete(i) if !bytes.is_empty() => {
                    bytes.remove(i % bytes.len());
                }
                Mutation::Insert(i, b) => {
                    let i = i % (bytes.len() + 1);
                    bytes.insert(i, b);
                }
                _ => {}
            }
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_input_never_panics_and_is_never_accepted(raw in ".{0,600}") {
            prop_assert!(verifier().verify(&raw, NOW).is_err());
        }

        #[test]
        fn query_shaped_input_never_panics(
            pairs in prop::collection::vec(("[a-z_%+0-9A-F]{0,12}", "[ -~]{0,40}"), 0..8)
        ) {
            let raw = pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            prop_assert!(verifier().verify(&raw, NOW).is_err());
        }

        #[test]
        fn a_mutated_string_is_accepted_only_if_it_decodes_to_the_same_fields(
            mutations in prop::collection::vec(mutation(), 1..4)
        ) {
            let original = signed_fixture();
            let mutated = apply(&original, &mutations);
            let Ok(mutated) = String::from_utf8(mutated) else {
                return Ok(());
            };
            if let Ok(data) = verifier().verify(&mutated, NOW) {
                let original = verifier().verify(&original, NOW).expect("fixture verifies");
                // Only re-encodings of the same content may pass (e.g. `%41` for `A`, or
                // the hash's hex digits in upper case), never different content.
                let mut got = data.fields.clone();
                let mut want = original.fields.clone();
                let got_hash = got.remove("hash").map(|h| h.to_ascii_lowercase());
                let want_hash = want.remove("hash").map(|h| h.to_ascii_lowercase());
                prop_assert_eq!(got, want);
                prop_assert_eq!(got_hash, want_hash);
            }
        }

        #[test]
        fn any_signed_content_round_trips_and_any_changed_value_fails(
            first_name in "\\PC{1,40}",
            extra in "\\PC{0,60}",
            changed in "\\PC{1,20}",
            which in 0usize..3,
        ) {
            let user = serde_json::json!({"id": 7, "first_name": first_name}).to_string();
            let fields = [("user", user.as_str()), ("auth_date", "1800000000"), ("extra", extra.as_str())];
            let raw = sign(&fields, TOKEN, None);
            let data = verifier().verify(&raw, NOW).expect("signed content verifies");
            prop_assert_eq!(data.user.first_name, first_name);
            prop_assert_eq!(data.fields.get("extra"), Some(&extra));

            // Re-encode the same fields with one value changed but the old hash kept.
            let mut map = data.fields.clone();
            let key = ["user", "auth_date", "extra"][which];
            let old = map.get(key).cloned().unwrap_or_default();
            let new = format!("{old}{changed}");
            map.insert(key.to_owned(), new);
            let forged = map
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            prop_assert!(verifier().verify(&forged, NOW).is_err());
        }
    }
}
