//! Sealing direct messages at rest.
//!
//! Each conversation has its own random 256-bit key. Messages are sealed with it
//! (XChaCha20-Poly1305, a fresh random 192-bit nonce per message, so random nonces never
//! collide in practice), and the key is stored sealed under a wrapping key derived from
//! the server secret, which lives outside the database. A copy of the database alone (a
//! dump, a stolen backup, its WAL) holds no message text and no key that opens one.
//!
//! Each sealed value is bound to where it belongs (associated data: the conversation's
//! and the message's public ids), so a row's ciphertext copied into another row, or
//! another conversation, does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::credentials::{CredentialHasher, RandomError, domain, random_bytes};

const NONCE_LEN: usize = 24;

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed value does not open: wrong key, moved, or altered")]
    Open,
    #[error("sealed text is not UTF-8")]
    Text,
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Seals and opens conversation keys and messages.
#[derive(Clone)]
pub struct Sealer {
    wrapping: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// A conversation's message key, opened.
pub struct ConversationKey(XChaCha20Poly1305);

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| SealError::Open)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open_with(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN {
        return Err(SealError::Open);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| SealError::Open)
}

fn key_aad(conversation_uuid: &str) -> Vec<u8> {
    format!("tidepool dm key\0{conversation_uuid}").into_bytes()
}

fn message_aad(conversation_uuid: &str, message_uuid: &str) -> Vec<u8> {
    format!("tidepool dm message\0{conversation_uuid}\0{message_uuid}").into_bytes()
}

impl Sealer {
    /// The sealer of the server whose secret `hasher` holds.
    pub fn new(hasher: &CredentialHasher) -> Self {
        let wrapping = hasher.hash(domain::DM_KEY_WRAPPING, "");
        Self {
            wrapping: XChaCha20Poly1305::new((&wrapping).into()),
        }
    }

    /// A new random key for conversation `conversation_uuid`: the key to use and the
    /// sealed form to store.
    pub fn new_conversation_key(
        &self,
        conversation_uuid: &str,
    ) -> Result<(ConversationKey, Vec<u8>), SealError> {
        let mut raw = [0u8; 32];
        random_bytes(&mut raw)?;
        let sealed = seal_with(&self.wrapping, &key_aad(conversation_uuid), &raw)?;
        let key = ConversationKey(XChaCha20Poly1305::new((&raw).into()));
        raw.fill(0);
        Ok((key, sealed))
    }

    /// Opens a conversation's stored key.
    pub fn open_conversation_key(
        &self,
        conversation_uuid: &str,
        sealed: &[u8],
    ) -> Result<ConversationKey, SealError> {
        let mut raw = open_with(&self.wrapping, &key_aad(conversation_uuid), sealed)?;
        if raw.len() != 32 {
            return Err(SealError::Open);
        }
        let key = ConversationKey(XChaCha20Poly1305::new(raw.as_slice().into()));
        raw.fill(0);
        Ok(key)
    }
}

impl Sealer {
    /// Seals a secret tidepool must use again (a webhook's signing secret), bound to what
    /// it is for (`purpose`) and whose it is (`owner`).
    pub fn seal_secret(
        &self,
        purpose: &str,
        owner: &str,
        secret: &str,
    ) -> Result<Vec<u8>, SealError> {
        seal_with(
            &self.wrapping,
            &secret_aad(purpose, owner),
            secret.as_bytes(),
        )
    }

    /// Opens a secret sealed by [`Sealer::seal_secret`].
    pub fn open_secret(
        &self,
        purpose: &str,
        owner: &str,
        sealed: &[u8],
    ) -> Result<String, SealError> {
        let plain = open_with(&self.wrapping, &secret_aad(purpose, owner), sealed)?;
        String::from_utf8(plain).map_err(|_| SealError::Text)
    }
}

fn secret_aad(purpose: &str, owner: &str) -> Vec<u8> {
    format!("tidepool secret\0{purpose}\0{owner}").into_bytes()
}

impl ConversationKey {
    /// Seals message `message_uuid`'s text.
    pub fn seal(
        &self,
        conversation_uuid: &str,
        message_uuid: &str,
        text: &str,
    ) -> Result<Vec<u8>, SealError> {
        seal_with(
            &self.0,
            &message_aad(conversation_uuid, message_uuid),
            text.as_bytes(),
        )
    }

    /// Opens message `message_uuid`'s text.
    pub fn open(
        &self,
        conversation_uuid: &str,
        message_uuid: &str,
        sealed: &[u8],
    ) -> Result<String, SealError> {
        let plain = open_with(
            &self.0,
            &message_aad(conversation_uuid, message_uuid),
            sealed,
        )?;
        String::from_utf8(plain).map_err(|_| SealError::Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(b: u8) -> Sealer {
        Sealer::new(&CredentialHasher::new([b; 32]))
    }

    #[test]
    fn a_message_round_trips_and_holds_no_plain_text() {
        let s = sealer(1);
        let (key, sealed_key) = s.new_conversation_key("c1").unwrap();
        let sealed = key.seal("c1", "m1", "meet me at the reef at noon").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"reef"));
        let reopened = s.open_conversation_key("c1", &sealed_key).unwrap();
        assert_eq!(
            reopened.open("c1", "m1", &sealed).unwrap(),
            "meet me at the reef at noon"
        );
    }

    #[test]
    fn another_secret_another_place_or_a_flipped_bit_does_not_open() {
        let s = sealer(1);
        let (key, sealed_key) = s.new_conversation_key("c1").unwrap();
        let sealed = key.seal("c1", "m1", "hello there").unwrap();
        assert!(sealer(2).open_conversation_key("c1", &sealed_key).is_err());
        assert!(s.open_conversation_key("c2", &sealed_key).is_err());
        assert!(key.open("c1", "m2", &sealed).is_err());
        assert!(key.open("c2", "m1", &sealed).is_err());
        let mut bent = sealed.clone();
        let last = bent.len() - 1;
        bent[last] ^= 1;
        assert!(key.open("c1", "m1", &bent).is_err());
        assert!(key.open("c1", "m1", &sealed[..10]).is_err());
    }

    #[test]
    fn the_same_text_seals_differently_each_time() {
        let (key, _) = sealer(1).new_conversation_key("c1").unwrap();
        assert_ne!(
            key.seal("c1", "m1", "same").unwrap(),
            key.seal("c1", "m1", "same").unwrap()
        );
    }
}
