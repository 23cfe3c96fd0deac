//! A backend from a URL and options: `memory://`, `file:///abs/path` or a relative path,
//! `s3://bucket/prefix`.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use serde::Deserialize;

use crate::redact::redact_url;
use crate::remote::{RemoteBackend, RemoteOptions, is_remote_url};
use crate::s3::{S3Options, open_s3};
use crate::segment_log::{SegmentLog, SegmentLogConfig};
use crate::store_id::StoreId;
use crate::{BackendError, SyncBackend};

/// Everything [`open_backend`] needs besides the URL and the store id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct OpenOptions {
    /// S3 settings; each one set here overrides the `AWS_*` environment variable.
    pub s3: S3Options,
    /// Segment sizes, page sizes and poll intervals.
    #[serde(alias = "segment_log")]
    pub segment_log: SegmentLogConfig,
    /// Settings of a backend behind `eventsync serve` (`eventsync+ws://`): its auth token.
    pub remote: RemoteOptions,
}

/// The kind of store a URL names; a folder with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Memory,
    File(std::path::PathBuf),
    S3,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::File(_) => "file",
            Kind::S3 => "s3",
        }
    }
}

/// The object store and key prefix a URL names, without a store on top: what the probe and
/// the benches use. `memory://` gives a new, empty `InMemory` on every call.
pub fn open_object_store(
    url: &str,
    options: &OpenOptions,
) -> Result<(Arc<dyn ObjectStore>, Path), BackendError> {
    object_store_for(url, options).map(|(store, prefix, _)| (store, prefix))
}

fn object_store_for(
    url: &str,
    options: &OpenOptions,
) -> Result<(Arc<dyn ObjectStore>, Path, Kind), BackendError> {
    let invalid = |message: String| BackendError::Invalid { message };
    if is_remote_url(url) {
        return Err(invalid(format!(
            "{} names an eventsync server, not an object store; this needs memory://, file:///path, a folder or s3://bucket/prefix",
            redact_url(url)
        )));
    }
    if !url.contains("://") {
        if url.is_empty() {
            return Err(invalid("the backend URL is empty".into()));
        }
        return open_folder(std::path::Path::new(url));
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        invalid(format!(
            "backend URL {} does not parse: {e}",
            redact_url(url)
        ))
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(format!(
            "backend URL {} holds credentials; put them in AWS_* variables or the [s3] settings instead",
            redact_url(url)
        )));
    }
    match parsed.scheme() {
        "memory" => {
            let prefix = Path::parse(parsed.path().trim_matches('/'))
                .map_err(|e| invalid(format!("bad prefix in {url}: {e}")))?;
            Ok((
                Arc::new(object_store::memory::InMemory::new()),
                prefix,
                Kind::Memory,
            ))
        }
        "file" => {
            let path = parsed.to_file_path().map_err(|()| {
                invalid(format!(
                    "{url} is not a local absolute path; write file:///abs/path or a relative path"
                ))
            })?;
            open_folder(&path)
        }
        "s3" | "s3a" => {
            let (store, prefix) = open_s3(&parsed, &options.s3)?;
            Ok((store, prefix, Kind::S3))
        }
        "http" | "https" => Err(invalid(format!(
            "{} is an HTTP URL; for S3 or a local S3 server use s3://bucket/prefix and set the endpoint (AWS_ENDPOINT_URL or [s3] endpoint)",
            redact_url(url)
        ))),
        other => Err(invalid(format!(
            "unknown backend scheme \"{other}\" in {}; use memory://, file:///path, a relative path, s3://bucket/prefix or eventsync+ws://host:port/path",
            redact_url(url)
        ))),
    }
}

/// A local folder (created when missing), with fsync on: a push returns only once the
/// segment and its directory entry are on disk.
fn open_folder(path: &std::path::Path) -> Result<(Arc<dyn ObjectStore>, Path, Kind), BackendError> {
    std::fs::create_dir_all(path).map_err(|e| BackendError::Invalid {
        message: format!("cannot create backend folder {}: {e}", path.display()),
    })?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(path)
        .map_err(|e| BackendError::Invalid {
            message: format!("cannot open backend folder {}: {e}", path.display()),
        })?
        .with_fsync(true);
    // The folder as the store resolved it (`new_with_prefix` canonicalizes it).
    let folder = std::fs::canonicalize(path).map_err(|e| BackendError::Invalid {
        message: format!("cannot open backend folder {}: {e}", path.display()),
    })?;
    Ok((Arc::new(store), Path::default(), Kind::File(folder)))
}

/// Opens the backend of store `store_id` at `url`: a [`SegmentLog`] over the object store
/// the URL names, or a [`RemoteBackend`] for `eventsync+ws://` and `eventsync+wss://`. Fails with [`BackendError::Invalid`] for a bad URL, store id or option.
/// Nothing is read or written yet. Each `memory://` call gives a new, empty store; to share
/// one in-memory store between clients, build [`SegmentLog::new`] over one `InMemory`.
pub async fn open_backend(
    url: &str,
    store_id: &str,
    options: &OpenOptions,
) -> Result<Arc<dyn SyncBackend>, BackendError> {
    if is_remote_url(url) {
        return Ok(Arc::new(RemoteBackend::new(
            url,
            store_id,
            &options.remote,
        )?));
    }
    let store_id = StoreId::new(store_id)?;
    let (store, prefix, kind) = object_store_for(url, options)?;
    let log = SegmentLog::new(
        store,
        prefix,
        store_id.as_str(),
        options.segment_log.clone(),
    )?
    .with_description(kind.name(), &redact_url(url));
    let log = match kind {
        Kind::File(folder) => log.with_folder(folder),
        Kind::Memory | Kind::S3 => log,
    };
    Ok(Arc::new(log))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn test_fuzz_regression_userinfo_in_path_after_control_characters() {
        // fuzz/regressions/config_url/userinfo-in-path: URL parsing trims the leading and
        // trailing control characters; the second "user:password@" is path text.
        let url = include_str!("../../fuzz/regressions/config_url/userinfo-in-path");
        let redacted = redact_url(url);
        assert!(redacted.starts_with("s3://bucket/p%0E"), "{redacted}");
        match open_object_store(url, &OpenOptions::default()) {
            Err(BackendError::Invalid { message }) => {
                assert!(message.contains("holds credentials"), "{message}");
                assert!(message.contains(&redacted), "{message}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a URL with credentials was accepted"),
        }
    }

    #[test]
    fn test_fuzz_regression_unparsable_url_keeps_no_userinfo() {
        // fuzz/regressions/config_url/unparsable-url-with-userinfo: a URL the parser refuses
        // was returned as it was, userinfo included, and quoted in "does not parse".
        let url = include_str!("../../fuzz/regressions/config_url/unparsable-url-with-userinfo");
        let redacted = redact_url(url);
        assert!(!redacted.contains("@key"), "{redacted:?}");
        assert!(redacted.starts_with("b3://key"), "{redacted:?}");
        let bad_host = "s3://AKIA:hunter22@buc ket/p";
        assert_eq!(redact_url(bad_host), "s3://buc ket/p");
        match open_object_store(bad_host, &OpenOptions::default()) {
            Err(BackendError::Invalid { message }) => {
                assert!(!message.contains("hunter22"), "{message}");
                assert!(message.contains("does not parse"), "{message}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("{bad_host} was accepted"),
        }
        assert_eq!(redact_url("a/b@c/d"), "a/b@c/d", "a path is left alone");
        // fuzz/regressions/config_url/special-scheme-extra-slashes: `ws:///a@b` parses with
        // userinfo `a` (special schemes skip extra slashes), so cutting only up to the
        // first `/` left one in.
        let url = include_str!("../../fuzz/regressions/config_url/special-scheme-extra-slashes");
        let redacted = redact_url(url);
        assert!(!redacted.contains('@'), "{redacted:?}");
        let url = include_str!("../../fuzz/regressions/config_url/special-scheme-without-slashes");
        assert!(!redact_url(url).contains('@'), "{:?}", redact_url(url));
        for sneaky in [
            "s3:/\t/AKIA:hunter22@buc ket/p",
            "ws:///AKIA:hunter22@h ost/p",
            "ws::hunter22@h ost/p",
            "  http:AKIA:hunter22@h ost",
        ] {
            assert!(!redact_url(sneaky).contains("hunter22"), "{sneaky:?}");
        }
    }

    #[test]
    fn test_options_deserialize_from_kebab_and_snake_keys() {
        let kebab: OpenOptions = serde_json::from_str(
            r#"{"s3": {"allow-http": true, "request-timeout": "5s"}, "segment-log": {"page-events": 3}}"#,
        )
        .unwrap();
        let snake: OpenOptions = serde_json::from_str(
            r#"{"s3": {"allow_http": true, "request_timeout": "5s"}, "segment_log": {"page_events": 3}}"#,
        )
        .unwrap();
        assert_eq!(kebab, snake);
        assert_eq!(kebab.s3.allow_http, Some(true));
        assert_eq!(kebab.s3.request_timeout, Some(Duration::from_secs(5)));
        assert!(serde_json::from_str::<S3Options>(r#"{"secret": "x"}"#).is_err());
    }

    #[tokio::test]
    async fn test_open_backend_refuses_bad_urls_and_ids() {
        let options = OpenOptions::default();
        for url in [
            "http://127.0.0.1:9000/bucket",
            "ftp://x",
            "s3://key:secret@bucket",
            "",
        ] {
            match open_backend(url, "s", &options).await {
                Err(BackendError::Invalid { message }) => assert!(!message.contains("secret")),
                other => panic!("{url} gave {other:?}"),
            }
        }
        assert!(matches!(
            open_backend("memory://", "../x", &options).await,
            Err(BackendError::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn test_open_backend_describes_memory_and_folders() {
        let options = OpenOptions::default();
        let memory = open_backend("memory://", "s", &options).await.unwrap();
        assert_eq!(memory.info().name, "memory");
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("nested/backend");
        let url = format!("file://{}", folder.display());
        let file = open_backend(&url, "s", &options).await.unwrap();
        assert_eq!(file.info().name, "file");
        assert!(folder.is_dir(), "the folder is created");
    }
}
