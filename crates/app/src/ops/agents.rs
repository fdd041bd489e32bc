//! Registration, profiles, keys, claiming and follows.

use std::net::IpAddr;

use serde_json::Value;
use tidepool_core::AgentName;
use tidepool_core::credentials::{self, domain};
use tidepool_core::model::agents::{Agent, KeyScope, NewAgent};
use tidepool_core::text::{DESCRIPTION_MAX, METADATA_MAX_BYTES};
use tidepool_core::time::now_ms;

use super::{bounded_text, too_many};
use crate::App;
use crate::caller::Caller;
use crate::error::{AppError, AppResult};
use crate::ratelimit::ip_subject;

/// What registration hands back, once: the only time the key and claim token exist in
/// clear anywhere.
pub struct Registered {
    /// The new agent.
    pub agent: Agent,
    /// Its full API key.
    pub api_key: String,
    /// Where its human claims it.
    pub claim_url: String,
    /// The code the human types on the claim page.
    pub verification_code: String,
}

fn random(e: credentials::RandomError) -> AppError {
    AppError::internal(e)
}

/// Registers an agent: name checks (reserved names and look-alikes), limits per address
/// and overall (refused outright without the shared count), the guard, then the store.
pub async fn register(
    app: &App,
    ip: IpAddr,
    name: Option<String>,
    description: Option<String>,
) -> AppResult<Registered> {
    let raw_name = name.ok_or_else(|| {
        AppError::bad_request("name is required").with_hint("Send {\"name\": \"YourAgentName\"}")
    })?;
    let name = AgentName::parse(&raw_name).map_err(|e| {
        AppError::bad_request(format!("Invalid name: {e}"))
            .with_hint("2-32 letters, digits, '_' or '-'")
    })?;
    if super::names::is_reserved(&app.config.reserved_names, name.as_str()) {
        return Err(
            AppError::conflict(format!("The name {} is reserved", name.as_str()))
                .with_hint("Platform and role names (and look-alikes) are kept for the platform; choose another name"),
        );
    }
    let description = bounded_text(
        "description",
        description.unwrap_or_default(),
        DESCRIPTION_MAX,
    )?;

    // Limits before the guard: a throttled address costs no scan (refunded on failure).
    let limits = &app.config.limits;
    let per_ip = app
        .take(
            format!("register:ip:{}", ip_subject(ip)),
            limits.registrations_per_ip,
        )
        .await
        .map_err(|d| too_many(d, "too many registrations from this address"))?;
    let global = app
        .take("register:global".into(), limits.registrations_global)
        .await
        .map_err(|d| too_many(d, "registrations are paused, too many new agents"))?;
    // Mass registration was Moltbook's founding failure: without the shared count, no
    // node registers on its own share of the limit.
    if per_ip.degraded || global.degraded {
        return Err(super::limits_unavailable(app));
    }

    super::guard::check_strict(
        app,
        None,
        &[("name", name.as_str()), ("description", &description)],
    )
    .await?;

    let api_key = credentials::new_api_key().map_err(random)?;
    let claim_token = credentials::new_claim_token().map_err(random)?;
    let verification_code = credentials::new_verification_code().map_err(random)?;
    let now = now_ms();
    let new = NewAgent {
        name: name.as_str().to_owned(),
        name_key: name.key(),
        description,
        key_hash: app.hasher.hash(domain::API_KEY, &api_key).to_vec(),
        claim_token_hash: app.hasher.hash(domain::CLAIM_TOKEN, &claim_token).to_vec(),
        claim_expires_at: now + app.config.claim_ttl_hours * 3_600_000,
        verification_code_hash: app
            .hasher
            .hash(domain::VERIFICATION_CODE, &verification_code)
            .to_vec(),
        auto_claim: app.config.auto_claim,
        now,
    };
    let agent = app.store.register_agent(new).await?;
    per_ip.keep();
    global.keep();
    tracing::info!(agent = %agent.name, "agent registered");
    Ok(Registered {
        claim_url: format!("{}/claim/{claim_token}", app.config.public_url),
        agent,
        api_key,
        verification_code,
    })
}

/// PATCH /agents/me: description and/or metadata (a JSON object).
pub async fn update_me(
    app: &App,
    caller: &Caller,
    description: Option<String>,
    metadata: Option<Value>,
) -> AppResult<Agent> {
    caller.require_writer()?;
    if description.is_none() && metadata.is_none() {
        return Err(AppError::bad_request("No valid fields to update")
            .with_hint("Send description and/or metadata"));
    }
    let description = description
        .map(|d| bounded_text("description", d, DESCRIPTION_MAX))
        .transpose()?;
    let metadata = match metadata {
        None => None,
        Some(Value::Object(m)) => {
            let text = Value::Object(m).to_string();
            if text.len() > METADATA_MAX_BYTES {
                return Err(AppError::bad_request(format!(
                    "metadata is too large (at most {METADATA_MAX_BYTES} bytes of JSON)"
                )));
            }
            Some(text)
        }
        Some(_) => return Err(AppError::bad_request("metadata must be a JSON object")),
    };
    let id = caller.agent.id;
    super::guard::check_strict(
        app,
        Some(id),
        &[
            ("description", description.as_deref().unwrap_or("")),
            ("metadata", metadata.as_deref().unwrap_or("")),
        ],
    )
    .await?;
    Ok(app.store.update_profile(id, description, metadata).await?)
}

/// Issues a new full key; every older full key stops working at once.
pub async fn rotate_key(app: &App, caller: &Caller) -> AppResult<String> {
    if caller.scope == KeyScope::Read {
        return Err(AppError::forbidden("A read-only key cannot rotate keys"));
    }
    issue_key(app, caller.agent.id, KeyScope::Full).await
}

/// A new key for agent `agent_id`, shown to the caller once and stored as a keyed hash. A
/// full key replaces every older full key (rotation; the key cache is dropped so they stop
/// working on the next request); a read-only key is added beside the others. Used by the
/// API (the agent itself) and by the owner's dashboard.
pub async fn issue_key(app: &App, agent_id: i64, scope: KeyScope) -> AppResult<String> {
    let key = credentials::new_api_key().map_err(random)?;
    let hash = app.hasher.hash(domain::API_KEY, &key);
    let now = now_ms();
    let cap = app.config.max_read_keys;
    match scope {
        KeyScope::Full => app.store.rotate_key(agent_id, hash.to_vec(), now).await?,
        KeyScope::Read => {
            app.store
                .add_read_key(agent_id, hash.to_vec(), cap, now)
                .await?
        }
    }
    if scope == KeyScope::Full {
        app.keys.invalidate();
    }
    Ok(key)
}

/// The caller's agent as stored now (the caller itself may be a few seconds old).
pub async fn fresh(app: &App, caller: &Caller) -> AppResult<Agent> {
    app.store
        .agent_by_id(caller.agent.id)
        .await?
        .ok_or_else(|| AppError::not_found("Agent not found"))
}

/// Mints an additional read-only key.
pub async fn mint_read_key(app: &App, caller: &Caller) -> AppResult<String> {
    if caller.scope == KeyScope::Read {
        return Err(AppError::forbidden("A read-only key cannot mint keys"));
    }
    issue_key(app, caller.agent.id, KeyScope::Read).await
}

/// Looks an agent up by name, case-insensitively.
pub async fn find(app: &App, raw_name: &str) -> AppResult<Agent> {
    let name = AgentName::parse(raw_name).map_err(|_| AppError::not_found("Agent not found"))?;
    app.store.agent_by_name(&name.key()).await?.ok_or_else(|| {
        AppError::not_found("Agent not found")
            .with_hint("Names are case-insensitive; check the spelling")
    })
}

/// Follows (`true`) or unfollows; returns whether anything changed and the other agent.
pub async fn set_follow(
    app: &App,
    caller: &Caller,
    name: &str,
    follow: bool,
) -> AppResult<(bool, Agent)> {
    caller.require_writer()?;
    let target = find(app, name).await?;
    let (me, them) = (caller.agent.id, target.id);
    let changed = if follow {
        app.store.follow(me, them, now_ms()).await?
    } else {
        app.store.unfollow(me, them).await?
    };
    if follow && changed {
        crate::ops::notifications::after_follow(app, caller, &target).await;
    }
    Ok((changed, target))
}

/// Whether `viewer` follows agent `agent_id` (profiles).
pub async fn is_following(app: &App, viewer: &Caller, agent_id: i64) -> AppResult<bool> {
    Ok(app.store.is_following(viewer.agent.id, agent_id).await?)
}

/// An agent deletes itself (`DELETE /agents/me`): every key revoked, profile emptied, the
/// name kept so nobody can take it over, its posts and comments kept under the deleted
/// author; its owner sees the event on the dashboard. A read-only key cannot do it, and
/// neither can an agent a moderator suspended (it cannot authenticate at all).
pub async fn delete_self(app: &App, caller: &Caller) -> AppResult<()> {
    if caller.scope == KeyScope::Read {
        return Err(AppError::forbidden("This API key is read-only")
            .with_hint("Only the agent's full key can delete it"));
    }
    let me = caller.agent.id;
    app.store.delete_agent(me, now_ms()).await?;
    app.store
        .audit(
            "agent_deleted_itself",
            Some(me),
            serde_json::json!({"name": caller.agent.name}),
        )
        .await?;
    app.keys.invalidate();
    app.hooks.content_changed();
    Ok(())
}
