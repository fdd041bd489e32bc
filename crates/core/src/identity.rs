//! Identity tokens: "Sign in with tidepool" without a shared secret.
//!
//! An agent asks for a token bound to one audience (the third-party app); the server signs
//! it with an Ed25519 key derived from its secret (every node sharing the secret signs
//! with the same key), as a compact JWS (a JWT, `alg: EdDSA`, RFC 8037). The app checks it
//! offline against the public key published at `/.well-known/jwks.json`, or asks the
//! server. A token is useless elsewhere: it is not an API key (the API looks keys up by
//! hash and finds none), it names one audience, and it expires within minutes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::credentials::{CredentialHasher, domain};

/// How long a token lives, in seconds.
pub const TOKEN_TTL_SECS: i64 = 15 * 60;
/// Longest audience accepted.
pub const AUDIENCE_MAX: usize = 200;
/// Allowed clock difference between the issuer and a verifier, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// The `token_use` claim of identity tokens (nothing else this server signs).
pub const TOKEN_USE: &str = "tidepool_identity";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuing server's public URL.
    pub iss: String,
    /// The agent's public id.
    pub sub: String,
    /// The agent's name when the token was issued.
    pub name: String,
    /// The one app this token is for.
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// A unique id, for apps that keep replay lists.
    pub jti: String,
    pub token_use: String,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("not a token this server issued (malformed)")]
    Malformed,
    #[error("the signature does not verify")]
    Signature,
    #[error("issued by another server")]
    Issuer,
    #[error("issued for another audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYet,
    #[error("not an identity token")]
    Use,
}

/// Signs and verifies identity tokens with the server's key.
pub struct IdentitySigner {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentitySigner(kid {})", self.kid)
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl IdentitySigner {
    /// The signer of the server whose secret `hasher` holds.
    pub fn new(hasher: &CredentialHasher) -> Self {
        let seed = hasher.hash(domain::IDENTITY_SIGNING, "");
        let key = SigningKey::from_bytes(&seed);
        let digest = Sha256::digest(key.verifying_key().as_bytes());
        Self {
            kid: hex::encode(&digest[..8]),
            key,
        }
    }

    /// The key id in tokens and the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (RFC 8037), for `/.well-known/jwks.json`.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64(self.key.verifying_key().as_bytes()),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        })
    }

    /// A signed token carrying `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        // Serialising a JSON value or a struct of strings and numbers cannot fail.
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(&serde_json::to_vec(claims).unwrap_or_default())
        );
        let sig = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(&sig.to_bytes()))
    }

    /// The claims of `token` if this server signed it for `audience`, as `issuer`, and it
    /// is valid at `now` (Unix seconds).
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: i64,
    ) -> Result<Claims, IdentityError> {
        verify_with(
            &self.key.verifying_key(),
            &self.kid,
            token,
            issuer,
            audience,
            now,
        )
    }
}

/// Verification with only a public key: what a third-party app does with the JWKS.
pub fn verify_with(
    key: &VerifyingKey,
    kid: &str,
    token: &str,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<Claims, IdentityError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdentityError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| IdentityError::Malformed)
    };
    let header: Value =
        serde_json::from_slice(&decode(h)?).map_err(|_| IdentityError::Malformed)?;
    // Only EdDSA with this key: an `alg: none` or HMAC token is refused before anything
    // else is read.
    if header["alg"] != "EdDSA" || header["kid"] != kid {
        return Err(IdentityError::Signature);
    }
    let sig: [u8; 64] = decode(s)?
        .try_into()
        .map_err(|_| IdentityError::Malformed)?;
    key.verify(format!("{h}.{p}").as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| IdentityError::Signature)?;
    let claims: Claims =
        serde_json::from_slice(&decode(p)?).map_err(|_| IdentityError::Malformed)?;
    if claims.token_use != TOKEN_USE {
        return Err(IdentityError::Use);
    }
    if claims.iss != issuer {
        return Err(IdentityError::Issuer);
    }
    if claims.aud != audience {
        return Err(IdentityError::Audience);
    }
    if now > claims.exp + LEEWAY_SECS {
        return Err(IdentityError::Expired);
    }
    if now + LEEWAY_SECS < claims.nbf {
        return Err(IdentityError::NotYet);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &str, iat: i64) -> Claims {
        Claims {
            iss: "https://reef.example".into(),
            sub: "agent-1".into(),
            name: "Alice".into(),
            aud: aud.into(),
            iat,
            nbf: iat,
            exp: iat + TOKEN_TTL_SECS,
            jti: "j1".into(),
            token_use: TOKEN_USE.into(),
        }
    }

    #[test]
    fn a_token_verifies_only_for_its_issuer_audience_and_time() {
        let s = IdentitySigner::new(&CredentialHasher::new([3; 32]));
        let t = s.issue(&claims("app.example", 1_000));
        let iss = "https://reef.example";
        assert_eq!(
            s.verify(&t, iss, "app.example", 1_100).unwrap().sub,
            "agent-1"
        );
        assert_eq!(
            s.verify(&t, iss, "evil.example", 1_100),
            Err(IdentityError::Audience)
        );
        assert_eq!(
            s.verify(&t, "https://other", "app.example", 1_100),
            Err(IdentityError::Issuer)
        );
        assert_eq!(
            s.verify(
                &t,
                iss,
                "app.example",
                1_000 + TOKEN_TTL_SECS + LEEWAY_SECS + 1
            ),
            Err(IdentityError::Expired)
        );
        assert_eq!(
            s.verify(&t, iss, "app.example", 800),
            Err(IdentityError::NotYet)
        );
        // Another server's key, a bent payload, an `alg: none` token.
        let other = IdentitySigner::new(&CredentialHasher::new([4; 32]));
        assert!(other.verify(&t, iss, "app.example", 1_100).is_err());
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let mut forged = claims("app.example", 1_000);
        forged.sub = "agent-2".into();
        parts[1] = b64(&serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            s.verify(&parts.join("."), iss, "app.example", 1_100),
            Err(IdentityError::Signature)
        );
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","kid":"x"}"#),
            b64(&serde_json::to_vec(&claims("app.example", 1_000)).unwrap())
        );
        assert!(s.verify(&none, iss, "app.example", 1_100).is_err());
        assert_eq!(
            s.verify("a.b", iss, "app.example", 1_100),
            Err(IdentityError::Malformed)
        );
    }

    #[test]
    fn the_jwk_alone_verifies() {
        let s = IdentitySigner::new(&CredentialHasher::new([3; 32]));
        let t = s.issue(&claims("app.example", 1_000));
        let jwk = s.jwk();
        let x: [u8; 32] = URL_SAFE_NO_PAD
            .decode(jwk["x"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let key = VerifyingKey::from_bytes(&x).unwrap();
        let c = verify_with(
            &key,
            jwk["kid"].as_str().unwrap(),
            &t,
            "https://reef.example",
            "app.example",
            1_100,
        );
        assert_eq!(c.unwrap().name, "Alice");
    }
}
