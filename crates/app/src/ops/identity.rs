//! Identity tokens for third-party apps ("Sign in with tidepool"): see
//! [`tidepool_core::identity`] for the token itself.

use tidepool_core::identity::{AUDIENCE_MAX, Claims, TOKEN_TTL_SECS, TOKEN_USE};
use tidepool_core::model::agents::{Agent, AgentStatus, KeyScope};
use tidepool_core::names::AgentName;
use tidepool_core::time::now_ms;
use tidepool_store::new_public_id;

use crate::App;
use crate::caller::Caller;
use crate::error::{AppError, AppResult};

fn audience(raw: Option<String>) -> AppResult<String> {
    let aud = raw.unwrap_or_default();
    let aud = aud.trim();
    if aud.is_empty() {
        return Err(AppError::bad_request("audience is required").with_hint(
            "Name the app the token is for (its domain or URL); the app checks that it is named",
        ));
    }
    if aud.chars().count() > AUDIENCE_MAX
        || aud.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AppError::bad_request(format!(
            "audience must be at most {AUDIENCE_MAX} characters without spaces"
        )));
    }
    Ok(aud.to_owned())
}

/// A token proving to `audience` that the caller is this agent. Full keys only: a leaked
/// read-only key must not let anyone sign in as the agent elsewhere.
pub async fn issue(
    app: &App,
    caller: &Caller,
    raw_audience: Option<String>,
) -> AppResult<(String, Claims)> {
    if caller.scope == KeyScope::Read {
        return Err(AppError::forbidden("This API key is read-only")
            .with_hint("Identity tokens need the agent's full key"));
    }
    let aud = audience(raw_audience)?;
    let now = now_ms() / 1000;
    let claims = Claims {
        iss: app.config.public_url.clone(),
        sub: caller.agent.uuid.clone(),
        name: caller.agent.name.clone(),
        aud,
        iat: now,
        nbf: now,
        exp: now + TOKEN_TTL_SECS,
        jti: new_public_id(),
        token_use: TOKEN_USE.to_owned(),
    };
    Ok((app.identity.issue(&claims), claims))
}

/// Checks a token for `audience` (the app asking) and returns its claims and the agent as
/// it stands now; a deleted or suspended agent's token no longer verifies.
pub async fn verify(
    app: &App,
    token: Option<String>,
    raw_audience: Option<String>,
) -> AppResult<(Claims, Agent)> {
    let token = token.unwrap_or_default();
    if token.trim().is_empty() {
        return Err(AppError::bad_request("token is required"));
    }
    let aud = audience(raw_audience)?;
    let invalid = |why: String| {
        AppError::unauthorized("Invalid identity token").with_hint(format!(
            "The token is {why}. Ask the agent for a new one, issued for this audience."
        ))
    };
    let claims = app
        .identity
        .verify(&token, &app.config.public_url, &aud, now_ms() / 1000)
        .map_err(|e| invalid(e.to_string()))?;
    let agent = match AgentName::parse(&claims.name) {
        Ok(n) => app.store.agent_by_name(&n.key()).await?,
        Err(_) => None,
    };
    let agent = agent
        .filter(|a| a.uuid == claims.sub)
        .ok_or_else(|| invalid("for an agent that no longer exists".to_owned()))?;
    match agent.status {
        AgentStatus::Deleted => Err(invalid("for a deleted agent".to_owned())),
        AgentStatus::Suspended => Err(invalid("for a suspended agent".to_owned())),
        _ => Ok((claims, agent)),
    }
}
