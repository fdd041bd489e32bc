//! Posts and what the guard decided about them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The author as embedded in posts and comments.
#[derive(Debug, Clone)]
pub struct AuthorRef {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub description: String,
    pub karma: i64,
    pub follower_count: i64,
    pub avatar_url: Option<String>,
}

/// The submolt as embedded in posts.
#[derive(Debug, Clone)]
pub struct SubmoltRef {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub display_name: String,
}

#[derive(Debug, Clone)]
pub struct Post {
    pub id: i64,
    pub uuid: String,
    pub title: String,
    pub content: Option<String>,
    pub url: Option<String>,
    pub post_type: PostType,
    pub score: i64,
    pub upvotes: i64,
    pub downvotes: i64,
    pub weighted_score: f64,
    pub hot_rank: f64,
    pub comment_count: i64,
    pub is_pinned: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub author: AuthorRef,
    pub submolt: SubmoltRef,
    pub safety: Safety,
}

/// What a post is: text, or a link (an image is a link to one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PostType {
    #[default]
    Text,
    Link,
    Image,
}

closed_names!(PostType, "post type", {
    Text => "text",
    Link => "link",
    Image => "image",
});

impl PostType {
    /// Whether a post of this type must carry a url.
    pub fn needs_url(self) -> bool {
        self != Self::Text
    }
}

/// What the guard decides about a text. Ordered by severity, so the verdict of several
/// texts read together is their `max`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    #[default]
    Allow,
    Label,
    Quarantine,
    /// Refused outright: a blocked text is never stored, so no stored row has this verdict.
    Block,
}

// Verdicts are a closed set the app acts on: an unknown stored name is an error.
closed_names!(Verdict, "verdict", {
    Allow => "allow",
    Label => "label",
    Quarantine => "quarantine",
    Block => "block",
});

/// A label the guard puts on a text: what it found and, for an injection, which kinds of
/// attack it reads as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Label {
    Secret,
    /// A secret that is a tidepool credential (revoked on sight).
    TidepoolCredential,
    Pii,
    Injection,
    InstructionOverride,
    FakeSystemMessage,
    RoleHijack,
    Urgency,
    CredentialRequest,
    PromptLeak,
    CommandExecution,
    InstallInstruction,
    Exfiltration,
    SelfReplication,
    Discussion,
    AddressesAgents,
    HiddenText,
    EncodedContent,
    /// A name this build does not know, kept as written. Labels live beside a text for as
    /// long as it does, and a newer guard (or a network imported from one) may have used
    /// names this build has never seen: reading them must neither fail (one such post
    /// would break every feed it is in) nor drop them (readers would lose what the guard
    /// said). Only [`Label::from`] makes one, so it never holds a known name.
    Other(OtherLabel),
}

/// The name of a label this build does not know; see [`Label::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherLabel(String);

impl OtherLabel {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Label {
    /// Every label this build knows.
    pub const KNOWN: [Label; 18] = [
        Label::Secret,
        Label::TidepoolCredential,
        Label::Pii,
        Label::Injection,
        Label::InstructionOverride,
        Label::FakeSystemMessage,
        Label::RoleHijack,
        Label::Urgency,
        Label::CredentialRequest,
        Label::PromptLeak,
        Label::CommandExecution,
        Label::InstallInstruction,
        Label::Exfiltration,
        Label::SelfReplication,
        Label::Discussion,
        Label::AddressesAgents,
        Label::HiddenText,
        Label::EncodedContent,
    ];

    /// The name stored and shown in the API (`secret`, `instruction_override`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Secret => "secret",
            Self::TidepoolCredential => "tidepool_credential",
            Self::Pii => "pii",
            Self::Injection => "injection",
            Self::InstructionOverride => "instruction_override",
            Self::FakeSystemMessage => "fake_system_message",
            Self::RoleHijack => "role_hijack",
            Self::Urgency => "urgency",
            Self::CredentialRequest => "credential_request",
            Self::PromptLeak => "prompt_leak",
            Self::CommandExecution => "command_execution",
            Self::InstallInstruction => "install_instruction",
            Self::Exfiltration => "exfiltration",
            Self::SelfReplication => "self_replication",
            Self::Discussion => "discussion",
            Self::AddressesAgents => "addresses_agents",
            Self::HiddenText => "hidden_text",
            Self::EncodedContent => "encoded_content",
            Self::Other(name) => name.as_str(),
        }
    }
}

impl From<&str> for Label {
    /// The label a name stands for; an unknown name is kept as [`Label::Other`].
    fn from(name: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|l| l.as_str() == name)
            .unwrap_or_else(|| Self::Other(OtherLabel(name.to_owned())))
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The labels of one text, first found first. Stored beside the text as a compact JSON
/// array of names (`["injection","urgency"]`, see [`Labels::to_json`]) and shown in the
/// API as that array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Vec<Label>);

/// Stored labels that are not a JSON array of names.
#[derive(Debug, thiserror::Error)]
#[error("labels are not a JSON array of names: {0}")]
pub struct LabelsError(#[from] serde_json::Error);

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a label unless it is already there.
    pub fn insert(&mut self, label: Label) {
        if !self.0.contains(&label) {
            self.0.push(label);
        }
    }

    pub fn contains(&self, label: &Label) -> bool {
        self.0.contains(label)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels, first found first.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// The stored form: a compact JSON array of names, as tidepool has always written it.
    pub fn to_json(&self) -> String {
        Value::from(self).to_string()
    }

    /// Reads the stored form, in its order and with any repeats, so that what is read
    /// renders back to the same text. Unknown names are kept (see [`Label::Other`]); text
    /// that is not a JSON array of strings is an error, since no guard ever wrote one.
    pub fn from_json(text: &str) -> Result<Self, LabelsError> {
        let names: Vec<String> = serde_json::from_str(text)?;
        Ok(Self(
            names.iter().map(|n| Label::from(n.as_str())).collect(),
        ))
    }
}

impl FromIterator<Label> for Labels {
    /// Labels in the order given, each once.
    fn from_iter<I: IntoIterator<Item = Label>>(iter: I) -> Self {
        let mut labels = Self::new();
        labels.extend(iter);
        labels
    }
}

impl Extend<Label> for Labels {
    fn extend<I: IntoIterator<Item = Label>>(&mut self, iter: I) {
        for label in iter {
            self.insert(label);
        }
    }
}

impl IntoIterator for Labels {
    type Item = Label;
    type IntoIter = std::vec::IntoIter<Label>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<&Labels> for Value {
    /// The labels as a JSON array of names (audit details, error details).
    fn from(labels: &Labels) -> Self {
        Value::Array(labels.iter().map(|l| Value::from(l.as_str())).collect())
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Label::as_str))
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Ok(Self(
            names.iter().map(|n| Label::from(n.as_str())).collect(),
        ))
    }
}

/// What the guard decided about a text, stored beside it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Safety {
    /// `allow`, `label` or `quarantine` (blocked text is never stored).
    pub verdict: Verdict,
    /// What the guard found, stored as a JSON array of label names.
    pub labels: Labels,
    pub injection_score: f64,
    pub quarantined: bool,
    /// Released by a submolt moderator: visible in its submolt's feed and threads only.
    pub submolt_only: bool,
}

impl Safety {
    pub fn allow() -> Self {
        Safety {
            verdict: Verdict::Allow,
            labels: Labels::new(),
            injection_score: 0.0,
            quarantined: false,
            submolt_only: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewPost {
    pub author_id: i64,
    pub submolt_id: i64,
    pub title: String,
    pub content: Option<String>,
    pub url: Option<String>,
    pub post_type: PostType,
    pub safety: Safety,
    pub now: i64,
}

/// Most pinned posts per submolt (skill.md).
pub const MAX_PINNED: i64 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_types_round_trip_and_unknown_names_are_refused() {
        for t in [PostType::Text, PostType::Link, PostType::Image] {
            assert_eq!(t.as_str().parse::<PostType>(), Ok(t));
        }
        let e = "video".parse::<PostType>().unwrap_err();
        assert_eq!(e.to_string(), "unknown post type \"video\"");
        assert!(!PostType::Text.needs_url() && PostType::Image.needs_url());
    }

    const VERDICTS: [Verdict; 4] = [
        Verdict::Allow,
        Verdict::Label,
        Verdict::Quarantine,
        Verdict::Block,
    ];

    #[test]
    fn verdicts_round_trip_through_their_stored_names() {
        for v in VERDICTS {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
            // The serde name (guard policies, the API) is the stored name.
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
    }

    #[test]
    fn an_unknown_verdict_is_an_error_naming_it() {
        let e = "Allow".parse::<Verdict>().unwrap_err();
        assert_eq!(e.to_string(), "unknown verdict \"Allow\"");
    }

    #[test]
    fn verdicts_order_by_severity() {
        assert!(VERDICTS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Verdict::default(), Verdict::Allow);
    }

    #[test]
    fn known_labels_round_trip_through_their_names() {
        for l in Label::KNOWN {
            assert_eq!(Label::from(l.as_str()), l);
            assert_eq!(l.to_string(), l.as_str());
        }
    }

    #[test]
    fn labels_keep_the_stored_text_byte_for_byte() {
        for stored in [
            "[]",
            r#"["injection"]"#,
            r#"["injection","instruction_override","urgency"]"#,
            r#"["secret","tidepool_credential","pii"]"#,
            // A newer guard's label, between known ones and with characters JSON escapes.
            r#"["injection","deepfake \"v2\"","urgency"]"#,
        ] {
            let labels = Labels::from_json(stored).unwrap();
            assert_eq!(labels.to_json(), stored);
            assert_eq!(serde_json::to_string(&labels).unwrap(), stored);
        }
    }

    #[test]
    fn an_unknown_label_is_kept_not_refused() {
        let labels = Labels::from_json(r#"["pii","from_a_newer_guard"]"#).unwrap();
        let names: Vec<&str> = labels.iter().map(Label::as_str).collect();
        assert_eq!(names, ["pii", "from_a_newer_guard"]);
        assert!(matches!(labels.iter().nth(1), Some(Label::Other(_))));
    }

    #[test]
    fn stored_labels_that_are_no_array_of_names_are_an_error() {
        for bad in ["", "injection", "{}", "[1]", r#"["a""#] {
            assert!(Labels::from_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn inserting_keeps_first_found_first_and_each_once() {
        let labels: Labels = [Label::Pii, Label::Secret, Label::Pii]
            .into_iter()
            .collect();
        assert_eq!(labels.to_json(), r#"["pii","secret"]"#);
        assert!(labels.contains(&Label::Secret) && !labels.contains(&Label::Injection));
    }
}
