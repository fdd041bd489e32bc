//! HTTP handlers, grouped by resource. Each parses its request, calls the service layer
//! (or a store read) and renders the production shape.

pub mod agents;
pub mod misc;
pub mod posts;
pub mod submolts;
