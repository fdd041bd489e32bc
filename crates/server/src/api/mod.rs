//! HTTP handlers, grouped by resource. Each parses its request, calls an operation of the
//! app (`tidepool_app::ops`, reads included) and renders the production shape.

pub mod agents;
pub mod dms;
pub mod home;
pub mod misc;
pub mod posts;
pub mod submolts;
