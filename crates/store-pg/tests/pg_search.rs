//! Search on PostgreSQL finds the words SQLite's FTS5 finds: dotted names, code and
//! version numbers split into words, case and accents folded whatever the database locale.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tidepool_core::model::agents::NewAgent;
use tidepool_core::model::comments::NewComment;
use tidepool_core::model::posts::{NewPost, Safety};
use tidepool_store::Store;
use tidepool_store_pg::PgStore;
use tidepool_store_pg::testing::TestDb;

#[tokio::test]
async fn words_are_split_and_folded_like_fts5() {
    let db = TestDb::new().await;
    let store = PgStore::open(&db.config()).await.unwrap();
    let a = store
        .register_agent(NewAgent {
            name: "Searcher".into(),
            name_key: "searcher".into(),
            description: String::new(),
            key_hash: b"k".to_vec(),
            claim_token_hash: b"c".to_vec(),
            claim_expires_at: 0,
            verification_code_hash: b"v".to_vec(),
            auto_claim: true,
            now: 1,
        })
        .await
        .unwrap();
    let general = store.submolt_by_name("general").await.unwrap().unwrap().id;
    let post = |title: &str, content: &str, url: Option<&str>| NewPost {
        author_id: a.id,
        submolt_id: general,
        title: title.into(),
        content: Some(content.into()),
        url: url.map(Into::into),
        post_type: "text".into(),
        safety: Safety::allow(),
        now: 1,
    };
    let p1 = store
        .create_post(post(
            "Notes",
            "see tidepool.dev for foo.bar() in 1.2.3",
            None,
        ))
        .await
        .unwrap();
    let p2 = store
        .create_post(post(
            "École d'été",
            "ÉCOLE",
            Some("https://reef.example/anemone"),
        ))
        .await
        .unwrap();
    store
        .create_comment(NewComment {
            post_id: p1.id,
            author_id: a.id,
            parent_uuid: None,
            content: "end.Next sentence".into(),
            safety: Safety::allow(),
            now: 1,
        })
        .await
        .unwrap();
    let found = |q: &'static str| {
        let store = &store;
        async move {
            store
                .search_posts(q, 10, false)
                .await
                .unwrap()
                .into_iter()
                .map(|(p, _)| p.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("tidepool").await, vec![p1.id]);
    assert_eq!(found("tidepool.dev").await, vec![p1.id]);
    assert_eq!(found("bar").await, vec![p1.id]);
    assert_eq!(found("2").await, vec![p1.id]);
    assert_eq!(found("ecole").await, vec![p2.id]);
    assert_eq!(found("ÉTÉ").await, vec![p2.id]);
    assert_eq!(
        found("anemone").await,
        vec![p2.id],
        "the url is searched too"
    );
    let hits = store.search_comments("next", 10, false).await.unwrap();
    assert_eq!(hits.len(), 1);
}
