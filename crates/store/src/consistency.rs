//! Who a store call is made for, so that a backend reading from replicas can show every
//! caller its own writes ("read your writes").
//!
//! The server runs each request inside [`scope`]. Once the request knows who is acting,
//! the application names them with [`identify`] (an agent after its key was checked, an
//! owner after their session was found). A backend with read replicas then reads the
//! scope with [`current`]: after a write it records where the caller's write is
//! ([`Scope::raise_floor`], and in its own shared table so other nodes know too), and a
//! later read of the same caller only uses a replica that has caught up with that point.
//!
//! Outside a scope (the CLI, background jobs) calls are anonymous, and nothing here changes
//! what a backend without replicas (the embedded SQLite store) does: it never looks.

use std::future::Future;
use std::sync::Mutex;

tokio::task_local! {
    static SCOPE: Scope;
}

/// Who is reading: the subject whose writes must stay visible to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reader {
    /// An agent, by id.
    Agent(i64),
    /// An owner (a human signed in on the web pages), by id.
    Owner(i64),
}

impl Reader {
    /// A stable text key for the reader (`agent:42`, `owner:7`), as backends store it.
    pub fn key(self) -> String {
        match self {
            Reader::Agent(id) => format!("agent:{id}"),
            Reader::Owner(id) => format!("owner:{id}"),
        }
    }
}

/// The state of one request: who it acts for, and the position (backend-defined, e.g. a
/// PostgreSQL WAL LSN) its reads must have caught up with, once a backend has looked it up.
#[derive(Debug, Default)]
pub struct Scope {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    reader: Option<Reader>,
    /// `None`: not looked up yet in this scope; `Some(None)`: nothing to wait for.
    floor: Option<Option<u64>>,
    /// Every read of the rest of the request goes to the primary ([`read_primary`]).
    primary_only: bool,
}

impl Scope {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.inner.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// The reader named by [`identify`], if any.
    pub fn reader(&self) -> Option<Reader> {
        self.state().reader
    }

    /// The floor a backend found for this reader earlier in the scope (`None`: not looked
    /// up yet; `Some(None)`: the reader has no recent write).
    pub fn floor(&self) -> Option<Option<u64>> {
        self.state().floor
    }

    /// Remembers the floor a backend looked up (a lower one never replaces a higher one).
    pub fn set_floor(&self, floor: Option<u64>) {
        let mut s = self.state();
        s.floor = Some(s.floor.flatten().max(floor));
    }

    /// [`read_primary`] was called in this scope: no read may use a replica.
    pub fn primary_only(&self) -> bool {
        self.state().primary_only
    }

    /// Raises the floor to `position` after the reader's own write.
    pub fn raise_floor(&self, position: u64) {
        self.set_floor(Some(position));
    }
}

/// Runs `f` as one request: [`identify`] and the backends' bookkeeping inside it apply to
/// this request only.
pub async fn scope<F: Future>(f: F) -> F::Output {
    SCOPE.scope(Scope::default(), f).await
}

/// Names who the current request acts for. Outside [`scope`] it does nothing. Naming
/// another reader than before forgets what a backend looked up for the first.
pub fn identify(reader: Reader) {
    let _ = SCOPE.try_with(|s| {
        let mut state = s.state();
        if state.reader != Some(reader) {
            state.reader = Some(reader);
            state.floor = None;
        }
    });
}

/// Sends every further read of the current request to the primary: for a write whose
/// checks read first (is the post deleted? does the comment exist?), which must not act
/// on a replica's older view. Outside [`scope`] it does nothing.
pub fn read_primary() {
    let _ = SCOPE.try_with(|s| s.state().primary_only = true);
}

/// Runs `f` on the current request's scope; `None` outside [`scope`].
pub fn current<R>(f: impl FnOnce(&Scope) -> R) -> Option<R> {
    SCOPE.try_with(f).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn identify_applies_inside_a_scope_only() {
        identify(Reader::Agent(1));
        assert_eq!(current(|s| s.reader()), None);
        scope(async {
            assert_eq!(current(|s| s.reader()), Some(None));
            identify(Reader::Agent(7));
            assert_eq!(current(|s| s.reader()), Some(Some(Reader::Agent(7))));
            current(|s| s.raise_floor(10));
            current(|s| s.set_floor(Some(5)));
            assert_eq!(current(|s| s.floor()), Some(Some(Some(10))));
            identify(Reader::Agent(7));
            assert_eq!(current(|s| s.floor()), Some(Some(Some(10))));
            identify(Reader::Owner(7));
            assert_eq!(current(|s| s.floor()), Some(None));
            assert_eq!(current(Scope::primary_only), Some(false));
            read_primary();
            assert_eq!(current(Scope::primary_only), Some(true));
        })
        .await;
        assert_eq!(Reader::Agent(42).key(), "agent:42");
        assert_eq!(Reader::Owner(3).key(), "owner:3");
    }
}
