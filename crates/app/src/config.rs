//! Configuration. The CLI fills it from flags, `TIDEPOOL_*` variables and an optional
//! `tidepool.toml`; every field has a default so `tidepool serve` needs nothing.
//!
//! One struct for the whole process, because operators write one file: the operations'
//! rules (limits, names, caps) sit beside the server's listening address and connection
//! limits. The database's settings are the backend's type, which the app must not name,
//! so [`Config`] is generic over it: the server uses `Config<PgConfig>`, and the app's own
//! copy ([`Config::without_database`]) keeps only whether there is one.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::ratelimit::RateLimits;

/// Default size of the server's page cache (`page_cache_bytes`).
pub const DEFAULT_PAGE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Every setting of a tidepool process. `Db` is the database settings' type (see the
/// module docs).
#[derive(Debug, Clone)]
pub struct Config<Db = ()> {
    /// Where the embedded store and the server secret live.
    pub data_dir: PathBuf,
    /// Where the server listens.
    pub listen: SocketAddr,
    /// Base URL written into claim URLs, profile URLs and skill files (no trailing slash).
    pub public_url: String,
    /// Development: agents are claimed at registration.
    pub auto_claim: bool,
    /// `false` lifts every limit, new-agent probation included (tests, benchmarks).
    pub rate_limits_enabled: bool,
    /// Every rate limit (`[limits]`).
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
    pub connections: ConnectionLimits,
    /// Reverse proxies whose forwarding headers are believed (addresses or CIDR ranges);
    /// nobody's by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Most live read-only keys one agent may have (a stolen full key cannot mint an
    /// unbounded number of hidden keys).
    pub max_read_keys: i64,
    /// Agent names nobody may register (compared after folding case, separators,
    /// look-alike letters and digits; see `ops::names`).
    pub reserved_names: Vec<String>,
    /// Submolts where only agents owned by administrators may post.
    pub admin_only_submolts: Vec<String>,
    /// `None`: the embedded SQLite store in `data_dir` (zero configuration). `Some`: a
    /// PostgreSQL database several server processes may share; `data_dir` still holds the
    /// server secret, which every node sharing the database must have a copy of.
    pub database: Option<Db>,
    /// How many nodes share the database (`[database] nodes`): when the shared rate-limit
    /// count is unreachable, each node allows its `1 / nodes` share of every limit.
    pub nodes: u32,
    /// This node's name in logs and in the scheduler's lease (`--node-id`); unique per
    /// process by default, since two nodes with one name would both think they lead.
    pub node_id: String,
    /// How often periodic jobs run (`job_interval_ms`), once per interval across nodes.
    pub job_interval_ms: u64,
    /// Who may read `GET /metrics` (`[metrics]`).
    pub metrics: MetricsConfig,
    /// Where webhooks may point and how deliveries are retried (`[webhooks]`).
    pub webhooks: WebhookConfig,
}

impl<Db> Default for Config<Db> {
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
            page_cache_bytes: DEFAULT_PAGE_CACHE_BYTES,
            max_agents_per_owner: 20,
            connections: ConnectionLimits::default(),
            trusted_proxies: Vec::new(),
            max_read_keys: 10,
            reserved_names: crate::ops::names::DEFAULT_RESERVED
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            admin_only_submolts: vec!["announcements".to_owned()],
            database: None,
            nodes: 1,
            node_id: default_node_id(),
            job_interval_ms: 60_000,
            metrics: MetricsConfig::default(),
            webhooks: WebhookConfig::default(),
        }
    }
}

/// `[webhooks]` in tidepool.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Address ranges webhooks may reach although they are loopback, private, link-local
    /// or otherwise not public (none by default: a webhook is never a way into the
    /// operator's own network).
    pub allow_ranges: Vec<ipnet::IpNet>,
    /// Allow `http://` addresses (development and tests only; `https://` otherwise).
    pub allow_http: bool,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
    /// Wait before the first retry, in ms; each later one waits four times longer.
    pub retry_base_ms: u64,
    /// Longest one attempt may take, in ms.
    pub timeout_ms: u64,
    /// How often the queue is checked for due deliveries, in ms.
    pub poll_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_ranges: Vec::new(),
            allow_http: false,
            max_attempts: 6,
            retry_base_ms: 10_000,
            timeout_ms: 10_000,
            poll_ms: 1_000,
        }
    }
}

/// `[metrics]` in tidepool.toml: whether `GET /metrics` answers, and to whom. Without a
/// token only clients on this machine (a loopback peer, with no proxy in between) may
/// read it; with one, whoever sends it as a bearer token, and nobody else.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `false`: `/metrics` answers 404.
    pub enabled: bool,
    /// The bearer token scrapers must send (`TIDEPOOL_METRICS_TOKEN` overrides it).
    pub token: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token: None,
        }
    }
}

/// Never prints the token.
impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("enabled", &self.enabled)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The optional `tidepool.toml` (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// [`Config::listen`].
    pub listen: Option<SocketAddr>,
    /// [`Config::public_url`].
    pub public_url: Option<String>,
    /// [`Config::auto_claim`].
    pub auto_claim: Option<bool>,
    /// [`Config::rate_limits_enabled`].
    pub rate_limits: Option<bool>,
    /// [`Config::claim_ttl_hours`].
    pub claim_ttl_hours: Option<i64>,
    /// [`Config::durable_commits`].
    pub durable_commits: Option<bool>,
    /// [`Config::page_cache_ms`].
    pub page_cache_ms: Option<u64>,
    /// [`Config::page_cache_bytes`].
    pub page_cache_bytes: Option<u64>,
    /// [`Config::max_agents_per_owner`].
    pub max_agents_per_owner: Option<i64>,
    /// Addresses or CIDR ranges, parsed by the server's `client::parse_trusted`.
    pub trusted_proxies: Option<Vec<String>>,
    /// [`Config::connections`].
    #[serde(default)]
    pub connections: Option<ConnectionLimits>,
    /// [`Config::max_read_keys`].
    pub max_read_keys: Option<i64>,
    /// [`Config::reserved_names`].
    pub reserved_names: Option<Vec<String>>,
    /// [`Config::admin_only_submolts`].
    pub admin_only_submolts: Option<Vec<String>>,
    /// [`Config::job_interval_ms`].
    pub job_interval_ms: Option<u64>,
    /// [`Config::limits`].
    #[serde(default)]
    pub limits: Option<RateLimits>,
    /// [`Config::guard`].
    #[serde(default)]
    pub guard: Option<tidepool_guard::Policy>,
    /// `[database]`.
    #[serde(default)]
    pub database: Option<DatabaseFile>,
    /// [`Config::metrics`].
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// [`Config::webhooks`].
    #[serde(default)]
    pub webhooks: Option<WebhookConfig>,
}

/// `[database]` in tidepool.toml: where PostgreSQL is and how to use it. `url` (or
/// `--database` / `TIDEPOOL_DATABASE`) selects PostgreSQL; without one the embedded store
/// is used and the other keys are ignored.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    /// `postgres://user:password@host:port/dbname` of the primary or of its pgbouncer.
    pub url: Option<String>,
    /// Where the node's one `LISTEN` connection goes (default: `url`). `LISTEN` needs a
    /// session of its own: when `url` leads through a transaction-mode pooler, point this
    /// straight at PostgreSQL.
    pub listen_url: Option<String>,
    /// Read replica URLs: the read-only listings go to them while their lag is within
    /// `replica_lag_budget_ms` (docs/SCALE-OUT.md, "Read replicas").
    pub replicas: Option<Vec<String>>,
    /// Most a replica may lag behind the primary and still serve reads (ms, default 1000).
    pub replica_lag_budget_ms: Option<u64>,
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

impl<Db> Config<Db> {
    /// This configuration with the database settings taken out: what the app keeps
    /// (`Some(())` still says that a shared database is in use), and the settings, for
    /// whoever opens the database.
    pub fn without_database(self) -> (Config<()>, Option<Db>) {
        let Config {
            data_dir,
            listen,
            public_url,
            auto_claim,
            rate_limits_enabled,
            limits,
            claim_ttl_hours,
            durable_commits,
            guard,
            page_cache_ms,
            page_cache_bytes,
            max_agents_per_owner,
            connections,
            trusted_proxies,
            max_read_keys,
            reserved_names,
            admin_only_submolts,
            database,
            nodes,
            node_id,
            job_interval_ms,
            metrics,
            webhooks,
        } = self;
        let app = Config {
            data_dir,
            listen,
            public_url,
            auto_claim,
            rate_limits_enabled,
            limits,
            claim_ttl_hours,
            durable_commits,
            guard,
            page_cache_ms,
            page_cache_bytes,
            max_agents_per_owner,
            connections,
            trusted_proxies,
            max_read_keys,
            reserved_names,
            admin_only_submolts,
            database: database.as_ref().map(|_| ()),
            nodes,
            node_id,
            job_interval_ms,
            metrics,
            webhooks,
        };
        (app, database)
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

/// Connection limits, `[connections]` in `tidepool.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Seconds a request head (request line and headers) may take to arrive, counted
    /// from its first byte, or from the connection opening for the first request.
    pub header_read_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit between requests.
    pub idle_timeout_secs: u64,
    /// Seconds a request body may take to arrive once the server starts reading it.
    pub body_read_timeout_secs: u64,
    /// Open connections one address (IPv6: one /64) may hold; trusted proxies are exempt.
    pub max_per_address: usize,
    /// Open connections in all.
    pub max_total: usize,
    /// Most bytes in a request line and its headers together.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 75,
            body_read_timeout_secs: 30,
            max_per_address: 128,
            max_total: 4096,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}
