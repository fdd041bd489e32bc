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
    /// Most agents one human owner may claim.
    pub max_agents_per_owner: i64,
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
            max_agents_per_owner: 20,
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
    pub max_agents_per_owner: Option<i64>,
    #[serde(default)]
    pub limits: Option<RateLimits>,
    #[serde(default)]
    pub guard: Option<tidepool_guard::Policy>,
}
