//! Paging numbers and cursors come from the client: none may wrap around, bypass the
//! offset cap, or send a client paging forever, and a cursor is only a position in the
//! listing (and sort) that issued it.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::{Agent, Reply, TestServer};

/// A cursor as the server encodes them: base64url JSON without padding.
fn cursor(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

/// Every paged listing, each with the query string it is reached with (ending in `?` or `&`).
fn listings(post: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sort in ["hot", "new", "top", "rising"] {
        out.push(format!("/api/v1/posts?sort={sort}&"));
        out.push(format!("/api/v1/submolts/general/feed?sort={sort}&"));
        out.push(format!("/api/v1/feed?sort={sort}&"));
    }
    out.push("/api/v1/posts?author=Pager&".to_owned());
    for sort in ["best", "top", "new", "old", "controversial"] {
        out.push(format!("/api/v1/posts/{post}/comments?sort={sort}&"));
    }
    out.push(format!("/api/v1/posts/{post}?"));
    out.push("/api/v1/search?q=tide&".to_owned());
    for sort in ["popular", "new", "alphabetical"] {
        out.push(format!("/api/v1/submolts?sort={sort}&"));
    }
    out
}

/// A listing's items, whichever key it lists them under (search's `results` before its
/// open-source `posts` grouping).
fn items(body: &Value) -> &Vec<Value> {
    ["results", "posts", "comments", "submolts"]
        .iter()
        .find_map(|k| body[*k].as_array())
        .unwrap_or_else(|| panic!("no list in {body}"))
}

async fn setup(s: &TestServer) -> (Agent, String) {
    let a = s.register("Pager").await;
    let b = s.register("Voter").await;
    s.post(
        "/api/v1/submolts/general/subscribe",
        Some(&a.key),
        serde_json::json!({}),
    )
    .await
    .ok();
    let mut first = String::new();
    for i in 0..5 {
        let p = s
            .create_post(&a, "general", &format!("tide post {i}"), "the tide is high")
            .await;
        if i == 0 {
            first = p["id"].as_str().unwrap().to_owned();
        }
    }
    for i in 0..5 {
        s.comment(&b, &first, &format!("tide comment {i}"), None)
            .await;
    }
    (a, first)
}

#[tokio::test]
async fn huge_page_and_offset_values_are_refused_or_bounded_on_every_listing() {
    let s = TestServer::start().await;
    let (a, post) = setup(&s).await;
    for base in listings(&post) {
        for q in [
            "page=9223372036854775807",
            "page=9223372036854775807&limit=100",
            "page=9223372036854775808",
            "page=4611686018427387905&limit=2",
            "page=100000000000000000000000000",
            "page=100002&limit=1",
            "offset=9223372036854775807",
            "offset=18446744073709551616",
            "offset=100001",
        ] {
            let url = format!("{base}{q}");
            let r = s.get(&url, Some(&a.key)).await;
            // Wrapped arithmetic shows as a 200 (a negative offset reads as the first page)
            // or, in a debug build, as a panic.
            let e = r.err(400);
            assert!(
                e["error"].as_str().unwrap().contains("too large"),
                "{url}: {e}"
            );
        }
        // The deepest offset still served ((100001 - 1) * 1 is at the cap, not over it)
        // answers an empty, final page.
        for q in [
            "offset=100000",
            "page=1001&limit=100",
            "page=100001&limit=1",
        ] {
            let url = format!("{base}{q}");
            let r = s.get(&url, Some(&a.key)).await;
            assert!(items(r.ok()).is_empty(), "{url}: {}", r.body);
            // (`GET /posts/{id}` carries its comment page without the paging fields.)
            assert_ne!(r.body["has_more"], true, "{url}");
            assert_eq!(r.body["next_cursor"], Value::Null, "{url}");
        }
        // A limit too large for any integer is clamped like any other over the maximum.
        let url = format!("{base}limit=99999999999999999999999");
        s.get(&url, Some(&a.key)).await.ok();
    }
}

#[tokio::test]
async fn forged_cursors_are_invalid_not_a_first_page() {
    let s = TestServer::start().await;
    let (a, post) = setup(&s).await;
    let forged = [
        r#"{"x":1}"#,
        r#"{}"#,
        r#"{"n":1}"#,
        // A keyset position that does not say which order it belongs to.
        r#"{"k":1,"i":1}"#,
        r#"{"k":1,"i":1,"s":"nowhere"}"#,
        r#"{"k":1,"i":1,"o":2,"s":"posts.new"}"#,
        // Offsets past anything a listing serves, and past i64.
        r#"{"o":100001}"#,
        r#"{"o":9223372036854775808}"#,
        r#"{"o":18446744073709551615}"#,
        r#"{"s":"search","o":9223372036854775808}"#,
        // A `now` no listing was computed at.
        r#"{"k":1,"i":1,"n":9223372036854775807,"s":"posts.rising"}"#,
        r#"{"k":1,"i":1,"n":-9223372036854775808,"s":"posts.rising"}"#,
    ];
    for base in listings(&post) {
        for json in forged {
            let url = format!("{base}cursor={}", cursor(json));
            let r = s.get(&url, Some(&a.key)).await;
            assert_eq!(r.err(400)["error"], "Invalid cursor", "{url} ({json})");
        }
    }
}

#[tokio::test]
async fn a_cursor_from_one_sort_or_listing_is_refused_by_another() {
    let s = TestServer::start().await;
    let (a, post) = setup(&s).await;
    s.post(
        "/api/v1/submolts",
        Some(&a.key),
        serde_json::json!({"name": "second", "display_name": "Second"}),
    )
    .await
    .ok();
    let next = |r: Reply| -> String {
        r.ok()["next_cursor"]
            .as_str()
            .unwrap_or_else(|| panic!("no next_cursor: {}", r.body))
            .to_owned()
    };
    let mut issued: Vec<(String, String)> = Vec::new();
    for sort in ["hot", "new", "top"] {
        let r = s
            .get(&format!("/api/v1/posts?sort={sort}&limit=1"), None)
            .await;
        issued.push((format!("/api/v1/posts?sort={sort}&"), next(r)));
    }
    for sort in ["best", "new", "old"] {
        let r = s
            .get(
                &format!("/api/v1/posts/{post}/comments?sort={sort}&limit=1"),
                None,
            )
            .await;
        issued.push((
            format!("/api/v1/posts/{post}/comments?sort={sort}&"),
            next(r),
        ));
    }
    for sort in ["popular", "new", "alphabetical"] {
        let r = s
            .get(&format!("/api/v1/submolts?sort={sort}&limit=1"), None)
            .await;
        issued.push((format!("/api/v1/submolts?sort={sort}&"), next(r)));
    }
    let r = s.get("/api/v1/search?q=tide&limit=1", None).await;
    issued.push(("/api/v1/search?q=tide&".to_owned(), next(r)));

    for (home, c) in &issued {
        // At home the cursor continues the listing.
        let r = s.get(&format!("{home}limit=1&cursor={c}"), None).await;
        assert_eq!(items(r.ok()).len(), 1, "{home}");
        for (other, _) in &issued {
            if other == home {
                continue;
            }
            let r = s.get(&format!("{other}limit=1&cursor={c}"), None).await;
            assert_eq!(
                r.err(400)["error"],
                "Invalid cursor",
                "cursor of {home} used on {other}"
            );
        }
    }
    // A post cursor means the same in every post listing of that sort.
    let (_, new_cursor) = &issued[1];
    s.get(
        &format!("/api/v1/submolts/general/feed?sort=new&cursor={new_cursor}"),
        None,
    )
    .await
    .ok();
    s.get(
        &format!("/api/v1/feed?sort=new&cursor={new_cursor}"),
        Some(&a.key),
    )
    .await
    .ok();
    s.get(
        &format!("/api/v1/submolts/general/feed?sort=hot&cursor={new_cursor}"),
        None,
    )
    .await
    .err(400);
}

#[tokio::test]
async fn moltbook_offset_cursors_are_offsets() {
    let s = TestServer::start().await;
    setup(&s).await;
    let all = s.get("/api/v1/posts?sort=new", None).await;
    let all = items(all.ok()).clone();
    // skill 1.12's example cursor `eyJvZmZzZXQiOjIwfQ` is {"offset":20}.
    let r = s
        .get(
            &format!(
                "/api/v1/posts?sort=new&cursor={}",
                cursor(r#"{"offset":2}"#)
            ),
            None,
        )
        .await;
    assert_eq!(items(r.ok()), &all[2..].to_vec());
    let r = s
        .get("/api/v1/posts?sort=new&cursor=eyJvZmZzZXQiOjIwfQ", None)
        .await;
    assert!(items(r.ok()).is_empty());
}

#[tokio::test]
async fn paging_search_by_cursor_reaches_the_end() {
    let s = TestServer::start().await;
    setup(&s).await;
    // 5 posts and 5 comments match "tide".
    let mut seen = HashSet::new();
    let mut offsets = Vec::new();
    let mut url = "/api/v1/search?q=tide&limit=3".to_owned();
    for _ in 0..10 {
        let r = s.get(&url, None).await;
        let body = r.ok();
        for item in items(body) {
            assert!(
                seen.insert(item["id"].as_str().unwrap().to_owned()),
                "repeated {item}"
            );
        }
        match body["next_cursor"].as_str() {
            Some(c) => {
                let o = body["next_offset"].as_i64().unwrap();
                assert!(
                    offsets.last().is_none_or(|last| o > *last),
                    "{offsets:?} {o}"
                );
                offsets.push(o);
                assert_eq!(body["has_more"], true);
                url = format!("/api/v1/search?q=tide&limit=3&cursor={c}");
            }
            None => {
                assert_eq!(body["has_more"], false);
                assert_eq!(body["next_offset"], Value::Null);
                assert_eq!(seen.len(), 10);
                return;
            }
        }
    }
    panic!("search paging did not end: offsets {offsets:?}");
}
