//! State shared by every request.

use std::sync::Arc;

use tidepool_core::credentials::CredentialHasher;
use tidepool_store::{Connection, Store};

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::ratelimit::{Decision, Limit, Limiter};
use crate::skill::SkillFiles;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub hasher: CredentialHasher,
    pub config: Config,
    pub limiter: Arc<dyn Limiter>,
    pub skills: SkillFiles,
    /// Content safety for every text agents submit.
    pub guard: tidepool_guard::Guard,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: String,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Runs a read on the pool without blocking the async runtime.
    pub async fn read<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> tidepool_store::Result<T> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }

    /// Runs a write job on the writer thread.
    pub async fn write<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> tidepool_store::Result<T> + Send + 'static,
    {
        self.store.write(f).await.map_err(ApiError::from)
    }

    /// Counts a hit against `limit` for `key`. The returned guard gives the hit back if
    /// dropped before [`LimitGuard::keep`], so a request that fails costs the agent nothing.
    pub fn take(&self, key: String, limit: Limit) -> Result<LimitGuard, Decision> {
        if !self.config.rate_limits_enabled {
            return Ok(LimitGuard {
                state: None,
                key,
                remaining: limit.max,
            });
        }
        let d = self.limiter.hit(&key, limit, tidepool_core::time::now_ms());
        if d.allowed {
            Ok(LimitGuard {
                state: Some(self.clone()),
                key,
                remaining: d.remaining,
            })
        } else {
            Err(d)
        }
    }
}

/// A counted hit that is refunded unless kept.
pub struct LimitGuard {
    state: Option<AppState>,
    key: String,
    /// Hits left in the window after this one.
    pub remaining: u32,
}

impl LimitGuard {
    pub fn keep(mut self) {
        self.state = None;
    }
}

impl Drop for LimitGuard {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            state.limiter.refund(&self.key);
        }
    }
}
