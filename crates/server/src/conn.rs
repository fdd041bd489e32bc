//! The accept loop: HTTP/1.1 connections served by hyper, with the limits a public server
//! needs and `axum::serve` does not have.
//!
//! - **Connection caps.** At most `max_total` connections at once, and at most
//!   `max_per_address` from one address (IPv6 by /64, as rate limits count them). A
//!   connection over either cap is closed as soon as it is accepted. Trusted proxies are
//!   exempt from the per-address cap (all their clients share their address) but not from
//!   the global one.
//! - **Header timeout.** A request head must arrive in full within `header_read_timeout`
//!   of its first byte (or of the connection opening), so a client trickling one header
//!   line at a time cannot hold a connection.
//! - **Idle timeout.** A keep-alive connection with no request in progress is closed after
//!   `idle_timeout`; so is one whose client stops reading its response for that long.
//! - **Body timeout.** Once a handler starts reading a request body, the whole body must
//!   arrive within `body_read_timeout`.
//!
//! hyper 1.x has a `header_read_timeout` of its own, but it is armed as soon as a
//! connection goes idle (`proto::h1::conn::State::idle` asks for the next read, which arms
//! it), so it bounds idle keep-alive time and header time together: it cannot give idle
//! connections a minute and slow headers ten seconds. The watchdog below does both.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::ratelimit::ip_subject;

pub use tidepool_app::config::ConnectionLimits;

/// The limits as the accept loop uses them (the struct itself is plain configuration data
/// in the app crate, so its helpers live here as an extension).
pub trait ConnectionLimitsExt {
    /// How long a request head may take.
    fn header_read_timeout(&self) -> Duration;
    /// How long a keep-alive connection may idle.
    fn idle_timeout(&self) -> Duration;
    /// How long a request body may take once read.
    fn body_read_timeout(&self) -> Duration;
    /// hyper's own head size limit.
    fn hyper_max_header_size(&self) -> usize;
    /// hyper's own header count limit.
    fn hyper_max_headers(&self) -> usize;
}

impl ConnectionLimitsExt for ConnectionLimits {
    fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs.max(1))
    }

    /// hyper's own head limits, set well above ours so the edge middleware sees oversized
    /// heads and answers them in the JSON envelope; only heads past these get hyper's bare
    /// 431.
    fn hyper_max_header_size(&self) -> usize {
        self.max_header_bytes.saturating_mul(4).max(64 * 1024)
    }

    fn hyper_max_headers(&self) -> usize {
        self.max_headers.saturating_mul(4).max(128)
    }
}

/// Accepts connections until `shutdown` resolves, then stops accepting, lets every
/// connection finish the request it is serving, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    trusted: Vec<IpNet>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(());
    let counts = Arc::new(Counts::default());
    let limits = Arc::new(limits);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of descriptors or memory: existing connections keep being served;
                    // accepting resumes after a pause instead of spinning on the error.
                    tracing::error!(error = %e, "accept failed; pausing");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            },
        };
        let ip = peer.ip().to_canonical();
        let exempt = trusted.iter().any(|n| n.contains(&ip));
        let slot = match counts.admit(ip, exempt, &limits) {
            Ok(slot) => slot,
            Err(refusal) => {
                // Counts only: addresses of refused clients are not logged.
                tracing::debug!(
                    open = refusal.open,
                    cap = refusal.cap,
                    per_address = refusal.per_address,
                    "connection refused at the connection limit"
                );
                drop(stream);
                continue;
            }
        };
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            limits.clone(),
            slot,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    // Every connection task holds a receiver; this returns when the last one is gone.
    stop_tx.closed().await;
    Ok(())
}

/// Accept errors that concern one connection only (it was reset before we took it).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Arc<ConnectionLimits>,
    _slot: Slot,
    mut stop: watch::Receiver<()>,
) {
    // Responses are written whole; Nagle's algorithm would only delay the last segment.
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let body_timeout = limits.body_read_timeout();
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let router = router.clone();
            let busy = activity.begin_request();
            async move {
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                let body = Body::new(TimedBody {
                    inner: body,
                    limit: body_timeout,
                    deadline: None,
                });
                let response = router
                    .oneshot(axum::http::Request::from_parts(parts, body))
                    .await?;
                Ok::<_, std::convert::Infallible>(
                    response.map(|inner| TrackedBody { inner, _busy: busy }),
                )
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true)
        // The watchdog enforces header and idle time (see the module comment).
        .header_read_timeout(None)
        .max_header_size(limits.hyper_max_header_size())
        .max_headers(limits.hyper_max_headers());
    let mut conn = std::pin::pin!(http.serve_connection(io, service));
    let mut watchdog = std::pin::pin!(watchdog(activity.clone(), limits));
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            reason = &mut watchdog => {
                tracing::debug!(reason, "connection closed");
                break;
            }
            _ = stop.changed(), if !draining => {
                draining = true;
                // Nothing in progress (not even a partial request): close now. Otherwise
                // hyper finishes the current request and closes after its response.
                if activity.quiet() {
                    break;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves when the connection has overstayed: the reason, for the debug log.
async fn watchdog(activity: Arc<Activity>, limits: Arc<ConnectionLimits>) -> &'static str {
    loop {
        let (deadline, reason) = activity.deadline(&limits);
        match deadline {
            Some(d) if d <= Instant::now() => return reason,
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(d) => {}
                    _ = activity.changed.notified() => {}
                }
            }
            None => activity.changed.notified().await,
        }
    }
}

/// What one connection is doing, updated by its socket wrapper and its service.
struct Activity {
    phase: Mutex<Phase>,
    /// Woken when a deadline may have moved earlier.
    changed: Notify,
}

struct Phase {
    /// Requests whose response has not been fully sent.
    busy: usize,
    /// No request has been served yet on this connection.
    fresh: bool,
    /// When the connection last had nothing to do (opened, or its last response ended).
    idle_since: Instant,
    /// When the first byte of the next request arrived, while not busy.
    head_since: Option<Instant>,
    /// When a write last found the socket full, while still full.
    write_blocked_since: Option<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase {
                busy: 0,
                fresh: true,
                idle_since: Instant::now(),
                head_since: None,
                write_blocked_since: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        // The state is a few plain fields, consistent after any panic.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deadline(&self, limits: &ConnectionLimits) -> (Option<Instant>, &'static str) {
        let p = self.lock();
        if p.busy > 0 {
            (
                p.write_blocked_since.map(|t| t + limits.idle_timeout()),
                "client stopped reading its response",
            )
        } else if let Some(t) = p.head_since {
            (
                Some(t + limits.header_read_timeout()),
                "request head too slow",
            )
        } else if p.fresh {
            (
                Some(p.idle_since + limits.header_read_timeout()),
                "no request after connecting",
            )
        } else {
            (Some(p.idle_since + limits.idle_timeout()), "idle")
        }
    }

    /// No request in progress and none begun.
    fn quiet(&self) -> bool {
        let p = self.lock();
        p.busy == 0 && p.head_since.is_none()
    }

    fn on_read(&self) {
        let mut p = self.lock();
        if p.busy == 0 && p.head_since.is_none() {
            p.head_since = Some(Instant::now());
            drop(p);
            self.changed.notify_one();
        }
    }

    fn on_write(&self, blocked: bool) {
        let mut p = self.lock();
        if !blocked {
            p.write_blocked_since = None;
        } else if p.write_blocked_since.is_none() {
            p.write_blocked_since = Some(Instant::now());
            drop(p);
            self.changed.notify_one();
        }
    }

    fn begin_request(self: &Arc<Self>) -> Busy {
        let mut p = self.lock();
        p.busy += 1;
        p.fresh = false;
        p.head_since = None;
        drop(p);
        Busy(self.clone())
    }
}

/// Held by a request until its response body has been sent (or dropped).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut p = self.0.lock();
        p.busy = p.busy.saturating_sub(1);
        if p.busy == 0 {
            p.idle_since = Instant::now();
            p.head_since = None;
            p.write_blocked_since = None;
        }
        drop(p);
        self.0.changed.notify_one();
    }
}

/// The socket, reporting reads and stalled writes to the connection's [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.on_write(r.is_pending());
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.on_write(r.is_pending());
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails once it has taken longer than `limit` to arrive, counted
/// from the first time the handler waits for it.
struct TimedBody {
    inner: Incoming,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let limit = this.limit;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err("request body took too long to arrive".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that marks its connection idle again once it is sent or dropped.
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Open connections, in all and per address.
#[derive(Default)]
struct Counts {
    inner: Mutex<CountsInner>,
}

#[derive(Default)]
struct CountsInner {
    total: usize,
    per_address: HashMap<String, usize>,
}

struct Refusal {
    open: usize,
    cap: usize,
    per_address: bool,
}

impl Counts {
    fn lock(&self) -> MutexGuard<'_, CountsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        exempt: bool,
        limits: &ConnectionLimits,
    ) -> Result<Slot, Refusal> {
        let mut c = self.lock();
        if c.total >= limits.max_total {
            return Err(Refusal {
                open: c.total,
                cap: limits.max_total,
                per_address: false,
            });
        }
        let key = if exempt { None } else { Some(ip_subject(ip)) };
        if let Some(k) = &key {
            let n = c.per_address.get(k).copied().unwrap_or(0);
            if n >= limits.max_per_address {
                return Err(Refusal {
                    open: n,
                    cap: limits.max_per_address,
                    per_address: true,
                });
            }
            c.per_address.insert(k.clone(), n + 1);
        }
        c.total += 1;
        Ok(Slot {
            counts: self.clone(),
            key,
        })
    }
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    counts: Arc<Counts>,
    key: Option<String>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(k) = &self.key
            && let Some(n) = c.per_address.get_mut(k)
        {
            *n -= 1;
            if *n == 0 {
                c.per_address.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn caps_count_per_address_and_in_all_and_give_slots_back() {
        let counts = Arc::new(Counts::default());
        let limits = ConnectionLimits {
            max_per_address: 2,
            max_total: 3,
            ..ConnectionLimits::default()
        };
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let a2: IpAddr = "2001:db8::2".parse().unwrap();
        let b: IpAddr = "192.0.2.1".parse().unwrap();
        let s1 = counts.admit(a, false, &limits).ok().unwrap();
        let _s2 = counts.admit(a2, false, &limits).ok().unwrap();
        // Same /64: refused.
        assert!(counts.admit(a, false, &limits).is_err());
        // Exempt (a trusted proxy): admitted, but the global cap still counts it.
        let _s3 = counts.admit(a, true, &limits).ok().unwrap();
        assert!(counts.admit(b, false, &limits).is_err());
        drop(s1);
        let _s4 = counts.admit(b, false, &limits).ok().unwrap();
        assert!(counts.admit(a, false, &limits).is_err());
    }
}
