//! The storage trait on PostgreSQL.

mod agents;
mod content;
mod imp;
mod listings;
mod moderation;
mod owners;
mod post_rows;
mod rows;
mod search;
mod submolts;
mod transfer;

use crate::{PgConfig, PgError, PgPool};

/// tidepool's store on PostgreSQL: stateless, so any number of server processes may share
/// one database.
#[derive(Clone, Debug)]
pub struct PgStore {
    db: PgPool,
}

impl PgStore {
    /// Connects (checking the statement mode works on this connection path), brings the
    /// schema up to date and creates the default submolts.
    pub async fn open(config: &PgConfig) -> crate::Result<Self> {
        let db = PgPool::connect(config).await?;
        if config.statements == crate::StatementMode::Unnamed && config.statement_timeout_ms > 0 {
            warn_without_role_timeout(&db).await?;
        }
        db.migrate().await?;
        let store = Self { db };
        store.ensure_defaults().await?;
        Ok(store)
    }

    /// The pool (for health checks and metrics).
    pub fn pool(&self) -> &PgPool {
        &self.db
    }

    async fn ensure_defaults(&self) -> crate::Result<()> {
        submolts::ensure_defaults(&self.db, tidepool_core::time::now_ms()).await
    }
}

const ROLE_TIMEOUT: crate::Sql =
    crate::Sql::new("SELECT current_setting('statement_timeout')", &[]);

/// Behind a pooler (`unnamed`), the statement timeout can only be set per transaction;
/// single statements run under the role's own setting, so say when there is none.
async fn warn_without_role_timeout(db: &PgPool) -> crate::Result<()> {
    let setting: String = db.query_one(&ROLE_TIMEOUT, &[]).await?.try_get(0)?;
    if setting == "0" {
        tracing::warn!(
            "statements = \"unnamed\": single statements have no time limit; set one for the \
             role, e.g. ALTER ROLE tidepool SET statement_timeout = '5s'"
        );
    }
    Ok(())
}

impl From<PgError> for tidepool_store::StoreError {
    fn from(e: PgError) -> Self {
        use tidepool_store::StoreError as E;
        match e {
            PgError::Pool(e) => E::Unavailable(e.to_string()),
            PgError::Db(e) if e.is_closed() => E::Unavailable(e.to_string()),
            PgError::Db(e) => {
                use tokio_postgres::error::SqlState;
                match e.code() {
                    Some(c) if *c == SqlState::QUERY_CANCELED => {
                        E::Unavailable("statement timeout".into())
                    }
                    // Lock order is fixed everywhere, so a deadlock or serialization
                    // failure should not happen; if one does, the transaction was rolled
                    // back whole and the client may simply retry.
                    Some(c)
                        if *c == SqlState::T_R_DEADLOCK_DETECTED
                            || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
                    {
                        tracing::warn!(error = %e, "transaction aborted by the database");
                        E::Unavailable("a conflicting transaction was rolled back".into())
                    }
                    // Text PostgreSQL cannot hold (a NUL): the client's input, not our fault.
                    Some(c)
                        if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                            || *c == SqlState::UNTRANSLATABLE_CHARACTER =>
                    {
                        E::Refused("Text must not contain NUL characters".into())
                    }
                    Some(c)
                        if *c == SqlState::ADMIN_SHUTDOWN
                            || *c == SqlState::CANNOT_CONNECT_NOW
                            || *c == SqlState::TOO_MANY_CONNECTIONS =>
                    {
                        E::Unavailable(e.to_string())
                    }
                    _ => E::Internal(format!("postgres: {e}")),
                }
            }
            other => E::Internal(other.to_string()),
        }
    }
}
