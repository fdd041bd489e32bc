//! State shared by every request: the app, and what only the HTTP face needs.

use std::sync::Arc;

use tidepool_app::App;

use crate::cache::PageCache;
use crate::skill::SkillFiles;

/// The state every handler gets: cheap to clone. Dereferences to [`Inner`], which
/// dereferences to the [`App`], so `state.config` and the like read through.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What the server holds: the app, and the process's HTTP-side parts.
pub struct Inner {
    /// The one door to tidepool's operations.
    pub app: App,
    /// The database several nodes share (`None`: the embedded store).
    pub shared: Option<tidepool_store_pg::PgPool>,
    /// The skill files, rendered once at start-up.
    pub skills: SkillFiles,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: String,
    /// Public listings rendered in the last moment (the app clears it through
    /// [`tidepool_app::Hooks`] when content changes).
    pub pages: Arc<PageCache>,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The listener for other nodes' invalidations while serving on a shared database.
    pub listener: std::sync::Mutex<Option<tidepool_store_pg::ListenerWatch>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::ops::Deref for Inner {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl AppState {
    /// Shares `inner` between handlers.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// What the listener for other nodes' invalidations is doing: `None` on the embedded
    /// store, or before serving.
    pub fn listener_status(&self) -> Option<tidepool_store_pg::ListenerStatus> {
        self.listener_slot().as_ref().map(|w| w.status())
    }

    pub(crate) fn set_listener(&self, watch: Option<tidepool_store_pg::ListenerWatch>) {
        *self.listener_slot() = watch;
    }

    fn listener_slot(&self) -> std::sync::MutexGuard<'_, Option<tidepool_store_pg::ListenerWatch>> {
        match self.listener.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// What other nodes sharing the database changed (PostgreSQL's `NOTIFY`, heard by this
/// node's listener) reaches the key cache and the page cache as if it had happened here.
impl tidepool_store_pg::InvalidationSink for AppState {
    fn invalidate(&self, what: tidepool_store_pg::Invalidation) {
        use tidepool_store_pg::Invalidation;
        match what {
            Invalidation::AllKeys => self.keys.invalidate(),
            Invalidation::KeysOf(agent) => self.keys.invalidate_agent(agent),
            Invalidation::Pages => self.pages.clear(),
        }
    }

    fn caught_up(&self, through: std::time::Instant) {
        self.keys.caught_up(through);
    }
}

/// The page cache hears of content changes: a deleted or moderated post leaves every
/// cached page at once, not after the cache's moment.
impl tidepool_app::Hooks for PageCache {
    fn content_changed(&self) {
        self.clear();
    }
}
