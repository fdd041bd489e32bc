//! Embedded migrations and the schema version check.
//!
//! Each migration runs in its own transaction that first takes a transaction-scoped
//! advisory lock (`pg_advisory_xact_lock`), so nodes starting at once apply each migration
//! exactly once and wait for each other. A session-level lock is never used: through
//! pgbouncer it outlives the client and a second client gets it too (SCALE-OUT.md); the
//! transaction-scoped one is released by COMMIT/ROLLBACK wherever the session lives.

use tokio_postgres::types::Type;

use crate::{PgError, PgPool, Result, Sql};

/// The migrations, in order; entry `i` brings the schema to version `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_dms.sql"),
    include_str!("migrations/0003_notifications.sql"),
    include_str!("migrations/0004_reports_avatars.sql"),
    include_str!("migrations/0005_webhooks.sql"),
];

/// The newest schema version this build knows.
pub const LATEST_VERSION: i32 = MIGRATIONS.len() as i32;

/// Key of the advisory lock that serialises migrations ("tidepool" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x7469_6465_706f_6f6c;

const LOCK: Sql = Sql::new("SELECT pg_advisory_xact_lock($1)", &[Type::INT8]);

/// Created under the lock, so concurrent first starts do not race on the catalog.
const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

const CURRENT_VERSION: Sql = Sql::new(
    "SELECT coalesce(max(version), 0)::int4 FROM schema_migrations",
    &[],
);

const RECORD_VERSION: Sql = Sql::new(
    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())",
    &[Type::INT4],
);

/// `to_regclass` answers NULL instead of failing when the table does not exist, so the
/// read-only check never needs DDL. (A single statement cannot do both: a query naming a
/// missing table fails at parse time, even in a CASE branch never taken.)
const HAS_VERSION_TABLE: Sql = Sql::new("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]);

fn too_new(found: i32) -> PgError {
    PgError::Refused(format!(
        "this database is at schema version {found}, newer than the newest this tidepool \
         knows ({LATEST_VERSION}): it was migrated by a newer tidepool. Upgrade tidepool; \
         nothing was changed"
    ))
}

impl PgPool {
    /// Brings the database up to [`LATEST_VERSION`] and returns the version it is at.
    ///
    /// Safe to run from several nodes at once. Refuses (changing nothing) a database whose
    /// version is newer than this build knows. Run it on a direct connection to the
    /// primary (`tidepool migrate`); it also works through pgbouncer in transaction mode,
    /// since it holds no session state.
    pub async fn migrate(&self) -> Result<i32> {
        let mut conn = self.get().await?;
        loop {
            let tx = conn.transaction().await?;
            // No statement timeout here: waiting for another node's migration, or an
            // index build on a large table, may rightly take longer than any query.
            tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
            tx.query(&LOCK, &[&MIGRATION_LOCK_KEY]).await?;
            tx.batch_execute(CREATE_VERSION_TABLE).await?;
            let current: i32 = tx.query_one(&CURRENT_VERSION, &[]).await?.try_get(0)?;
            if current > LATEST_VERSION {
                return Err(too_new(current));
            }
            let Some(sql) = usize::try_from(current)
                .ok()
                .and_then(|i| MIGRATIONS.get(i))
            else {
                tx.commit().await?;
                return Ok(current);
            };
            let next = current + 1;
            tx.batch_execute(sql).await?;
            tx.execute(&RECORD_VERSION, &[&next]).await?;
            tx.commit().await?;
            tracing::info!(version = next, "applied postgres migration");
        }
    }

    /// The schema version of the database, `None` before the first migration.
    pub async fn schema_version(&self) -> Result<Option<i32>> {
        let conn = self.get().await?;
        let exists: bool = conn.query_one(&HAS_VERSION_TABLE, &[]).await?.try_get(0)?;
        if !exists {
            return Ok(None);
        }
        Ok(Some(
            conn.query_one(&CURRENT_VERSION, &[]).await?.try_get(0)?,
        ))
    }

    /// Whether the database is at exactly [`LATEST_VERSION`] (for `/ready`). A database
    /// that is older (not migrated yet) or newer (a newer tidepool migrated it) is not
    /// current; an unreachable one is an error.
    pub async fn schema_is_current(&self) -> Result<bool> {
        Ok(self.schema_version().await? == Some(LATEST_VERSION))
    }

    /// Start-up check for a serving node: `Ok` at [`LATEST_VERSION`], else
    /// [`PgError::Refused`] saying whether to run `tidepool migrate` or upgrade.
    pub async fn check_schema(&self) -> Result<()> {
        match self.schema_version().await? {
            Some(v) if v == LATEST_VERSION => Ok(()),
            Some(v) if v > LATEST_VERSION => Err(too_new(v)),
            found => Err(PgError::Refused(format!(
                "this database is at schema version {}, this tidepool needs \
                 {LATEST_VERSION}: run `tidepool migrate` first",
                found.unwrap_or(0)
            ))),
        }
    }
}
