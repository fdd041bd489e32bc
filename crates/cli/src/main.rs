//! `tidepool`: the one binary. `serve` runs the server; `admin` holds operator actions,
//! which deliberately have no HTTP surface (SECURITY.md, F1).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use tidepool_app::ops::admin as admin_ops;
use tidepool_server::{Config, FileConfig};
use tidepool_store::Store;
use tidepool_store_sqlite::{SqliteStore, StoreOptions};
use tracing_subscriber::EnvFilter;

mod bench;

/// mimalloc: the glibc allocator spent about a third of the server's CPU under load
/// (docs/PERFORMANCE.md, profiling notes).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod guard;
mod seed;
mod transfer;

#[derive(Parser)]
#[command(
    name = "tidepool",
    version,
    about = "A social network for AI agents, Moltbook API v1 compatible"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (zero configuration: ./tidepool-data, 127.0.0.1:8080).
    Serve(ServeArgs),
    /// Bring the store's schema up to date and exit (`serve` also does this at start-up;
    /// run it once before starting several nodes on a new PostgreSQL version of tidepool).
    Migrate {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Write the whole network into a new directory: one JSON Lines file per table and a
    /// manifest of row counts and SHA-256 digests (the same bytes from either store).
    Export {
        /// The directory to create (it must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Load an export into an empty store (SQLite: a new data directory; PostgreSQL: a new
    /// database), then verify it by exporting again and comparing digests.
    Import {
        /// A directory written by `tidepool export`.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Operator actions on a data directory (safe while the server runs).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Bulk-load a realistic network into an empty store (for benchmarks): the embedded
    /// store in the data directory, or with --database an empty PostgreSQL database
    /// (loaded through binary COPY; API keys are hashed with the data directory's secret).
    Seed {
        #[command(flatten)]
        target: AdminTarget,
        #[arg(long, default_value_t = 2_000)]
        agents: usize,
        #[arg(long, default_value_t = 50)]
        submolts: usize,
        #[arg(long, default_value_t = 20_000)]
        posts: usize,
        #[arg(long, default_value_t = 50_000)]
        comments: usize,
        #[arg(long, default_value_t = 100_000)]
        votes: usize,
        /// Same seed, same network (text, structure, counts).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write every agent's name and API key (tab-separated) to this file.
        #[arg(long)]
        keys_out: Option<PathBuf>,
    },
    /// Load generator: drive a running server over HTTP and report latency per endpoint.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// The content guard on its own: scan, train, evaluate.
    Guard {
        #[command(subcommand)]
        command: GuardCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Timed read, write and mixed (90/10) phases at each concurrency; table + JSON.
    Load(bench::LoadArgs),
    /// Build a network through the HTTP API (every write through auth, guard and store) and
    /// report the request rate. The server must run with --auto-claim --rate-limits off.
    Seed(bench::SeedArgs),
}

#[derive(Subcommand)]
enum GuardCommand {
    /// JSON Lines on stdin ({"id", "text"}), one verdict per line on stdout.
    Scan {
        /// Label personal data instead of blocking it.
        #[arg(long)]
        pii_label: bool,
    },
    /// Train the injection model on the corpus's train split.
    Train {
        #[arg(long, default_value = "crates/guard/corpus/corpus.jsonl")]
        corpus: PathBuf,
        #[arg(long, default_value = "crates/guard/model/injection.json")]
        out: PathBuf,
        #[arg(long, default_value_t = 400)]
        epochs: usize,
    },
    /// Precision and recall on a corpus split; false-positive rates on benign posts.
    Eval {
        #[arg(long)]
        corpus: Option<PathBuf>,
        #[arg(long, default_value = "eval")]
        split: String,
        /// JSON Lines of benign texts ({"text"} or {"title", "content"}).
        #[arg(long)]
        benign: Option<PathBuf>,
        /// Print every misclassified or flagged text.
        #[arg(long)]
        errors: bool,
    },
}

#[derive(Args, Default)]
struct ServeArgs {
    /// Where the database and the server secret live.
    #[arg(long, env = "TIDEPOOL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "TIDEPOOL_LISTEN")]
    listen: Option<SocketAddr>,
    /// Base URL used in claim URLs, profile URLs and skill files.
    #[arg(long, env = "TIDEPOOL_PUBLIC_URL")]
    public_url: Option<String>,
    /// Development only: agents are claimed at registration.
    #[arg(long, env = "TIDEPOOL_AUTO_CLAIM", num_args = 0..=1, default_missing_value = "true")]
    auto_claim: Option<bool>,
    /// `off` lifts every rate limit, new-agent probation included (tests, benchmarks).
    #[arg(long, env = "TIDEPOOL_RATE_LIMITS", value_parser = on_off)]
    rate_limits: Option<bool>,
    /// fsync every commit (synchronous=FULL) instead of NORMAL.
    #[arg(long, env = "TIDEPOOL_DURABLE_COMMITS", num_args = 0..=1, default_missing_value = "true")]
    durable_commits: Option<bool>,
    /// How long public listings may be served from the page cache, in ms (0 = off).
    #[arg(long, env = "TIDEPOOL_PAGE_CACHE_MS")]
    page_cache_ms: Option<u64>,
    /// Most bytes the page cache may hold, bookkeeping included (0 = off).
    #[arg(long, env = "TIDEPOOL_PAGE_CACHE_BYTES")]
    page_cache_bytes: Option<u64>,
    /// A reverse proxy (address or CIDR range) whose X-Forwarded-For / Forwarded /
    /// X-Forwarded-Proto headers are believed; repeat the flag, or separate with commas.
    #[arg(long = "trusted-proxy", env = "TIDEPOOL_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = tidepool_server::client::parse_trusted)]
    trusted_proxies: Vec<tidepool_server::client::IpNet>,
    /// Optional configuration file (default: ./tidepool.toml when it exists).
    #[arg(long, env = "TIDEPOOL_CONFIG")]
    config: Option<PathBuf>,
    /// PostgreSQL URL (postgres://...) for deployments of several nodes; without it the
    /// embedded store in the data directory is used. Overrides `[database] url`.
    #[arg(long, env = "TIDEPOOL_DATABASE")]
    database: Option<String>,
    /// This node's name in logs, when several nodes share a database (default: node).
    #[arg(long, env = "TIDEPOOL_NODE_ID")]
    node_id: Option<String>,
    /// `off`: no Prometheus metrics at `/metrics` (it answers 404).
    #[arg(long, env = "TIDEPOOL_METRICS", value_parser = on_off)]
    metrics: Option<bool>,
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

/// Where an admin command finds the store and the rules it applies. Resolved exactly as
/// `serve` resolves them (flag, environment, `tidepool.toml`, default), so an operator acts
/// on the data and under the limits the server uses.
#[derive(Args)]
struct AdminTarget {
    /// Where the database lives (default: `data_dir` from the configuration file, else
    /// ./tidepool-data).
    #[arg(long, env = "TIDEPOOL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file, read as `serve` reads it (default: ./tidepool.toml when it
    /// exists).
    #[arg(long, env = "TIDEPOOL_CONFIG")]
    config: Option<PathBuf>,
    /// PostgreSQL URL, as for `serve`.
    #[arg(long, env = "TIDEPOOL_DATABASE")]
    database: Option<String>,
}

impl AdminTarget {
    fn resolve(self) -> Result<Config> {
        resolve(ServeArgs {
            data_dir: self.data_dir,
            config: self.config,
            database: self.database,
            ..ServeArgs::default()
        })
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Claim an agent: it may write from now on.
    ///
    /// With --owner, the agent is claimed for that owner account, as if they had used its
    /// claim link (their `max_agents_per_owner` cap applies; the link and verification code
    /// stop working). Without --owner, the agent has no owner yet: its claim link and
    /// verification code stay valid (for `claim_ttl_hours` from now, or longer if they
    /// already were) so a human can still claim it and become its accountable owner.
    Claim {
        /// The agent's name (case-insensitive).
        name: String,
        /// Claim it for this owner account (created with `admin create-owner` or the web
        /// sign-up).
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Create a human owner account (the password is read from stdin, one line).
    CreateOwner {
        email: String,
        /// Administrators moderate every submolt and can suspend any agent.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Set a new password for an owner (read from stdin); ends all their sessions.
    ResetPassword {
        email: String,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// List the security audit log, newest first.
    Audit {
        #[command(flatten)]
        target: AdminTarget,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// Whether a log event or span may be recorded: tidepool's own at any level, other
/// crates' at INFO and above only. Libraries that see user content (the markdown parser,
/// the HTML sanitiser, hyper's header parser) print it at DEBUG and TRACE, so
/// `RUST_LOG=trace` on tidepool must never turn them on: no post text or header value
/// reaches the logs whatever the filter says.
fn loggable(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    target.starts_with("tidepool")
        // The request span carries only the method and the route template.
        || target.starts_with("tower_http::trace")
        || *meta.level() <= tracing::Level::INFO
}

fn main() -> Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with(tracing_subscriber::filter::filter_fn(loggable))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Migrate { target } => migrate(target),
        Command::Export { out, target } => {
            let config = target.resolve()?;
            block_on(async move {
                let store = open_existing(&config).await?;
                let done = transfer::export(store.as_ref(), &out).await;
                store.shutdown();
                done
            })?
        }
        Command::Import { from, target } => {
            let config = target.resolve()?;
            block_on(async move {
                let store = tidepool_server::open_store(&config).await?;
                let done = transfer::import(store.as_ref(), &from).await;
                store.shutdown();
                done
            })?
        }
        Command::Admin { command } => admin(command),
        Command::Seed {
            target,
            agents,
            submolts,
            posts,
            comments,
            votes,
            seed,
            keys_out,
        } => {
            let config = target.resolve()?;
            let args = seed::SeedArgs {
                agents,
                submolts,
                posts,
                comments,
                votes,
                seed,
                keys_out,
            };
            match config.database {
                None => seed::run(&config.data_dir, args),
                Some(_) => seed::run_postgres(&config, args),
            }
        }
        Command::Bench { command } => match command {
            BenchCommand::Load(args) => bench::load(args),
            BenchCommand::Seed(args) => bench::seed(args),
        },
        Command::Guard { command } => match command {
            GuardCommand::Scan { pii_label } => {
                let mut policy = tidepool_guard::Policy::default();
                if pii_label {
                    policy.pii = tidepool_guard::Verdict::Label;
                }
                guard::scan(policy)
            }
            GuardCommand::Train {
                corpus,
                out,
                epochs,
            } => guard::train(&corpus, &out, epochs),
            GuardCommand::Eval {
                corpus,
                split,
                benign,
                errors,
            } => guard::eval(corpus.as_deref(), &split, benign.as_deref(), errors),
        },
    }
}

/// Flags and environment first, then the file, then the defaults.
fn resolve(args: ServeArgs) -> Result<Config> {
    let path = args.config.clone().or_else(|| {
        let default = PathBuf::from("tidepool.toml");
        default.exists().then_some(default)
    });
    let file: FileConfig = match &path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let mut config = Config::default();
    if let Some(d) = args.data_dir.or(file.data_dir) {
        config.data_dir = d;
    }
    if let Some(l) = args.listen.or(file.listen) {
        config.listen = l;
    }
    config.public_url = args
        .public_url
        .or(file.public_url)
        .unwrap_or_else(|| format!("http://{}", config.listen))
        .trim_end_matches('/')
        .to_owned();
    if !(config.public_url.starts_with("http://") || config.public_url.starts_with("https://")) {
        bail!("--public-url must start with http:// or https://");
    }
    let database = file.database.unwrap_or_default();
    if let Some(n) = database.nodes {
        if n < 1 {
            bail!("[database] nodes must be at least 1");
        }
        config.nodes = n;
    }
    config.database = tidepool_server::config::resolve_database(database, args.database)
        .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(id) = args.node_id {
        config.node_id = id;
    }
    if let Some(ms) = file.job_interval_ms {
        if ms < 100 {
            bail!("job_interval_ms must be at least 100");
        }
        config.job_interval_ms = ms;
    }
    config.auto_claim = args.auto_claim.or(file.auto_claim).unwrap_or(false);
    config.rate_limits_enabled = args.rate_limits.or(file.rate_limits).unwrap_or(true);
    config.durable_commits = args
        .durable_commits
        .or(file.durable_commits)
        .unwrap_or(false);
    if let Some(n) = file.max_read_keys {
        if n < 0 {
            bail!("max_read_keys must be 0 or more");
        }
        config.max_read_keys = n;
    }
    if let Some(names) = file.reserved_names {
        config.reserved_names = names;
    }
    if let Some(submolts) = file.admin_only_submolts {
        config.admin_only_submolts = submolts;
    }
    if let Some(n) = file.max_agents_per_owner {
        if n < 1 {
            bail!("max_agents_per_owner must be at least 1");
        }
        config.max_agents_per_owner = n;
    }
    if let Some(ms) = args.page_cache_ms.or(file.page_cache_ms) {
        config.page_cache_ms = ms;
    }
    if let Some(b) = args.page_cache_bytes.or(file.page_cache_bytes) {
        config.page_cache_bytes = b;
    }
    if let Some(h) = file.claim_ttl_hours {
        config.claim_ttl_hours = h;
    }
    if let Some(l) = file.limits {
        config.limits = l;
    }
    if let Some(g) = file.guard {
        config.guard = g;
    }
    if let Some(c) = file.connections {
        if c.max_total == 0 || c.max_per_address == 0 {
            bail!("[connections] max_total and max_per_address must be at least 1");
        }
        config.connections = c;
    }
    let mut metrics = file.metrics.unwrap_or_default();
    if let Some(on) = args.metrics {
        metrics.enabled = on;
    }
    // From the environment or the file only: a flag would show the token to anyone who
    // can list processes.
    if let Ok(token) = std::env::var("TIDEPOOL_METRICS_TOKEN") {
        metrics.token = Some(token);
    }
    if metrics.token.as_ref().is_some_and(|t| t.trim().is_empty()) {
        bail!("the metrics token ([metrics] token, TIDEPOOL_METRICS_TOKEN) must not be empty");
    }
    if let Some(w) = file.webhooks.clone() {
        config.webhooks = w;
    }
    config.metrics = metrics;
    config.trusted_proxies = if args.trusted_proxies.is_empty() {
        file.trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|s| tidepool_server::client::parse_trusted(s))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))?
    } else {
        args.trusted_proxies
    };
    Ok(config)
}

fn serve(args: ServeArgs) -> Result<()> {
    let config = resolve(args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listen = config.listen;
        let data_dir = config.data_dir.clone();
        let (auto_claim, limits_on, public_url) = (config.auto_claim, config.rate_limits_enabled, config.public_url.clone());
        let node_id = config.node_id.clone();
        let store_name = match &config.database {
            Some(pg) => pg.redacted_url(),
            None => data_dir.display().to_string(),
        };
        let app = tidepool_server::build(config).await.with_context(|| format!("opening the store ({store_name})"))?;
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(%bound, node = %node_id, store = %store_name, %public_url, auto_claim, rate_limits = limits_on, "tidepool listening");
        eprintln!("tidepool listening on http://{bound} (store: {store_name}, public URL: {public_url})");
        tidepool_server::serve(app, listener, shutdown_signal()).await?;
        tracing::info!("tidepool stopped; every acknowledged write is on disk");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// One line from stdin (pipe it, or type it: it is not echoed by the shell's `read -s`).
fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!(
            "no password on stdin (example: printf '%s\\n' \"$PASSWORD\" | tidepool admin create-owner you@example.com)"
        );
    }
    Ok(password)
}

/// The store an operator command acts on: the configured PostgreSQL database, or the
/// embedded store, which must already exist (a typo in --data-dir must not create an
/// empty network).
async fn open_existing(config: &Config) -> Result<std::sync::Arc<dyn Store>> {
    if config.database.is_none() && !config.data_dir.join("tidepool.db").exists() {
        bail!(
            "no tidepool store in {} (start the server once, or pass --data-dir, --config or --database)",
            config.data_dir.display()
        );
    }
    if config.database.is_some() {
        return Ok(tidepool_server::open_store(config).await?);
    }
    Ok(std::sync::Arc::new(SqliteStore::open(
        &config.data_dir,
        StoreOptions {
            readers: 1,
            ..StoreOptions::default()
        },
    )?))
}

/// Runs an operator command on a small runtime of its own: the store's operations are
/// async, the CLI is not.
fn block_on<T>(work: impl std::future::Future<Output = T>) -> Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work))
}

fn migrate(target: AdminTarget) -> Result<()> {
    let config = target.resolve()?;
    block_on(async move {
        match &config.database {
            Some(pg) => {
                // Migrations take a transaction-scoped lock, so nodes starting at the same
                // moment wait for each other instead of racing.
                let pool = tidepool_store_pg::PgPool::connect(pg).await?;
                let version = pool.migrate().await?;
                pool.deadpool().close();
                println!("{}: schema at version {version}", pg.redacted_url());
            }
            None => {
                let store = tidepool_server::open_store(&config).await?;
                store.shutdown();
                println!(
                    "{}: schema up to date",
                    config.data_dir.join("tidepool.db").display()
                );
            }
        }
        Ok::<_, anyhow::Error>(())
    })?
}

fn admin(command: AdminCommand) -> Result<()> {
    block_on(admin_command(command))?
}

async fn admin_command(command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::Claim {
            name,
            owner,
            target,
        } => {
            let config = target.resolve()?;
            let parsed = tidepool_core::AgentName::parse(&name)
                .map_err(|e| anyhow::anyhow!("invalid agent name: {e}"))?;
            let store = open_existing(&config).await?;
            let claimed = admin_ops::claim(
                store.as_ref(),
                &parsed,
                owner,
                config.claim_ttl_hours,
                config.max_agents_per_owner,
            )
            .await;
            store.shutdown();
            let admin_ops::AdminClaimed {
                agent,
                owner,
                link_until,
            } = claimed.map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let owner = owner.map(|o| o.email);
            match owner {
                Some(email) => println!("claimed {} ({}) for {email}", agent.name, agent.uuid),
                None => println!(
                    "claimed {} ({}) with no owner: it can write now; its claim link and \
                     verification code stay valid until at least {} for a human to claim it",
                    agent.name,
                    agent.uuid,
                    tidepool_core::time::iso(link_until)
                ),
            }
            Ok(())
        }
        AdminCommand::CreateOwner {
            email,
            admin,
            target,
        } => {
            let config = target.resolve()?;
            let password = read_password()?;
            let store = open_existing(&config).await?;
            let created =
                tidepool_app::ops::owners::create_owner(store.as_ref(), &email, &password, admin)
                    .await;
            store.shutdown();
            let owner = created.map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!(
                "created {}owner {} (#{})",
                if owner.is_admin { "admin " } else { "" },
                owner.email,
                owner.id
            );
            Ok(())
        }
        AdminCommand::ResetPassword { email, target } => {
            let config = target.resolve()?;
            let password = read_password()?;
            let store = open_existing(&config).await?;
            let reset =
                tidepool_app::ops::owners::reset_password(store.as_ref(), &email, &password).await;
            store.shutdown();
            reset.map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!("password changed for {email}; every session of theirs has ended");
            Ok(())
        }
        AdminCommand::Audit { target, limit } => {
            let store = open_existing(&target.resolve()?).await?;
            let entries = match admin_ops::audit_log(store.as_ref(), limit).await {
                Ok(e) => e,
                Err(e) => {
                    store.shutdown();
                    bail!("{}", e.message);
                }
            };
            for e in entries {
                println!(
                    "{} {} {:<16} {} {}",
                    e.id,
                    tidepool_core::time::iso(e.at),
                    e.event,
                    e.agent_name.as_deref().unwrap_or("-"),
                    e.detail
                );
            }
            store.shutdown();
            Ok(())
        }
    }
}
