//! Topic names, validated by Kafka's rule.

use crate::error::MetadataError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest topic name Kafka accepts (255 less room for a partition suffix).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A topic's name. Holds only valid names: ASCII letters, digits, `.`, `_` and
/// `-`, 1 to [`MAX_TOPIC_NAME_LEN`] characters, and neither `.` nor `..` (they
/// would name the log directory's parent or itself). Deserializing checks the same
/// rule, so a snapshot or command cannot smuggle in a bad name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

impl TopicName {
    /// Validates `name`; `InvalidTopicName` says which rule it breaks.
    pub fn new(name: impl Into<String>) -> Result<TopicName, MetadataError> {
        let name = name.into();
        match violation(&name) {
            None => Ok(TopicName(name)),
            Some(reason) => Err(MetadataError::InvalidTopicName { name, reason }),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which rule `name` breaks, if any.
fn violation(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name == "." || name == ".." {
        return Some("'.' and '..' are not allowed".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Some(format!(
            "{} characters is longer than the maximum {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|c| format!("{c:?} is not one of ASCII letters, digits, '.', '_', '-'"))
}

impl TryFrom<String> for TopicName {
    type Error = MetadataError;

    fn try_from(name: String) -> Result<TopicName, MetadataError> {
        TopicName::new(name)
    }
}

impl From<TopicName> for String {
    fn from(name: TopicName) -> String {
        name.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_topic_name_rule() {
        let long_ok = "a".repeat(249);
        let too_long = "a".repeat(250);
        let cases: &[(&str, bool)] = &[
            // (name, valid)
            ("orders", true),
            ("Orders.v2_eu-west", true),
            ("__consumer_offsets", true),
            ("a", true),
            ("...", true),
            (".hidden", true),
            (long_ok.as_str(), true),
            ("", false),
            (".", false),
            ("..", false),
            (too_long.as_str(), false),
            ("has space", false),
            ("slash/", false),
            ("colon:", false),
            ("é", false),
        ];
        for &(name, valid) in cases {
            let got = TopicName::new(name);
            assert_eq!(got.is_ok(), valid, "{name:?}: {got:?}");
            if let Err(MetadataError::InvalidTopicName { name: n, reason }) = got {
                assert_eq!(n, name);
                assert!(!reason.is_empty());
            }
        }
    }

    #[test]
    fn deserializing_applies_the_rule() {
        let ok: TopicName = serde_json::from_str("\"orders\"").unwrap();
        assert_eq!(ok.as_str(), "orders");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"orders\"");
        let bad = serde_json::from_str::<TopicName>("\"a/b\"").unwrap_err();
        assert!(bad.to_string().contains("invalid topic name"), "{bad}");
    }
}
