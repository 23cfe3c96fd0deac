//! Secrets never leave through `Debug` or `Display`: the backend options (`S3Options`,
//! `OpenOptions`), what a backend says about itself (`BackendInfo`, its `Debug`), and every
//! error the library makes from input that holds credentials (`BackendError`,
//! `eventsync::Error`). The command line's configuration is checked in `cli/tests/secrets.rs`,
//! its `log`/`status`/`doctor` output in `cli/tests/cli_end_to_end.rs`.

#[path = "support/secrets.rs"]
mod secrets;

use eventsync::backends::{BackendError, GlobalSeq, open_backend};
use eventsync::backends::{OpenOptions, S3Options};
use secrets::{SECRETS, assert_hidden, assert_no_secret, s3_options_at};

/// S3 options holding every credential, with a credential-free endpoint (one with
/// credentials is refused, see below) on a closed port.
fn s3_options() -> S3Options {
    s3_options_at("http://127.0.0.1:1".into())
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
            endpoint: Some(format!("http://user:{}@127.0.0.1:1", SECRETS[5])),
            ..s3_options()
        },
        ..OpenOptions::default()
    };
    let error = open_backend("s3://bucket/prefix", "store", &with_userinfo)
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("holds credentials"),
        "{error}"
    );
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
