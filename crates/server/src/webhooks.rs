//! Webhook deliveries: a loop that takes due deliveries from the durable queue and POSTs
//! each, signed, with a client that cannot be pointed into the operator's network.
//!
//! The client resolves names itself and refuses a name if any address it resolves to is
//! not allowed (`tidepool_app::ops::webhooks::ip_allowed`): the check happens at connect
//! time, on the addresses actually connected to, so a name that answered with a public
//! address when registered and a private one now (DNS rebinding) is still refused. IP
//! literals never reach a resolver; they are checked before sending. Redirects are not
//! followed and no proxy is used.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tidepool_app::WebhookConfig;
use tidepool_app::ops::webhooks as svc;
use tidepool_core::model::webhooks::Delivery;
use tidepool_core::time::{iso, now_ms};

use crate::state::AppState;

/// Deliveries taken per turn of the loop.
const BATCH: i64 = 20;

struct GuardedResolver {
    config: WebhookConfig,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let config = self.config.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            if addrs.iter().any(|a| !svc::ip_allowed(a.ip(), &config)) {
                // Which address stays out of the message: owners read it on their
                // dashboard, and it would map the operator's internal names for them.
                return Err(
                    "the address resolves to a non-public network, which webhooks may not reach"
                        .into(),
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The delivery client.
pub fn client(config: &WebhookConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver {
            config: config.clone(),
        }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_millis(config.timeout_ms.max(1)))
        .user_agent(concat!("tidepool-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The body of a delivery: the notification as `/notifications` shows it.
fn body(d: &Delivery) -> Vec<u8> {
    json!({
        "id": d.uuid,
        "type": "notification",
        "created_at": iso(d.created_at),
        "attempt": d.attempts + 1,
        "notification": crate::api::home::notification(&d.notification),
    })
    .to_string()
    .into_bytes()
}

/// One attempt: the receiver's status, or why there was none.
async fn attempt(state: &AppState, client: &reqwest::Client, d: &Delivery) -> Result<u16, String> {
    // The address was checked when registered, but the rules may have changed since.
    svc::check_url(&d.url, &state.config.webhooks).map_err(|e| e.message)?;
    let body = body(d);
    let timestamp = now_ms() / 1000;
    let signature = svc::signature(state, d, &body, timestamp).map_err(|e| e.message)?;
    let response = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-tidepool-event", "notification")
        .header("x-tidepool-delivery", &d.uuid)
        .header("x-tidepool-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            // The chain holds the resolver's refusal; the top level says only "error
            // sending request". The URL stays out (its path may be a secret).
            let e = e.without_url();
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            msg
        })?;
    Ok(response.status().as_u16())
}

/// Delivers due deliveries until the returned task is aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match client(&state.config.webhooks) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhooks: no HTTP client; deliveries wait");
                return;
            }
        };
        let mut timer =
            tokio::time::interval(Duration::from_millis(state.config.webhooks.poll_ms.max(10)));
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            let due = match svc::due(&state, BATCH).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e.message, "webhooks: cannot read the queue");
                    continue;
                }
            };
            // The batch's attempts run side by side: one slow receiver holds up its own
            // deliveries, not everyone's (each lease covers one timeout).
            let mut attempts = tokio::task::JoinSet::new();
            for d in due {
                let (state, client) = (state.clone(), client.clone());
                attempts.spawn(async move {
                    let result = attempt(&state, &client, &d).await;
                    if let Err(e) = &result {
                        tracing::info!(delivery = %d.uuid, error = %e, "webhook delivery failed");
                    }
                    if let Err(e) = svc::record(&state, &d, result).await {
                        tracing::warn!(error = %e.message, "webhooks: cannot record an attempt");
                    }
                });
            }
            while attempts.join_next().await.is_some() {}
        }
    })
}
