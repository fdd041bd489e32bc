//! tidepool-guard
#![cfg_attr(test, allow(clippy::unwrap_used))]
pub mod injection;
pub mod normalize;
pub mod pii;
pub mod secrets;
