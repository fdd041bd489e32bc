//! The connection pool and the one place that knows about statement modes.
//!
//! Query code names each statement once as a [`Sql`] constant (text plus the PostgreSQL
//! type of every parameter) and runs it through [`PgPool`], [`Conn`] or [`Tx`]; which
//! protocol carries it is decided here from [`StatementMode`]:
//!
//! ```no_run
//! # async fn demo(db: &tidepool_store_pg::PgPool) -> tidepool_store_pg::Result<()> {
//! use tidepool_store_pg::{Sql, Type};
//! const POST_SCORE: Sql = Sql::new("SELECT score FROM posts WHERE id = $1", &[Type::INT8]);
//! let row = db.query_opt(&POST_SCORE, &[&42i64]).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row, Statement};

use crate::{PgConfig, PgError, Result, StatementMode};

/// One statement: its SQL text and the PostgreSQL type of each `$n` parameter, in order.
///
/// The types are needed by the `unnamed` mode (`query_typed` sends them with the values
/// instead of asking the server to infer them) and are also given to `prepare_typed` in
/// the `prepared` mode, so the server sees the same parameter types in both modes.
#[derive(Debug, Clone, Copy)]
pub struct Sql {
    /// The statement, with `$1`, `$2`, ... placeholders.
    pub text: &'static str,
    /// Type of each placeholder; `types[0]` is `$1`.
    pub types: &'static [Type],
}

impl Sql {
    /// A statement constant: `const S: Sql = Sql::new("...", &[Type::INT8]);`.
    pub const fn new(text: &'static str, types: &'static [Type]) -> Self {
        Self { text, types }
    }
}

/// A pool of connections to one server (the primary, or a replica for
/// [`crate::PgStore`]'s reads); cheap to clone.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    mode: StatementMode,
    statement_timeout_ms: u64,
    /// The primary's driver config: the probe opens a second connection outside the pool.
    primary: Arc<tokio_postgres::Config>,
    /// Where the node's `LISTEN` connection goes (see [`PgPool::listen`]).
    listen: Arc<tokio_postgres::Config>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("mode", &self.mode)
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PgPool {
    /// Builds the pool without connecting (connections open on first use). Fails only on
    /// an unusable configuration.
    pub fn new(config: &PgConfig) -> Result<Self> {
        config.validate()?;
        let primary = config.primary()?;
        let manager = Manager::from_config(
            primary.clone(),
            NoTls,
            ManagerConfig {
                // `Fast` skips a round trip per checkout; a broken connection is still
                // noticed (the driver marks it closed) and replaced.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| PgError::Config(format!("pool: {e}")))?;
        Ok(Self {
            pool,
            mode: config.statements,
            statement_timeout_ms: config.statement_timeout_ms,
            primary: Arc::new(primary),
            listen: Arc::new(config.listen()?),
        })
    }

    /// [`PgPool::new`] followed by [`PgPool::probe`]: what a node does at start-up.
    pub async fn connect(config: &PgConfig) -> Result<Self> {
        let pool = Self::new(config)?;
        pool.probe().await?;
        Ok(pool)
    }

    /// The statement mode every query of this pool uses.
    pub fn mode(&self) -> StatementMode {
        self.mode
    }

    /// Starts this node's listener for other nodes' invalidations (one dedicated
    /// connection to `listen_url`, else `url`; see [`crate::Listener`]), named `node` in
    /// logs and in `pg_stat_activity` (`application_name = tidepool-listen <node>`).
    pub fn listen(&self, node: &str, sink: Arc<dyn crate::InvalidationSink>) -> crate::Listener {
        crate::Listener::spawn((*self.listen).clone(), node, sink)
    }

    /// The underlying deadpool pool, for what this API does not cover (e.g. `COPY`).
    pub fn deadpool(&self) -> &Pool {
        &self.pool
    }

    /// Takes a connection from the pool (returned when the [`Conn`] is dropped).
    pub async fn get(&self) -> Result<Conn> {
        Ok(Conn {
            client: self.pool.get().await?,
            mode: self.mode,
            statement_timeout_ms: self.statement_timeout_ms,
        })
    }

    /// Runs `sql` on a pooled connection and returns every row.
    pub async fn query(&self, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.get().await?.query(sql, params).await
    }

    /// Runs `sql` and returns its only row; an error unless exactly one row comes back.
    pub async fn query_one(&self, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        self.get().await?.query_one(sql, params).await
    }

    /// Runs `sql` and returns its row if there is one; an error on more than one.
    pub async fn query_opt(
        &self,
        sql: &Sql,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        self.get().await?.query_opt(sql, params).await
    }

    /// Runs `sql` and returns the number of rows it changed.
    pub async fn execute(&self, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.get().await?.execute(sql, params).await
    }

    /// Runs `sql` and returns its only row, or `None` when that takes longer than
    /// `within` (waiting for a connection included). A statement still running then is
    /// cancelled and its connection closed instead of returned to the pool: a connection
    /// given back mid-statement would make the next borrower wait behind it (until the
    /// statement timeout, or for ever behind a pooler where none applies).
    pub async fn query_one_within(
        &self,
        sql: &Sql,
        params: &[&(dyn ToSql + Sync)],
        within: std::time::Duration,
    ) -> Result<Option<Row>> {
        let deadline = tokio::time::Instant::now() + within;
        let Ok(conn) = tokio::time::timeout_at(deadline, self.get()).await else {
            return Ok(None);
        };
        let conn = conn?;
        match tokio::time::timeout_at(deadline, conn.query_one(sql, params)).await {
            Ok(row) => row.map(Some),
            Err(_) => {
                let cancel = conn.client.cancel_token();
                // Out of the pool: dropped, the connection closes.
                drop(deadpool_postgres::Object::take(conn.client));
                tokio::spawn(async move {
                    if let Err(e) = cancel.cancel_query(NoTls).await {
                        tracing::debug!(error = %e, "cancelling a timed-out statement");
                    }
                });
                Ok(None)
            }
        }
    }

    /// Start-up check that the statement mode works on this connection path.
    ///
    /// In `prepared` mode a statement is prepared on one pooled connection and then run
    /// in two separate transactions on it while a second client connection holds a
    /// transaction open. Directly on PostgreSQL (or through a pooler that carries
    /// prepared statements: pgbouncer >= 1.21 with `max_prepared_statements`, or session
    /// mode) the statement is still there. Behind pgbouncer < 1.21 in transaction mode it
    /// is not: the second client's transaction takes the server connection the statement
    /// was prepared on (pgbouncer hands out the most recently released one), so ours must
    /// run on another server connection where the statement does not exist. Without that
    /// second client, a lone prober gets the same server connection back every time and
    /// the check would pass (measured with pgbouncer 1.18). Either failure, or pgbouncer
    /// refusing the `options` startup parameter that carries the statement timeout in
    /// this mode, returns [`PgError::Refused`] naming the setting `statements = "unnamed"`.
    /// In `unnamed` mode one query checks that the server answers.
    pub async fn probe(&self) -> Result<()> {
        self.probe_prepared("").await
    }

    /// [`PgPool::probe`]; `between` runs on the probing connection after its first
    /// transaction. Only tests pass anything (`DEALLOCATE ALL` imitates a pooler handing
    /// the second transaction to a server connection that never saw the statement).
    async fn probe_prepared(&self, between: &str) -> Result<()> {
        let mut conn = match self.get().await {
            Ok(conn) => conn,
            Err(e) if self.mode == StatementMode::Prepared => {
                return Err(refuse_startup_parameter(e));
            }
            Err(e) => return Err(e),
        };
        if self.mode == StatementMode::Unnamed {
            conn.query_one(&PROBE, &[&41i64]).await?;
            return Ok(());
        }
        // The second client: its own connection, outside the pool (whose size may be 1).
        let (holder, connection) = self.primary.connect(NoTls).await?;
        let connection = tokio::spawn(connection);
        let result = run_prepared_probe(&mut conn, &holder, between).await;
        drop(holder);
        let _ = connection.await;
        result
    }
}

const PROBE: Sql = Sql::new("SELECT $1::int8 + 1", &[Type::INT8]);

/// A number for one prepared probe that no concurrent probe (of this process or another
/// node) is likely to use: the clock's nanoseconds, the process and a counter.
fn probe_addend() -> i64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed % 1_000_000_007) as i64 + 2
}

fn refusal(step: &str, e: &dyn std::fmt::Display) -> PgError {
    PgError::Refused(format!(
        "statements = \"prepared\" does not work on this connection: {step} failed \
         ({e}). This happens behind pgbouncer before 1.21 (or without \
         max_prepared_statements) in transaction mode. Set statements = \"unnamed\", \
         or connect directly to PostgreSQL"
    ))
}

/// A failed connect in `prepared` mode: pgbouncer (without `ignore_startup_parameters =
/// options`) rejects the `options` startup parameter that carries the statement timeout
/// in this mode; say which setting fixes it. Other errors pass unchanged.
fn refuse_startup_parameter(e: PgError) -> PgError {
    const MARK: &str = "unsupported startup parameter";
    // The driver's messages nest ("pool: ...: db error"); the server's own text is the
    // innermost source.
    let mut innermost = e.to_string();
    let mut found = innermost.contains(MARK);
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        innermost = s.to_string();
        found |= innermost.contains(MARK);
        source = s.source();
    }
    if found {
        refusal(
            "connecting with the startup parameter `options`",
            &innermost,
        )
    } else {
        e
    }
}

/// The `prepared` probe: `statement` is prepared on `conn`, then run in two transactions
/// of `conn` while `holder` keeps a transaction open; `between` runs after the first one.
async fn run_prepared_probe(
    conn: &mut Conn,
    holder: &tokio_postgres::Client,
    between: &str,
) -> Result<()> {
    // Uncached, so the check really prepares (a pooled connection may have the cached
    // statement from an earlier probe); dropped (closed on the server) at the end.
    //
    // The statement is this probe's own: its text adds a number no other probe uses. The
    // driver names statements by a per-client counter, so another client (another node
    // probing at the same moment) may have prepared one under the same name on the server
    // connection a pooler hands this probe next; with the same text it would answer
    // correctly and the probe would pass behind the very pooler it must refuse.
    let addend = probe_addend();
    let text = format!("SELECT $1::int8 + {addend}");
    let statement = conn
        .client
        .prepare_typed(&text, PROBE.types)
        .await
        .map_err(|e| refusal("preparing the probe statement", &e))?;
    // Behind a transaction-mode pooler this takes the server connection just released
    // by the prepare above, and keeps it until the runs are done.
    holder
        .batch_execute("BEGIN; SELECT 1")
        .await
        .map_err(|e| refusal("holding a second transaction open beside the probe", &e))?;
    // Every step of the probe's own connection that fails says prepared statements do not
    // work on it: behind a pooler the failure can also surface as a protocol error
    // ("unexpected message from server") at the transaction's start or end, not only at
    // the statement.
    for run in ["first", "second"] {
        let step = format!("the {run} run of a prepared statement in its own transaction");
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(|e| refusal(&step, &e))?;
        let row = tx
            .query_one(&statement, &[&41i64])
            .await
            .map_err(|e| refusal(&step, &e))?;
        let got: i64 = row.try_get(0).map_err(|e| refusal(&step, &e))?;
        if got != 41 + addend {
            return Err(refusal(
                &step,
                &format!(
                    "it returned {got}, not {}: another client's statement ran",
                    41 + addend
                ),
            ));
        }
        tx.commit().await.map_err(|e| refusal(&step, &e))?;
        if !between.is_empty() {
            conn.client
                .batch_execute(between)
                .await
                .map_err(|e| refusal(&step, &e))?;
        }
    }
    holder.batch_execute("COMMIT").await?;
    Ok(())
}

#[cfg(test)]
pub(crate) async fn probe_prepared_with(pool: &PgPool, between: &str) -> Result<()> {
    pool.probe_prepared(between).await
}

/// A connection taken from a [`PgPool`].
pub struct Conn {
    client: deadpool_postgres::Object,
    mode: StatementMode,
    statement_timeout_ms: u64,
}

impl Conn {
    /// Runs `sql` and returns every row.
    pub async fn query(&self, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        rows(Target::Client(&self.client), self.mode, sql, params).await
    }

    /// Runs `sql` and returns its only row; an error unless exactly one row comes back.
    pub async fn query_one(&self, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        one(self.query(sql, params).await?)
    }

    /// Runs `sql` and returns its row if there is one; an error on more than one.
    pub async fn query_opt(
        &self,
        sql: &Sql,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        opt(self.query(sql, params).await?)
    }

    /// Runs `sql` and returns the number of rows it changed.
    pub async fn execute(&self, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        execute(Target::Client(&self.client), self.mode, sql, params).await
    }

    /// Runs parameterless statements (`;`-separated) over the simple protocol: DDL.
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql).await?)
    }

    /// Begins a transaction (READ COMMITTED). In `unnamed` mode it also sets
    /// `SET LOCAL statement_timeout`, since that mode sends no startup options (see
    /// [`PgConfig::statement_timeout_ms`]).
    pub async fn transaction(&mut self) -> Result<Tx<'_>> {
        // READ COMMITTED said out loud: every write is written for it (relative updates,
        // row locks in a fixed order), and a server whose default is stricter would fail
        // them with serialization errors instead.
        let tx = self
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
            .start()
            .await?;
        if self.mode == StatementMode::Unnamed && self.statement_timeout_ms > 0 {
            tx.batch_execute(&format!(
                "SET LOCAL statement_timeout = {}",
                self.statement_timeout_ms
            ))
            .await?;
        }
        Ok(Tx {
            tx,
            mode: self.mode,
        })
    }

    /// The driver's client, for what this API does not cover.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

/// An open transaction on a [`Conn`]; rolled back if dropped without [`Tx::commit`].
pub struct Tx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    mode: StatementMode,
}

impl Tx<'_> {
    /// Runs `sql` and returns every row.
    pub async fn query(&self, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        rows(Target::Tx(&self.tx), self.mode, sql, params).await
    }

    /// Runs `sql` and returns its only row; an error unless exactly one row comes back.
    pub async fn query_one(&self, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        one(self.query(sql, params).await?)
    }

    /// Runs `sql` and returns its row if there is one; an error on more than one.
    pub async fn query_opt(
        &self,
        sql: &Sql,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        opt(self.query(sql, params).await?)
    }

    /// Runs `sql` and returns the number of rows it changed.
    pub async fn execute(&self, sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        execute(Target::Tx(&self.tx), self.mode, sql, params).await
    }

    /// Runs parameterless statements (`;`-separated) over the simple protocol: DDL.
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        Ok(self.tx.batch_execute(sql).await?)
    }

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }

    /// Rolls back (dropping the `Tx` does too, without waiting).
    pub async fn rollback(self) -> Result<()> {
        Ok(self.tx.rollback().await?)
    }
}

impl<'a> Tx<'a> {
    /// The driver's transaction, for what this API does not cover (`COPY`).
    pub(crate) fn driver(&self) -> &tokio_postgres::Transaction<'a> {
        &self.tx
    }
}

/// Where a statement runs: a plain connection or an open transaction on one.
enum Target<'a> {
    Client(&'a ClientWrapper),
    Tx(&'a deadpool_postgres::Transaction<'a>),
}

impl<'a> Target<'a> {
    /// The driver client. Inside a transaction its queries run in that transaction
    /// (`tokio_postgres::Transaction::query` does exactly this).
    fn raw(&self) -> &'a tokio_postgres::Client {
        match self {
            Target::Client(c) => c,
            Target::Tx(t) => t.client(),
        }
    }

    /// The per-connection cached prepared statement for `sql`.
    async fn prepared(&self, sql: &Sql) -> Result<Statement> {
        Ok(match self {
            Target::Client(c) => c.prepare_typed_cached(sql.text, sql.types).await?,
            Target::Tx(t) => t.prepare_typed_cached(sql.text, sql.types).await?,
        })
    }
}

/// Pairs each value with its declared type for `query_typed`; a count mismatch is a bug
/// in the caller's `Sql` constant and is reported before anything is sent.
fn typed<'p>(
    sql: &Sql,
    params: &'p [&'p (dyn ToSql + Sync)],
) -> Result<Vec<(&'p (dyn ToSql + Sync), Type)>> {
    check_arity(sql, params)?;
    Ok(params
        .iter()
        .copied()
        .zip(sql.types.iter().cloned())
        .collect())
}

fn check_arity(sql: &Sql, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
    if sql.types.len() != params.len() {
        return Err(PgError::Config(format!(
            "statement declares {} parameter types but got {} values: {}",
            sql.types.len(),
            params.len(),
            sql.text
        )));
    }
    Ok(())
}

async fn rows(
    target: Target<'_>,
    mode: StatementMode,
    sql: &Sql,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    match mode {
        StatementMode::Prepared => {
            check_arity(sql, params)?;
            let statement = target.prepared(sql).await?;
            Ok(target.raw().query(&statement, params).await?)
        }
        StatementMode::Unnamed => Ok(target
            .raw()
            .query_typed(sql.text, &typed(sql, params)?)
            .await?),
    }
}

async fn execute(
    target: Target<'_>,
    mode: StatementMode,
    sql: &Sql,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    match mode {
        StatementMode::Prepared => {
            check_arity(sql, params)?;
            let statement = target.prepared(sql).await?;
            Ok(target.raw().execute(&statement, params).await?)
        }
        StatementMode::Unnamed => Ok(target
            .raw()
            .execute_typed(sql.text, &typed(sql, params)?)
            .await?),
    }
}

fn one(mut rows: Vec<Row>) -> Result<Row> {
    match (rows.pop(), rows.is_empty()) {
        (Some(row), true) => Ok(row),
        (None, _) => Err(PgError::RowCount(0)),
        (Some(_), false) => Err(PgError::RowCount(rows.len() + 1)),
    }
}

fn opt(mut rows: Vec<Row>) -> Result<Option<Row>> {
    match rows.len() {
        0 | 1 => Ok(rows.pop()),
        n => Err(PgError::RowCount(n)),
    }
}
