//! Server configuration. The CLI fills it from flags, `TIDEPOOL_*` variables and an
//! optional `tidepool.toml`; every field has a default so `tidepool serve` needs nothing.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::ratelimit::RateLimits;

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Base URL written into claim URLs, profile URLs and skill files (no trailing slash).
    pub public_url: String,
    /// Development: agents are claimed at registration.
    pub auto_claim: bool,
    /// `false` lifts every limit, new-agent probation included (tests, benchmarks).
    pub rate_limits_enabled: bool,
    pub limits: RateLimits,
    /// How long a claim token stays valid.
    pub claim_ttl_hours: i64,
    /// `synchronous=FULL` instead of NORMAL.
    pub durable_commits: bool,
    /// How guard findings become verdicts.
    pub guard: tidepool_guard::Policy,
    /// How long a public listing may be served from the page cache (0 = off).
    pub page_cache_ms: u64,
    /// Most bytes the page cache holds (bodies, keys and bookkeeping; 0 = off).
    pub page_cache_bytes: u64,
    /// Most agents one human owner may claim.
    pub max_agents_per_owner: i64,
    /// Timeouts and caps for client connections (`[connections]`).
    pub connections: crate::conn::ConnectionLimits,
    /// Reverse proxies whose forwarding headers are believed (addresses or CIDR ranges);
    /// nobody's by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Most live read-only keys one agent may have (a stolen full key cannot mint an
    /// unbounded number of hidden keys).
    pub max_read_keys: i64,
    /// Agent names nobody may register (compared after folding case, separators,
    /// look-alike letters and digits; see `service::names`).
    pub reserved_names: Vec<String>,
    /// Submolts where only agents owned by administrators may post.
    pub admin_only_submolts: Vec<String>,
    /// `None`: the embedded SQLite store in `data_dir` (zero configuration). `Some`: a
    /// PostgreSQL database several server processes may share; `data_dir` still holds the
    /// server secret, which every node sharing the database must have a copy of.
    pub database: Option<tidepool_store_pg::PgConfig>,
    /// How many nodes share the database (`[database] nodes`): when the shared rate-limit
    /// count is unreachable, each node allows its `1 / nodes` share of every limit.
    pub nodes: u32,
    /// This node's name in logs and in the scheduler's lease (`--node-id`); unique per
    /// process by default, since two nodes with one name would both think they lead.
    pub node_id: String,
    /// How often periodic jobs run (`job_interval_ms`), once per interval across nodes.
    pub job_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        let listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
        Self {
            data_dir: PathBuf::from("./tidepool-data"),
            listen,
            public_url: format!("http://{listen}"),
            auto_claim: false,
            rate_limits_enabled: true,
            limits: RateLimits::default(),
            claim_ttl_hours: 7 * 24,
            durable_commits: false,
            guard: tidepool_guard::Policy::default(),
            page_cache_ms: 1_000,
            page_cache_bytes: crate::cache::DEFAULT_BYTES,
            max_agents_per_owner: 20,
            connections: crate::conn::ConnectionLimits::default(),
            trusted_proxies: Vec::new(),
            max_read_keys: 10,
            reserved_names: crate::service::names::DEFAULT_RESERVED
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            admin_only_submolts: vec!["announcements".to_owned()],
            database: None,
            nodes: 1,
            node_id: default_node_id(),
            job_interval_ms: 60_000,
        }
    }
}

/// The optional `tidepool.toml` (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub auto_claim: Option<bool>,
    pub rate_limits: Option<bool>,
    pub claim_ttl_hours: Option<i64>,
    pub durable_commits: Option<bool>,
    pub page_cache_ms: Option<u64>,
    pub page_cache_bytes: Option<u64>,
    pub max_agents_per_owner: Option<i64>,
    /// Addresses or CIDR ranges, parsed by `client::parse_trusted`.
    pub trusted_proxies: Option<Vec<String>>,
    #[serde(default)]
    pub connections: Option<crate::conn::ConnectionLimits>,
    pub max_read_keys: Option<i64>,
    pub reserved_names: Option<Vec<String>>,
    pub admin_only_submolts: Option<Vec<String>>,
    pub job_interval_ms: Option<u64>,
    #[serde(default)]
    pub limits: Option<RateLimits>,
    #[serde(default)]
    pub guard: Option<tidepool_guard::Policy>,
    #[serde(default)]
    pub database: Option<DatabaseFile>,
}

/// `[database]` in tidepool.toml: where PostgreSQL is and how to use it. `url` (or
/// `--database` / `TIDEPOOL_DATABASE`) selects PostgreSQL; without one the embedded store
/// is used and the other keys are ignored.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    /// `postgres://user:password@host:port/dbname` of the primary or of its pgbouncer.
    pub url: Option<String>,
    /// Read replicas (reads are routed to them in a later step; accepted and validated).
    pub replicas: Option<Vec<String>>,
    /// Most pooled connections per node.
    pub pool_size: Option<usize>,
    /// `prepared` (direct connections, pgbouncer >= 1.21) or `unnamed` (pgbouncer in
    /// transaction mode before 1.21).
    pub statements: Option<String>,
    /// Longest one statement may run, in milliseconds (0 = no limit).
    pub statement_timeout_ms: Option<u64>,
    /// How many nodes share this database (the rate-limit fallback's divisor).
    pub nodes: Option<u32>,
}

impl DatabaseFile {
    /// The PostgreSQL settings, with `url_override` (the flag or environment variable)
    /// taking precedence over the file's `url`; `None` when neither names a database.
    pub fn resolve(
        self,
        url_override: Option<String>,
    ) -> Result<Option<tidepool_store_pg::PgConfig>, String> {
        let Some(url) = url_override.or(self.url).filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(
                "the database URL must start with postgres:// (leave it out for the embedded store)"
                    .into(),
            );
        }
        let mut pg = tidepool_store_pg::PgConfig::new(url);
        if let Some(r) = self.replicas {
            pg.replica_urls = r;
        }
        if let Some(n) = self.pool_size {
            pg.pool_size = n;
        }
        if let Some(m) = self.statements {
            pg.statements = m.parse().map_err(|e| format!("[database] {e}"))?;
        }
        if let Some(ms) = self.statement_timeout_ms {
            pg.statement_timeout_ms = ms;
        }
        pg.validate().map_err(|e| e.to_string())?;
        Ok(Some(pg))
    }
}

/// `node-<pid>-<random>`: unique among the processes sharing a database.
fn default_node_id() -> String {
    let mut r = [0u8; 3];
    let _ = getrandom::fill(&mut r);
    format!(
        "node-{}-{:02x}{:02x}{:02x}",
        std::process::id(),
        r[0],
        r[1],
        r[2]
    )
}
