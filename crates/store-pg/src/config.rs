//! Connection settings for the PostgreSQL backend.

use std::str::FromStr;
use std::time::Duration;

use crate::{PgError, Result};

/// How statements reach the server; the config key is `statements`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatementMode {
    /// Named protocol-level prepared statements, cached per connection
    /// (`prepare_typed_cached`). Fastest (2x the point-read throughput of `Unnamed` in
    /// SCALE-OUT.md), but needs a direct connection or pgbouncer >= 1.21 with
    /// `max_prepared_statements > 0`.
    #[default]
    Prepared,
    /// Unnamed statements sent with their parameter types in one round trip
    /// (`query_typed`): nothing outlives the transaction, so it works through pgbouncer
    /// 1.18 in transaction mode.
    Unnamed,
}

impl StatementMode {
    /// The value as written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepared => "prepared",
            Self::Unnamed => "unnamed",
        }
    }
}

impl FromStr for StatementMode {
    type Err = PgError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "prepared" => Ok(Self::Prepared),
            "unnamed" => Ok(Self::Unnamed),
            other => Err(PgError::Config(format!(
                "statements = \"{other}\": expected \"prepared\" or \"unnamed\""
            ))),
        }
    }
}

/// Settings of one PostgreSQL backend: the primary, optional read replicas, pool and
/// statement behaviour. Build with [`PgConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Connection URL of the primary (or of the pgbouncer in front of it), e.g.
    /// `postgres://tidepool:pw@127.0.0.1:6432/tidepool`.
    pub url: String,
    /// Read replica URLs (streaming standbys of the primary, directly or through a
    /// pooler). The store's read-only listings go to one of them while its lag is within
    /// [`PgConfig::replica_lag_budget_ms`]; see docs/SCALE-OUT.md, "Read replicas".
    pub replica_urls: Vec<String>,
    /// Most a replica may lag behind the primary and still serve reads, in milliseconds.
    /// Default 1000.
    pub replica_lag_budget_ms: u64,
    /// Most connections the pool opens to the primary. Default 16.
    pub pool_size: usize,
    /// How statements are sent. Default [`StatementMode::Prepared`].
    pub statements: StatementMode,
    /// Longest one statement may run, in milliseconds (0 = no limit). Default 5000.
    pub statement_timeout_ms: u64,
    /// Longest to wait for a new connection (TCP + authentication) or for a free pooled
    /// one. Default 5 s.
    pub connect_timeout: Duration,
    /// Where the node's one `LISTEN` connection goes (see [`crate::Listener`]); `None`:
    /// `url`. `LISTEN` needs a session of its own, which a transaction-mode pooler does
    /// not give: when `url` leads through pgbouncer, point this straight at PostgreSQL.
    pub listen_url: Option<String>,
}

impl PgConfig {
    /// Default pool size: enough to keep a 2-4 core node's runtime busy while leaving
    /// room under PostgreSQL's default `max_connections = 100` for several nodes.
    pub const DEFAULT_POOL_SIZE: usize = 16;
    /// Default statement timeout (ms): long enough for any listing, short enough that a
    /// runaway query cannot hold a pooled connection for long.
    pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 5000;
    /// Default connect / pool wait timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default replica lag budget (ms): well above the replay lag measured under load on
    /// one machine (p99 57-179 ms, SCALE-OUT.md), short enough that other agents' posts
    /// show up on a listing within about a second.
    pub const DEFAULT_REPLICA_LAG_BUDGET_MS: u64 = 1000;

    /// Settings for `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            replica_urls: Vec::new(),
            replica_lag_budget_ms: Self::DEFAULT_REPLICA_LAG_BUDGET_MS,
            pool_size: Self::DEFAULT_POOL_SIZE,
            statements: StatementMode::default(),
            statement_timeout_ms: Self::DEFAULT_STATEMENT_TIMEOUT_MS,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            listen_url: None,
        }
    }

    /// The primary URL with any password replaced by `***`, for logs and messages.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Parses the primary URL into a driver config with the timeouts applied.
    pub(crate) fn primary(&self) -> Result<tokio_postgres::Config> {
        let mut cfg = parse_url(&self.url, "url")?;
        self.apply(&mut cfg);
        Ok(cfg)
    }

    /// The driver config of the `LISTEN` connection: `listen_url`, else `url`.
    pub(crate) fn listen(&self) -> Result<tokio_postgres::Config> {
        let mut cfg = match &self.listen_url {
            Some(url) => parse_url(url, "listen_url")?,
            None => parse_url(&self.url, "url")?,
        };
        self.apply(&mut cfg);
        Ok(cfg)
    }

    /// The settings of the replica at `url`: these settings with `url` as the primary and
    /// no replicas (a replica's pool is built exactly like the primary's).
    pub(crate) fn for_replica(&self, url: &str) -> Self {
        Self {
            url: url.to_owned(),
            replica_urls: Vec::new(),
            ..self.clone()
        }
    }

    /// Most a read served by a replica may miss of others' writes: the lag budget plus
    /// how stale a lag sample may be plus one sample interval; zero without replicas.
    /// The page cache keeps a writer off cached pages for this long after its write.
    pub fn replica_staleness_bound(&self) -> Duration {
        if self.replica_urls.is_empty() {
            return Duration::ZERO;
        }
        crate::replicas::staleness_bound(Duration::from_millis(self.replica_lag_budget_ms))
    }

    /// Parses every replica URL (so a typo fails at start-up, not on first use).
    pub(crate) fn replicas(&self) -> Result<Vec<tokio_postgres::Config>> {
        self.replica_urls
            .iter()
            .map(|u| {
                let mut cfg = parse_url(u, "replica url")?;
                self.apply(&mut cfg);
                Ok(cfg)
            })
            .collect()
    }

    /// Checks every field; [`crate::PgPool::new`] calls it.
    pub fn validate(&self) -> Result<()> {
        if self.pool_size == 0 {
            return Err(PgError::Config("pool_size must be at least 1".into()));
        }
        if self.connect_timeout.is_zero() {
            return Err(PgError::Config("connect timeout must be above zero".into()));
        }
        let least = 3 * crate::replicas::SAMPLE_INTERVAL.as_millis() as u64;
        if self.replica_lag_budget_ms < least {
            return Err(PgError::Config(format!(
                "replica_lag_budget_ms must be at least {least} (three lag samples, taken \
                 every {} ms), got {}; leave replicas out to read from the primary only",
                crate::replicas::SAMPLE_INTERVAL.as_millis(),
                self.replica_lag_budget_ms
            )));
        }
        self.primary()?;
        self.replicas()?;
        self.listen()?;
        Ok(())
    }

    fn apply(&self, cfg: &mut tokio_postgres::Config) {
        cfg.connect_timeout(self.connect_timeout);
        if cfg.get_application_name().is_none() {
            cfg.application_name("tidepool");
        }
        // The statement timeout travels as a startup parameter only in `prepared` mode,
        // which means a direct connection: pgbouncer rejects unknown startup parameters
        // such as `options`. In `unnamed` mode every transaction opened by the pool sets it
        // with `SET LOCAL` instead (see `PgPool::transaction`), and single statements rely
        // on the server side (`ALTER ROLE tidepool SET statement_timeout = '5s'`).
        if self.statements == StatementMode::Prepared && self.statement_timeout_ms > 0 {
            let mut options = cfg.get_options().unwrap_or_default().to_owned();
            if !options.is_empty() {
                options.push(' ');
            }
            options.push_str(&format!(
                "-c statement_timeout={}",
                self.statement_timeout_ms
            ));
            cfg.options(options);
        }
    }
}

/// `scheme://user:secret@host/...` becomes `scheme://user:***@host/...`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn parse_url(url: &str, what: &str) -> Result<tokio_postgres::Config> {
    url.parse::<tokio_postgres::Config>()
        // The driver's message never contains the password; the URL itself might.
        .map_err(|e| PgError::Config(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn defaults() {
        let c = PgConfig::new("postgres://u@localhost/db");
        assert_eq!(c.pool_size, 16);
        assert_eq!(c.statements, StatementMode::Prepared);
        assert_eq!(c.statement_timeout_ms, 5000);
        c.validate().unwrap();
        let p = c.primary().unwrap();
        assert_eq!(p.get_options(), Some("-c statement_timeout=5000"));
    }

    #[test]
    fn passwords_never_reach_messages() {
        let c = PgConfig::new("postgres://tidepool:s3cret@db.example:5432/tidepool");
        assert_eq!(
            c.redacted_url(),
            "postgres://tidepool:***@db.example:5432/tidepool"
        );
        assert_eq!(
            PgConfig::new("postgres://u@h/db").redacted_url(),
            "postgres://u@h/db"
        );
    }

    #[test]
    fn unnamed_sends_no_startup_options() {
        let mut c = PgConfig::new("postgres://u@localhost/db");
        c.statements = "Unnamed".parse().unwrap();
        assert_eq!(c.primary().unwrap().get_options(), None);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!("named".parse::<StatementMode>().is_err());
        let mut c = PgConfig::new("postgres://u@localhost/db");
        c.replica_urls = vec!["postgres://u@host:notaport/db".into()];
        assert!(c.validate().is_err());
        let mut c = PgConfig::new("postgres://u@localhost/db");
        c.pool_size = 0;
        assert!(c.validate().is_err());
        let mut c = PgConfig::new("postgres://u@localhost/db");
        c.listen_url = Some("postgres://u@host:notaport/db".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("listen_url"), "{e}");
    }

    #[test]
    fn listen_url_defaults_to_url() {
        let mut c = PgConfig::new("postgres://u@bouncer:6432/db");
        assert_eq!(c.listen().unwrap().get_ports(), &[6432]);
        c.listen_url = Some("postgres://u@primary:5432/db".into());
        let l = c.listen().unwrap();
        assert_eq!(l.get_ports(), &[5432]);
        assert_eq!(c.primary().unwrap().get_ports(), &[6432]);
    }

    #[test]
    fn the_lag_budget_has_a_floor() {
        let mut c = PgConfig::new("postgres://u@localhost/db");
        c.replica_lag_budget_ms = 0;
        assert!(c.validate().is_err());
        c.replica_lag_budget_ms = 299;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("at least 300"), "{e}");
        c.replica_lag_budget_ms = 300;
        c.validate().unwrap();
    }

    #[test]
    fn a_replica_is_configured_like_the_primary() {
        let mut c = PgConfig::new("postgres://u@primary/db");
        c.replica_urls = vec!["postgres://u@replica/db".into()];
        c.pool_size = 3;
        c.statements = StatementMode::Unnamed;
        let r = c.for_replica(&c.replica_urls[0]);
        assert_eq!(r.url, "postgres://u@replica/db");
        assert!(r.replica_urls.is_empty());
        assert_eq!((r.pool_size, r.statements), (3, StatementMode::Unnamed));
        assert_eq!(c.replica_lag_budget_ms, 1000);
        assert_eq!(c.replica_staleness_bound(), Duration::from_millis(2100));
        c.replica_urls.clear();
        assert_eq!(c.replica_staleness_bound(), Duration::ZERO);
    }
}
