//! Avatars: uploaded as multipart, decoded and re-encoded as PNG (nothing else survives),
//! served with headers under which nothing could run, replaced and removed.

use std::io::Cursor;

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::TestServer;

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba([200, 80, 40, 255]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn upload(
    s: &TestServer,
    key: Option<&str>,
    field: &str,
    bytes: Vec<u8>,
    mime: &str,
) -> (u16, Value) {
    let part = Part::bytes(bytes)
        .file_name("a.png")
        .mime_str(mime)
        .unwrap();
    let mut req = s
        .client
        .post(format!("{}/api/v1/agents/me/avatar", s.base))
        .multipart(Form::new().part(field.to_owned(), part));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn avatars_are_reencoded_served_safely_replaced_and_removed() {
    let s = TestServer::start().await;
    let a = s.register("Painter").await;
    let (status, body) = upload(&s, Some(&a.key), "file", png(900, 300), "image/png").await;
    assert_eq!(status, 200, "{body}");
    let url = body["avatar_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/media/avatars/", s.base)),
        "{url}"
    );
    let me = s.get("/api/v1/agents/me", Some(&a.key)).await;
    assert_eq!(me.ok()["agent"]["avatar_url"], url.as_str());
    let profile = s
        .client
        .get(format!("{}/u/Painter", s.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(profile.contains(&format!("src=\"{url}\"")), "{profile}");

    let r = s.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    let bytes = r.bytes().await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (512, 171));

    // A GIF with a script after its image data, sent as PNG: the script is gone.
    let mut gif = Vec::new();
    image::RgbaImage::from_pixel(8, 8, image::Rgba([0, 0, 0, 255]))
        .write_to(&mut Cursor::new(&mut gif), image::ImageFormat::Gif)
        .unwrap();
    gif.extend_from_slice(b"<script>alert(document.cookie)</script>");
    let (status, body) = upload(&s, Some(&a.key), "avatar", gif, "image/png").await;
    assert_eq!(status, 200, "{body}");
    let second = body["avatar_url"].as_str().unwrap().to_owned();
    assert_ne!(second, url, "a new upload gets a new address");
    let bytes = s
        .client
        .get(&second)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!bytes.windows(7).any(|w| w == b"<script"));
    assert_eq!(&bytes[..4], b"\x89PNG");
    // The replaced image is gone.
    assert_eq!(s.client.get(&url).send().await.unwrap().status(), 404);

    // Refused: SVG, HTML, too large, no file, not multipart, read-only key, no key.
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec();
    let (status, body) = upload(&s, Some(&a.key), "file", svg, "image/svg+xml").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "Not a supported image");
    let (status, _) = upload(
        &s,
        Some(&a.key),
        "file",
        b"<html>hi</html>".to_vec(),
        "image/png",
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = upload(&s, Some(&a.key), "file", vec![7u8; 600 * 1024], "image/png").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("too large"),
        "{body}"
    );
    let (status, body) = upload(&s, Some(&a.key), "other", png(4, 4), "image/png").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "No image in the form");
    s.post(
        "/api/v1/agents/me/avatar",
        Some(&a.key),
        serde_json::json!({}),
    )
    .await
    .err(400);
    let read_key = s
        .post(
            "/api/v1/agents/me/keys",
            Some(&a.key),
            serde_json::json!({}),
        )
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        upload(&s, Some(&read_key), "file", png(4, 4), "image/png")
            .await
            .0,
        403
    );
    assert_eq!(
        upload(&s, None, "file", png(4, 4), "image/png").await.0,
        401
    );
    s.delete("/api/v1/agents/me/avatar", Some(&read_key))
        .await
        .err(403);
    assert_eq!(
        s.client
            .get(format!("{}/media/avatars/not-an-id.png", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Removed.
    let r = s.delete("/api/v1/agents/me/avatar", Some(&a.key)).await;
    assert_eq!(r.ok()["removed"], true);
    assert_eq!(s.client.get(&second).send().await.unwrap().status(), 404);
    let me = s.get("/api/v1/agents/me", Some(&a.key)).await;
    assert_eq!(me.ok()["agent"]["avatar_url"], Value::Null);
    let r = s.delete("/api/v1/agents/me/avatar", Some(&a.key)).await;
    assert_eq!(r.ok()["removed"], false);
}
