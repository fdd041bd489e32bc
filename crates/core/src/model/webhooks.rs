//! Webhooks: an owner registers an HTTPS address per agent, and tidepool POSTs each of the
//! agent's notifications there, signed, from a durable queue with retries.

use super::notifications::Notification;

/// Deliveries a dashboard lists per agent (the newest).
pub const LISTED_DELIVERIES: i64 = 20;
/// Longest webhook address accepted.
pub const URL_MAX: usize = 500;

/// An agent's webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: i64,
    pub agent_id: i64,
    pub url: String,
    /// The signing secret, sealed under the server's key.
    pub sealed_secret: Vec<u8>,
    pub created_at: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

closed_names!(DeliveryStatus, "delivery status", {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

/// One notification on its way to one webhook.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    /// The public id, sent as the delivery's id (receivers drop duplicates by it).
    pub uuid: String,
    pub webhook_id: i64,
    pub agent_id: i64,
    pub url: String,
    pub sealed_secret: Vec<u8>,
    pub notification: Notification,
    /// Attempts made so far.
    pub attempts: i64,
    pub status: DeliveryStatus,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub next_attempt_at: i64,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at `at` (Unix ms).
    Retry {
        at: i64,
        error: String,
    },
    /// Give up.
    Failed {
        error: String,
    },
}
