//! Webhooks (instead of polling): an owner registers an address per agent; each of the
//! agent's notifications is queued for it in the transaction that stores the
//! notification, and the server's delivery loop POSTs it, signed, with retries.
//!
//! A webhook must never be a way into the operator's network: addresses must be `https`
//! (unless the operator allows `http` for development), and the host may not be, or
//! resolve to, a loopback, private, link-local, shared, multicast or reserved address
//! unless the operator allows that range. IP literals are checked here; names are
//! checked again at connect time by the delivery client, against what DNS answers then.

use std::net::IpAddr;

use tidepool_core::credentials::{hmac_sha256_hex, new_session_token};
use tidepool_core::model::agents::Agent;
use tidepool_core::model::webhooks::{
    Delivery, DeliveryOutcome, LISTED_DELIVERIES, URL_MAX, Webhook,
};
use tidepool_core::time::now_ms;

use crate::App;
use crate::config::WebhookConfig;
use crate::error::{AppError, AppResult};

/// What the sealed secret is for (associated data of the seal).
const PURPOSE: &str = "webhook";

/// Whether `ip` is an address anyone on the internet could reach: not loopback, private,
/// link-local (cloud metadata lives there), shared (CGNAT), multicast, documentation,
/// benchmarking or otherwise reserved. IPv4 inside IPv6 is judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 192 && o[1] == 88 && o[2] == 99)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // 6to4 carries an IPv4 address in its second and third groups: judge that.
            if s[0] == 0x2002 {
                let v4 = std::net::Ipv4Addr::new(
                    (s[1] >> 8) as u8,
                    s[1] as u8,
                    (s[2] >> 8) as u8,
                    s[2] as u8,
                );
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || s[0] == 0x2001 && s[1] == 0
                || s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0
                || s[0] == 0x2001 && s[1] == 0x0db8
                || s[0] == 0x0064 && s[1] == 0xff9b
                || s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0)
        }
    }
}

/// Whether a webhook may connect to `ip` under `config`.
pub fn ip_allowed(ip: IpAddr, config: &WebhookConfig) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    is_public(ip) || config.allow_ranges.iter().any(|n| n.contains(&ip))
}

/// Checks a webhook address: scheme, no credentials in it, a host, and an IP literal only
/// where allowed. Returns it normalised.
pub fn check_url(raw: &str, config: &WebhookConfig) -> AppResult<url::Url> {
    let raw = raw.trim();
    if raw.is_empty() || raw.chars().count() > URL_MAX {
        return Err(AppError::bad_request(format!(
            "Give the webhook's address (at most {URL_MAX} characters)"
        )));
    }
    let url = url::Url::parse(raw)
        .map_err(|_| AppError::bad_request("The webhook address is not a valid URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if config.allow_http => {}
        _ => {
            return Err(AppError::bad_request(
                "A webhook address must start with https://",
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AppError::bad_request(
            "A webhook address may not carry a user name or password",
        ));
    }
    let refused = || {
        AppError::bad_request(
            "A webhook may not point at a loopback, private, link-local or reserved address",
        )
    };
    match url.host() {
        None => return Err(AppError::bad_request("The webhook address has no host")),
        Some(url::Host::Ipv4(ip)) if !ip_allowed(IpAddr::V4(ip), config) => return Err(refused()),
        Some(url::Host::Ipv6(ip)) if !ip_allowed(IpAddr::V6(ip), config) => return Err(refused()),
        _ => {}
    }
    Ok(url)
}

/// Registers (or replaces) an owned agent's webhook; returns it and its signing secret,
/// shown to the owner this once (tidepool keeps it sealed).
pub async fn register(app: &App, agent: &Agent, raw_url: &str) -> AppResult<(Webhook, String)> {
    if agent.status == tidepool_core::model::agents::AgentStatus::Deleted {
        return Err(AppError::bad_request("This agent is deleted"));
    }
    let url = check_url(raw_url, &app.config.webhooks)?;
    let secret = format!("whsec_{}", new_session_token().map_err(AppError::internal)?);
    let sealed = app
        .sealer
        .seal_secret(PURPOSE, &agent.id.to_string(), &secret)
        .map_err(AppError::internal)?;
    let hook = app
        .store
        .set_webhook(agent.id, url.to_string(), sealed, now_ms())
        .await?;
    app.store
        .audit(
            "webhook_set",
            Some(agent.id),
            // Only the host: a webhook's path is often a bearer secret.
            serde_json::json!({"host": url.host_str().unwrap_or("")}),
        )
        .await?;
    Ok((hook, secret))
}

/// Removes an owned agent's webhook and its queue.
pub async fn remove(app: &App, agent: &Agent) -> AppResult<bool> {
    let removed = app.store.delete_webhook(agent.id).await?;
    if removed {
        app.store
            .audit("webhook_removed", Some(agent.id), serde_json::json!({}))
            .await?;
    }
    Ok(removed)
}

/// An owned agent's webhook and its newest deliveries.
pub async fn status(app: &App, agent: &Agent) -> AppResult<(Option<Webhook>, Vec<Delivery>)> {
    let hook = app.store.webhook_of(agent.id).await?;
    let deliveries = match hook {
        Some(_) => app.store.deliveries_of(agent.id, LISTED_DELIVERIES).await?,
        None => Vec::new(),
    };
    Ok((hook, deliveries))
}

/// Deliveries due now, each leased for one attempt.
pub async fn due(app: &App, limit: i64) -> AppResult<Vec<Delivery>> {
    let now = now_ms();
    let lease = now + i64::try_from(app.config.webhooks.timeout_ms).unwrap_or(i64::MAX / 4) + 5_000;
    Ok(app.store.claim_deliveries(now, lease, limit).await?)
}

/// The headers of a delivery: its id, when it was signed, and the signature
/// `v1=<hex HMAC-SHA-256 of "<timestamp>.<body>" under the secret>`.
pub fn signature(app: &App, d: &Delivery, body: &[u8], timestamp: i64) -> AppResult<String> {
    let secret = open_secret(app, d)?;
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    Ok(format!(
        "t={timestamp},v1={}",
        hmac_sha256_hex(secret.as_bytes(), &message)
    ))
}

fn open_secret(app: &App, d: &Delivery) -> AppResult<String> {
    app.sealer
        .open_secret(PURPOSE, &d.agent_id.to_string(), &d.sealed_secret)
        .map_err(AppError::internal)
}

/// Records an attempt: 2xx delivered; otherwise retried with growing waits until the
/// attempts run out.
pub async fn record(app: &App, d: &Delivery, result: Result<u16, String>) -> AppResult<()> {
    let cfg = &app.config.webhooks;
    let now = now_ms();
    let attempt = d.attempts + 1;
    let outcome = match result {
        Ok(status) if (200..300).contains(&status) => DeliveryOutcome::Delivered,
        other => {
            let error = match other {
                Ok(status) => format!("the receiver answered {status}"),
                Err(e) => e,
            };
            if attempt >= i64::from(cfg.max_attempts) {
                DeliveryOutcome::Failed { error }
            } else {
                let base = i64::try_from(cfg.retry_base_ms).unwrap_or(i64::MAX / 4);
                let wait = base.saturating_mul(4i64.saturating_pow((attempt - 1) as u32));
                DeliveryOutcome::Retry {
                    at: now.saturating_add(wait),
                    error,
                }
            }
        }
    };
    Ok(app
        .store
        .finish_delivery(d.id, d.next_attempt_at, outcome, now)
        .await?)
}
