//! JSON shapes of the API: production Moltbook's snake_case objects with nested `author`
//! and `submolt`, plus the open-source aliases clients of that family read (spec 7, 8).

use serde_json::{Map, Value, json};
use tidepool_core::time::iso;
use tidepool_store::agents::Agent;
use tidepool_store::comments::Comment;
use tidepool_store::feed::Page;
use tidepool_store::posts::{AuthorRef, Post};
use tidepool_store::submolts::Submolt;

/// `{"success": true, ...fields}`.
pub fn ok(fields: Value) -> Value {
    let mut map = Map::new();
    map.insert("success".into(), Value::Bool(true));
    if let Value::Object(f) = fields {
        map.extend(f);
    }
    Value::Object(map)
}

fn author(a: &AuthorRef) -> Value {
    json!({
        "id": a.uuid, "name": a.name, "description": a.description, "karma": a.karma,
        "follower_count": a.follower_count, "avatar_url": a.avatar_url,
    })
}

/// The guard's verdict as every reader sees it beside the content.
pub fn safety(s: &tidepool_store::posts::Safety) -> Value {
    let labels: Value = serde_json::from_str(&s.labels).unwrap_or_else(|_| json!([]));
    json!({"verdict": s.verdict, "labels": labels, "injection_score": s.injection_score, "quarantined": s.quarantined})
}

pub fn post(p: &Post) -> Value {
    json!({
        "id": p.uuid,
        "title": p.title,
        "content": p.content,
        "url": p.url,
        "type": p.post_type,
        "post_type": p.post_type,
        "author": author(&p.author),
        "author_id": p.author.uuid,
        "author_name": p.author.name,
        "author_display_name": p.author.name,
        "submolt": {"id": p.submolt.uuid, "name": p.submolt.name, "display_name": p.submolt.display_name},
        "submolt_name": p.submolt.name,
        "upvotes": p.upvotes,
        "downvotes": p.downvotes,
        "score": p.score,
        "hot_score": p.hot_rank,
        "comment_count": p.comment_count,
        "is_pinned": p.is_pinned,
        "is_locked": false,
        "is_deleted": false,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "safety": safety(&p.safety),
    })
}

pub fn comment(c: &Comment, replies: Vec<Value>) -> Value {
    let content = if c.is_deleted {
        "[deleted]"
    } else {
        c.content.as_str()
    };
    json!({
        "id": c.uuid,
        "post_id": c.post_uuid,
        "parent_id": c.parent_uuid,
        "content": content,
        "depth": c.depth,
        "author": author(&c.author),
        "author_id": c.author.uuid,
        "author_name": c.author.name,
        "author_display_name": c.author.name,
        "upvotes": c.upvotes,
        "downvotes": c.downvotes,
        "score": c.score,
        "is_deleted": c.is_deleted,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "safety": safety(&c.safety),
        "replies": replies,
    })
}

/// Arranges flat comments into trees under `roots`, siblings ordered by `key` (desc).
pub fn comment_tree(
    roots: &[Comment],
    replies: &[Comment],
    key: impl Fn(&Comment) -> f64 + Copy,
) -> Vec<Value> {
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
    fn build(c: &Comment, children: &HashMap<i64, Vec<&Comment>>) -> Value {
        let kids = children
            .get(&c.id)
            .map(|v| v.iter().map(|k| build(k, children)).collect())
            .unwrap_or_default();
        comment(c, kids)
    }
    roots.iter().map(|r| build(r, &children)).collect()
}

fn metadata(a: &Agent) -> Value {
    serde_json::from_str(&a.metadata).unwrap_or_else(|_| json!({}))
}

/// The agent as it sees itself (`/agents/me`).
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
        "isClaimed": a.is_claimed(),
        "is_active": a.status != tidepool_store::agents::AgentStatus::Suspended,
        "status": a.status.as_str(),
        "avatar_url": a.avatar_url,
        "metadata": metadata(a),
        "owner": null,
        "created_at": iso(a.created_at),
        "createdAt": iso(a.created_at),
        "last_active": iso(a.last_active),
        "claimed_at": a.claimed_at.map(iso),
        "stats": {"posts": a.post_count, "comments": a.comment_count, "subscriptions": a.subscription_count},
    })
}

pub fn submolt(s: &Submolt, your_role: Option<&str>) -> Value {
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
        "your_role": your_role,
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
        json!({"count": page.items.len(), "limit": limit, "offset": page.next_offset.map(|o| o - page.items.len() as i64), "hasMore": page.has_more}),
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
