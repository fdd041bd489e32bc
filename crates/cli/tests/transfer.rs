//! `tidepool export` and `tidepool import` through the real binary: a network written on
//! SQLite moves into PostgreSQL and exports to the same bytes; damaged exports and
//! non-empty targets are refused before anything is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use tidepool_store_pg::testing::TestDb;

fn tidepool(args: &[&str]) -> (bool, String) {
    common::run_with_stdin(
        Command::new(common::BIN).args(args).env("RUST_LOG", "warn"),
        "",
    )
}

/// A small network on SQLite: two agents, a submolt, posts, comments, a vote, a follow,
/// the notifications they made, some read, a report (and, from [`add_direct_messages`], a
/// conversation, an avatar and a webhook with its queue).
fn build_network(data: &Path) {
    let s = common::start(data, &["--auto-claim", "--rate-limits", "off"], "warn");
    let mut keys = Vec::new();
    for name in ["Mover", "Shaker"] {
        let (status, body) = common::api(
            &s.base,
            "POST",
            "/agents/register",
            None,
            json!({"name": name, "description": "moves between stores"}),
        );
        assert_eq!(status, 201, "{body}");
        keys.push(body["agent"]["api_key"].as_str().unwrap().to_owned());
    }
    let (status, _) = common::api(
        &s.base,
        "POST",
        "/submolts",
        Some(&keys[0]),
        json!({"name": "rockpools", "display_name": "Rock pools", "description": "rock pools"}),
    );
    assert_eq!(status, 201);
    let (_, post) = common::api(
        &s.base,
        "POST",
        "/posts",
        Some(&keys[0]),
        json!({"submolt_name": "rockpools", "title": "Anemones at low tide", "content": "Seen at dawn, École beach."}),
    );
    let id = post["post"]["id"].as_str().unwrap().to_owned();
    let (status, _) = common::api(
        &s.base,
        "POST",
        &format!("/posts/{id}/comments"),
        Some(&keys[1]),
        json!({"content": "Lovely ones"}),
    );
    assert_eq!(status, 201);
    assert_eq!(
        common::api(
            &s.base,
            "POST",
            &format!("/posts/{id}/upvote"),
            Some(&keys[1]),
            json!({})
        )
        .0,
        200
    );
    assert_eq!(
        common::api(
            &s.base,
            "POST",
            "/agents/Mover/follow",
            Some(&keys[1]),
            json!({})
        )
        .0,
        200
    );
    // Shaker reports the post: the export holds an open report.
    let (status, body) = common::api(
        &s.base,
        "POST",
        &format!("/posts/{id}/report"),
        Some(&keys[1]),
        json!({"reason": "Anemones are off topic here"}),
    );
    assert_eq!(status, 201, "{body}");
    // Mover was told of the comment, the upvote and the follow; it reads those about
    // the post, so the export holds read and unread notifications.
    let (status, body) = common::api(
        &s.base,
        "POST",
        &format!("/notifications/read-by-post/{id}"),
        Some(&keys[0]),
        json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["marked_read"], 2, "{body}");
    common::stop(s);
}

/// A direct message between the two agents of [`build_network`], written through the store
/// (the server was stopped): requested by Mover, accepted, answered by Shaker. The sealed
/// bytes are arbitrary here: the export carries them as they are. And Mover's avatar (no
/// upload route yet; the bytes are stored as given), and a webhook for Mover with a
/// delivery queued for it, attempted once and due again (a running server would try to
/// deliver it).
async fn add_direct_messages(data: &Path) {
    use tidepool_core::model::dms::{ConversationStatus, NewConversation, NewMessage};
    use tidepool_core::model::posts::Safety;
    use tidepool_store::Store;

    let store = tidepool_store_sqlite::SqliteStore::open(
        data,
        tidepool_store_sqlite::StoreOptions::default(),
    )
    .unwrap();
    let mover = store.agent_by_name("mover").await.unwrap().unwrap();
    let shaker = store.agent_by_name("shaker").await.unwrap().unwrap();
    let message = |sender: i64, sealed: &[u8], now: i64| NewMessage {
        uuid: tidepool_store::new_public_id(),
        sender_id: sender,
        sealed: sealed.to_vec(),
        needs_human_input: false,
        safety: Safety::allow(),
        now,
    };
    let (conversation, _) = store
        .request_conversation(NewConversation {
            uuid: tidepool_store::new_public_id(),
            initiator_id: mover.id,
            recipient_id: shaker.id,
            sealed_key: vec![7, 0, 255, 1],
            first: message(mover.id, &[0, 1, 2, 250, 255], 1_772_366_400_000),
        })
        .await
        .unwrap();
    store
        .set_conversation_status(
            conversation.id,
            &[ConversationStatus::Pending],
            ConversationStatus::Active,
        )
        .await
        .unwrap();
    store
        .send_message(
            conversation.id,
            message(shaker.id, b"\x00sealed reply\xff", 1_772_366_401_000),
        )
        .await
        .unwrap();
    let uuid = tidepool_store::new_public_id();
    store
        .put_avatar(
            mover.id,
            uuid.clone(),
            b"\x89PNG\r\n\x1a\n\x00\xff".to_vec(),
            format!("http://127.0.0.1/media/avatars/{uuid}.png"),
            1_772_366_402_000,
        )
        .await
        .unwrap();
    store
        .set_webhook(
            mover.id,
            "https://mover.example/hook".into(),
            b"\x00sealed secret\xff".to_vec(),
            1_772_366_403_000,
        )
        .await
        .unwrap();
    store
        .add_notifications(vec![tidepool_core::model::notifications::NewNotification {
            agent_id: mover.id,
            kind: tidepool_core::model::notifications::NotificationKind::Follow,
            actor_id: Some(shaker.id),
            post_id: None,
            comment_id: None,
            message: "Shaker follows you".into(),
            now: 1_772_366_404_000,
        }])
        .await
        .unwrap();
    let claimed = store
        .claim_deliveries(1_772_366_404_000, 1_772_366_405_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .finish_delivery(
            claimed[0].id,
            claimed[0].next_attempt_at,
            tidepool_core::model::webhooks::DeliveryOutcome::Retry {
                at: 1_772_366_406_000,
                error: "the receiver answered 503".into(),
            },
            1_772_366_404_500,
        )
        .await
        .unwrap();
    store.shutdown();
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_moves_from_sqlite_to_postgres_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let data = a.clone();
    tokio::task::spawn_blocking(move || build_network(&data))
        .await
        .unwrap();
    add_direct_messages(&a).await;
    let db = TestDb::new().await;
    let url = db.url().to_owned();
    let d = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let (e1, e2) = (d.join("e1"), d.join("e2"));
        let (ok, out) = tidepool(&[
            "export",
            "--data-dir",
            a.to_str().unwrap(),
            "--out",
            e1.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        assert!(out.contains("exported"), "{out}");
        for table in [
            "dm_conversations",
            "dm_messages",
            "notifications",
            "post_reports",
            "avatars",
            "webhooks",
            "webhook_deliveries",
        ] {
            let rows = std::fs::read_to_string(e1.join(format!("{table}.jsonl"))).unwrap();
            assert!(!rows.is_empty(), "no {table} exported");
        }
        let (ok, out) = tidepool(&[
            "import",
            "--from",
            e1.to_str().unwrap(),
            "--data-dir",
            b.to_str().unwrap(),
            "--database",
            &url,
        ]);
        assert!(ok, "{out}");
        assert!(out.contains("verified"), "{out}");
        let (ok, out) = tidepool(&[
            "export",
            "--out",
            e2.to_str().unwrap(),
            "--data-dir",
            b.to_str().unwrap(),
            "--database",
            &url,
        ]);
        assert!(ok, "{out}");
        assert_eq!(files(&e1), files(&e2), "the two exports differ");

        // Into a store that holds a network: refused.
        let (ok, out) = tidepool(&[
            "import",
            "--from",
            e1.to_str().unwrap(),
            "--data-dir",
            b.to_str().unwrap(),
            "--database",
            &url,
        ]);
        assert!(!ok);
        assert!(out.contains("already holds a network"), "{out}");
        // Exporting over an export: refused.
        let (ok, out) = tidepool(&[
            "export",
            "--data-dir",
            a.to_str().unwrap(),
            "--out",
            e1.to_str().unwrap(),
        ]);
        assert!(!ok);
        assert!(out.contains("not empty"), "{out}");

        // A damaged export is refused before anything is written.
        let posts = e1.join("posts.jsonl");
        let text = std::fs::read_to_string(&posts).unwrap();
        std::fs::write(&posts, text.replace("Anemones", "Anenomes")).unwrap();
        let c = d.join("c");
        let (ok, out) = tidepool(&[
            "import",
            "--from",
            e1.to_str().unwrap(),
            "--data-dir",
            c.to_str().unwrap(),
        ]);
        assert!(!ok);
        assert!(out.contains("damaged"), "{out}");
        let (ok, out) = tidepool(&[
            "export",
            "--data-dir",
            c.to_str().unwrap(),
            "--out",
            d.join("e3").to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let agents = std::fs::read_to_string(d.join("e3").join("agents.jsonl")).unwrap();
        assert!(agents.is_empty(), "nothing was imported");
    })
    .await
    .unwrap();
}
