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
        post_type: tidepool_core::model::posts::PostType::Text,
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

/// The inverted index finds exactly the items holding every word, however the words'
/// frequencies differ (a rare word beside a common one, two common words, a word in one
/// clump of ids), keeps to the newest candidates, and forgets deleted items.
#[tokio::test]
async fn candidates_are_exact_for_rare_and_common_words() {
    let db = TestDb::new().await;
    let store = PgStore::open(&db.config()).await.unwrap();
    let a = store
        .register_agent(NewAgent {
            name: "Indexer".into(),
            name_key: "indexer".into(),
            description: String::new(),
            key_hash: b"k2".to_vec(),
            claim_token_hash: b"c2".to_vec(),
            claim_expires_at: 0,
            verification_code_hash: b"v2".to_vec(),
            auto_claim: true,
            now: 1,
        })
        .await
        .unwrap();
    let general = store.submolt_by_name("general").await.unwrap().unwrap().id;
    // Item i holds: "common" always, "half" when i is even, "rare" when i % 97 == 0,
    // "clump" when 1000 <= i < 1040, "third" when i % 3 == 0.
    const N: usize = 2_600;
    let words_of = |i: usize| {
        let mut w = vec!["common"];
        if i.is_multiple_of(2) {
            w.push("half");
        }
        if i.is_multiple_of(97) {
            w.push("rare");
        }
        if (1000..1040).contains(&i) {
            w.push("clump");
        }
        if i.is_multiple_of(3) {
            w.push("third");
        }
        w.join(" ")
    };
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let p = store
            .create_post(NewPost {
                author_id: a.id,
                submolt_id: general,
                title: format!("item {i}"),
                content: Some(words_of(i)),
                url: None,
                post_type: tidepool_core::model::posts::PostType::Text,
                safety: Safety::allow(),
                now: 1,
            })
            .await
            .unwrap();
        ids.push(p.id);
    }
    let holds = |i: usize, q: &str| {
        let w = words_of(i);
        q.split(' ').all(|x| w.split(' ').any(|y| y == x))
    };
    let search = |q: &'static str, limit: i64| {
        let store = &store;
        async move {
            let mut got: Vec<i64> = store
                .search_posts(q, limit, false)
                .await
                .unwrap()
                .into_iter()
                .map(|(p, _)| p.id)
                .collect();
            got.sort_unstable();
            got
        }
    };
    // Fewer matches than the limit: exactly the matching items.
    for q in [
        "rare",
        "rare common",
        "common rare half",
        "clump half",
        "clump third rare",
        "rare third",
    ] {
        let want: Vec<i64> = (0..N).filter(|&i| holds(i, q)).map(|i| ids[i]).collect();
        assert_eq!(search(q, 500).await, want, "{q}");
    }
    assert!(search("clump nowhere", 500).await.is_empty());
    // More matches than the candidate window: every hit holds every word, and comes from
    // the newest 2,000 matches.
    for q in ["common", "half common", "third half"] {
        let matching: Vec<usize> = (0..N).filter(|&i| holds(i, q)).collect();
        let newest: Vec<i64> = matching.iter().rev().take(2_000).map(|&i| ids[i]).collect();
        let got = search(q, 100).await;
        assert_eq!(got.len(), 100.min(matching.len()), "{q}");
        for id in &got {
            assert!(
                newest.contains(id),
                "{q}: {id} is not among the newest matches"
            );
        }
    }
    // A deleted item leaves search.
    store.delete_post(ids[97]).await.unwrap();
    let want: Vec<i64> = (0..N)
        .filter(|&i| i != 97 && holds(i, "rare"))
        .map(|i| ids[i])
        .collect();
    assert_eq!(search("rare", 500).await, want);
}
