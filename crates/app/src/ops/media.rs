//! Avatars: an uploaded image is decoded, bounded and re-encoded as PNG, so nothing of
//! what was sent survives but pixels: no script (SVG is never accepted: it is not a
//! raster format the decoder reads), no metadata (EXIF location, comments), no polyglot
//! file that a browser could read as HTML.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};
use tidepool_core::model::agents::KeyScope;
use tidepool_core::time::now_ms;
use tidepool_store::new_public_id;

use crate::App;
use crate::caller::Caller;
use crate::error::{AppError, AppResult};

/// Largest upload accepted (spec 2.1: avatars up to 500 KB).
pub const AVATAR_MAX_BYTES: usize = 500 * 1024;
/// Largest side of a stored avatar, in pixels (larger images are scaled down).
pub const AVATAR_SIDE: u32 = 512;
/// Largest side of an image the decoder will open (a small file may claim a huge size:
/// a 50 KB PNG of one colour can say 2048 x 2048, 16 MiB decoded).
pub const DECODE_MAX_SIDE: u32 = 2048;
/// Most memory the decoder may allocate for one image.
const DECODE_MAX_ALLOC: u64 = 32 * 1024 * 1024;

/// One decode at a time in the whole process: decoding is the costly step, and many at
/// once could exhaust memory on a small machine.
static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The formats read; everything else (SVG, BMP, TIFF, ICO, HTML...) is refused.
const ACCEPTED: &[ImageFormat] = &[
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::Gif,
    ImageFormat::WebP,
];

/// Decodes `bytes` (whatever the client said they were) and returns them re-encoded as a
/// PNG of at most [`AVATAR_SIDE`] pixels a side.
pub fn reencode_avatar(bytes: &[u8]) -> AppResult<Vec<u8>> {
    if bytes.is_empty() {
        return Err(AppError::bad_request("The image file is empty"));
    }
    if bytes.len() > AVATAR_MAX_BYTES {
        return Err(AppError::new(
            crate::ErrorKind::BadRequest,
            format!(
                "The image is too large ({} KB, at most {} KB)",
                bytes.len().div_ceil(1024),
                AVATAR_MAX_BYTES / 1024
            ),
        ));
    }
    let unsupported = || {
        AppError::bad_request("Not a supported image")
            .with_hint("Upload a PNG, JPEG, GIF or WebP image (SVG is not accepted)")
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| unsupported())?;
    match reader.format() {
        Some(f) if ACCEPTED.contains(&f) => {}
        _ => return Err(unsupported()),
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(DECODE_MAX_SIDE);
    limits.max_image_height = Some(DECODE_MAX_SIDE);
    limits.max_alloc = Some(DECODE_MAX_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => AppError::bad_request(format!(
            "The image is too large (at most {DECODE_MAX_SIDE} pixels a side)"
        )),
        _ => AppError::bad_request("The image could not be decoded")
            .with_hint("Upload a valid PNG, JPEG, GIF or WebP image"),
    })?;
    let image = if image.width() > AVATAR_SIDE || image.height() > AVATAR_SIDE {
        image.thumbnail(AVATAR_SIDE, AVATAR_SIDE)
    } else {
        image
    };
    let mut out = Vec::new();
    image
        .into_rgba8()
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(AppError::internal)?;
    Ok(out)
}

/// The URL an avatar is served at.
pub fn avatar_url(app: &App, uuid: &str) -> String {
    format!("{}/media/avatars/{uuid}.png", app.config.public_url)
}

/// Whether the caller may change its avatar: a claimed agent with its full key. Checked
/// before the upload is read, so a refused caller is told so, whatever it sent.
pub fn require_full_key(caller: &Caller) -> AppResult<()> {
    if caller.scope == KeyScope::Read {
        return Err(AppError::forbidden("This API key is read-only")
            .with_hint("Use the agent's full key to change its avatar"));
    }
    caller.require_writer()
}

/// Sets the caller's avatar from an uploaded image; returns its URL. Decoding runs on a
/// blocking thread: it is CPU work of up to tens of milliseconds.
pub async fn set_avatar(app: &App, caller: &Caller, bytes: Vec<u8>) -> AppResult<String> {
    require_full_key(caller)?;
    let limit = app
        .take(
            format!("avatar:{}", caller.agent.id),
            app.config.limits.avatars,
        )
        .await
        .map_err(|d| crate::ops::too_many(d, "avatar uploads"))?;
    let png = {
        let _turn = DECODES.acquire().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || reencode_avatar(&bytes))
            .await
            .map_err(AppError::internal)??
    };
    limit.keep();
    let uuid = new_public_id();
    let url = avatar_url(app, &uuid);
    app.store
        .put_avatar(caller.agent.id, uuid, png, url.clone(), now_ms())
        .await?;
    app.keys.invalidate();
    app.hooks.content_changed();
    Ok(url)
}

/// Removes the caller's avatar (false: it had none).
pub async fn delete_avatar(app: &App, caller: &Caller) -> AppResult<bool> {
    require_full_key(caller)?;
    let removed = app.store.delete_avatar(caller.agent.id).await?;
    app.keys.invalidate();
    app.hooks.content_changed();
    Ok(removed)
}

/// An avatar's PNG by its public id.
pub async fn avatar(app: &App, raw_uuid: &str) -> AppResult<Vec<u8>> {
    let uuid = crate::ops::content::parse_id("avatar", raw_uuid)
        .map_err(|_| AppError::not_found("No such image"))?;
    app.store
        .avatar(&uuid)
        .await?
        .ok_or_else(|| AppError::not_found("No such image"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbaImage::from_pixel(w, h, image::Rgba([10, 20, 30, 255]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn images_come_back_as_bounded_png() {
        let out = reencode_avatar(&png(1000, 500)).unwrap();
        let back = image::load_from_memory(&out).unwrap();
        assert_eq!((back.width(), back.height()), (512, 256));
        assert_eq!(image::guess_format(&out).unwrap(), ImageFormat::Png);
        let small = reencode_avatar(&png(40, 40)).unwrap();
        assert_eq!(image::load_from_memory(&small).unwrap().width(), 40);
    }

    #[test]
    fn svg_html_and_garbage_are_refused() {
        for bad in [
            &b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"[..],
            b"<html><script>alert(1)</script></html>",
            b"GIF89a<script>alert(1)</script>",
            b"\x89PNG\r\n\x1a\nnot really",
        ] {
            assert!(
                reencode_avatar(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(reencode_avatar(&[]).is_err());
        // A small file claiming a large image: refused before it is decoded.
        let bomb = png(DECODE_MAX_SIDE + 1, 8);
        assert!(bomb.len() < 10_000);
        let e = reencode_avatar(&bomb).unwrap_err();
        assert!(e.message.contains("pixels a side"), "{}", e.message);
        assert!(reencode_avatar(&vec![0u8; AVATAR_MAX_BYTES + 1]).is_err());
    }
}
