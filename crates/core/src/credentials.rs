//! Credentials: API keys, claim tokens and verification codes.
//!
//! Every credential is generated from the operating system's CSPRNG and stored only as an
//! HMAC-SHA-256 under a server secret that lives outside the database, so a dump of the
//! database alone is useless to an attacker (SECURITY.md, F2). Keys keep Moltbook's
//! `moltbook_sk_` prefix so existing clients' prefix checks pass and leaked keys are easy
//! to scan for.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const API_KEY_PREFIX: &str = "moltbook_sk_";
pub const CLAIM_TOKEN_PREFIX: &str = "moltbook_claim_";
/// Random base62 characters after the prefix: 43 chars is about 256 bits.
const RANDOM_LEN: usize = 43;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CODE_WORDS: &[&str] = &[
    "reef", "wave", "coral", "shell", "tide", "kelp", "foam", "salt", "deep", "blue", "pearl",
    "sand", "surf", "cove", "bay", "lagoon", "molt", "splash",
];

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
}

/// `len` base62 characters drawn without modulo bias (rejection sampling).
fn random_base62(len: usize) -> Result<String, RandomError> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        random_bytes(&mut buf)?;
        for b in buf {
            // 248 = 62 * 4: values at or above it would favour the first symbols.
            if b < 248 && out.len() < len {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// A new API key: `moltbook_sk_` + 43 base62 characters.
pub fn new_api_key() -> Result<String, RandomError> {
    Ok(format!("{API_KEY_PREFIX}{}", random_base62(RANDOM_LEN)?))
}

/// A new claim token: `moltbook_claim_` + 43 base62 characters.
pub fn new_claim_token() -> Result<String, RandomError> {
    Ok(format!(
        "{CLAIM_TOKEN_PREFIX}{}",
        random_base62(RANDOM_LEN)?
    ))
}

/// A human-typable verification code such as `reef-X4B2`.
pub fn new_verification_code() -> Result<String, RandomError> {
    let mut b = [0u8; 2];
    random_bytes(&mut b)?;
    let word = CODE_WORDS[(u16::from_le_bytes(b) as usize) % CODE_WORDS.len()];
    let tail: String = random_base62(4)?.to_ascii_uppercase();
    Ok(format!("{word}-{tail}"))
}

/// 32 random bytes for a new server secret.
pub fn new_server_secret() -> Result<[u8; 32], RandomError> {
    let mut s = [0u8; 32];
    random_bytes(&mut s)?;
    Ok(s)
}

/// Keyed hashing of credentials with the server secret.
#[derive(Clone)]
pub struct CredentialHasher {
    secret: [u8; 32],
}

impl std::fmt::Debug for CredentialHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialHasher(..)")
    }
}

impl CredentialHasher {
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    /// HMAC-SHA-256 of `credential`, with a domain label so a key's hash can never be
    /// replayed as a claim token's.
    pub fn hash(&self, domain: &str, credential: &str) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(credential.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of `credential` against a stored hash.
    pub fn verify(&self, domain: &str, credential: &str, stored: &[u8]) -> bool {
        self.hash(domain, credential).ct_eq(stored).into()
    }
}

/// HMAC-SHA-256 of `message` under `key`, in lower-case hex (webhook signatures).
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Domains for [`CredentialHasher::hash`].
pub mod domain {
    pub const API_KEY: &str = "api-key";
    pub const CLAIM_TOKEN: &str = "claim-token";
    pub const VERIFICATION_CODE: &str = "verification-code";
    pub const SESSION: &str = "owner-session";
    pub const CSRF: &str = "csrf";
    /// The fingerprint nodes sharing a database compare, to know they share the secret.
    pub const FINGERPRINT: &str = "secret-fingerprint";
    /// The key that wraps each conversation's message key (see [`crate::sealing`]).
    pub const DM_KEY_WRAPPING: &str = "dm-key-wrapping";
    /// The seed of the Ed25519 key that signs identity tokens (see [`crate::identity`]).
    pub const IDENTITY_SIGNING: &str = "identity-signing";
}

/// A new browser session or CSRF token: 43 base62 characters (256 bits).
pub fn new_session_token() -> Result<String, RandomError> {
    random_base62(RANDOM_LEN)
}

/// A verification code as a human typed it, in the form it was issued (`reef-X4B2`):
/// spaces trimmed, the word lower case, the tail upper case.
pub fn normalize_verification_code(input: &str) -> String {
    let t = input.trim();
    match t.split_once('-') {
        Some((word, tail)) => format!(
            "{}-{}",
            word.trim().to_ascii_lowercase(),
            tail.trim().to_ascii_uppercase()
        ),
        None => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_moltbook_shape() {
        let k = new_api_key().unwrap();
        assert!(k.starts_with("moltbook_sk_"));
        assert_eq!(k.len(), API_KEY_PREFIX.len() + RANDOM_LEN);
        assert!(
            k[API_KEY_PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert_ne!(k, new_api_key().unwrap());
        let code = new_verification_code().unwrap();
        assert!(code.contains('-') && code.len() <= 11, "{code}");
    }

    #[test]
    fn hashes_are_keyed_and_domain_separated() {
        let a = CredentialHasher::new([1; 32]);
        let b = CredentialHasher::new([2; 32]);
        assert_ne!(a.hash(domain::API_KEY, "x"), b.hash(domain::API_KEY, "x"));
        assert_ne!(
            a.hash(domain::API_KEY, "x"),
            a.hash(domain::CLAIM_TOKEN, "x")
        );
        let h = a.hash(domain::API_KEY, "x");
        assert!(a.verify(domain::API_KEY, "x", &h));
        assert!(!a.verify(domain::API_KEY, "y", &h));
    }
}
