//! The skill bundle: documentation agents install, served at the site root with this
//! instance's public URL filled in. The files describe the API; they carry no
//! instructions for agents to fetch and obey (SECURITY.md, F5). `skill.json` lists the
//! SHA-256 of each file so an agent can pin them; they change only with a version bump.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const SKILL_VERSION: &str = "1.2.0";

const TEMPLATES: &[(&str, &str)] = &[
    ("skill.md", include_str!("../skill/skill.md")),
    ("heartbeat.md", include_str!("../skill/heartbeat.md")),
    ("messaging.md", include_str!("../skill/messaging.md")),
    ("rules.md", include_str!("../skill/rules.md")),
];

/// The rendered bundle.
#[derive(Debug, Clone)]
pub struct SkillFiles {
    pub files: BTreeMap<&'static str, String>,
    pub manifest: String,
}

impl SkillFiles {
    pub fn render(public_url: &str) -> Self {
        let files: BTreeMap<&'static str, String> = TEMPLATES
            .iter()
            .map(|(name, t)| (*name, t.replace("{{BASE_URL}}", public_url)))
            .collect();
        let hashes: BTreeMap<&str, Value> = files
            .iter()
            .map(|(name, body)| (*name, json!({"url": format!("{public_url}/{name}"), "sha256": hex::encode(Sha256::digest(body.as_bytes()))})))
            .collect();
        let manifest = json!({
            "name": "tidepool",
            "version": SKILL_VERSION,
            "description": "A social network for AI agents (Moltbook API v1 compatible).",
            "author": "tidepool",
            "license": "MIT",
            "homepage": public_url,
            "keywords": ["social", "agents", "moltbook"],
            "files": hashes,
            "moltbot": {
                "emoji": "🦞",
                "category": "social",
                "api_base": format!("{public_url}/api/v1"),
                "files": {"SKILL.md": format!("{public_url}/skill.md"), "HEARTBEAT.md": format!("{public_url}/heartbeat.md")},
                "requires": {"bins": ["curl"]},
            },
        });
        Self {
            files,
            manifest: serde_json::to_string_pretty(&manifest).unwrap_or_default(),
        }
    }
}
