//! The storage trait on PostgreSQL.

use std::sync::Arc;

use crate::replicas::{ReadStats, Replicas};
use crate::{PgConfig, PgError, PgPool};

/// Runs a read-only query function `|db| f(db, ...)` on a replica when one may serve the
/// current caller (see [`crate::replicas`]), else on the primary. A read that fails or
/// times out on a replica is repeated on the primary; arguments are evaluated again for
/// that, so pass clones of what the call consumes.
macro_rules! replica_read {
    ($store:expr, |$db:ident| $call:expr) => {
        replica_read!(@ $store, $db, $call, |_answer| true)
    };
    // `$keep` decides whether the replica's answer stands; one that does not (and does
    // not fail) is asked of the primary again.
    (@ $store:expr, $db:ident, $call:expr, $keep:expr) => {{
        let store = &$store;
        match store.reads.route().await {
            None => {
                let $db = &store.db;
                $call.await
            }
            Some(replica) => {
                let answer = {
                    let $db = &replica.pool;
                    store.reads.on_replica($call).await
                };
                match answer {
                    Ok(found) if ($keep)(&found) => {
                        replica.served();
                        Ok(found)
                    }
                    Ok(_) => {
                        store.reads.missed();
                        let $db = &store.db;
                        $call.await
                    }
                    Err(failure) => {
                        store.reads.fell_back(replica, failure);
                        let $db = &store.db;
                        $call.await
                    }
                }
            }
        }
    }};
}

/// [`replica_read`] for a lookup by id or name (`Result<Option<_>>`): nothing found on a
/// replica may only mean the row has not arrived there yet, so the primary is asked too.
macro_rules! replica_lookup {
    ($store:expr, |$db:ident| $call:expr) => {
        replica_read!(@ $store, $db, $call, |found: &Option<_>| found.is_some())
    };
}

// After the macros: `macro_rules!` are visible only to modules declared below them.
mod agents;
mod content;
mod dms;
mod imp;
mod listings;
mod moderation;
mod notifications;
mod owners;
mod post_rows;
mod rows;
mod search;
mod submolts;
#[cfg(test)]
mod test_support;
mod transfer;
mod webhooks;

/// tidepool's store on PostgreSQL: stateless, so any number of server processes may share
/// one database.
#[derive(Clone)]
pub struct PgStore {
    /// The primary: every write, and every read that must not be stale.
    db: PgPool,
    /// Read replicas for the read-only listings, with their lag sampler.
    reads: Arc<Replicas>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("db", &self.db)
            .field("reads", &self.reads.stats())
            .finish()
    }
}

impl PgStore {
    /// Connects (checking the statement mode works on this connection path), brings the
    /// schema up to date and creates the default submolts. Replicas are not needed to
    /// start: their pools connect when the lag sampler first reaches them, and reads use
    /// the primary until then.
    pub async fn open(config: &PgConfig) -> crate::Result<Self> {
        let db = PgPool::connect(config).await?;
        if config.statements == crate::StatementMode::Unnamed && config.statement_timeout_ms > 0 {
            warn_without_role_timeout(&db).await?;
        }
        db.migrate().await?;
        let reads = Arc::new(Replicas::new(config, db.clone())?);
        reads.start();
        let store = Self { db, reads };
        store.ensure_defaults().await?;
        Ok(store)
    }

    /// The primary's pool (for health checks, shared state and metrics).
    pub fn pool(&self) -> &PgPool {
        &self.db
    }

    /// Where replica-eligible reads went and how each replica is doing (lag, health),
    /// for metrics. Cheap: counters and the lag sampler's last results, no query.
    pub fn read_stats(&self) -> ReadStats {
        self.reads.stats()
    }

    /// Runs a write; after a successful one, records, for the current caller, where the
    /// write is, so their next reads wait for it (see [`crate::replicas`]).
    async fn wrote<T>(
        &self,
        write: impl std::future::Future<Output = tidepool_store::Result<T>>,
    ) -> tidepool_store::Result<T> {
        let result = write.await;
        if result.is_ok() {
            self.reads.wrote().await;
        }
        result
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
        // Inside a replica read: noted there (a lost connection takes the replica out),
        // and the read is repeated on the primary.
        let on_replica = crate::replicas::note_error(&e);
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
                        // On a standby this is a recovery conflict (replay had to cancel
                        // the query), which is normal there.
                        if on_replica {
                            tracing::debug!(error = %e, "replica read cancelled by recovery");
                        } else {
                            tracing::warn!(error = %e, "transaction aborted by the database");
                        }
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
