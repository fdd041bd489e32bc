use reqwest::Method;
use serde_json::json;

use crate::TestServer;

#[tokio::test]
async fn defaults_exist_and_listing_sorts() {
    let s = TestServer::start().await;
    let list = s.get("/api/v1/submolts?sort=alphabetical", None).await;
    let names: Vec<&str> = list.ok()["submolts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["announcements", "general", "introductions"]);
    let first = &list.body["submolts"][0];
    for f in [
        "id",
        "name",
        "display_name",
        "description",
        "subscriber_count",
        "post_count",
        "allow_crypto",
        "created_at",
        "your_role",
    ] {
        assert!(first.get(f).is_some(), "{f} missing");
    }
    let a = s.register("Subber").await;
    s.post(
        "/api/v1/submolts/introductions/subscribe",
        Some(&a.key),
        json!({}),
    )
    .await
    .ok();
    let pop = s.get("/api/v1/submolts?sort=popular", None).await;
    assert_eq!(pop.body["submolts"][0]["name"], "introductions");
    s.get("/api/v1/submolts?sort=new", None).await.ok();
    // An unknown sort is popular, as on Moltbook.
    let bogus = s.get("/api/v1/submolts?sort=bogus", None).await;
    assert_eq!(bogus.ok()["submolts"][0]["name"], "introductions");
    let page = s
        .get("/api/v1/submolts?sort=alphabetical&limit=2", None)
        .await;
    assert_eq!(page.body["has_more"], true);
    let cur = page.body["next_cursor"].as_str().unwrap().to_owned();
    let next = s
        .get(
            &format!("/api/v1/submolts?sort=alphabetical&limit=2&cursor={cur}"),
            None,
        )
        .await;
    assert_eq!(next.body["submolts"][0]["name"], "introductions");
}

#[tokio::test]
async fn create_get_subscribe_and_settings() {
    let s = TestServer::start().await;
    let owner = s.register("Founder").await;
    let other = s.register("Visitor").await;
    let r = s
        .post(
            "/api/v1/submolts",
            Some(&owner.key),
            json!({"name": "Reef-Talk", "display_name": "Reef Talk", "description": "reefs"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_eq!(r.body["submolt"]["name"], "reef-talk");
    assert_eq!(r.body["submolt"]["created_by"]["name"], "Founder");
    s.post(
        "/api/v1/submolts",
        Some(&owner.key),
        json!({"name": "reef-talk"}),
    )
    .await
    .err(409);
    s.post(
        "/api/v1/submolts",
        Some(&owner.key),
        json!({"name": "admin"}),
    )
    .await
    .err(400);
    s.post(
        "/api/v1/submolts",
        Some(&owner.key),
        json!({"name": "bad name!"}),
    )
    .await
    .err(400);
    s.post(
        "/api/v1/submolts",
        Some(&owner.key),
        json!({"description": "no name"}),
    )
    .await
    .err(400);

    let g = s.get("/api/v1/submolts/reef-talk", Some(&owner.key)).await;
    assert_eq!(g.ok()["your_role"], "owner");
    assert_eq!(g.body["submolt"]["your_role"], "owner");
    assert_eq!(g.body["submolt"]["subscriber_count"], 1);
    assert_eq!(g.body["is_subscribed"], true);
    assert_eq!(
        s.get("/api/v1/submolts/REEF-TALK", Some(&other.key))
            .await
            .body["your_role"],
        json!(null)
    );
    s.get("/api/v1/submolts/nowhere", None).await.err(404);

    assert_eq!(
        s.post(
            "/api/v1/submolts/reef-talk/subscribe",
            Some(&other.key),
            json!({})
        )
        .await
        .ok()["action"],
        "subscribed"
    );
    assert_eq!(
        s.post(
            "/api/v1/submolts/reef-talk/subscribe",
            Some(&other.key),
            json!({})
        )
        .await
        .ok()["action"],
        "already_subscribed"
    );
    assert_eq!(
        s.get("/api/v1/submolts/reef-talk", None).await.body["submolt"]["subscriber_count"],
        2
    );
    assert_eq!(
        s.delete("/api/v1/submolts/reef-talk/subscribe", Some(&other.key))
            .await
            .ok()["action"],
        "unsubscribed"
    );
    assert_eq!(
        s.delete("/api/v1/submolts/reef-talk/subscribe", Some(&other.key))
            .await
            .ok()["action"],
        "not_subscribed"
    );

    let ok = patch(
        &s,
        &owner.key,
        json!({"description": "all about reefs", "banner_color": "#1a2b3c"}),
    )
    .await;
    assert_eq!(ok.ok()["submolt"]["description"], "all about reefs");
    assert_eq!(ok.body["submolt"]["banner_color"], "#1a2b3c");
    patch(&s, &other.key, json!({"description": "hijack"}))
        .await
        .err(403);
    patch(&s, &owner.key, json!({"theme_color": "red"}))
        .await
        .err(400);
    patch(&s, &owner.key, json!({})).await.err(400);
    assert_eq!(
        s.get("/api/v1/submolts/reef-talk", None).await.body["submolt"]["description"],
        "all about reefs"
    );
}

async fn patch(s: &TestServer, key: &str, body: serde_json::Value) -> crate::Reply {
    s.call(
        Method::PATCH,
        "/api/v1/submolts/reef-talk/settings",
        Some(key),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn moderators_are_managed_by_the_owner() {
    let s = TestServer::start().await;
    let owner = s.register("Boss").await;
    let m = s.register("Helper").await;
    let x = s.register("Outsider").await;
    s.post(
        "/api/v1/submolts",
        Some(&owner.key),
        json!({"name": "modded", "display_name": "Modded"}),
    )
    .await;
    s.post(
        "/api/v1/submolts/modded/moderators",
        Some(&x.key),
        json!({"agent_name": "Helper"}),
    )
    .await
    .err(403);
    let add = s
        .post(
            "/api/v1/submolts/modded/moderators",
            Some(&owner.key),
            json!({"agent_name": "helper", "role": "moderator"}),
        )
        .await;
    assert_eq!(add.ok()["action"], "added");
    s.post(
        "/api/v1/submolts/modded/moderators",
        Some(&owner.key),
        json!({"agent_name": "ghost"}),
    )
    .await
    .err(404);
    s.post(
        "/api/v1/submolts/modded/moderators",
        Some(&owner.key),
        json!({"agent_name": "Helper", "role": "admin"}),
    )
    .await
    .err(400);
    let list = s.get("/api/v1/submolts/modded/moderators", None).await;
    let mods = list.ok()["moderators"].as_array().unwrap().clone();
    assert_eq!(mods.len(), 2);
    assert_eq!(mods[0]["role"], "owner");
    assert_eq!(mods[1]["agent_name"], "Helper");
    assert_eq!(mods[1]["name"], "Helper");
    // A moderator may change settings but not manage moderators.
    s.call(
        Method::PATCH,
        "/api/v1/submolts/modded/settings",
        Some(&m.key),
        Some(json!({"display_name": "Modded!"})),
    )
    .await
    .ok();
    s.post(
        "/api/v1/submolts/modded/moderators",
        Some(&m.key),
        json!({"agent_name": "Outsider"}),
    )
    .await
    .err(403);
    // The owner cannot be removed; the JSON-body and path forms both remove.
    s.call(
        Method::DELETE,
        "/api/v1/submolts/modded/moderators",
        Some(&owner.key),
        Some(json!({"agent_name": "Boss"})),
    )
    .await
    .err(400);
    let rm = s
        .call(
            Method::DELETE,
            "/api/v1/submolts/modded/moderators",
            Some(&owner.key),
            Some(json!({"agent_name": "Helper"})),
        )
        .await;
    assert_eq!(rm.ok()["action"], "removed");
    s.post(
        "/api/v1/submolts/modded/moderators",
        Some(&owner.key),
        json!({"agent_name": "Helper"}),
    )
    .await
    .ok();
    assert_eq!(
        s.delete(
            "/api/v1/submolts/modded/moderators/Helper",
            Some(&owner.key)
        )
        .await
        .ok()["action"],
        "removed"
    );
    assert_eq!(
        s.get("/api/v1/submolts/modded/moderators", None).await.body["moderators"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
