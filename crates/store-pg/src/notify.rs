//! Cache invalidation across nodes with PostgreSQL's `LISTEN`/`NOTIFY`.
//!
//! Every node keeps caches of what the database says: key lookups (a few seconds) and
//! rendered public listings (a moment). A write that must reach the other nodes' caches
//! (a key rotated or revoked, an agent claimed, suspended or deleted, content removed or
//! moderated) queues an [`Invalidation`] on the channel [`CHANNEL`] inside its own
//! transaction ([`notify`]): PostgreSQL delivers it when, and only if, the transaction
//! commits. `NOTIFY` works through a transaction-mode pooler; `LISTEN` does not.
//!
//! Each node runs one [`Listener`]: a dedicated connection (`listen_url`, else `url`)
//! that `LISTEN`s and hands every invalidation to an [`InvalidationSink`]. It also
//! proves, every [`PING_EVERY`], that it still hears: it notifies a channel only it
//! listens on and waits for the echo. PostgreSQL queues notifications in commit order and
//! a listener reads them in that order, so once the echo of a ping sent at `t` arrives,
//! every invalidation committed before `t` has been handed over
//! ([`InvalidationSink::caught_up`]). A cache may keep entries longer than its fallback
//! lifetime only while that proof is fresh; a dead, hung or never-established listener
//! stops the proofs and the caches fall back on their own. After every (re)connect the
//! listener first drops every cache (notifications sent meanwhile were lost), then starts
//! proving again. Connections that fail are retried with backoff (100 ms doubling to
//! 5 s); state changes are logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, NoTls, Notification, SimpleQueryMessage};

use crate::{Sql, Tx};

/// The channel every invalidation travels on.
pub const CHANNEL: &str = "tidepool_invalidate";

/// How often a listener checks that it still hears notifications.
pub const PING_EVERY: Duration = Duration::from_millis(100);

/// A listener that has heard no echo of its own pings for this long is replaced.
const DEAD_AFTER: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What another node's caches must forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Every cached key lookup.
    AllKeys,
    /// The cached key lookups of one agent (by internal id): its keys, its standing or its
    /// owner changed.
    KeysOf(i64),
    /// Every cached page of public listings: content was removed or moderated.
    Pages,
}

impl Invalidation {
    /// The notification payload: `keys`, `keys:<agent id>` or `pages`.
    pub fn payload(self) -> String {
        match self {
            Self::AllKeys => "keys".to_owned(),
            Self::KeysOf(id) => format!("keys:{id}"),
            Self::Pages => "pages".to_owned(),
        }
    }

    /// The invalidation a payload names, if it names one.
    pub fn parse(payload: &str) -> Option<Self> {
        match payload {
            "keys" => Some(Self::AllKeys),
            "pages" => Some(Self::Pages),
            _ => payload
                .strip_prefix("keys:")
                .and_then(|id| id.parse().ok())
                .map(Self::KeysOf),
        }
    }
}

const NOTIFY: Sql = Sql::new("SELECT pg_notify($1, $2)", &[Type::TEXT, Type::TEXT]);

/// Queues `what` for every listening node; PostgreSQL delivers it when `tx` commits and
/// drops it if `tx` rolls back. Identical notifications of one transaction arrive once.
pub(crate) async fn notify(tx: &Tx<'_>, what: Invalidation) -> crate::Result<()> {
    tx.execute(&NOTIFY, &[&CHANNEL, &what.payload()]).await?;
    Ok(())
}

/// Where a [`Listener`] delivers what it hears.
pub trait InvalidationSink: Send + Sync + 'static {
    /// Forget what `what` names. Also called with [`Invalidation::AllKeys`] and
    /// [`Invalidation::Pages`] each time the listener (re)connects.
    fn invalidate(&self, what: Invalidation);

    /// Every invalidation committed before `through` has been passed to
    /// [`InvalidationSink::invalidate`]. Called about every [`PING_EVERY`] while the
    /// listener is healthy, never otherwise.
    fn caught_up(&self, through: Instant);
}

/// What a [`Listener`] is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerStatus {
    /// Listening now.
    pub listening: bool,
    /// PostgreSQL's process id of the current `LISTEN` connection.
    pub backend_pid: Option<i32>,
    /// How many times it has started listening (1 after the first connect).
    pub sessions: u64,
    /// Why the last session ended, or the last attempt failed.
    pub last_error: Option<String>,
}

/// A node's listener for other nodes' invalidations: a background task holding one
/// dedicated connection, reconnecting with backoff. Stopped when dropped.
pub struct Listener {
    task: tokio::task::JoinHandle<()>,
    status: Arc<Mutex<ListenerStatus>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Starts listening on `config` (its `application_name` becomes `tidepool-listen
    /// <node>`, so operators and tests find the connection in `pg_stat_activity`).
    pub(crate) fn spawn(
        mut config: tokio_postgres::Config,
        node: &str,
        sink: Arc<dyn InvalidationSink>,
    ) -> Self {
        config.application_name(format!("tidepool-listen {node}"));
        let status = Arc::new(Mutex::new(ListenerStatus::default()));
        let task = tokio::spawn(run(config, node.to_owned(), sink, status.clone()));
        Self { task, status }
    }

    /// What the listener is doing now.
    pub fn status(&self) -> ListenerStatus {
        lock(&self.status).clone()
    }

    /// A handle that reads [`Listener::status`] and outlives nothing: once the listener
    /// is dropped it reports the last status it had.
    pub fn watch(&self) -> ListenerWatch {
        ListenerWatch(self.status.clone())
    }
}

/// Reads a [`Listener`]'s status from elsewhere (see [`Listener::watch`]).
#[derive(Clone)]
pub struct ListenerWatch(Arc<Mutex<ListenerStatus>>);

impl ListenerWatch {
    /// What the listener is doing now.
    pub fn status(&self) -> ListenerStatus {
        lock(&self.0).clone()
    }
}

impl std::fmt::Debug for ListenerWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.status().fmt(f)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(status: &Mutex<ListenerStatus>) -> std::sync::MutexGuard<'_, ListenerStatus> {
    match status.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    }
}

async fn run(
    config: tokio_postgres::Config,
    node: String,
    sink: Arc<dyn InvalidationSink>,
    status: Arc<Mutex<ListenerStatus>>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u32;
    loop {
        let mut listened = false;
        let Err(error) = session(&config, &node, &*sink, &status, &mut listened).await;
        {
            let mut s = lock(&status);
            s.listening = false;
            s.backend_pid = None;
            s.last_error = Some(error.clone());
        }
        if listened {
            // A working connection lost: one warning, then quick retries.
            tracing::warn!(
                node = %node, %error,
                "stopped listening for other nodes' invalidations; caches use their short \
                 lifetimes until it is back"
            );
            backoff = BACKOFF_MIN;
            failures = 0;
        } else {
            failures += 1;
            // The first failed attempt of an outage, then about once a minute.
            if failures == 1 || failures.is_multiple_of(12) {
                tracing::warn!(
                    node = %node, %error, attempts = failures,
                    "cannot listen for other nodes' invalidations; caches use their short \
                     lifetimes until it can (retrying)"
                );
            } else {
                tracing::debug!(node = %node, %error, attempts = failures, "listener: retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Notifications and the connection's end, from the task that drives the connection.
type Incoming = Result<Notification, tokio_postgres::Error>;

/// One connection's life: returns why it ended. `listened` is set once `LISTEN` is in
/// place and checked.
async fn session(
    config: &tokio_postgres::Config,
    node: &str,
    sink: &dyn InvalidationSink,
    status: &Mutex<ListenerStatus>,
    listened: &mut bool,
) -> Result<std::convert::Infallible, String> {
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Incoming>();
    // Drives the connection until the session ends (dropped with it).
    let _driver = AbortOnDrop(tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(Ok(n)).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                None => return,
            }
        }
    }));
    let pid: i32 = first_value(&client, "SELECT pg_backend_pid()")
        .await?
        .parse()
        .map_err(|e| format!("pg_backend_pid: {e}"))?;
    // A channel only this connection listens on, for the pings.
    let ping = format!("tidepool_ping_{pid}");
    client
        .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {ping}"))
        .await
        .map_err(|e| format!("LISTEN: {e}"))?;
    if let Err(e) = check_own_session(config, &client, &ping, pid).await {
        // Through a pooler the LISTEN stays on a pooled server connection: take it back.
        let _ = client.batch_execute("UNLISTEN *").await;
        return Err(e);
    }
    // Whatever was committed while this node was not listening went unheard.
    sink.invalidate(Invalidation::AllKeys);
    sink.invalidate(Invalidation::Pages);
    {
        let mut s = lock(status);
        s.listening = true;
        s.backend_pid = Some(pid);
        s.sessions += 1;
    }
    *listened = true;
    tracing::info!(node = %node, backend_pid = pid, "listening for other nodes' invalidations");

    let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut seq = 0u64;
    let mut last_echo = Instant::now();
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            incoming = rx.recv() => {
                let n = match incoming {
                    Some(Ok(n)) => n,
                    Some(Err(e)) => return Err(format!("connection: {e}")),
                    None => return Err("connection closed".into()),
                };
                if n.channel() == CHANNEL {
                    match Invalidation::parse(n.payload()) {
                        Some(what) => sink.invalidate(what),
                        // From a newer node, perhaps: forgetting everything is always safe.
                        None => {
                            tracing::debug!(payload = n.payload(), "unknown invalidation: dropping every cache");
                            sink.invalidate(Invalidation::AllKeys);
                            sink.invalidate(Invalidation::Pages);
                        }
                    }
                } else if n.channel() == ping {
                    let Ok(echo) = n.payload().parse::<u64>() else { continue };
                    while let Some(&(s, at)) = sent.front() {
                        if s > echo {
                            break;
                        }
                        sent.pop_front();
                        if s == echo {
                            sink.caught_up(at);
                            last_echo = Instant::now();
                        }
                    }
                }
            }
            _ = tick.tick() => {
                if last_echo.elapsed() > DEAD_AFTER {
                    return Err(format!("no echo of its own notifications for {DEAD_AFTER:?}"));
                }
                seq += 1;
                // Taken before the NOTIFY commits: whatever committed earlier is ahead of it
                // in the queue.
                sent.push_back((seq, Instant::now()));
                if sent.len() > 64 {
                    sent.pop_front();
                }
                match tokio::time::timeout(
                    DEAD_AFTER,
                    client.batch_execute(&format!("NOTIFY {ping}, '{seq}'")),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(format!("ping: {e}")),
                    Err(_) => return Err(format!("ping: no answer within {DEAD_AFTER:?}")),
                }
            }
        }
    }
}

/// Refuses a connection whose session state does not stay its own, as behind a
/// transaction-mode pooler: there `LISTEN` lands on a pooled server connection that other
/// clients then use, and this node would hear nothing (or hear pings while missing
/// invalidations). `pid` is the server process this connection talked to. In each of
/// [`CHECK_ROUNDS`] rounds a second connection holds a transaction open, which behind
/// such a pooler pins a server connection, usually the one this connection just used;
/// the check passes only if, every time, the holder got another server process and this
/// connection still reaches `pid` and still listens on `ping`. A direct connection always
/// passes; a pooled one would have to be handed back the same server process every round
/// while another client held a different one.
async fn check_own_session(
    config: &tokio_postgres::Config,
    client: &tokio_postgres::Client,
    ping: &str,
    pid: i32,
) -> Result<(), String> {
    for _ in 0..CHECK_ROUNDS {
        check_round(config, client, ping, pid).await?;
    }
    Ok(())
}

/// How many times [`check_own_session`] looks.
const CHECK_ROUNDS: usize = 3;

async fn check_round(
    config: &tokio_postgres::Config,
    client: &tokio_postgres::Client,
    ping: &str,
    pid: i32,
) -> Result<(), String> {
    let wait = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::from_secs(5));
    let mut second = config.clone();
    second.application_name("tidepool-listen-check");
    let (holder, connection) = second
        .connect(NoTls)
        .await
        .map_err(|e| format!("connecting a second time to check LISTEN: {e}"))?;
    let connection = tokio::spawn(connection);
    let pooled = || {
        "LISTEN does not stay on this connection: it leads through a transaction-mode \
         pooler (pgbouncer). Set [database] listen_url to PostgreSQL itself"
            .to_owned()
    };
    let result = async {
        let held: i32 =
            tokio::time::timeout(wait, first_value(&holder, "BEGIN; SELECT pg_backend_pid()"))
                .await
                .map_err(|_| "checking LISTEN: no answer".to_owned())??
                .parse()
                .map_err(|e| format!("checking LISTEN: pg_backend_pid: {e}"))?;
        if held == pid {
            return Err(pooled());
        }
        let sql = format!(
            "SELECT pg_backend_pid(), count(*) FROM pg_listening_channels() c \
             WHERE c = '{ping}'"
        );
        let rows = tokio::time::timeout(wait, client.simple_query(&sql))
            .await
            .map_err(|_| "checking LISTEN: no answer".to_owned())?
            .map_err(|e| format!("checking LISTEN: {e}"))?;
        let own = rows.iter().any(|m| match m {
            SimpleQueryMessage::Row(r) => {
                r.get(0) == Some(pid.to_string().as_str()) && r.get(1) == Some("1")
            }
            _ => false,
        });
        if own { Ok(()) } else { Err(pooled()) }
    }
    .await;
    // Closed before going on, so it is gone from `pg_stat_activity` too.
    drop(holder);
    let mut connection = connection;
    if tokio::time::timeout(wait, &mut connection).await.is_err() {
        tracing::debug!("listener: the checking connection did not close in time");
        connection.abort();
    }
    result
}

/// The first column of the first row of a simple-protocol query (which works on any
/// connection path, pooled or not).
async fn first_value(client: &tokio_postgres::Client, sql: &str) -> Result<String, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .ok_or_else(|| format!("{sql}: no row"))
}

/// A spawned task that is aborted when this is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for what in [
            Invalidation::AllKeys,
            Invalidation::KeysOf(42),
            Invalidation::Pages,
        ] {
            assert_eq!(Invalidation::parse(&what.payload()), Some(what));
        }
        assert_eq!(Invalidation::parse("keys:x"), None);
        assert_eq!(Invalidation::parse("posts"), None);
    }
}
