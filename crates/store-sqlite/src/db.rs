use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags};

use crate::{DbError, Result, schema};

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: in WAL mode a power cut may lose the last commits but never
    /// corrupts the database; a process crash loses nothing.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit survives a power cut.
    Full,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub durability: Durability,
    /// Read-only connections in the pool.
    pub readers: usize,
    /// Most jobs committed in one transaction.
    pub max_batch: usize,
    /// Longest a group keeps collecting jobs that are already queued.
    pub max_batch_time: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Normal,
            readers: 8,
            max_batch: 512,
            max_batch_time: Duration::from_millis(4),
        }
    }
}

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

/// The handle every part of tidepool uses to reach its data. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    sender: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: ReadPool,
    /// Counted by the writer thread once per group, read by [`SqliteStore::stats`].
    commits: Arc<CommitCounters>,
    /// The queue's receiving end, kept only to read its length (the sender goes away at
    /// shutdown; this never receives).
    queue: Receiver<Job>,
}

/// What the writer has committed since start-up.
#[derive(Default)]
struct CommitCounters {
    batches: AtomicU64,
    jobs: AtomicU64,
}

const DB_FILE: &str = "tidepool.db";

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`: the directory is made private
    /// (0700), the database file and its WAL 0600, and migrations run before anything else.
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Self> {
        make_private_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_connection(&path, false, options.durability)?;
        schema::migrate(&mut conn)?;
        crate::submolts::ensure_defaults(&conn, tidepool_core::time::now_ms())?;
        // Rows staged by a writer that was not the store's (a tool on a raw connection).
        crate::schema::flush_fts(&conn)?;
        // Refreshes planner statistics where they are stale; analysis_limit bounds the work
        // per index so start-up cost does not grow with the store.
        conn.execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002;")?;
        make_private_files(&path)?;

        let mut readers = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            readers.push(open_connection(&path, true, options.durability)?);
        }

        let (sender, receiver) = crossbeam_channel::unbounded::<Job>();
        let opts = options.clone();
        let commits = Arc::new(CommitCounters::default());
        let (writer_commits, writer_receiver) = (commits.clone(), receiver.clone());
        let writer = std::thread::Builder::new()
            .name("tidepool-writer".into())
            .spawn(move || writer_loop(conn, writer_receiver, opts, &writer_commits))?;

        Ok(Self {
            inner: Arc::new(Inner {
                path,
                sender: Mutex::new(Some(sender)),
                writer: Mutex::new(Some(writer)),
                readers: ReadPool::new(readers),
                commits,
                queue: receiver,
            }),
        })
    }

    /// Path of the SQLite database file.
    pub fn db_path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the writer thread inside its own savepoint and resolves once the group
    /// it was committed with is durable. An `Err` from `f` rolls back only `f`'s changes.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, tx)?;
        rx.await.map_err(|_| DbError::Closed)?
    }

    /// [`SqliteStore::write`] for callers outside an async runtime (the CLI).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, tx)?;
        rx.blocking_recv().map_err(|_| DbError::Closed)?
    }

    fn submit<T, F>(&self, f: F, tx: tokio::sync::oneshot::Sender<Result<T>>) -> Result<()>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let job: Job = Box::new(move |conn: &Connection| {
            let outcome = run_in_savepoint(conn, f);
            Box::new(move |committed: Result<()>| {
                let result = match committed {
                    Ok(()) => outcome,
                    Err(e) => Err(e),
                };
                // The requester may have gone away (client hung up); nothing to tell.
                let _ = tx.send(result);
            })
        });
        let guard = self.inner.sender.lock().map_err(DbError::internal)?;
        match guard.as_ref() {
            Some(sender) => sender.send(job).map_err(|_| DbError::Closed),
            None => Err(DbError::Closed),
        }
    }

    /// Runs `f` on a pooled read-only connection, blocking the calling thread.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = Pooled {
            pool: &self.inner.readers,
            conn: Some(self.inner.readers.take()?),
        };
        match pooled.conn.as_ref() {
            Some(conn) => f(conn),
            None => Err(DbError::Internal("read connection missing".into())),
        }
    }

    /// The writer's queue and group commits, and the read pool's use, right now.
    pub fn runtime_stats(&self) -> tidepool_store::StoreStats {
        let commits = &self.inner.commits;
        let readers = &self.inner.readers;
        let idle = readers.idle.lock().map_or(0, |i| i.len() as u64);
        tidepool_store::StoreStats {
            writer: Some(tidepool_store::WriterStats {
                queued: self.inner.queue.len() as u64,
                batches: commits.batches.load(Ordering::Relaxed),
                jobs: commits.jobs.load(Ordering::Relaxed),
            }),
            pools: vec![tidepool_store::PoolStats {
                name: "read",
                max: readers.size,
                open: readers.size,
                idle,
                waiting: readers.waiting.load(Ordering::Relaxed),
            }],
            replicas: Vec::new(),
        }
    }

    /// Stops accepting writes, lets the writer commit everything already queued, and
    /// waits for it. Every write that was acknowledged is on disk when this returns.
    pub fn shutdown(&self) {
        if let Ok(mut s) = self.inner.sender.lock() {
            s.take();
        }
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Some(h) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = h.join();
        }
    }
}

fn run_in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(DbError::Internal("write job panicked".into())));
    match &outcome {
        Ok(_) => conn.execute_batch("RELEASE job")?,
        Err(_) => conn.execute_batch("ROLLBACK TO job; RELEASE job")?,
    }
    outcome
}

fn writer_loop(
    conn: Connection,
    receiver: Receiver<Job>,
    opts: StoreOptions,
    counters: &CommitCounters,
) {
    // Blocks until the first job of a group arrives; ends when every sender is gone and
    // the queue is drained.
    while let Ok(first) = receiver.recv() {
        let started = Instant::now();
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "writer could not begin a transaction");
            let done = first(&conn);
            done(Err(DbError::Sqlite(e)));
            continue;
        }
        let mut completions = vec![first(&conn)];
        while completions.len() < opts.max_batch && started.elapsed() < opts.max_batch_time {
            match receiver.try_recv() {
                Ok(job) => completions.push(job(&conn)),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        let committed = crate::schema::flush_fts(&conn)
            .and_then(|()| conn.execute_batch("COMMIT").map_err(DbError::Sqlite));
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = completions.len(), "group commit failed");
            let _ = conn.execute_batch("ROLLBACK");
        } else {
            counters
                .jobs
                .fetch_add(completions.len() as u64, Ordering::Relaxed);
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        for done in completions {
            done(match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(DbError::Internal(format!("commit failed: {e}"))),
            });
        }
    }
    // A clean checkpoint on shutdown keeps the next start-up quick.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

fn open_connection(path: &Path, read_only: bool, durability: Durability) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON;
         PRAGMA cache_size=-32000; PRAGMA temp_store=MEMORY; PRAGMA mmap_size=268435456;"
    ))?;
    // The query planner stability guarantee: plans never depend on bound values. Without
    // it SQLite marks statements whose LIMIT (or partial-index terms) use a parameter as
    // expired on every bind and re-prepares them on every run: 15% of a hot-feed
    // request's CPU went to re-parsing SQL (docs/PERFORMANCE.md, profiling notes).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(128);
    register_functions(&conn)?;
    Ok(conn)
}

/// A read-only connection to the store at `db_path`, with tidepool's SQL functions, for
/// tools and tests that need a connection of their own.
pub fn connect_read_only(db_path: &Path) -> Result<Connection> {
    open_connection(db_path, true, Durability::Normal)
}

/// Ranking formulas as SQL functions, so stored ranks are computed by the same Rust code
/// the tests check, inside the statement that changes the score (no read-then-write).
fn register_functions(conn: &Connection) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("tp_hot", 2, flags, |ctx| {
        Ok(tidepool_core::rank::hot(
            ctx.get::<f64>(0)?,
            ctx.get::<i64>(1)?,
        ))
    })?;
    conn.create_scalar_function("tp_rising", 3, flags, |ctx| {
        Ok(tidepool_core::rank::rising(
            ctx.get::<f64>(0)?,
            ctx.get::<i64>(1)?,
            ctx.get::<i64>(2)?,
        ))
    })?;
    conn.create_scalar_function("tp_wilson", 2, flags, |ctx| {
        Ok(tidepool_core::rank::wilson_lower_bound(
            ctx.get::<i64>(0)?,
            ctx.get::<i64>(1)?,
        ))
    })?;
    conn.create_scalar_function("tp_controversy", 2, flags, |ctx| {
        Ok(tidepool_core::rank::controversy(
            ctx.get::<i64>(0)?,
            ctx.get::<i64>(1)?,
        ))
    })?;
    Ok(())
}

#[cfg(unix)]
fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

#[cfg(not(unix))]
fn make_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    Ok(())
}

#[cfg(unix)]
fn make_private_files(db: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private_files(_db: &Path) -> Result<()> {
    Ok(())
}

const SECRET_FILE: &str = "server.secret";

/// Loads the server secret that keys every credential hash, creating it (0600) on first
/// start. It lives beside the database, never in it, so a copy of the database alone
/// cannot be used to test guessed keys.
pub fn load_or_create_secret(data_dir: &Path) -> Result<[u8; 32]> {
    make_private_dir(data_dir)?;
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| DbError::Internal(format!("{} is not a 32-byte secret", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret =
                tidepool_core::credentials::new_server_secret().map_err(DbError::internal)?;
            write_private_file(&path, &secret)?;
            Ok(secret)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(unix)]
fn write_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Gives its connection back to the pool when dropped, even if the reader panicked.
struct Pooled<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.give(c);
        }
    }
}

/// A fixed set of read-only connections handed out one at a time.
struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    available: Condvar,
    /// Connections in the pool, idle or not.
    size: u64,
    /// Readers blocked waiting for a connection now.
    waiting: AtomicU64,
}

impl ReadPool {
    fn new(conns: Vec<Connection>) -> Self {
        Self {
            size: conns.len() as u64,
            idle: Mutex::new(conns),
            available: Condvar::new(),
            waiting: AtomicU64::new(0),
        }
    }

    fn take(&self) -> Result<Connection> {
        let mut idle = self.idle.lock().map_err(DbError::internal)?;
        if let Some(c) = idle.pop() {
            return Ok(c);
        }
        // Counted only on the slow path, so a pool with room costs nothing extra.
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let taken = loop {
            if let Some(c) = idle.pop() {
                break Ok(c);
            }
            match self.available.wait(idle) {
                Ok(guard) => idle = guard,
                Err(e) => break Err(DbError::internal(e)),
            }
        };
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        taken
    }

    fn give(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
            self.available.notify_one();
        }
    }
}
