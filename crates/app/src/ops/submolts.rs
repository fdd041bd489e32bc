//! Submolts: creation, settings, subscriptions, moderators.

use serde_json::Value;
use tidepool_core::SubmoltName;
use tidepool_core::model::feed::{Page, PageRequest};
use tidepool_core::model::submolts::{
    Moderator, NewSubmolt, Role, SettingsChange, Submolt, SubmoltSort,
};
use tidepool_core::text::{DESCRIPTION_MAX, DISPLAY_NAME_MAX};
use tidepool_core::time::now_ms;

use super::{bounded_text, too_many};
use crate::App;
use crate::caller::Caller;
use crate::error::{AppError, AppResult};
use crate::ops::agents::find;

/// A submolt by name.
pub async fn find_submolt(app: &App, raw: &str) -> AppResult<Submolt> {
    let name = SubmoltName::parse(raw).map_err(|_| AppError::not_found("Submolt not found"))?;
    app.store
        .submolt_by_name(name.as_str())
        .await?
        .ok_or_else(|| {
            AppError::not_found("Submolt not found")
                .with_hint("List communities with GET /api/v1/submolts")
        })
}

/// A new submolt as sent by a client.
pub struct SubmoltInput {
    /// Required: 2-30 lowercase letters, digits, '-' or '_'.
    pub name: Option<String>,
    /// Shown instead of the name (the name by default).
    pub display_name: Option<String>,
    /// What the community is about.
    pub description: Option<String>,
    /// Whether crypto content is welcome (no by default).
    pub allow_crypto: Option<bool>,
}

/// Creates a submolt owned by the caller: name checks, the limit, the guard, the store.
pub async fn create(app: &App, caller: &Caller, input: SubmoltInput) -> AppResult<Submolt> {
    caller.require_writer()?;
    let raw = input
        .name
        .ok_or_else(|| AppError::bad_request("name is required"))?;
    let name = SubmoltName::parse_new(&raw).map_err(|e| {
        AppError::bad_request(format!("Invalid submolt name: {e}"))
            .with_hint("2-30 lowercase letters, digits, '-' or '_'")
    })?;
    if super::names::is_reserved(&app.config.reserved_names, name.as_str()) {
        return Err(
            AppError::conflict(format!("The name {} is reserved", name.as_str()))
                .with_hint("Platform and role names (and look-alikes) are kept for the platform; choose another name"),
        );
    }
    let display_name = match input.display_name.filter(|d| !d.trim().is_empty()) {
        Some(d) => bounded_text("display_name", d.trim().to_owned(), DISPLAY_NAME_MAX)?,
        None => name.as_str().to_owned(),
    };
    let description = bounded_text(
        "description",
        input.description.unwrap_or_default(),
        DESCRIPTION_MAX,
    )?;

    // The limit first: a throttled agent costs no scan (refunded if the request fails).
    let limits = &app.config.limits;
    let is_new = now_ms() - caller.agent.created_at < limits.probation_hours * 3_600_000;
    let limit = if is_new {
        limits.submolts_new_agent
    } else {
        limits.submolts
    };
    let guard = app
        .take(format!("submolt:{}", caller.agent.id), limit)
        .await
        .map_err(|d| too_many(d, "submolt creation limit reached"))?;

    super::guard::check_strict(
        app,
        Some(caller.agent.id),
        &[
            ("name", name.as_str()),
            ("display_name", &display_name),
            ("description", &description),
        ],
    )
    .await?;
    let new = NewSubmolt {
        name: name.as_str().to_owned(),
        display_name,
        description,
        allow_crypto: input.allow_crypto.unwrap_or(false),
        creator_id: caller.agent.id,
        now: now_ms(),
    };
    let submolt = app.store.create_submolt(new).await?;
    guard.keep();
    Ok(submolt)
}

/// The caller's role in a submolt, if any.
pub async fn role(app: &App, submolt_id: i64, agent_id: i64) -> AppResult<Option<Role>> {
    Ok(app.store.role_of(submolt_id, agent_id).await?)
}

/// Subscribes (`true`) or unsubscribes; returns whether anything changed.
pub async fn set_subscribed(
    app: &App,
    caller: &Caller,
    raw: &str,
    subscribe: bool,
) -> AppResult<bool> {
    caller.require_writer()?;
    let s = find_submolt(app, raw).await?;
    let me = caller.agent.id;
    Ok(if subscribe {
        app.store.subscribe(me, s.id, now_ms()).await?
    } else {
        app.store.unsubscribe(me, s.id).await?
    })
}

fn color(field: &str, v: Option<String>) -> AppResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(c)
            if c.len() == 7
                && c.starts_with('#')
                && c[1..].chars().all(|h| h.is_ascii_hexdigit()) =>
        {
            Ok(Some(c))
        }
        Some(_) => Err(AppError::bad_request(format!(
            "{field} must be a colour like #1a2b3c"
        ))),
    }
}

/// A change to a submolt's settings as sent by a client (absent fields are kept).
pub struct SettingsInput {
    /// A new display name (not blank).
    pub display_name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// `#rrggbb`.
    pub banner_color: Option<String>,
    /// `#rrggbb`.
    pub theme_color: Option<String>,
    /// Whether crypto content is welcome.
    pub allow_crypto: Option<bool>,
}

/// Changes a submolt's settings: its moderators only.
pub async fn update_settings(
    app: &App,
    caller: &Caller,
    raw: &str,
    input: SettingsInput,
) -> AppResult<Submolt> {
    caller.require_writer()?;
    let s = find_submolt(app, raw).await?;
    if role(app, s.id, caller.agent.id).await?.is_none() {
        return Err(AppError::forbidden(
            "Only moderators of this submolt can change its settings",
        ));
    }
    let change = SettingsChange {
        display_name: input
            .display_name
            .map(|d| {
                if d.trim().is_empty() {
                    Err(AppError::bad_request("display_name cannot be empty"))
                } else {
                    bounded_text("display_name", d, DISPLAY_NAME_MAX)
                }
            })
            .transpose()?,
        description: input
            .description
            .map(|d| bounded_text("description", d, DESCRIPTION_MAX))
            .transpose()?,
        banner_color: color("banner_color", input.banner_color)?,
        theme_color: color("theme_color", input.theme_color)?,
        allow_crypto: input.allow_crypto,
    };
    if change.display_name.is_none()
        && change.description.is_none()
        && change.banner_color.is_none()
        && change.theme_color.is_none()
        && change.allow_crypto.is_none()
    {
        return Err(
            AppError::bad_request("No valid fields to update").with_hint(
                "Send any of: display_name, description, banner_color, theme_color, allow_crypto",
            ),
        );
    }
    super::guard::check_strict(
        app,
        Some(caller.agent.id),
        &[
            ("display_name", change.display_name.as_deref().unwrap_or("")),
            ("description", change.description.as_deref().unwrap_or("")),
        ],
    )
    .await?;
    Ok(app.store.update_submolt(s.id, change).await?)
}

/// Adds or removes a moderator: the submolt's owner only.
pub async fn set_moderator(
    app: &App,
    caller: &Caller,
    raw: &str,
    agent_name: Option<String>,
    role_wanted: Option<Value>,
    add: bool,
) -> AppResult<(bool, String)> {
    caller.require_writer()?;
    let s = find_submolt(app, raw).await?;
    if role(app, s.id, caller.agent.id).await? != Some(Role::Owner) {
        return Err(AppError::forbidden(
            "Only the owner of this submolt can manage moderators",
        ));
    }
    if let Some(r) = role_wanted
        && r != Value::Null
        && r.as_str() != Some(Role::Moderator.as_str())
    {
        return Err(AppError::bad_request("role must be \"moderator\""));
    }
    let name = agent_name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| AppError::bad_request("agent_name is required"))?;
    let target = find(app, &name).await?;
    let (sid, tid) = (s.id, target.id);
    let changed = if add {
        app.store.add_moderator(sid, tid, now_ms()).await?
    } else {
        app.store.remove_moderator(sid, tid).await?
    };
    Ok((changed, target.name))
}

/// A page of submolts.
pub async fn list(app: &App, sort: SubmoltSort, page: PageRequest) -> AppResult<Page<Submolt>> {
    Ok(app.store.list_submolts(sort, page).await?)
}

/// The caller's standing in a submolt: its role (if it moderates) and whether it is
/// subscribed.
pub async fn membership(
    app: &App,
    caller: &Caller,
    submolt_id: i64,
) -> AppResult<(Option<Role>, bool)> {
    let me = caller.agent.id;
    Ok((
        app.store.role_of(submolt_id, me).await?,
        app.store.is_subscribed(me, submolt_id).await?,
    ))
}

/// A submolt's owner and moderators.
pub async fn moderators(app: &App, submolt_id: i64) -> AppResult<Vec<Moderator>> {
    Ok(app.store.moderators(submolt_id).await?)
}
