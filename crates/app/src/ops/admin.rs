//! Operator actions (`tidepool admin`), which deliberately have no HTTP surface. They act
//! on a store directly rather than on an [`App`](crate::App): an operator command needs
//! neither the server secret nor rate limits, and must not create a data directory.
//!
//! Account commands (`create-owner`, `reset-password`) are in [`super::owners`].

use tidepool_core::AgentName;
use tidepool_core::model::agents::{Agent, AuditEntry};
use tidepool_core::model::owners::Owner;
use tidepool_core::time::now_ms;
use tidepool_store::{AdminClaim, Store, StoreError};

use crate::error::{AppError, AppResult, ErrorKind};

/// A store failure told to an operator: in the store's own words (the operator runs the
/// database and needs the detail a client must never see).
fn operator_error(e: StoreError) -> AppError {
    let kind = match &e {
        StoreError::NotFound(_) => ErrorKind::NotFound,
        StoreError::Conflict(_) => ErrorKind::Conflict,
        StoreError::Refused(_) => ErrorKind::BadRequest,
        StoreError::Forbidden(_) => ErrorKind::Forbidden,
        StoreError::Unavailable(_) | StoreError::Closed => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    AppError::new(kind, e.to_string())
}

/// An agent claimed by the operator.
pub struct AdminClaimed {
    /// The agent, now claimed.
    pub agent: Agent,
    /// Its owner, when one was named.
    pub owner: Option<Owner>,
    /// Without an owner: until when its claim link and code stay valid for a human.
    pub link_until: i64,
}

/// Claims agent `name` for the owner with `owner_email` (within `max_agents_per_owner`),
/// or with no owner, its claim link kept valid for `claim_ttl_hours` more.
pub async fn claim(
    store: &dyn Store,
    name: &AgentName,
    owner_email: Option<String>,
    claim_ttl_hours: i64,
    max_agents_per_owner: i64,
) -> AppResult<AdminClaimed> {
    let now = now_ms();
    let link_until = now.saturating_add(claim_ttl_hours.saturating_mul(3_600_000));
    let how = match owner_email {
        Some(email) => AdminClaim::ForOwner {
            email,
            cap: max_agents_per_owner,
        },
        None => AdminClaim::WithoutOwner {
            link_expires_at: link_until,
        },
    };
    let (agent, owner) = store
        .admin_claim(&name.key(), how, now)
        .await
        .map_err(operator_error)?;
    Ok(AdminClaimed {
        agent,
        owner,
        link_until,
    })
}

/// The newest `limit` audit entries (clamped to 1..=10 000).
pub async fn audit_log(store: &dyn Store, limit: i64) -> AppResult<Vec<AuditEntry>> {
    store
        .audit_log(limit.clamp(1, 10_000))
        .await
        .map_err(operator_error)
}
