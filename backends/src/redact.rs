//! Keeping credentials out of output: URLs with their userinfo and secret-looking query
//! parameters removed, and credentials in settings that never quote their value back.

use std::fmt;

/// The URL with any user name, password and secret-looking query parameters removed, safe
/// to print. A path that is not a URL is returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // A relative path, or a URL that does not parse (a bad host, say): cut anything
        // that looks like a query, and anything that looks like userinfo, since the text is
        // quoted in the "does not parse" error.
        return strip_userinfo(url.split('?').next().unwrap_or_default());
    };
    if parsed.cannot_be_a_base() {
        return format!("{}:", parsed.scheme());
    }
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(name, _)| !looks_secret(name))
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.to_string()
}

/// `scheme://user:password@host/...` without `user:password@`, by text alone, for strings
/// the URL parser refuses. When the text starts with a scheme (`s3:`, `ws:`), everything
/// between the slashes after it and the last `@` goes, so no reading of the rest can find
/// userinfo in it: special schemes need no slashes (`ws::pw@host`) and skip extra ones
/// (`ws:///a@b`), and the parser ignores tabs and newlines anywhere. Text without a
/// scheme (a relative path) is left alone. Cutting too much is harmless here; cutting too
/// little is a leak.
fn strip_userinfo(text: &str) -> String {
    let text: String = text
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let trimmed = text.trim_start_matches(|c: char| c <= ' ');
    let is_scheme = |scheme: &str| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    let Some(colon) = trimmed.find(':').filter(|&at| is_scheme(&trimmed[..at])) else {
        return text;
    };
    let (scheme, rest) = trimmed.split_at(colon + 1);
    let slashes = rest.len() - rest.trim_start_matches(['/', '\\']).len();
    match rest.rfind('@') {
        Some(at) => format!("{scheme}{}{}", &rest[..slashes], &rest[at + 1..]),
        None => text,
    }
}

fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "key",
        "secret",
        "token",
        "password",
        "signature",
        "credential",
        "sig",
        "auth",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Deserializes a credential (`#[serde(deserialize_with = "deserialize_secret")]` on an
/// `Option<String>` field): a string, and for any other type an error that does not quote
/// the value, which serde's own "invalid type: integer `123`" message would.
pub fn deserialize_secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct SecretVisitor;

    fn hidden<E: serde::de::Error>() -> E {
        E::custom("expected a string (the value is not shown: it is a credential)")
    }

    impl serde::de::Visitor<'_> for SecretVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<String, E> {
            Ok(value.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, value: String) -> Result<String, E> {
            Ok(value)
        }
        // Every visitor method whose default error would quote the value.
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<String, E> {
            Err(hidden())
        }
        fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<String, E> {
            Err(hidden())
        }
    }

    // `deserialize_any`: `deserialize_string` lets some formats (serde_json) report a
    // wrong type themselves, quoting the value, without asking the visitor.
    deserializer.deserialize_any(SecretVisitor).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::S3Options;

    #[test]
    fn test_redact_url_drops_userinfo_and_secret_query() {
        assert_eq!(
            redact_url("s3://AKIA:s3cr3t@bucket/prefix?region=eu&X-Amz-Signature=abc&token=t"),
            "s3://bucket/prefix?region=eu"
        );
        assert_eq!(redact_url("memory://"), "memory://");
        assert_eq!(redact_url("./data/x"), "./data/x");
        assert_eq!(
            redact_url("s3://key:secret@bucket/prefix"),
            "s3://bucket/prefix"
        );
        assert_eq!(redact_url("s3://bucket/a@b"), "s3://bucket/a@b");
        assert_eq!(redact_url("some/folder"), "some/folder");
    }

    #[test]
    fn test_credential_of_the_wrong_type_is_refused_without_quoting_it() {
        for json in [
            r#"{"secret-access-key": 123456789}"#,
            r#"{"access_key_id": true}"#,
            r#"{"session-token": 1.5e300}"#,
            r#"{"secret_access_key": ["s3cr3t-in-a-list"]}"#,
        ] {
            let error = serde_json::from_str::<S3Options>(json)
                .unwrap_err()
                .to_string();
            for shown in ["123456789", "true", "1.5e300", "s3cr3t-in-a-list"] {
                assert!(!error.contains(shown), "{json}: {error}");
            }
        }
        let options: S3Options = serde_json::from_str(r#"{"secret-access-key": "ok"}"#).unwrap();
        assert_eq!(options.secret_access_key.as_deref(), Some("ok"));
    }
}
