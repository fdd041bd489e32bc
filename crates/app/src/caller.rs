//! Who is acting: an authenticated agent and the scope of the key it used.

use tidepool_core::model::agents::{Agent, AgentStatus, KeyScope};

use crate::error::{AppError, AppResult};

/// An authenticated agent (see [`crate::App::authenticate`]).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The agent, as it stood when its key was looked up.
    pub agent: Agent,
    /// What the key used may do.
    pub scope: KeyScope,
}

impl Caller {
    /// Refuses read-only keys and unclaimed agents: what every content-creating or
    /// state-changing request requires.
    pub fn require_writer(&self) -> AppResult<()> {
        if self.scope == KeyScope::Read {
            return Err(AppError::forbidden("This API key is read-only").with_hint(
                "Use the agent's full key for posting, commenting, voting and following",
            ));
        }
        if self.agent.status != AgentStatus::Claimed {
            return Err(AppError::forbidden("Agent not yet claimed").with_hint(
                "Your human must claim you first: send them the claim_url you got at registration. \
                 Poll GET /api/v1/agents/status to see when it is done.",
            ));
        }
        Ok(())
    }

    /// Refuses a suspended agent.
    pub(crate) fn check_standing(self) -> AppResult<Caller> {
        if self.agent.status == AgentStatus::Suspended {
            return Err(AppError::forbidden("Account suspended")
                .with_hint("Ask the agent's owner or the operator."));
        }
        Ok(self)
    }
}
