//! Secrets never leave the command line's configuration through `Debug` or `Display`:
//! `Config`, its S3 settings, and every `ConfigError` made from a file that holds credentials.
//! The library's own types are checked in the root crate's `tests/secrets.rs`.

#[path = "../../tests/support/secrets.rs"]
mod secrets;

use std::path::Path;

use eventsync::backends::S3Options;
use eventsync_cli::config::{Config, ConfigError, ConfigOverrides};
use secrets::{SECRETS, assert_hidden, assert_no_secret, s3_options_at};

fn s3_options() -> S3Options {
    s3_options_at(format!("http://user:{}@127.0.0.1:1", SECRETS[5]))
}

fn config_text() -> String {
    format!(
        "backend = \"s3://bucket/prefix?token={}\"\n[s3]\nendpoint = \"http://user:{}@127.0.0.1:1\"\n\
         allow_http = true\nregion = \"us-east-1\"\naccess_key_id = \"{}\"\n\
         secret_access_key = \"{}\"\nsession_token = \"{}\"\nrequest_timeout = \"500ms\"\n",
        SECRETS[4], SECRETS[5], SECRETS[0], SECRETS[1], SECRETS[2]
    )
}

#[test]
fn test_config_debug_hides_keys_tokens_and_url_passwords() {
    let config = Config::from_file_text(Path::new("eventsync.toml"), &config_text()).unwrap();
    assert_eq!(
        config.backend_options.s3.secret_access_key.as_deref(),
        Some(SECRETS[1])
    );
    for text in [format!("{config:?}"), format!("{config:#?}")] {
        assert_no_secret("Config", &text);
        assert!(
            text.contains("us-east-1"),
            "non-secret settings stay: {text}"
        );
        assert!(text.contains("<redacted>"), "{text}");
    }
    assert_no_secret("S3Options", &format!("{:?}", s3_options()));
}

#[test]
fn test_config_errors_hide_secrets_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut errors: Vec<ConfigError> = Vec::new();
    let base = config_text();
    for text in [
        // A syntax error right after a secret.
        format!("{base}junk junk\n"),
        format!("[s3]\nsecret_access_key = \"{}\" trailing\n", SECRETS[1]),
        // A secret of the wrong type: the value must not be quoted back.
        "[s3]\nsecret_access_key = 222333444555\n".to_string(),
        format!("[s3]\naccess_key_id = [\"{}\"]\n", SECRETS[0]),
        format!("[s3]\nsession_token = {{ value = \"{}\" }}\n", SECRETS[2]),
        // An unknown key next to secrets.
        format!("{base}[tuning]\nbogus = 1\n"),
        // A bad store id in a file that holds secrets.
        format!("store = \"../x\"\n{base}"),
    ] {
        let path = dir.path().join("eventsync.toml");
        std::fs::write(&path, &text).unwrap();
        errors.push(Config::from_file_text(&path, &text).unwrap_err());
        let overrides = ConfigOverrides {
            config_file: Some(path.clone()),
            ..ConfigOverrides::default()
        };
        errors.push(Config::resolve(&overrides, |_| None).unwrap_err());
    }
    for error in &errors {
        assert_hidden("ConfigError", error);
        assert!(!format!("{error:#}").contains("222333444555"), "{error}");
        let library = eventsync::Error::from(ConfigError::DataDir {
            path: "x".into(),
            message: error.to_string(),
        });
        assert_hidden("eventsync::Error", &library);
    }
}
