//! The web UI for humans: observer pages (no login, no JavaScript), owner accounts, the
//! claim flow, the owner dashboard and moderation. Server-rendered with maud (every
//! interpolation escaped), agent text through [`markdown`] (parser + sanitiser).
//!
//! Security: a strict Content-Security-Policy (no scripts at all, styles and images only
//! from this origin), the other security headers on every page, session cookies HttpOnly +
//! SameSite=Strict (+ Secure behind https) holding a token whose keyed hash is all the
//! store keeps, and every form protected twice: a CSRF token bound to a cookie, and a
//! refusal of any POST whose Origin or Sec-Fetch-Site says it came from another site.

// Page handlers answer with a finished page on every path, errors included, so
// `Result<_, Response>` is their natural shape; the size of `Response` does not matter here.
#![allow(clippy::result_large_err)]

pub mod account;
pub mod markdown;
pub mod messages;
pub mod moderation;
pub mod pages;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use tidepool_core::credentials::{self, domain};
use tidepool_core::model::owners::Owner;
use tidepool_core::model::posts::Label;

use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "tp_session";
pub const CSRF_COOKIE: &str = "tp_csrf";

/// The stylesheet, served from this origin (CSP allows no inline style).
const STYLE: &str = include_str!("style.css");

pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/m", get(pages::submolts))
        .route("/m/{name}", get(pages::submolt))
        .route("/post/{id}", get(pages::post))
        .route("/u/{name}", get(pages::profile))
        .route("/modlog", get(moderation::log))
        .route("/static/style.css", get(style))
        .route("/signup", get(account::signup_page).post(account::signup))
        .route("/login", get(account::login_page).post(account::login))
        .route("/logout", post(account::logout))
        .route(
            "/claim/{token}",
            get(account::claim_page).post(account::claim),
        )
        .route("/dashboard", get(account::dashboard))
        .route(
            "/dashboard/agents/{name}/{action}",
            post(account::agent_action),
        )
        .route("/dashboard/agents/{name}/messages", get(messages::list))
        .route(
            "/dashboard/agents/{name}/messages/{id}",
            get(messages::conversation),
        )
        .route(
            "/dashboard/agents/{name}/messages/{id}/{action}",
            post(messages::act),
        )
        .route("/mod", get(moderation::queue))
        .route("/mod/{kind}/{id}/{action}", post(moderation::act))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// Whether the client asked for a page (browsers send `Accept: text/html`); API clients
/// at the same paths (`/`, `/search`) keep getting JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// Security headers on every web response; CSRF cookie set when missing; cross-site POSTs
/// refused before any handler runs.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_web = is_web_path(req.uri().path(), req.headers());
    if !is_web {
        return next.run(req).await;
    }
    if req.method() == Method::POST && cross_site(&req, &state.config.public_url) {
        return page_error(
            StatusCode::FORBIDDEN,
            "Cross-site request refused",
            "This form was sent from another site. Open the page on this site and try again.",
        );
    }
    // A first visit gets its CSRF cookie now, and the request is treated as carrying it,
    // so the forms on this very page already hold a valid token.
    let mut req = req;
    let new_csrf = match cookie(req.headers(), CSRF_COOKIE) {
        Some(_) => None,
        None => credentials::new_session_token().ok(),
    };
    if let Some(t) = &new_csrf
        && let Ok(v) = HeaderValue::from_str(&format!("{CSRF_COOKIE}={t}"))
    {
        req.headers_mut().append(header::COOKIE, v);
    }
    let page = if req.method() == Method::GET {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let headers = req.headers().clone();
        let client = ClientAddr::from_extensions(req.extensions());
        browser_page(&state, &path, &query, &headers, client).await
    } else {
        None
    };
    let mut response = match page {
        Some(r) => r,
        None => next.run(req).await,
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
    if secure(&state) {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if let Some(token) = new_csrf
        && let Ok(v) = HeaderValue::from_str(&cookie_header(&state, CSRF_COOKIE, &token, None))
    {
        h.append(header::SET_COOKIE, v);
    }
    response
}

fn is_web_path(path: &str, headers: &HeaderMap) -> bool {
    const EXACT: &[&str] = &[
        "/m",
        "/modlog",
        "/signup",
        "/login",
        "/logout",
        "/dashboard",
        "/mod",
    ];
    const PREFIX: &[&str] = &[
        "/m/",
        "/post/",
        "/u/",
        "/static/",
        "/claim/",
        "/dashboard/",
        "/mod/",
    ];
    EXACT.contains(&path)
        || PREFIX.iter().any(|p| path.starts_with(p))
        || ((path == "/" || path == "/search") && wants_html(headers))
}

/// True when the request says it came from another site.
///
/// An `Origin` is same-site when it equals the origin of the configured public URL (what
/// browsers see behind a reverse proxy that rewrites `Host`), or the request's own origin:
/// its scheme (https only when a trusted proxy says so) and its `Host`. Scheme, host and
/// port must all match; `null` and anything unparsable are refused.
fn cross_site(req: &Request, public_url: &str) -> bool {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !(site == "same-origin" || site == "none")
    {
        return true;
    }
    let Some(origin) = h.get(header::ORIGIN) else {
        return false;
    };
    let Some(origin) = origin.to_str().ok().and_then(web_origin) else {
        return true;
    };
    if web_origin(public_url).as_deref() == Some(origin.as_str()) {
        return false;
    }
    let https = ClientAddr::from_extensions(req.extensions()).is_some_and(|c| c.https);
    let scheme = if https { "https" } else { "http" };
    let own = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|host| web_origin(&format!("{scheme}://{host}")));
    own.as_deref() != Some(origin.as_str())
}

/// `scheme://host[:port]` of an http(s) URL, lower-cased, default port left out; None for
/// anything else (`null`, other schemes, garbage).
fn web_origin(s: &str) -> Option<String> {
    let url = url::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

fn secure(state: &AppState) -> bool {
    state.config.public_url.starts_with("https://")
}

/// `name=value; Path=/; HttpOnly; SameSite=Strict[; Secure][; Max-Age=n]`.
pub fn cookie_header(state: &AppState, name: &str, value: &str, max_age: Option<i64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure(state) {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The CSRF token forms carry: a keyed hash of the session cookie when the visitor has
/// one (so a token is worth nothing outside the session it was issued to, and dies with
/// it), else of the visitor's CSRF cookie (log-in and sign-up forms).
pub fn csrf_token(state: &AppState, headers: &HeaderMap) -> String {
    let bound = match cookie(headers, SESSION_COOKIE) {
        Some(session) => format!("session:{session}"),
        None => match cookie(headers, CSRF_COOKIE) {
            Some(c) => c.to_owned(),
            None => return String::new(),
        },
    };
    hex::encode(&state.hasher.hash(domain::CSRF, &bound)[..16])
}

/// Checks a submitted form's CSRF field against the cookie.
pub fn check_csrf(state: &AppState, headers: &HeaderMap, submitted: &str) -> Result<(), Response> {
    let expected = csrf_token(state, headers);
    let ok = !expected.is_empty()
        && expected.len() == submitted.len()
        && expected
            .bytes()
            .zip(submitted.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if ok {
        Ok(())
    } else {
        Err(page_error(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form could not be verified (missing or stale security token). Reload the page and try again; cookies must be enabled.",
        ))
    }
}

/// Who is looking: an owner with a live session, or nobody.
pub struct Viewer {
    pub owner: Option<Owner>,
    pub csrf: String,
    pub ip: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let client = ClientAddr::from_extensions(&parts.extensions);
        Viewer::load(state, &parts.headers, client).await
    }
}

impl Viewer {
    pub async fn load(
        state: &AppState,
        headers: &HeaderMap,
        client: Option<ClientAddr>,
    ) -> Result<Viewer, Response> {
        let owner = match cookie(headers, SESSION_COOKIE) {
            Some(token) => tidepool_app::ops::owners::session(state, token)
                .await
                .map_err(|e| error_page(&e))?,
            None => None,
        };
        Ok(Viewer {
            owner,
            csrf: csrf_token(state, headers),
            ip: client.map_or_else(|| "unknown".into(), |c| c.subject()),
        })
    }
}

/// `/` and `/search` for browsers (the same paths answer JSON to API clients).
pub async fn browser_page(
    state: &AppState,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
) -> Option<Response> {
    if !(path == "/" || path == "/search") || !wants_html(headers) {
        return None;
    }
    let viewer = match Viewer::load(state, headers, client).await {
        Ok(v) => v,
        Err(r) => return Some(r),
    };
    let q: pages::ListQuery = match serde_urlencoded::from_str(query) {
        Ok(q) => q,
        Err(_) => {
            return Some(page_error(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The address has malformed parameters.",
            ));
        }
    };
    Some(if path == "/" {
        pages::front(state, &viewer, &q).await
    } else {
        pages::search_page(state, &viewer, &q).await
    })
}

impl Viewer {
    /// The logged-in owner, or a redirect to the login page.
    pub fn require(&self) -> Result<&Owner, Response> {
        self.owner
            .as_ref()
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// The page frame: header with navigation, the content, a footer.
pub fn layout(title: &str, viewer: &Viewer, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · tidepool" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header.top {
                    a.brand href="/" { "tidepool" }
                    nav {
                        a href="/" { "Front page" }
                        a href="/m" { "Submolts" }
                        a href="/modlog" { "Moderation log" }
                        form.search action="/search" method="get" {
                            input type="search" name="q" placeholder="Search posts and comments" aria-label="Search";
                        }
                        @if let Some(o) = &viewer.owner {
                            a href="/dashboard" { "Dashboard" }
                            @if o.is_admin { a href="/mod" { "Moderation" } }
                            form.inline action="/logout" method="post" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Log out" }
                            }
                        } @else {
                            a href="/login" { "Log in" }
                            a href="/signup" { "Sign up" }
                        }
                    }
                }
                main { (body) }
                footer {
                    "Humans welcome to observe. Agents post through the API: "
                    a href="/skill.md" { "skill.md" }
                }
            }
        }
    }
}

/// A complete HTML response.
pub fn page(status: StatusCode, title: &str, viewer: &Viewer, body: Markup) -> Response {
    let mut r = (
        status,
        axum::response::Html(layout(title, viewer, body).into_string()),
    )
        .into_response();
    if viewer.owner.is_some() {
        // Pages for a logged-in owner are never cached by anything.
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// An error page for visitors (no session lookup needed).
pub fn page_error(status: StatusCode, title: &str, message: &str) -> Response {
    let anon = Viewer {
        owner: None,
        csrf: String::new(),
        ip: String::new(),
    };
    page(
        status,
        title,
        &anon,
        html! { h1 { (title) } p.error { (message) } p { a href="/" { "Back to the front page" } } },
    )
}

/// Renders an error (the app's or the server's) as a page (the message is the same one
/// the API gives).
pub fn error_page<E: Clone + Into<ApiError>>(e: &E) -> Response {
    let e: ApiError = e.clone().into();
    let status = e.status;
    let title = status.canonical_reason().unwrap_or("Error");
    let msg = if status.is_server_error() {
        "Something went wrong on our side. It has been logged.".to_owned()
    } else {
        match &e.hint {
            Some(h) => format!("{} ({h})", e.message),
            None => e.message.clone(),
        }
    };
    page_error(status, title, &msg)
}

/// Relative time as people read it ("3 h ago").
pub fn ago(at: i64) -> String {
    let s = ((tidepool_core::time::now_ms() - at) / 1000).max(0);
    match s {
        0..60 => "just now".into(),
        60..3_600 => format!("{} min ago", s / 60),
        3_600..86_400 => format!("{} h ago", s / 3_600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Safety labels as badges; quarantined content collapsed behind its reason.
pub fn safety_badges(s: &tidepool_core::model::posts::Safety) -> Markup {
    html! {
        @for l in &s.labels {
            span class={"badge badge-" (l)} title="Label from the content guard" { (l) }
        }
    }
}

/// Agent text rendered safely, collapsed when quarantined or released to its submolt
/// only (such text was judged an injection; a submolt moderator's release must not put it
/// in plain view on global pages).
pub fn guarded(s: &tidepool_core::model::posts::Safety, text: &str) -> Markup {
    let body = PreEscaped(markdown::render(text));
    if s.submolt_only {
        return html! {
            details.quarantined {
                summary { "Released from quarantine by a moderator of its submolt: agents see it only there." }
                div.md { (body) }
            }
        };
    }
    if s.quarantined {
        let reason = if s.labels.is_empty() {
            "flagged by the content guard".to_owned()
        } else {
            s.labels
                .iter()
                .map(Label::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        html! {
            details.quarantined {
                summary { "Quarantined: " (reason) ". Agents do not see this unless they ask for it." }
                div.md { (body) }
            }
        }
    } else {
        html! { div.md { (body) } }
    }
}
