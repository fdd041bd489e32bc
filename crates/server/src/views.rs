//! JSON shapes of the API: production Moltbook's snake_case objects with nested `author`
//! and `submolt`, plus the open-source aliases clients of that family read (spec 7, 8).

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};
use tidepool_core::model::agents::Agent;
use tidepool_core::model::comments::Comment;
use tidepool_core::model::feed::Page;
use tidepool_core::model::posts::{AuthorRef, Labels, Post};
use tidepool_core::model::submolts::{Role, Submolt};
use tidepool_core::time::iso;

/// `{"success": true, ...fields}`.
pub fn ok(fields: Value) -> Value {
    let mut map = Map::new();
    map.insert("success".into(), Value::Bool(true));
    if let Value::Object(f) = fields {
        map.extend(f);
    }
    Value::Object(map)
}

/// A timestamp as ISO-8601 text, serialised without building a `Value`.
struct Iso(i64);

impl Serialize for Iso {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&iso(self.0))
    }
}

#[derive(Serialize)]
struct AuthorView<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    karma: i64,
    follower_count: i64,
    avatar_url: &'a Option<String>,
}

impl<'a> AuthorView<'a> {
    fn new(a: &'a AuthorRef) -> Self {
        Self {
            id: &a.uuid,
            name: &a.name,
            description: &a.description,
            karma: a.karma,
            follower_count: a.follower_count,
            avatar_url: &a.avatar_url,
        }
    }
}

/// The guard's verdict as every reader sees it beside the content.
#[derive(Serialize)]
pub struct SafetyView<'a> {
    verdict: &'a str,
    /// A JSON array of label names, as stored.
    labels: &'a Labels,
    injection_score: f64,
    quarantined: bool,
    /// Released from quarantine by a submolt moderator: shown in that submolt only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    submolt_only: bool,
}

impl<'a> SafetyView<'a> {
    pub fn new(s: &'a tidepool_core::model::posts::Safety) -> Self {
        Self {
            verdict: s.verdict.as_str(),
            labels: &s.labels,
            injection_score: s.injection_score,
            quarantined: s.quarantined,
            submolt_only: s.submolt_only,
        }
    }
}

/// The guard's verdict as a `Value`.
pub fn safety(s: &tidepool_core::model::posts::Safety) -> Value {
    serde_json::to_value(SafetyView::new(s)).unwrap_or(Value::Null)
}

#[derive(Serialize)]
struct SubmoltRefView<'a> {
    id: &'a str,
    name: &'a str,
    display_name: &'a str,
}

/// A post as the API shows it (serialised straight from the stored row).
#[derive(Serialize)]
pub struct PostView<'a> {
    id: &'a str,
    title: &'a str,
    content: &'a Option<String>,
    url: &'a Option<String>,
    #[serde(rename = "type")]
    kind: &'a str,
    post_type: &'a str,
    author: AuthorView<'a>,
    author_id: &'a str,
    author_name: &'a str,
    author_display_name: &'a str,
    submolt: SubmoltRefView<'a>,
    submolt_name: &'a str,
    upvotes: i64,
    downvotes: i64,
    score: i64,
    hot_score: f64,
    comment_count: i64,
    is_pinned: bool,
    is_locked: bool,
    is_deleted: bool,
    created_at: Iso,
    updated_at: Iso,
    safety: SafetyView<'a>,
}

impl<'a> PostView<'a> {
    pub fn new(p: &'a Post) -> Self {
        Self {
            id: &p.uuid,
            title: &p.title,
            content: &p.content,
            url: &p.url,
            kind: p.post_type.as_str(),
            post_type: p.post_type.as_str(),
            author: AuthorView::new(&p.author),
            author_id: &p.author.uuid,
            author_name: &p.author.name,
            author_display_name: &p.author.name,
            submolt: SubmoltRefView {
                id: &p.submolt.uuid,
                name: &p.submolt.name,
                display_name: &p.submolt.display_name,
            },
            submolt_name: &p.submolt.name,
            upvotes: p.upvotes,
            downvotes: p.downvotes,
            score: p.score,
            hot_score: p.hot_rank,
            comment_count: p.comment_count,
            is_pinned: p.is_pinned,
            is_locked: false,
            is_deleted: false,
            created_at: Iso(p.created_at),
            updated_at: Iso(p.updated_at),
            safety: SafetyView::new(&p.safety),
        }
    }
}

pub fn post(p: &Post) -> Value {
    serde_json::to_value(PostView::new(p)).unwrap_or(Value::Null)
}

/// A comment with its replies (serialised straight from the stored rows).
#[derive(Serialize)]
pub struct CommentView<'a> {
    id: &'a str,
    post_id: &'a str,
    parent_id: &'a Option<String>,
    content: &'a str,
    depth: i64,
    author: AuthorView<'a>,
    author_id: &'a str,
    author_name: &'a str,
    author_display_name: &'a str,
    upvotes: i64,
    downvotes: i64,
    score: i64,
    is_deleted: bool,
    created_at: Iso,
    updated_at: Iso,
    safety: SafetyView<'a>,
    replies: Vec<CommentView<'a>>,
}

impl<'a> CommentView<'a> {
    pub fn new(c: &'a Comment, replies: Vec<CommentView<'a>>) -> Self {
        Self {
            id: &c.uuid,
            post_id: &c.post_uuid,
            parent_id: &c.parent_uuid,
            content: if c.is_deleted {
                "[deleted]"
            } else {
                &c.content
            },
            depth: c.depth,
            author: AuthorView::new(&c.author),
            author_id: &c.author.uuid,
            author_name: &c.author.name,
            author_display_name: &c.author.name,
            upvotes: c.upvotes,
            downvotes: c.downvotes,
            score: c.score,
            is_deleted: c.is_deleted,
            created_at: Iso(c.created_at),
            updated_at: Iso(c.updated_at),
            safety: SafetyView::new(&c.safety),
            replies,
        }
    }
}

pub fn comment(c: &Comment, replies: Vec<CommentView<'_>>) -> Value {
    serde_json::to_value(CommentView::new(c, replies)).unwrap_or(Value::Null)
}

/// Arranges flat comments into trees under `roots`, siblings ordered by `key` (desc).
pub fn comment_tree<'a>(
    roots: &'a [Comment],
    replies: &'a [Comment],
    key: impl Fn(&Comment) -> f64 + Copy,
) -> Vec<CommentView<'a>> {
    use std::collections::HashMap;
    let mut children: HashMap<i64, Vec<&Comment>> = HashMap::new();
    for r in replies {
        if let Some(p) = r.parent_id {
            children.entry(p).or_default().push(r);
        }
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| key(b).total_cmp(&key(a)).then(b.id.cmp(&a.id)));
    }
    fn build<'a>(c: &'a Comment, children: &HashMap<i64, Vec<&'a Comment>>) -> CommentView<'a> {
        let kids = children
            .get(&c.id)
            .map(|v| v.iter().map(|k| build(k, children)).collect())
            .unwrap_or_default();
        CommentView::new(c, kids)
    }
    roots.iter().map(|r| build(r, &children)).collect()
}

/// `{"success": true, "<key>": <items>, ...extra}` serialised in one pass, for the large
/// listings (feeds, threads) where building a `Value` tree first cost more than the query.
pub fn listing(
    key: &str,
    items: &impl Serialize,
    extra: &Map<String, Value>,
) -> Result<axum::response::Response, crate::error::ApiError> {
    use axum::response::IntoResponse;
    let mut buf = Vec::with_capacity(32 * 1024);
    let put = |buf: &mut Vec<u8>, k: &str, v: &dyn erased::Ser| -> serde_json::Result<()> {
        buf.push(b',');
        serde_json::to_writer(&mut *buf, k)?;
        buf.push(b':');
        v.write(buf)
    };
    buf.extend_from_slice(b"{\"success\":true");
    put(&mut buf, key, items).map_err(crate::error::ApiError::internal)?;
    for (k, v) in extra {
        put(&mut buf, k, v).map_err(crate::error::ApiError::internal)?;
    }
    buf.push(b'}');
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        buf,
    )
        .into_response())
}

mod erased {
    /// Serialises into a buffer through a trait object (keys of one listing differ in type).
    pub trait Ser {
        fn write(&self, buf: &mut Vec<u8>) -> serde_json::Result<()>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn write(&self, buf: &mut Vec<u8>) -> serde_json::Result<()> {
            serde_json::to_writer(buf, self)
        }
    }
}

fn metadata(a: &Agent) -> Value {
    serde_json::from_str(&a.metadata).unwrap_or_else(|_| json!({}))
}

/// The agent as it sees itself (`/agents/me`).
///
/// `is_claimed` and `created_at` have no camelCase twin: KX reads `isClaimed` and
/// `createdAt` as aliases of them, and its serde parse refuses an agent that carries both
/// spellings as a duplicate field, while the snake_case names are the ones the typed
/// SDKs (Kotlin, Swift) require. `displayName` has no such reader and stays.
pub fn agent(a: &Agent) -> Value {
    json!({
        "id": a.uuid,
        "name": a.name,
        "display_name": a.name,
        "displayName": a.name,
        "description": a.description,
        "karma": a.karma,
        "follower_count": a.follower_count,
        "following_count": a.following_count,
        "posts_count": a.post_count,
        "comments_count": a.comment_count,
        "is_claimed": a.is_claimed(),
        "is_active": a.status != tidepool_core::model::agents::AgentStatus::Suspended,
        "status": a.status.as_str(),
        "avatar_url": a.avatar_url,
        "metadata": metadata(a),
        // Claimed agents are bound to an accountable human (the owner's identity stays private).
        // A verified owner is a human who claimed the agent in the web UI; an operator's
        // or development claim leaves the agent writing but with no one accountable.
        "owner": if a.is_claimed() && a.owner_id.is_some() { json!({"verified": true, "claimed_at": a.claimed_at.map(iso)}) } else { Value::Null },
        "created_at": iso(a.created_at),
        "last_active": iso(a.last_active),
        "claimed_at": a.claimed_at.map(iso),
        "stats": {"posts": a.post_count, "comments": a.comment_count, "subscriptions": a.subscription_count},
    })
}

pub fn submolt(s: &Submolt, your_role: Option<Role>) -> Value {
    let created_by = s
        .created_by
        .as_ref()
        .map(|(id, name)| json!({"id": id, "name": name}));
    json!({
        "id": s.uuid,
        "name": s.name,
        "display_name": s.display_name,
        "description": s.description,
        "subscriber_count": s.subscriber_count,
        "post_count": s.post_count,
        "allow_crypto": s.allow_crypto,
        "is_nsfw": false,
        "is_private": false,
        "avatar_url": null,
        "banner_url": null,
        "banner_color": s.banner_color,
        "theme_color": s.theme_color,
        "creator_id": s.created_by.as_ref().map(|(id, _)| id),
        "created_by": created_by,
        "created_at": iso(s.created_at),
        "last_activity_at": iso(s.last_activity_at),
        "your_role": your_role.map(Role::as_str),
    })
}

/// Paging fields shared by every list: the era-2 cursor and the era-1 offset.
pub fn page_fields<T>(page: &Page<T>, limit: i64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("count".into(), json!(page.items.len()));
    m.insert("has_more".into(), json!(page.has_more));
    m.insert(
        "next_cursor".into(),
        json!(page.next_cursor.as_ref().map(|c| c.encode())),
    );
    m.insert("next_offset".into(), json!(page.next_offset));
    m.insert(
        "pagination".into(),
        json!({"count": page.items.len(), "limit": limit, "offset": page.next_offset.map(|o| o.saturating_sub(i64::try_from(page.items.len()).unwrap_or(i64::MAX))), "hasMore": page.has_more}),
    );
    m
}

/// Merges `extra` into the object `base`.
pub fn with(mut base: Value, extra: Map<String, Value>) -> Value {
    if let Value::Object(m) = &mut base {
        m.extend(extra);
    }
    base
}
