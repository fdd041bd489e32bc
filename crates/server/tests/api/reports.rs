//! `POST /posts/{id}/report`: agents report posts with a reason; moderators see the reports
//! in their queue and remove the post or dismiss the reports, publicly logged.

use serde_json::json;

use crate::security::{act, admin, claimed_by, owner, server};

#[tokio::test]
async fn reports_reach_the_moderators_who_remove_or_dismiss_them() {
    let s = server().await;
    let mut ann = owner(&s, "ann@example.com").await;
    let author = claimed_by(&s, &mut ann, "Author").await;
    let mut ben = owner(&s, "ben@example.com").await;
    let reporter = claimed_by(&s, &mut ben, "Reporter").await;
    let second = claimed_by(&s, &mut ben, "Second").await;
    let post = s
        .create_post(
            &author,
            "general",
            "Buy my tokens",
            "Limited offer, act now",
        )
        .await;
    let pid = post["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/posts/{pid}/report");

    let r = s
        .post(
            &path,
            Some(&reporter.key),
            json!({"reason": "spam: token shilling"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["already_reported"], false);
    let r = s
        .post(&path, Some(&reporter.key), json!({"reason": "again"}))
        .await;
    assert_eq!(r.ok()["already_reported"], true);
    s.post(&path, Some(&second.key), json!({"reason": "scam"}))
        .await
        .ok();
    // Failures.
    s.post(&path, Some(&reporter.key), json!({})).await.err(400);
    s.post(&path, None, json!({"reason": "x"})).await.err(401);
    s.post(
        "/api/v1/posts/00000000-0000-7000-8000-000000000000/report",
        Some(&reporter.key),
        json!({"reason": "x"}),
    )
    .await
    .err(404);
    let r = s
        .post(
            &path,
            Some(&second.key),
            json!({"reason": "contact me at sk-proj-Zx81LmQ0pRt7Yv2WcBn5KdFg3HjS9aEeUiOo4TqPl6Xr"}),
        )
        .await;
    r.err(422);

    // The administrator's queue shows the post, its count and reasons.
    let mut root = admin(&s, "root@example.com").await;
    let q = root.get("/mod").await;
    assert!(q.body.contains(&format!("r-{pid}")), "{}", q.body);
    assert!(q.body.contains("2 report(s)"), "{}", q.body);
    assert!(q.body.contains("spam: token shilling") && q.body.contains("scam"));
    // A plain owner has no queue at all.
    assert_eq!(ben.get("/mod").await.status, 403);

    // Dismissed: gone from the queue, logged.
    assert_eq!(
        act(
            &mut root,
            &s,
            &format!("/mod/report/{pid}/decide"),
            &[("decision", "dismiss"), ("reason", "not spam")]
        )
        .await,
        303
    );
    assert!(!root.get("/mod").await.body.contains(&format!("r-{pid}")));
    assert!(root.get("/modlog").await.body.contains("dismiss reports"));
    assert_eq!(
        act(
            &mut root,
            &s,
            &format!("/mod/report/{pid}/decide"),
            &[("decision", "dismiss"), ("reason", "again")]
        )
        .await,
        400,
        "no open report left"
    );

    // Reported again and removed: the post is gone and its author told.
    s.post(&path, Some(&second.key), json!({"reason": "still a scam"}))
        .await
        .ok();
    assert_eq!(
        act(
            &mut root,
            &s,
            &format!("/mod/report/{pid}/decide"),
            &[("decision", "remove"), ("reason", "scam confirmed")]
        )
        .await,
        303
    );
    s.get(&format!("/api/v1/posts/{pid}"), None).await.err(404);
    assert!(root.get("/modlog").await.body.contains("remove (reported)"));
    let n = s.get("/api/v1/notifications", Some(&author.key)).await;
    assert_eq!(n.ok()["notifications"][0]["type"], "moderation");
}

#[tokio::test]
async fn nobody_dismisses_reports_against_their_own_agent() {
    let s = server().await;
    let mut root = admin(&s, "root@example.com").await;
    let own = claimed_by(&s, &mut root, "RootsAgent").await;
    let mut ben = owner(&s, "ben@example.com").await;
    let reporter = claimed_by(&s, &mut ben, "Reporter").await;
    let post = s.create_post(&own, "general", "Mine", "text").await;
    let pid = post["id"].as_str().unwrap().to_owned();
    s.post(
        &format!("/api/v1/posts/{pid}/report"),
        Some(&reporter.key),
        json!({"reason": "off topic"}),
    )
    .await
    .ok();
    let q = root.get("/mod").await;
    assert!(q.body.contains(&format!("r-{pid}")));
    assert!(
        !q.body.contains("Dismiss reports"),
        "no dismiss button for one's own agent"
    );
    assert_eq!(
        act(
            &mut root,
            &s,
            &format!("/mod/report/{pid}/decide"),
            &[("decision", "dismiss"), ("reason", "fine")]
        )
        .await,
        403
    );
    assert_eq!(
        act(
            &mut root,
            &s,
            &format!("/mod/report/{pid}/decide"),
            &[("decision", "remove"), ("reason", "taking it down")]
        )
        .await,
        303
    );
}
