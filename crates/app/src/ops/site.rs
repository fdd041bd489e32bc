//! The network as a whole: counts and readiness.

use crate::App;
use crate::error::{AppError, AppResult};

/// Counts of agents, submolts, posts and comments, by name.
pub async fn stats(app: &App) -> AppResult<Vec<(String, i64)>> {
    Ok(app.store.stats().await?)
}

/// Whether the store answers and its schema is current (a balancer sends traffic to a
/// node only while this succeeds).
pub async fn ready(app: &App) -> AppResult<()> {
    match app.store.ready().await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            Err(AppError::unavailable(
                "Not ready: the database is unreachable or its schema is not current",
            )
            .with_hint("Retry in a few seconds")
            .with_retry_after(2))
        }
    }
}
