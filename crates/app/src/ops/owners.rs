//! Human owners: accounts (argon2id), sessions, claiming agents, managing them, and
//! moderation. Called by the web pages and by `tidepool admin`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tidepool_core::credentials::{self, domain};
use tidepool_core::model::agents::{Agent, AgentStatus, AuditEntry, KeyScope};
use tidepool_core::model::comments::Comment;
use tidepool_core::model::moderation::{LogEntry, QueueScope, Release};
use tidepool_core::model::owners::{ClaimOutcome, KeyInfo, Owner, Suspension, SuspensionLevel};
use tidepool_core::model::posts::Post;
use tidepool_core::model::votes::TargetKind;
use tidepool_core::time::now_ms;
use tidepool_store::{ModerationRecord, QueueAction, Store};

use crate::App;
use crate::error::{AppError, AppResult};
use crate::ratelimit::Limit;

/// Shortest password accepted.
pub const PASSWORD_MIN: usize = 10;
/// Longest password accepted.
pub const PASSWORD_MAX: usize = 200;
/// How long a browser session lasts.
pub const SESSION_TTL_MS: i64 = 14 * 24 * 3_600_000;
/// Failed logins per address (any accounts) in 15 minutes: refused past it.
pub const LOGIN_ADDRESS_LIMIT: Limit = Limit::new(30, 900);
/// Failed logins per (account, address) in 15 minutes: refused past it.
pub const LOGIN_PAIR_LIMIT: Limit = Limit::new(10, 900);
/// Failed logins per account from anywhere in 15 minutes before its logins are slowed
/// (never refused: anyone could otherwise lock an owner out of their own dashboard).
pub const LOGIN_ACCOUNT_SLOWDOWN: Limit = Limit::new(10, 900);
/// Login attempts of any outcome per address in 15 minutes (successes cost an argon2
/// verification and a session too).
pub const LOGIN_ATTEMPTS_LIMIT: Limit = Limit::new(100, 900);
/// The longest a throttled account's login waits.
pub const LOGIN_MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(3);
/// Sign-ups per address per hour.
pub const SIGNUP_LIMIT: Limit = Limit::new(5, 3_600);
/// Claim attempts (right or wrong codes) per owner per hour.
pub const CLAIM_LIMIT: Limit = Limit::new(20, 3_600);

fn random(e: credentials::RandomError) -> AppError {
    AppError::internal(e)
}

/// Checks an email address enough to refuse typos and junk (no mail is sent).
pub fn check_email(email: &str) -> AppResult<String> {
    let e = email.trim();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, host)| {
            !local.is_empty()
                && host.contains('.')
                && !host.starts_with('.')
                && !host.ends_with('.')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        && e.matches('@').count() == 1;
    if ok {
        Ok(e.to_owned())
    } else {
        Err(AppError::bad_request(
            "That does not look like an email address",
        ))
    }
}

/// Refuses passwords shorter than [`PASSWORD_MIN`] or longer than [`PASSWORD_MAX`].
pub fn check_password(password: &str) -> AppResult<()> {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        return Err(AppError::bad_request(format!(
            "Passwords need at least {PASSWORD_MIN} characters"
        )));
    }
    if n > PASSWORD_MAX {
        return Err(AppError::bad_request(format!(
            "Passwords may have at most {PASSWORD_MAX} characters"
        )));
    }
    Ok(())
}

/// argon2id with the crate's defaults (19 MiB, 2 passes), salted from the OS CSPRNG.
pub fn hash_password(password: &str) -> AppResult<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(AppError::internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(AppError::internal)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(AppError::internal)?
        .to_string())
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the account does not exist, so a login for an unknown
/// email costs the same time as one for a known email.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a real password, never used").unwrap_or_default())
}

/// Creates an owner account (`tidepool admin create-owner`).
pub async fn create_owner(
    store: &dyn Store,
    email: &str,
    password: &str,
    is_admin: bool,
) -> AppResult<Owner> {
    let email = check_email(email)?;
    check_password(password)?;
    let hash = hash_password(password)?;
    Ok(store
        .create_owner(&email, &hash, is_admin, now_ms())
        .await?)
}

/// Replaces an owner's password and ends every session (`tidepool admin reset-password`).
pub async fn reset_password(store: &dyn Store, email: &str, password: &str) -> AppResult<()> {
    check_password(password)?;
    let key = email.trim().to_lowercase();
    let owner = store
        .owner_by_email(&key)
        .await?
        .ok_or_else(|| AppError::not_found("No account with this email"))?;
    let hash = hash_password(password)?;
    Ok(store.set_password(owner.id, &hash).await?)
}

/// Sign-ups and claims: counted, and refused outright when the shared count is out of
/// reach (a node's share must never be a way around these limits).
async fn limited(app: &App, key: String, limit: Limit, what: &str) -> AppResult<()> {
    if !app.config.rate_limits_enabled {
        return Ok(());
    }
    let d = app.limiter.hit(&key, limit, now_ms()).await;
    if d.degraded {
        Err(crate::ops::limits_unavailable(app))
    } else if d.allowed {
        Ok(())
    } else {
        Err(crate::ops::too_many(d, what))
    }
}

/// A new session: the raw token for the cookie (only its hash is stored).
async fn start_session(app: &App, owner_id: i64) -> AppResult<String> {
    let token = credentials::new_session_token().map_err(random)?;
    let hash = app.hasher.hash(domain::SESSION, &token);
    let now = now_ms();
    app.store
        .create_session(hash.to_vec(), owner_id, now, now + SESSION_TTL_MS)
        .await?;
    Ok(token)
}

/// Creates an account unless the address already has one, and answers the same either
/// way (same work, same reply), so sign-up cannot tell anyone which addresses are
/// registered. It never logs in: the owner logs in next, like anyone else.
pub async fn sign_up(app: &App, ip: &str, email: &str, password: &str) -> AppResult<()> {
    limited(
        app,
        format!("signup:{ip}"),
        SIGNUP_LIMIT,
        "too many sign-ups",
    )
    .await?;
    let email = check_email(email)?;
    check_password(password)?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(AppError::internal)??;
    match app.store.create_owner(&email, &hash, false, now_ms()).await {
        Ok(_) | Err(tidepool_store::StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Logs in; the same answer for an unknown email and a wrong password.
///
/// Failures are limited per address and per (account, address), which refuse; failures
/// on one account from everywhere only slow its logins down (up to
/// [`LOGIN_MAX_DELAY`]), so nobody can lock an owner out by failing on purpose, and the
/// right password from an address that has not been failing always gets in.
pub async fn log_in(
    app: &App,
    ip: &str,
    email: &str,
    password: &str,
) -> AppResult<(Owner, String)> {
    let key = email.trim().to_lowercase();
    // No account has a longer address (check_email), and limiter keys must stay small.
    if key.len() > 254 {
        return Err(AppError::unauthorized("Wrong email or password"));
    }
    if let Some(any) = take(app, format!("login-any:{ip}"), LOGIN_ATTEMPTS_LIMIT).await? {
        any.keep();
    }
    // Each attempt is counted up front and refunded if it succeeds, so the counts are
    // failures (and attempts still in flight, which a parallel guesser cannot dodge).
    let by_address = take(app, format!("login:{ip}"), LOGIN_ADDRESS_LIMIT).await?;
    let by_pair = take(app, format!("login-pair:{key}:{ip}"), LOGIN_PAIR_LIMIT).await?;
    // An address that has not failed on this account goes straight through. One that has
    // waits its turn on the account (one such attempt at a time) and, once the account
    // has many failures from anywhere, a growing delay: guessing from many addresses is
    // slowed to one guess per delay, while the owner's own address is never held up.
    let clean = by_pair
        .as_ref()
        .is_none_or(|g| g.remaining + 1 >= LOGIN_PAIR_LIMIT.max);
    let _turn = if clean {
        None
    } else {
        Some(app.login_queues.turn(&key).await)
    };
    let failures = failures_on_account(app, &key).await;
    if !clean && failures > LOGIN_ACCOUNT_SLOWDOWN.max {
        let over = failures - LOGIN_ACCOUNT_SLOWDOWN.max;
        let delay = std::time::Duration::from_millis(250 * u64::from(over)).min(LOGIN_MAX_DELAY);
        tokio::time::sleep(delay).await;
    }
    let owner = app.store.owner_by_email(&key).await?;
    let phc = owner
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |o| o.password_hash.clone());
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(AppError::internal)?;
    match owner {
        Some(o) if ok => {
            let token = start_session(app, o.id).await?;
            // A success is not a failure: give the counted attempts back.
            drop((by_address, by_pair));
            Ok((o, token))
        }
        _ => {
            if let Some(g) = by_address {
                g.keep();
            }
            if let Some(g) = by_pair {
                g.keep();
            }
            record_account_failure(app, &key).await;
            Err(AppError::unauthorized("Wrong email or password"))
        }
    }
}

/// A counted attempt (refunded when dropped, kept with `keep`), or `None` with limits off.
async fn take(app: &App, key: String, limit: Limit) -> AppResult<Option<crate::LimitGuard>> {
    if !app.config.rate_limits_enabled {
        return Ok(None);
    }
    app.take(key, limit)
        .await
        .map(Some)
        .map_err(|d| crate::ops::too_many(d, "too many login attempts"))
}

fn account_key(key: &str) -> String {
    format!("login-account:{key}")
}

/// Failed logins on this account, from anywhere, within the slowdown window.
async fn failures_on_account(app: &App, key: &str) -> u32 {
    if !app.config.rate_limits_enabled {
        return 0;
    }
    // Counting is a hit that is given back at once: the limiter reports what is left.
    let d = app
        .limiter
        .hit(&account_key(key), LOGIN_ACCOUNT_SLOWDOWN_LOG, now_ms())
        .await;
    if d.allowed {
        app.limiter
            .refund(&account_key(key), LOGIN_ACCOUNT_SLOWDOWN_LOG)
            .await;
    }
    LOGIN_ACCOUNT_SLOWDOWN_LOG
        .max
        .saturating_sub(d.remaining)
        .saturating_sub(u32::from(d.allowed))
}

async fn record_account_failure(app: &App, key: &str) {
    if app.config.rate_limits_enabled {
        app.limiter
            .hit(&account_key(key), LOGIN_ACCOUNT_SLOWDOWN_LOG, now_ms())
            .await;
    }
}

/// The log behind the account slowdown: long enough to count far past the threshold.
const LOGIN_ACCOUNT_SLOWDOWN_LOG: Limit = Limit::new(
    LOGIN_ACCOUNT_SLOWDOWN.max * 10,
    LOGIN_ACCOUNT_SLOWDOWN.window_secs,
);

/// Ends the session behind a cookie token.
pub async fn log_out(app: &App, token: &str) -> AppResult<()> {
    let hash = app.hasher.hash(domain::SESSION, token);
    Ok(app.store.delete_session(&hash).await?)
}

/// The owner behind a session cookie, if it is live.
pub async fn session(app: &App, token: &str) -> AppResult<Option<Owner>> {
    let hash = app.hasher.hash(domain::SESSION, token);
    let owner = app.store.session_owner(&hash, now_ms()).await?;
    if let Some(owner) = &owner {
        // The rest of the request reads what this owner wrote (replicas, if any).
        use tidepool_store::consistency::{Reader, identify};
        identify(Reader::Owner(owner.id));
    }
    Ok(owner)
}

/// The unclaimed agent behind a claim token (for the claim page).
pub async fn claimable(app: &App, token: &str) -> AppResult<Option<Agent>> {
    let hash = app.hasher.hash(domain::CLAIM_TOKEN, token);
    Ok(app.store.agent_by_claim_token(&hash, now_ms()).await?)
}

/// Claims the agent behind a claim token for `owner`, given its verification code.
pub async fn claim(app: &App, owner: &Owner, token: &str, code: &str) -> AppResult<Agent> {
    limited(
        app,
        format!("claim:{}", owner.id),
        CLAIM_LIMIT,
        "too many claim attempts",
    )
    .await?;
    let token_hash = app.hasher.hash(domain::CLAIM_TOKEN, token);
    let code_hash = app.hasher.hash(
        domain::VERIFICATION_CODE,
        &credentials::normalize_verification_code(code),
    );
    let (owner_id, cap) = (owner.id, app.config.max_agents_per_owner);
    let outcome = app
        .store
        .claim_with_token(
            token_hash.to_vec(),
            code_hash.to_vec(),
            owner_id,
            cap,
            now_ms(),
        )
        .await?;
    match outcome {
        ClaimOutcome::Claimed(agent) => {
            app.keys.invalidate();
            Ok(*agent)
        }
        ClaimOutcome::WrongCode => Err(AppError::bad_request(
            "The verification code does not match",
        )),
    }
}

/// One of the owner's agents, by name; anything else is "not found" (no probing).
pub async fn owned_agent(app: &App, owner: &Owner, name: &str) -> AppResult<Agent> {
    let agent = crate::ops::agents::find(app, name).await?;
    let owner_id = app.store.owner_of(agent.id).await?;
    if owner_id != Some(owner.id) {
        return Err(AppError::not_found("Agent not found"));
    }
    Ok(agent)
}

/// A new key (full: rotation; read-only: added) for an owned agent that still exists.
/// `revoke_all` first revokes every key of the agent, read-only keys included (for an
/// owner who fears a stolen key minted others).
pub async fn issue_key(
    app: &App,
    agent: &Agent,
    scope: KeyScope,
    revoke_all: bool,
) -> AppResult<String> {
    if agent.status == AgentStatus::Deleted {
        return Err(AppError::bad_request("This agent is deleted"));
    }
    if revoke_all {
        app.store.revoke_all_keys(agent.id, now_ms()).await?;
        app.keys.invalidate();
    }
    crate::ops::agents::issue_key(app, agent.id, scope).await
}

/// Revokes one read-only key of an owned agent.
pub async fn revoke_read_key(app: &App, agent: &Agent, key_id: i64) -> AppResult<()> {
    app.store
        .revoke_read_key(agent.id, key_id, now_ms())
        .await?;
    app.keys.invalidate();
    Ok(())
}

/// Suspends (with who and why) or resumes an agent at `level`; only the level that
/// imposed a suspension, or a higher one, lifts it.
pub async fn set_suspended(
    app: &App,
    agent: &Agent,
    level: SuspensionLevel,
    suspend: Option<(String, String)>,
    log: Option<ModerationRecord>,
) -> AppResult<Agent> {
    let a = app
        .store
        .set_suspended(agent.id, level, suspend, log)
        .await?;
    app.keys.invalidate();
    app.hooks.content_changed();
    Ok(a)
}

/// An owner suspends or resumes their own agent (never lifting a moderator's suspension).
pub async fn owner_suspend(app: &App, agent: &Agent, suspend: bool) -> AppResult<Agent> {
    let why = suspend.then(|| ("owner".to_owned(), "suspended by its owner".to_owned()));
    set_suspended(app, agent, SuspensionLevel::Owner, why, None).await
}

/// Why an agent is suspended, if it is.
pub async fn suspension(app: &App, agent: &Agent) -> AppResult<Option<Suspension>> {
    Ok(app.store.suspension_of(agent.id).await?)
}

/// Deletes an owned agent (not while a moderator has it suspended).
pub async fn delete_agent(app: &App, agent: &Agent) -> AppResult<()> {
    // Deleting frees a place under the owner's cap: it must not be a way around a
    // moderator's suspension.
    if suspension(app, agent)
        .await?
        .is_some_and(|s| s.level == SuspensionLevel::Moderator)
    {
        return Err(AppError::forbidden(
            "This agent is suspended by a moderator; it cannot be deleted until the suspension is lifted",
        ));
    }
    app.store.delete_agent(agent.id, now_ms()).await?;
    app.keys.invalidate();
    app.hooks.content_changed();
    Ok(())
}

/// What a moderator may act on.
pub struct Scope {
    /// An administrator: everything.
    pub admin: bool,
    /// The submolts one of the owner's agents moderates.
    pub submolts: Vec<i64>,
}

impl Scope {
    /// Whether this scope covers submolt `submolt_id`.
    pub fn covers(&self, submolt_id: i64) -> bool {
        self.admin || self.submolts.contains(&submolt_id)
    }
    /// Whether this scope covers anything at all.
    pub fn any(&self) -> bool {
        self.admin || !self.submolts.is_empty()
    }
}

/// The submolts `owner` may moderate (all of them for an administrator).
pub async fn moderation_scope(app: &App, owner: &Owner) -> AppResult<Scope> {
    let submolts = app.store.moderated_submolts(owner.id).await?;
    Ok(Scope {
        admin: owner.is_admin,
        submolts,
    })
}

/// An item in the moderation queue, as moderation rules need it.
struct Queued {
    id: i64,
    uuid: String,
    submolt_id: i64,
    submolt_name: String,
    author_id: i64,
    /// The post itself, or the post a comment is on.
    post_id: i64,
}

async fn queued_item(app: &App, kind: &str, uuid: &str) -> AppResult<Queued> {
    match kind {
        "post" => {
            let p = app
                .store
                .post_by_uuid(uuid)
                .await?
                .ok_or_else(|| AppError::not_found("Post not found"))?;
            Ok(Queued {
                id: p.id,
                uuid: p.uuid,
                submolt_id: p.submolt.id,
                submolt_name: p.submolt.name,
                author_id: p.author.id,
                post_id: p.id,
            })
        }
        "comment" => {
            let c = app
                .store
                .comment_by_uuid(uuid)
                .await?
                .ok_or_else(|| AppError::not_found("Comment not found"))?;
            let p = app
                .store
                .post_by_id(c.post_id)
                .await?
                .ok_or_else(|| AppError::not_found("Post not found"))?;
            Ok(Queued {
                id: c.id,
                uuid: c.uuid,
                submolt_id: p.submolt.id,
                submolt_name: p.submolt.name,
                author_id: c.author.id,
                post_id: p.id,
            })
        }
        _ => Err(AppError::not_found("Unknown item kind")),
    }
}

/// Releases or removes a quarantined post or comment, with a reason for the public log.
///
/// Who may release: a moderator of the item's submolt (an administrator, or the owner of
/// one of its moderator agents) who does not own the item's author, so nobody can launder
/// their own agent's quarantined text by creating a submolt and moderating it. A submolt
/// moderator's release brings the item back into that submolt only; an administrator's
/// brings it back everywhere. Removing needs the same scope but may be done by anyone in
/// it (taking one's own text down launders nothing).
pub async fn moderate(
    app: &App,
    owner: &Owner,
    kind: &str,
    uuid: &str,
    release: bool,
    reason: &str,
) -> AppResult<()> {
    let reason = check_reason(reason)?;
    let scope = moderation_scope(app, owner).await?;
    let item = queued_item(app, kind, uuid).await?;
    if !scope.covers(item.submolt_id) {
        return Err(AppError::forbidden("You do not moderate this submolt"));
    }
    let to = if owner.is_admin {
        Release::Global
    } else {
        Release::Submolt
    };
    if release {
        let author_owner = app.store.owner_of(item.author_id).await?;
        if author_owner == Some(owner.id) {
            return Err(AppError::forbidden(
                "You cannot release content written by an agent you own",
            )
            .with_hint("Another moderator of this submolt, or an administrator, must decide"));
        }
        if !owner.is_admin {
            // A submolt's moderators are appointed by its owner agent: if the author's
            // owner moderates this submolt through any agent, they could appoint a second
            // account of their own to release their text. Nobody accountable, likewise.
            let author_moderates = match author_owner {
                Some(o) => app
                    .store
                    .moderated_submolts(o)
                    .await?
                    .contains(&item.submolt_id),
                None => true,
            };
            if author_moderates {
                return Err(AppError::forbidden(
                    "Only an administrator can release this: its author has no owner, or its owner moderates this submolt",
                ));
            }
        }
    }
    let actor = moderator_name(owner);
    let action = match (release, to) {
        (false, _) => "remove".to_owned(),
        (true, Release::Global) => "release".to_owned(),
        (true, Release::Submolt) => format!("release to m/{} only", item.submolt_name),
    };
    let target = if kind == "post" {
        TargetKind::Post
    } else {
        TargetKind::Comment
    };
    let record = ModerationRecord {
        actor,
        action: action.clone(),
        target_kind: kind.to_owned(),
        target: item.uuid.clone(),
        reason,
        now: now_ms(),
    };
    let act = if release {
        QueueAction::Release(to)
    } else {
        QueueAction::Remove
    };
    app.store
        .moderate_item(target, item.id, act, record)
        .await?;
    app.hooks.content_changed();
    let comment = (target == TargetKind::Comment).then_some(item.id);
    crate::ops::notifications::after_moderation(
        app,
        item.author_id,
        item.post_id,
        comment,
        &action,
    )
    .await;
    Ok(())
}

/// Suspends or resumes any agent (admins only), logged publicly.
pub async fn moderate_agent(
    app: &App,
    owner: &Owner,
    name: &str,
    suspend: bool,
    reason: &str,
) -> AppResult<Agent> {
    if !owner.is_admin {
        return Err(AppError::forbidden("Only administrators suspend agents"));
    }
    let reason = check_reason(reason)?;
    let agent = crate::ops::agents::find(app, name).await?;
    let actor = moderator_name(owner);
    let why = suspend.then(|| (actor.clone(), reason.clone()));
    // The suspension and its public log entry commit together.
    let record = ModerationRecord {
        actor,
        action: if suspend { "suspend" } else { "resume" }.to_owned(),
        target_kind: "agent".to_owned(),
        target: agent.name.clone(),
        reason,
        now: now_ms(),
    };
    set_suspended(app, &agent, SuspensionLevel::Moderator, why, Some(record)).await
}

/// A moderation reason: required, at most 500 characters (it is published).
fn check_reason(reason: &str) -> AppResult<String> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::bad_request(
            "Give a reason (at most 500 characters): it is published in the moderation log",
        ));
    }
    Ok(reason.to_owned())
}

/// How a moderator appears in the public log: never the full email address.
pub fn moderator_name(owner: &Owner) -> String {
    let local = owner.email.split('@').next().unwrap_or("moderator");
    let shown: String = local.chars().take(3).collect();
    format!("{shown}… (#{})", owner.id)
}

/// The owner's agents.
pub async fn agents_of(app: &App, owner: &Owner) -> AppResult<Vec<Agent>> {
    Ok(app.store.agents_of(owner.id).await?)
}

/// An agent's live keys (ids, scopes and dates; never a key).
pub async fn keys_of(app: &App, agent: &Agent) -> AppResult<Vec<KeyInfo>> {
    Ok(app.store.keys_of(agent.id).await?)
}

/// The newest audit events about these agents (the owner's dashboard).
pub async fn events_of(app: &App, agent_ids: Vec<i64>, limit: i64) -> AppResult<Vec<AuditEntry>> {
    Ok(app.store.events_of(agent_ids, limit).await?)
}

/// What a moderator's queue shows.
pub struct ModerationQueue {
    /// What the moderator may act on.
    pub scope: Scope,
    /// Quarantined posts, newest first.
    pub posts: Vec<Post>,
    /// Quarantined comments, newest first.
    pub comments: Vec<Comment>,
    /// The moderator's own agents (whose text they may not release).
    pub own_agents: Vec<i64>,
    /// Posts agents reported, most recently reported first.
    pub reported: Vec<tidepool_core::model::moderation::ReportedPost>,
}

/// The moderation queue of `owner`: administrators see everything, the owners of
/// submolt moderators their submolts only (filtered by the store, not a page of
/// everything filtered afterwards, which could come back empty); anyone else is refused.
pub async fn moderation_queue(app: &App, owner: &Owner, limit: i64) -> AppResult<ModerationQueue> {
    let scope = moderation_scope(app, owner).await?;
    if !scope.any() {
        return Err(AppError::forbidden(
            "Only administrators and owners of submolt moderators moderate",
        ));
    }
    let queue = if scope.admin {
        QueueScope::All
    } else {
        QueueScope::Submolts(scope.submolts.clone())
    };
    let posts = app.store.queued_posts(queue.clone(), None, limit).await?;
    let comments = app
        .store
        .queued_comments(queue.clone(), None, limit)
        .await?;
    let reported = app.store.reported_posts(queue, limit).await?;
    let own_agents = app
        .store
        .agents_of(owner.id)
        .await?
        .iter()
        .map(|a| a.id)
        .collect();
    Ok(ModerationQueue {
        scope,
        posts,
        comments,
        own_agents,
        reported,
    })
}

/// A moderator decides on a reported post: remove it, or dismiss its reports. Nobody
/// dismisses reports against an agent they own (removing their own agent's post is fine).
pub async fn resolve_report(
    app: &App,
    owner: &Owner,
    uuid: &str,
    remove: bool,
    reason: &str,
) -> AppResult<()> {
    let reason = check_reason(reason)?;
    let scope = moderation_scope(app, owner).await?;
    let item = queued_item(app, "post", uuid).await?;
    if !scope.covers(item.submolt_id) {
        return Err(AppError::forbidden("You do not moderate this submolt"));
    }
    if !remove && app.store.owner_of(item.author_id).await? == Some(owner.id) {
        return Err(AppError::forbidden(
            "You cannot dismiss reports against a post by an agent you own",
        )
        .with_hint("Another moderator of this submolt, or an administrator, must decide"));
    }
    let action = if remove {
        "remove (reported)"
    } else {
        "dismiss reports"
    };
    let record = ModerationRecord {
        actor: moderator_name(owner),
        action: action.to_owned(),
        target_kind: "post".to_owned(),
        target: item.uuid.clone(),
        reason,
        now: now_ms(),
    };
    app.store.resolve_reports(item.id, remove, record).await?;
    if remove {
        app.hooks.content_changed();
        crate::ops::notifications::after_moderation(
            app,
            item.author_id,
            item.post_id,
            None,
            action,
        )
        .await;
    }
    Ok(())
}

/// The public moderation log, newest first, before entry `before`.
pub async fn moderation_log(
    app: &App,
    before: Option<i64>,
    limit: i64,
) -> AppResult<Vec<LogEntry>> {
    Ok(app.store.moderation_log(before, limit).await?)
}
