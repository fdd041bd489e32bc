//! A fresh, empty PostgreSQL database per test (`testing` feature).
//!
//! ```no_run
//! # async fn t() {
//! let db = tidepool_store_pg::testing::TestDb::new().await;
//! let pool = tidepool_store_pg::PgPool::new(&db.config()).unwrap();
//! # }
//! ```
//!
//! Where the server comes from:
//!
//! 1. `TIDEPOOL_TEST_DATABASE_URL` set: a server where the URL's role may
//!    `CREATE DATABASE` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
//! 2. Otherwise one throwaway cluster per test process: `initdb` (found under
//!    `/usr/lib/postgresql/*/bin` or on `PATH`, installed by `scripts/install-postgres.sh`
//!    when missing) into `$TMPDIR/tidepool-pg-test-<uid>/<pid>/`, `fsync=off`, listening on
//!    127.0.0.1 on a free port with its unix socket in the same directory. As root
//!    (initdb refuses root) the cluster belongs to and runs as `postgres`, via `runuser`.
//!
//! Each [`TestDb`] is a `CREATE DATABASE` with a random name, dropped (`WITH (FORCE)`)
//! when the `TestDb` is dropped.
//!
//! Cleanup of the throwaway cluster: statics are never dropped, so no `Drop` can stop the
//! server at exit. Instead a small watchdog shell (own process group, so Ctrl-C on the
//! test run does not kill it first) blocks reading a pipe whose only writer is this test
//! process. When the process ends for any reason, even `kill -9`, the kernel closes the
//! pipe, the read returns, and the watchdog runs `pg_ctl stop -m immediate` and deletes
//! the directory. Should the watchdog itself be killed, the next test process that starts
//! a cluster stops and deletes every cluster directory whose owning process is gone, so
//! clusters never pile up across runs.
//!
//! If no server can be had, [`TestDb::new`] panics with the reason: a test never passes
//! by silently skipping.
//!
//! Through pgbouncer: [`TestDb::through_pgbouncer`] creates the database the same way and
//! hands out a URL of one pgbouncer per test process (transaction mode, listening on
//! 127.0.0.1 on a free port, `* = host=... port=...` so every test database of the
//! server above is reachable through it, `auth_type = trust`) together with
//! `statements = "unnamed"`. pgbouncer is Debian's (1.18 on bookworm, which cannot carry
//! prepared statements), installed by `scripts/install-pgbouncer.sh` when missing; it
//! runs from `$TMPDIR/tidepool-pgbouncer-test-<uid>/<pid>/` with its own ini, as
//! `postgres` via `runuser` when we are root (pgbouncer refuses root), and is stopped at
//! process exit by a watchdog exactly like the throwaway cluster (stale ones are swept
//! the same way). Without pgbouncer it panics with the reason, never skips.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::PgConfig;

/// The environment variable naming an existing server to create test databases on.
pub const DATABASE_URL_ENV: &str = "TIDEPOOL_TEST_DATABASE_URL";

/// One empty database, dropped with this value.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    admin_url: String,
    name: String,
    /// `url` leads through this process's pgbouncer (transaction mode).
    via_pgbouncer: bool,
}

impl TestDb {
    /// A fresh empty database. Panics, with the reason, if no PostgreSQL server can be
    /// reached or started: a test that needs one must fail, never skip.
    pub async fn new() -> Self {
        match Self::try_new().await {
            Ok(db) => db,
            Err(e) => panic!("no PostgreSQL for tests: {e}"),
        }
    }

    /// [`TestDb::new`] returning the reason instead of panicking.
    pub async fn try_new() -> Result<Self, String> {
        let admin_url = match std::env::var(DATABASE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                // Starting a cluster blocks for a second or two; keep it off the runtime.
                let server = tokio::task::spawn_blocking(throwaway_server)
                    .await
                    .map_err(|e| format!("starting the throwaway server panicked: {e}"))?;
                server?.admin_url.clone()
            }
        };
        let name = format!("tp_test_{:016x}", random_u64());
        create_database(&admin_url, &name).await?;
        let url = with_dbname(&admin_url, &name)?;
        Ok(Self {
            url,
            admin_url,
            name,
            via_pgbouncer: false,
        })
    }

    /// A fresh empty database reached through pgbouncer in transaction mode: its
    /// [`TestDb::url`] points at this process's pgbouncer and [`TestDb::config`] uses
    /// `statements = "unnamed"`. Panics, with the reason, if no PostgreSQL server or no
    /// pgbouncer can be had: a test that needs one must fail, never skip.
    pub async fn through_pgbouncer() -> Self {
        match Self::try_through_pgbouncer().await {
            Ok(db) => db,
            Err(e) => panic!("no pgbouncer for tests: {e}"),
        }
    }

    /// [`TestDb::through_pgbouncer`] returning the reason instead of panicking.
    pub async fn try_through_pgbouncer() -> Result<Self, String> {
        let mut db = Self::try_new().await?;
        let port = match BOUNCER.get() {
            Some(started) => started.as_ref().map_err(Clone::clone)?.port,
            None => {
                let target = BouncerTarget::of(&db.admin_url).await?;
                tokio::task::spawn_blocking(move || pgbouncer(target).map(|b| b.port))
                    .await
                    .map_err(|e| format!("starting pgbouncer panicked: {e}"))??
            }
        };
        let user = db
            .admin_url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| format!("{DATABASE_URL_ENV}: {e}"))?
            .get_user()
            .unwrap_or("postgres")
            .to_owned();
        db.url = format!(
            "postgres://{}@127.0.0.1:{port}/{}",
            url_escape(&user),
            db.name
        );
        db.via_pgbouncer = true;
        Ok(db)
    }

    /// Whether [`TestDb::url`] leads through pgbouncer (see [`TestDb::through_pgbouncer`]).
    pub fn via_pgbouncer(&self) -> bool {
        self.via_pgbouncer
    }

    /// Connection URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connection URL of this database on the PostgreSQL server itself, never through
    /// pgbouncer (what a node's `listen_url` needs when [`TestDb::url`] leads through it).
    pub fn direct_url(&self) -> String {
        with_dbname(&self.admin_url, &self.name)
            .unwrap_or_else(|e| panic!("test database URL: {e}"))
    }

    /// Name of this database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A [`PgConfig`] for this database with default settings and a small pool; through
    /// pgbouncer with `statements = "unnamed"`, the only mode pgbouncer 1.18 carries.
    pub fn config(&self) -> PgConfig {
        let mut config = PgConfig::new(self.url.clone());
        config.pool_size = 4;
        if self.via_pgbouncer {
            config.statements = crate::StatementMode::Unnamed;
        }
        config
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be single-threaded: do it on a
        // thread with its own small runtime. WITH (FORCE) ends sessions pools still hold.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
                {
                    let task = tokio::spawn(connection);
                    let _ = client.batch_execute(&sql).await;
                    drop(client);
                    let _ = task.await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// `url` with its database replaced by `dbname`. Handles the URL forms tidepool uses:
/// `postgres://user@host:port/db?params` (database path optional).
fn with_dbname(url: &str, dbname: &str) -> Result<String, String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .ok_or_else(|| format!("{DATABASE_URL_ENV} must be a postgres:// URL"))?
        + 3;
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{dbname}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS once per process and then per instance: enough
    // to keep names of concurrent test processes apart without a rand dependency.
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// The throwaway server of this process.
struct Server {
    admin_url: String,
    /// Write end of the watchdog's pipe; never written, only held until process exit.
    _watchdog: ChildStdin,
}

fn throwaway_server() -> Result<&'static Server, String> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    SERVER
        .get_or_init(start_server)
        .as_ref()
        .map_err(Clone::clone)
}

/// Where the cluster binaries are: the newest `/usr/lib/postgresql/N/bin`, else `PATH`.
fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    })
}

/// Our user id (via `id -u`, to need no libc binding).
fn uid() -> Result<String, String> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("running id -u: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A command run as the cluster's owner: `postgres` when we are root.
fn as_owner(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn install_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-postgres.sh")
}

/// The cluster binaries, installed by `scripts/install-postgres.sh` when missing.
fn ensure_bin_dir() -> Result<PathBuf, String> {
    Ok(match find_bin_dir() {
        Some(bin) => bin,
        None => {
            let script = install_script();
            run(
                {
                    let mut c = Command::new("sh");
                    c.arg(&script);
                    c
                },
                &format!("PostgreSQL is not installed; {}", script.display()),
            )?;
            find_bin_dir().ok_or_else(|| {
                format!(
                    "{} ran but initdb/pg_ctl are still not under /usr/lib/postgresql/*/bin \
                     or on PATH",
                    script.display()
                )
            })?
        }
    })
}

fn start_server() -> Result<Server, String> {
    let bin = ensure_bin_dir()?;
    let uid = uid()?;
    let root = uid == "0";
    // One base directory per user, so users sharing a machine never trip over each
    // other's permissions or sweep each other's clusters.
    let base = std::env::temp_dir().join(format!("tidepool-pg-test-{uid}"));
    std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    sweep_stale(&base, &bin, root);

    let dir = base.join(std::process::id().to_string());
    // A leftover of an earlier process with our pid: it is not running (that pid is us).
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if root {
        set_mode(&base, 0o755)?;
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres:postgres").arg(&dir);
                c
            },
            "chown of the test cluster directory to postgres",
        )?;
    }
    let data = dir.join("data");
    let mut initdb = as_owner(root, &bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
        .arg("--no-sync");
    run(initdb, "initdb")?;

    // The watchdog starts before the server, so even a failure below cannot leave a
    // running cluster behind.
    let watchdog = spawn_watchdog(&dir, &bin, root)?;

    let log = dir.join("postgres.log");
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        write_settings(&data, &dir, port)?;
        let mut start = as_owner(root, &bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"]);
        match run(start, "pg_ctl start") {
            Ok(()) => {
                let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                wait_ready(port)?;
                return Ok(Server {
                    admin_url,
                    _watchdog: watchdog,
                });
            }
            // Most likely another process took the port between probing and binding.
            Err(e) => {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                last_error = format!("{e}\nserver log:\n{tail}");
            }
        }
    }
    Err(format!(
        "could not start the throwaway PostgreSQL in {}: {last_error}",
        dir.display()
    ))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// Appends this run's settings; later lines win in postgresql.conf, so a retry on
/// another port just appends again.
fn write_settings(data: &Path, dir: &Path, port: u16) -> Result<(), String> {
    let conf = data.join("postgresql.conf");
    let settings = format!(
        "\n# tidepool test cluster\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
         unix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\n\
         full_page_writes = off\nmax_connections = 200\n",
        dir.display()
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(|e| format!("opening {}: {e}", conf.display()))?;
    f.write_all(settings.as_bytes())
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
    // Appending (as root too) keeps the file's owner, so the server can still read it.
    Ok(())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("finding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// `pg_ctl -w` already waits for the server to accept connections; this double-checks
/// the TCP listener, which is what the tests use.
fn wait_ready(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "PostgreSQL never listened on 127.0.0.1:{port}: {e}"
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The shell command line that stops the cluster in `dir` and deletes it.
fn stop_script(dir: &Path, bin: &Path, root: bool) -> String {
    stop_clusters_script(dir, &["data"], bin, root)
}

/// The shell command line that stops the clusters in `dir/<name>` for every name in
/// `clusters`, then deletes `dir`.
fn stop_clusters_script(dir: &Path, clusters: &[&str], bin: &Path, root: bool) -> String {
    let pg_ctl = bin.join("pg_ctl");
    let owner = if root { "runuser -u postgres -- " } else { "" };
    let mut script = String::new();
    for name in clusters {
        script.push_str(&format!(
            "{owner}'{}' -D '{}' -m immediate -w stop >/dev/null 2>&1; ",
            pg_ctl.display(),
            dir.join(name).display(),
        ));
    }
    script.push_str(&format!("rm -rf '{}'", dir.display()));
    script
}

fn spawn_watchdog(dir: &Path, bin: &Path, root: bool) -> Result<ChildStdin, String> {
    spawn_watchdog_running(&stop_script(dir, bin, root))
}

/// A watchdog that runs `stop` (a shell command line) once this process is gone.
fn spawn_watchdog_running(stop: &str) -> Result<ChildStdin, String> {
    use std::os::unix::process::CommandExt;
    // `read` returns at EOF, i.e. once every write end of the pipe is closed: the only
    // one is held by this process (Rust opens pipes close-on-exec, so no child inherits
    // it), so that happens exactly when the test process ends.
    let script = format!("read _ignored; {stop}");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the cleanup watchdog: {e}"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| "the cleanup watchdog has no stdin".to_owned())
}

/// Whether `pid` runs. A zombie counts as gone: a killed test process may wait a while
/// for its new parent to reap it, and its cluster must still be swept.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Format: `pid (comm) state ...`; comm may contain ')' so split at the last one.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Stops and deletes clusters whose test process is gone (its watchdog was killed too).
fn sweep_stale(base: &Path, bin: &Path, root: bool) {
    // Liveness comes from /proc; without it (not Linux) sweep nothing rather than stop
    // the cluster of a concurrent test process.
    if !Path::new("/proc/self/stat").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let _ = Command::new("sh")
            .arg("-c")
            .arg(stop_script(&entry.path(), bin, root))
            .stdin(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------
// pgbouncer

/// Where this process's pgbouncer sends its server connections: the server of
/// `TIDEPOOL_TEST_DATABASE_URL` or the throwaway cluster.
struct BouncerTarget {
    /// A host name / address, or the directory of a unix socket.
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    /// The server's `max_connections`, to keep pgbouncer well below it.
    max_connections: u32,
}

impl BouncerTarget {
    async fn of(admin_url: &str) -> Result<Self, String> {
        use tokio_postgres::config::Host;
        let cfg = admin_url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| format!("parsing {}: {e}", redact(admin_url)))?;
        let host = match cfg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(dir)) => dir.display().to_string(),
            None => "127.0.0.1".to_owned(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let user = cfg.get_user().unwrap_or("postgres").to_owned();
        let password = cfg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connecting to {}: {e}", redact(admin_url)))?;
        let conn_task = tokio::spawn(connection);
        let max_connections = client
            .query_one("SELECT current_setting('max_connections')::int4", &[])
            .await
            .map_err(|e| format!("reading max_connections: {e}"))?
            .try_get::<_, i32>(0)
            .map_err(|e| format!("reading max_connections: {e}"))?;
        drop(client);
        let _ = conn_task.await;
        Ok(Self {
            host,
            port,
            user,
            password,
            max_connections: u32::try_from(max_connections).unwrap_or(100),
        })
    }
}

/// This process's pgbouncer.
struct Bouncer {
    port: u16,
    /// Write end of the watchdog's pipe; never written, only held until process exit.
    _watchdog: ChildStdin,
}

/// This process's pgbouncer, or why it could not be started.
static BOUNCER: OnceLock<Result<Bouncer, String>> = OnceLock::new();

fn pgbouncer(target: BouncerTarget) -> Result<&'static Bouncer, String> {
    // The target is the same for every test of a process (one admin server per process),
    // so only the first call's matters.
    BOUNCER
        .get_or_init(|| start_pgbouncer(&target))
        .as_ref()
        .map_err(Clone::clone)
}

/// The pgbouncer binary: Debian's `/usr/sbin/pgbouncer`, else `PATH`.
fn find_pgbouncer() -> Option<PathBuf> {
    let fixed = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    fixed.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("pgbouncer"))
                .find(|p| p.is_file())
        })
    })
}

fn pgbouncer_install_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-pgbouncer.sh")
}

/// `s` with every byte outside the URL-safe set percent-encoded (a user name in a URL).
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A value for pgbouncer's ini / auth file: double quotes doubled.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn start_pgbouncer(target: &BouncerTarget) -> Result<Bouncer, String> {
    let bin = match find_pgbouncer() {
        Some(bin) => bin,
        None => {
            let script = pgbouncer_install_script();
            run(
                {
                    let mut c = Command::new("sh");
                    c.arg(&script);
                    c
                },
                &format!("pgbouncer is not installed; {}", script.display()),
            )?;
            find_pgbouncer().ok_or_else(|| {
                format!(
                    "{} ran but pgbouncer is still not in /usr/sbin, /usr/bin or on PATH",
                    script.display()
                )
            })?
        }
    };
    let uid = uid()?;
    let root = uid == "0";
    let base = std::env::temp_dir().join(format!("tidepool-pgbouncer-test-{uid}"));
    std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    sweep_stale_bouncers(&base);

    let dir = base.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    set_mode(&dir, 0o700)?;
    if root {
        set_mode(&base, 0o755)?;
    }
    // trust: pgbouncer asks clients for no password, but the user must be listed; the
    // password (if the URL has one) is what pgbouncer logs in to the server with.
    let auth_file = dir.join("userlist.txt");
    std::fs::write(
        &auth_file,
        format!(
            "{} {}\n",
            quoted(&target.user),
            quoted(target.password.as_deref().unwrap_or(""))
        ),
    )
    .map_err(|e| format!("writing {}: {e}", auth_file.display()))?;
    set_mode(&auth_file, 0o600)?;

    let watchdog = spawn_bouncer_watchdog(&dir)?;

    let ini = dir.join("pgbouncer.ini");
    let log = dir.join("pgbouncer.log");
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        write_bouncer_ini(&ini, &dir, target, port)?;
        if root {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("-R").arg("postgres:postgres").arg(&dir);
                    c
                },
                "chown of the pgbouncer directory to postgres",
            )?;
        }
        // -d: pgbouncer daemonizes (its own session, so Ctrl-C on the test run does not
        // reach it) and writes its pid file, which the watchdog uses to stop it.
        let mut start = as_owner(root, &bin);
        start.arg("-d").arg(&ini);
        let started = run(start, "starting pgbouncer").and_then(|()| wait_bouncer(port, &log));
        match started {
            Ok(()) => {
                return Ok(Bouncer {
                    port,
                    _watchdog: watchdog,
                });
            }
            // Most likely another process took the port between probing and binding.
            Err(e) => {
                stop_bouncer(&dir);
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                last_error = format!("{e}\npgbouncer log:\n{tail}");
            }
        }
    }
    Err(format!(
        "could not start pgbouncer ({}) in {}: {last_error}",
        bin.display(),
        dir.display()
    ))
}

fn write_bouncer_ini(
    ini: &Path,
    dir: &Path,
    target: &BouncerTarget,
    port: u16,
) -> Result<(), String> {
    // Leave the server half its connections (other test processes, the admin
    // connections of CREATE/DROP DATABASE); when pgbouncer is at the limit, clients wait
    // for a server connection instead of failing.
    let max_user = (target.max_connections / 2).max(10);
    let settings = format!(
        "; tidepool test pgbouncer (crates/store-pg/src/testing.rs)\n\
         [databases]\n\
         * = host={host} port={server_port}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {auth}\n\
         pool_mode = transaction\n\
         max_client_conn = 1000\n\
         default_pool_size = 20\n\
         max_user_connections = {max_user}\n\
         server_idle_timeout = 10\n\
         server_login_retry = 1\n\
         ignore_startup_parameters = extra_float_digits,options\n\
         logfile = {log}\n\
         pidfile = {pid}\n",
        host = target.host,
        server_port = target.port,
        auth = dir.join("userlist.txt").display(),
        log = dir.join("pgbouncer.log").display(),
        pid = dir.join("pgbouncer.pid").display(),
    );
    std::fs::write(ini, settings).map_err(|e| format!("writing {}: {e}", ini.display()))
}

/// Waits until pgbouncer accepts TCP connections on `port`.
fn wait_bouncer(port: u16, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "pgbouncer never listened on 127.0.0.1:{port} (log: {}): {e}",
                    log.display()
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The shell command line that stops the pgbouncer of `dir` (by its pid file, and only
/// if that pid still is a pgbouncer) and deletes the directory.
fn bouncer_stop_script(dir: &Path) -> String {
    let pidfile = dir.join("pgbouncer.pid");
    format!(
        "pid=$(cat '{pidfile}' 2>/dev/null); \
         if [ -n \"$pid\" ] && [ \"$(cat /proc/$pid/comm 2>/dev/null)\" = pgbouncer ]; then \
         kill -TERM \"$pid\" 2>/dev/null; \
         for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 \"$pid\" 2>/dev/null || break; sleep 0.1; done; \
         fi; rm -rf '{dir}'",
        pidfile = pidfile.display(),
        dir = dir.display()
    )
}

/// Stops the pgbouncer of `dir` (after a failed start) but keeps the directory.
fn stop_bouncer(dir: &Path) {
    let pidfile = dir.join("pgbouncer.pid");
    let script = format!(
        "pid=$(cat '{}' 2>/dev/null); \
         if [ -n \"$pid\" ] && [ \"$(cat /proc/$pid/comm 2>/dev/null)\" = pgbouncer ]; then \
         kill -TERM \"$pid\"; fi",
        pidfile.display()
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .status();
}

fn spawn_bouncer_watchdog(dir: &Path) -> Result<ChildStdin, String> {
    use std::os::unix::process::CommandExt;
    // As for the cluster (see `spawn_watchdog`): `read` returns once this process is gone.
    let script = format!("read _ignored; {}", bouncer_stop_script(dir));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the pgbouncer cleanup watchdog: {e}"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| "the pgbouncer cleanup watchdog has no stdin".to_owned())
}

/// Stops and deletes pgbouncers whose test process is gone (its watchdog was killed too).
fn sweep_stale_bouncers(base: &Path) {
    if !Path::new("/proc/self/stat").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let _ = Command::new("sh")
            .arg("-c")
            .arg(bouncer_stop_script(&entry.path()))
            .stdin(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------
// A primary with a streaming replica

/// A primary and a streaming replica of it, started for one test under
/// `$TMPDIR/tidepool-pg-replica-test-<uid>/<pid>-<n>/` whatever `TIDEPOOL_TEST_DATABASE_URL`
/// says (a replica needs a primary configured for it, so the pair is always its own):
/// `initdb` for the primary (trust auth, replication allowed from 127.0.0.1 as initdb's
/// default `pg_hba.conf` does), `pg_basebackup -R -X stream` for the replica, both on
/// free ports of 127.0.0.1 with the same Debian binaries as the throwaway cluster. The
/// database `tidepool` exists on both when [`ReplicaPair::start`] returns.
///
/// Dropping the pair stops both servers and deletes the directory; a watchdog does the
/// same if the test process dies first, and the next pair started sweeps directories
/// whose process is gone, as for the throwaway cluster.
pub struct ReplicaPair {
    dir: PathBuf,
    bin: PathBuf,
    root: bool,
    primary_port: u16,
    replica_port: u16,
    /// Write end of the watchdog's pipe; never written, only held until drop or exit.
    _watchdog: ChildStdin,
}

impl std::fmt::Debug for ReplicaPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaPair")
            .field("dir", &self.dir)
            .field("primary_port", &self.primary_port)
            .field("replica_port", &self.replica_port)
            .finish_non_exhaustive()
    }
}

/// Creates the database `name` on the server `admin_url` leads to (one connection,
/// closed before returning).
async fn create_database(admin_url: &str, name: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to {}: {e}", redact(admin_url)))?;
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("CREATE DATABASE {name} on {}: {e}", redact(admin_url)))?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// The database a [`ReplicaPair`] creates.
const PAIR_DATABASE: &str = "tidepool";

impl ReplicaPair {
    /// Starts the pair. Panics, with the reason, if it cannot: a test that needs a
    /// replica must fail, never skip.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(pair) => pair,
            Err(e) => panic!("no PostgreSQL primary + replica for tests: {e}"),
        }
    }

    /// [`ReplicaPair::start`] returning the reason instead of panicking.
    pub async fn try_start() -> Result<Self, String> {
        let pair = tokio::task::spawn_blocking(start_pair)
            .await
            .map_err(|e| format!("starting the primary and replica panicked: {e}"))??;
        let admin = format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            pair.primary_port
        );
        create_database(&admin, PAIR_DATABASE).await?;
        // The database reaches the replica by replication: wait for it (bounded).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio_postgres::connect(&pair.replica_url(), tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    let task = tokio::spawn(connection);
                    let standby = client
                        .query_one("SELECT pg_is_in_recovery()", &[])
                        .await
                        .map_err(|e| format!("asking the replica whether it is one: {e}"))?
                        .get::<_, bool>(0);
                    drop(client);
                    let _ = task.await;
                    if !standby {
                        return Err("the replica is not in recovery".into());
                    }
                    return Ok(pair);
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(format!(
                        "the database never reached the replica within 30 s: {e}; log: {}",
                        pair.dir.join("replica.log").display()
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// URL of the `tidepool` database on the primary.
    pub fn primary_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{PAIR_DATABASE}",
            self.primary_port
        )
    }

    /// URL of the `tidepool` database on the replica.
    pub fn replica_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{PAIR_DATABASE}",
            self.replica_port
        )
    }

    /// Settings for the primary with the replica as its read replica and a small pool.
    pub fn config(&self) -> PgConfig {
        let mut config = PgConfig::new(self.primary_url());
        config.replica_urls = vec![self.replica_url()];
        config.pool_size = 4;
        config
    }

    /// Waits (up to 30 s) until the replica has replayed everything the primary had
    /// written when this was called.
    pub async fn wait_caught_up(&self) -> Result<(), String> {
        let replica = pair_client(&self.replica_url()).await?;
        let primary = pair_client(&self.primary_url()).await?;
        let target: i64 = primary
            .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| format!("pg_current_wal_lsn(): {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let replayed: Option<i64> = replica
                .query_one(
                    "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8",
                    &[],
                )
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| format!("pg_last_wal_replay_lsn(): {e}"))?;
            if replayed.is_some_and(|r| r >= target) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the replica did not reach {target} within 30 s: {replayed:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pauses WAL replay on the replica (`pg_wal_replay_pause()`) and waits until it is
    /// paused: the request takes effect at the next WAL record, so the primary runs small
    /// transactions until it has (bounded, 30 s).
    pub async fn pause_replay(&self) -> Result<(), String> {
        let replica = pair_client(&self.replica_url()).await?;
        let primary = pair_client(&self.primary_url()).await?;
        replica
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .map_err(|e| format!("pg_wal_replay_pause(): {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state: String = replica
                .query_one("SELECT pg_get_wal_replay_pause_state()", &[])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| format!("pg_get_wal_replay_pause_state(): {e}"))?;
            if state == "paused" {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("replay never paused within 30 s: {state}"));
            }
            primary
                .batch_execute("SELECT txid_current()")
                .await
                .map_err(|e| format!("writing on the primary: {e}"))?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resumes WAL replay on the replica (`pg_wal_replay_resume()`).
    pub async fn resume_replay(&self) -> Result<(), String> {
        pair_client(&self.replica_url())
            .await?
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .map_err(|e| format!("pg_wal_replay_resume(): {e}"))
    }

    /// Stops the replica (`pg_ctl stop -m fast`).
    pub async fn stop_replica(&self) -> Result<(), String> {
        let (bin, data, root) = (self.bin.clone(), self.dir.join("replica"), self.root);
        tokio::task::spawn_blocking(move || {
            let mut stop = as_owner(root, &bin.join("pg_ctl"));
            stop.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
            run(stop, "pg_ctl stop (replica)")
        })
        .await
        .map_err(|e| format!("stopping the replica panicked: {e}"))?
    }

    /// Starts the replica again after [`ReplicaPair::stop_replica`], on the same port.
    pub async fn start_replica(&self) -> Result<(), String> {
        let (bin, dir, root, port) = (
            self.bin.clone(),
            self.dir.clone(),
            self.root,
            self.replica_port,
        );
        tokio::task::spawn_blocking(move || {
            start_cluster(&bin, root, &dir.join("replica"), &dir.join("replica.log"))?;
            wait_ready(port)
        })
        .await
        .map_err(|e| format!("starting the replica panicked: {e}"))?
    }
}

impl Drop for ReplicaPair {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(stop_clusters_script(
                &self.dir,
                &["replica", "primary"],
                &self.bin,
                self.root,
            ))
            .stdin(Stdio::null())
            .status();
    }
}

/// A client of one of the pair's servers, its connection driven by a task of its own.
async fn pair_client(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

fn start_cluster(bin: &Path, root: bool, data: &Path, log: &Path) -> Result<(), String> {
    let mut start = as_owner(root, &bin.join("pg_ctl"));
    start
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(log)
        .args(["-w", "-t", "60", "start"]);
    run(start, "pg_ctl start").map_err(|e| {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        format!("{e}\nserver log:\n{tail}")
    })
}

/// Starts the cluster in `data` on a free port (retrying on another if the port was
/// taken meanwhile).
fn start_on_free_port(
    bin: &Path,
    root: bool,
    dir: &Path,
    data: &Path,
    log: &Path,
) -> Result<u16, String> {
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        write_settings(data, dir, port)?;
        match start_cluster(bin, root, data, log) {
            Ok(()) => {
                wait_ready(port)?;
                return Ok(port);
            }
            Err(e) => last_error = e,
        }
    }
    Err(format!("could not start {}: {last_error}", data.display()))
}

fn start_pair() -> Result<ReplicaPair, String> {
    static PAIRS: AtomicU64 = AtomicU64::new(0);
    let bin = ensure_bin_dir()?;
    if !bin.join("pg_basebackup").is_file() {
        return Err(format!("no pg_basebackup in {}", bin.display()));
    }
    let uid = uid()?;
    let root = uid == "0";
    let base = std::env::temp_dir().join(format!("tidepool-pg-replica-test-{uid}"));
    std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    sweep_stale_pairs(&base, &bin, root);
    let dir = base.join(format!(
        "{}-{}",
        std::process::id(),
        PAIRS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if root {
        set_mode(&base, 0o755)?;
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres:postgres").arg(&dir);
                c
            },
            "chown of the replica test directory to postgres",
        )?;
    }
    // Before anything runs, so no failure below can leave a server behind.
    let watchdog = spawn_watchdog_running(&stop_clusters_script(
        &dir,
        &["replica", "primary"],
        &bin,
        root,
    ))?;

    let primary = dir.join("primary");
    let mut initdb = as_owner(root, &bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&primary)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
        .arg("--no-sync");
    run(initdb, "initdb (primary)")?;
    // PostgreSQL 15's defaults already stream (wal_level = replica, max_wal_senders = 10,
    // hot_standby = on); keep WAL for a replica that is stopped and started again.
    let conf = primary.join("postgresql.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(|e| format!("opening {}: {e}", conf.display()))?;
    f.write_all(b"\n# tidepool replica test primary\nwal_keep_size = '64MB'\n")
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
    let primary_port = start_on_free_port(&bin, root, &dir, &primary, &dir.join("primary.log"))?;

    let replica = dir.join("replica");
    let mut backup = as_owner(root, &bin.join("pg_basebackup"));
    backup
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &primary_port.to_string(),
            "-U",
            "postgres",
        ])
        .arg("-D")
        .arg(&replica)
        .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]);
    run(backup, "pg_basebackup")?;
    // The copied postgresql.conf holds the primary's port; appended settings win.
    let replica_port = start_on_free_port(&bin, root, &dir, &replica, &dir.join("replica.log"))?;
    Ok(ReplicaPair {
        dir,
        bin,
        root,
        primary_port,
        replica_port,
        _watchdog: watchdog,
    })
}

/// Stops and deletes pairs whose test process is gone (its watchdog was killed too).
fn sweep_stale_pairs(base: &Path, bin: &Path, root: bool) {
    if !Path::new("/proc/self/stat").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.split('-').next())
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let _ = Command::new("sh")
            .arg("-c")
            .arg(stop_clusters_script(
                &entry.path(),
                &["replica", "primary"],
                bin,
                root,
            ))
            .stdin(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn dbname_is_replaced() {
        assert_eq!(
            with_dbname("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_dbname("postgres://u:p@h/db?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_dbname("postgres://u@h:1", "x").unwrap(),
            "postgres://u@h:1/x"
        );
        assert!(with_dbname("host=h", "x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn pgbouncer_values_are_escaped() {
        assert_eq!(url_escape("postgres"), "postgres");
        assert_eq!(url_escape("a b@c"), "a%20b%40c");
        assert_eq!(quoted(r#"pa"ss"#), r#""pa""ss""#);
    }

    #[test]
    fn names_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
