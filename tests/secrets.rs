//! Secrets never leave through `Debug` or `Display` (issue 5, item 8): the configuration
//! (`Config`, `S3Config`), the backend options (`S3Options`, `OpenOptions`), what a backend
//! says about itself (`BackendInfo`, its `Debug`), and every error the library makes from
//! input that holds credentials (`BackendError`, `eventsync::Error`, `ConfigError`).
//! The command line's `log`/`status`/`doctor` output is checked in `cli_end_to_end.rs`.

use std::path::Path;
use std::time::Duration;

use eventsync::backends::open::{OpenOptions, S3Options};
use eventsync::backends::{BackendError, GlobalSeq, open_backend};
use eventsync::config::{Config, ConfigError, ConfigOverrides, S3Config};

/// Every secret below; none may ever be printed.
const SECRETS: [&str; 6] = [
    "AKIA-ACCESS-KEY-ID-111",
    "SECRET-ACCESS-KEY-222",
    "SESSION-TOKEN-333",
    "URL-PASSWORD-444",
    "QUERY-TOKEN-555",
    "ENDPOINT-PASSWORD-666",
];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

/// Both renderings of a value with `Debug` and `Display`.
fn assert_hidden<T: std::fmt::Debug + std::fmt::Display>(what: &str, value: &T) {
    assert_no_secret(what, &format!("{value}"));
    assert_no_secret(what, &format!("{value:?}"));
    assert_no_secret(what, &format!("{value:#?}"));
}

fn s3_config() -> S3Config {
    S3Config {
        endpoint: Some(format!("http://user:{}@127.0.0.1:1", SECRETS[5])),
        allow_http: Some(true),
        region: Some("us-east-1".into()),
        access_key_id: Some(SECRETS[0].into()),
        secret_access_key: Some(SECRETS[1].into()),
        session_token: Some(SECRETS[2].into()),
        request_timeout: Some(Duration::from_millis(500)),
        max_retries: Some(0),
        retry_timeout: Some(Duration::from_secs(1)),
    }
}

/// The options of `s3_config()`, with a credential-free endpoint (one with credentials is
/// refused, see below) on a closed port.
fn s3_options() -> S3Options {
    let config = s3_config();
    S3Options {
        endpoint: Some("http://127.0.0.1:1".into()),
        allow_http: config.allow_http,
        region: config.region,
        access_key_id: config.access_key_id,
        secret_access_key: config.secret_access_key,
        session_token: config.session_token,
        request_timeout: config.request_timeout,
        max_retries: config.max_retries,
        retry_timeout: config.retry_timeout,
    }
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
    assert_eq!(config.s3.secret_access_key.as_deref(), Some(SECRETS[1]));
    for text in [format!("{config:?}"), format!("{config:#?}")] {
        assert_no_secret("Config", &text);
        assert!(
            text.contains("us-east-1"),
            "non-secret settings stay: {text}"
        );
        assert!(text.contains("<redacted>"), "{text}");
    }
    assert_no_secret("S3Config", &format!("{:?}", s3_config()));
}

#[test]
fn test_s3_and_open_options_debug_hide_secrets() {
    let options = OpenOptions {
        s3: s3_options(),
        ..OpenOptions::default()
    };
    assert_no_secret("S3Options", &format!("{:?}", s3_options()));
    assert_no_secret("OpenOptions", &format!("{options:?}"));
    assert_no_secret("OpenOptions", &format!("{options:#?}"));
}

#[tokio::test]
async fn test_backend_info_and_debug_hide_secrets() {
    let options = OpenOptions {
        s3: s3_options(),
        ..OpenOptions::default()
    };
    let url = format!("s3://bucket/prefix?token={}&region=eu", SECRETS[4]);
    let backend = open_backend(&url, "store", &options).await.unwrap();
    let info = backend.info();
    assert_eq!(info.name, "s3");
    assert_no_secret("BackendInfo", &format!("{info:?}"));
    assert_no_secret("BackendInfo json", &serde_json::to_string(&info).unwrap());
    assert_no_secret("backend Debug", &format!("{backend:?}"));
    assert!(info.url.contains("region=eu"), "{}", info.url);
}

#[tokio::test]
async fn test_backend_errors_from_inputs_with_credentials_hide_them() {
    let options = OpenOptions {
        s3: s3_options(),
        ..OpenOptions::default()
    };
    let mut errors: Vec<BackendError> = Vec::new();
    for url in [
        format!("s3://key:{}@bucket/x", SECRETS[3]),
        format!("ftp://user:{}@host/x?token={}", SECRETS[3], SECRETS[4]),
        format!("http://user:{}@host/bucket", SECRETS[3]),
        format!("gs://bucket?secret={}", SECRETS[4]),
    ] {
        errors.push(open_backend(&url, "store", &options).await.unwrap_err());
    }
    // An endpoint with credentials in it is refused without quoting them.
    let with_userinfo = OpenOptions {
        s3: S3Options {
            endpoint: s3_config().endpoint,
            ..s3_options()
        },
        ..OpenOptions::default()
    };
    let error = open_backend("s3://bucket/prefix", "store", &with_userinfo)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("holds credentials"), "{error}");
    errors.push(error);
    // A request to a closed port, signed with the secrets: every way it fails.
    let backend = open_backend("s3://bucket/prefix", "store", &options)
        .await
        .unwrap();
    errors.push(backend.ping().await.unwrap_err());
    errors.push(backend.head().await.unwrap_err());
    errors.push(backend.backend_id().await.unwrap_err());
    match backend.pull(GlobalSeq::ZERO, false).await {
        Err(error) => errors.push(error),
        Ok(_) => panic!("a pull from a closed port started"),
    }
    errors.push(
        backend
            .push(vec![eventsync::backends::GlobalEvent {
                seq_num: GlobalSeq(1),
                parent_seq_num: GlobalSeq::ZERO,
                name: "v1.X".into(),
                args: serde_json::json!({}),
                client_id: "c".into(),
                session_id: "s".into(),
            }])
            .await
            .unwrap_err(),
    );
    for error in errors {
        assert_hidden("BackendError", &error);
        let library = eventsync::Error::from(error);
        assert_hidden("eventsync::Error", &library);
        if let Some(source) = std::error::Error::source(&library) {
            assert_no_secret("error source", &source.to_string());
        }
    }
    // The variants built directly, with secret-free fields, stay secret-free.
    for error in [
        BackendError::ServerAhead { head: GlobalSeq(3) },
        BackendError::BackendIdMismatch {
            expected: "a".into(),
            found: Some("b".into()),
        },
    ] {
        assert_hidden("BackendError", &error);
    }
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
        assert!(!error.to_string().contains("222333444555"), "{error}");
        let library = eventsync::Error::from(ConfigError::DataDir {
            path: "x".into(),
            message: error.to_string(),
        });
        assert_hidden("eventsync::Error", &library);
    }
}
