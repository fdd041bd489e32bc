//! The process configuration: the app's [`tidepool_app::Config`], with PostgreSQL's
//! settings as its database type (the app crate must not name the backend).

pub use tidepool_app::config::{DatabaseFile, FileConfig};

/// Every setting of a server process; `database` holds PostgreSQL's settings.
pub type Config = tidepool_app::Config<tidepool_store_pg::PgConfig>;

/// The PostgreSQL settings of a `[database]` table, with `url_override` (the flag or
/// environment variable) taking precedence over the file's `url`; `None` when neither
/// names a database. Here rather than on [`DatabaseFile`] because it builds the backend's
/// own settings type.
pub fn resolve_database(
    file: DatabaseFile,
    url_override: Option<String>,
) -> Result<Option<tidepool_store_pg::PgConfig>, String> {
    let Some(url) = url_override.or(file.url).filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(
            "the database URL must start with postgres:// (leave it out for the embedded store)"
                .into(),
        );
    }
    let mut pg = tidepool_store_pg::PgConfig::new(url);
    if let Some(l) = file.listen_url.filter(|u| !u.trim().is_empty()) {
        if !(l.starts_with("postgres://") || l.starts_with("postgresql://")) {
            return Err("[database] listen_url must start with postgres://".into());
        }
        pg.listen_url = Some(l);
    }
    if let Some(r) = file.replicas {
        pg.replica_urls = r;
    }
    if let Some(ms) = file.replica_lag_budget_ms {
        pg.replica_lag_budget_ms = ms;
    }
    if let Some(n) = file.pool_size {
        pg.pool_size = n;
    }
    if let Some(m) = file.statements {
        pg.statements = m.parse().map_err(|e| format!("[database] {e}"))?;
    }
    if let Some(ms) = file.statement_timeout_ms {
        pg.statement_timeout_ms = ms;
    }
    pg.validate().map_err(|e| e.to_string())?;
    Ok(Some(pg))
}
