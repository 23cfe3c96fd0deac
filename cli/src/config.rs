//! Configuration of a store as the command line (or any embedding program) resolves it.
//!
//! Every setting comes from, highest first: command-line flags ([`ConfigOverrides`]), the
//! `EVENTSYNC_*` environment variables, the config file, then the defaults. The config file
//! is `eventsync.toml` in the current directory, or the file named by `--config` /
//! `EVENTSYNC_CONFIG` (which must then exist):
//!
//! ```toml
//! backend = "s3://my-bucket/apps"   # or "file:///abs/path", "some/folder", "memory://",
//!                                   # "eventsync+ws://host:8787/sync" (through `eventsync serve`;
//!                                   # its token comes from EVENTSYNC_AUTH_TOKEN)
//! store = "default"
//! data_dir = ".eventsync"           # relative paths are relative to the current directory
//! client_id = "laptop"              # default: generated once per data dir and kept
//!
//! [s3]                              # S3Options; the usual AWS_* variables are read too
//! endpoint = "http://127.0.0.1:9000"
//! allow_http = true
//! region = "us-east-1"
//! access_key_id = "..."
//! secret_access_key = "..."
//! request_timeout = "30s"
//! max_retries = 3                   # retries of one request; retry_timeout = "10s" caps them
//!
//! [segment_log]                     # SegmentLogConfig: what the backend does on its own
//! poll_min = "50ms"                 # live-pull poll after activity (one GET per poll)
//! poll_max = "2s"                   # poll when idle
//! max_events_per_segment = 1000
//!
//! [tuning]                          # Tuning: what the store does
//! push_batch_events = 100           # most events per push (one segment, one PUT)
//! lock_timeout = "10s"
//! on_backend_id_mismatch = "reset"  # or "shutdown", "ignore"
//! snapshot_keep = 3                 # snapshots kept per schema after writing one; 0 = all
//! ```
//!
//! Each table is the type that uses it, so each setting has one place: `[s3]` is the backends
//! crate's `S3Options`, `[segment_log]` its `SegmentLogConfig`, `[tuning]` the library's
//! `Tuning`. Durations are written with a unit (`"500us"`, `"50ms"`, `"2s"`, `"1m"`), read by
//! one parser (`eventsync_backends::duration`). Keys may be snake_case (`poll_min`), and
//! in `[s3]` and `[segment_log]` kebab-case too (`poll-min`). Unknown keys are an error naming
//! the key, the file and the line. Secrets never appear in the `Debug` output of these types,
//! nor in any error they produce.

use std::fmt;
use std::path::{Path, PathBuf};

use eventsync_backends::{OpenOptions, S3Options, SegmentLogConfig, redact_url};
use serde::Deserialize;

use eventsync::Error;
use eventsync::Tuning;

/// The config file looked for in the current directory when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "eventsync.toml";
/// The store id used when none is given.
pub const DEFAULT_STORE_ID: &str = "default";
/// The data dir used when none is given (relative to the current directory).
pub const DEFAULT_DATA_DIR: &str = ".eventsync";

/// Values given on the command line; each one, when set, beats every other source.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    /// `--backend URL`.
    pub backend: Option<String>,
    /// `--store ID`.
    pub store: Option<String>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--client-id ID`.
    pub client_id: Option<String>,
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// `--offline`: commit locally, do not sync.
    pub offline: bool,
}

/// Where a resolved setting came from, for error messages and for `demo`, which only uses
/// a backend that was named on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, e.g. `--store`.
    Flag(&'static str),
    /// An environment variable, e.g. `EVENTSYNC_STORE`.
    Env(&'static str),
    /// A key of the config file.
    File(PathBuf),
    /// The built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "from {flag}"),
            Origin::Env(var) => write!(f, "from ${var}"),
            Origin::File(path) => write!(f, "from {}", path.display()),
            Origin::Default => write!(f, "the default"),
        }
    }
}

/// The config file's shape. Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    backend: Option<String>,
    store: Option<String>,
    data_dir: Option<PathBuf>,
    client_id: Option<String>,
    /// The backends crate's own type: no copy of its fields here.
    s3: S3Options,
    /// The backend's settings (poll intervals, segment sizes), the backends crate's type.
    segment_log: SegmentLogConfig,
    /// The store's settings, the library's type.
    tuning: Tuning,
}

/// A fully resolved configuration: everything needed to open a store.
#[derive(Clone)]
pub struct Config {
    /// The backend URL (`memory://`, `file:///abs/path`, a folder path, `s3://bucket/prefix`).
    pub backend: String,
    /// Where `backend` came from. The default is `<data_dir>/backend`, a local folder, so a
    /// single user works offline-first with no bucket; a second client needs a shared one.
    pub backend_origin: Origin,
    /// The store id (validated).
    pub store_id: String,
    /// Where the leader keeps its files.
    pub data_dir: PathBuf,
    /// This client's id, when one was given (validated). See [`Config::client_id`].
    pub client_id: Option<String>,
    /// Commit locally and do not sync.
    pub offline: bool,
    /// The backend's settings of the config file: its `[s3]` and `[segment_log]` tables.
    pub backend_options: OpenOptions,
    /// Store tuning of the config file (`[tuning]`).
    pub tuning: Tuning,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("backend", &redact_url(&self.backend))
            .field("backend_origin", &self.backend_origin)
            .field("store_id", &self.store_id)
            .field("data_dir", &self.data_dir)
            .field("client_id", &self.client_id)
            .field("offline", &self.offline)
            .field("backend_options", &self.backend_options)
            .field("tuning", &self.tuning)
            .field("config_file", &self.config_file)
            .finish()
    }
}

/// A configuration that cannot be used. Messages name the value, where it came from, and
/// never include secrets.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path} ({origin})")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Who named it.
        origin: Origin,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has a wrong or unknown key.
    #[error("config file {path}, line {line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong (names the key for unknown keys).
        message: String,
    },
    /// A setting has a value that cannot be used.
    #[error(
        "invalid {what} {} ({origin}): {message}",
        eventsync_backends::store_id::quote_id(value)
    )]
    InvalidValue {
        /// Which setting, e.g. "store id".
        what: &'static str,
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Origin,
        /// Why it cannot be used.
        message: String,
    },
    /// The data dir cannot be created or used.
    #[error("data dir {path}: {message}")]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Error {
        Error::wrap(eventsync::ErrorKind::Invalid, error)
    }
}

impl Config {
    /// Resolves the configuration from the flags, the process environment and the config
    /// file. Validates the store id and client id; touches nothing on disk.
    pub fn from_env(overrides: &ConfigOverrides) -> Result<Config, ConfigError> {
        Config::resolve(overrides, |name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], with the environment given as a lookup (for tests).
    pub fn resolve(
        overrides: &ConfigOverrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let env = |name: &'static str| env(name).filter(|value| !value.is_empty());
        let (file, config_file) = read_config_file(overrides, &env)?;
        Config::resolve_file(overrides, env, file, config_file)
    }

    /// The configuration that config file text alone gives (no flags, no environment), as
    /// if read from `path`. For tests and fuzzing of the file format; touches nothing on disk.
    pub fn from_file_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file = parse_config_file(path, text)?;
        Config::resolve_file(
            &ConfigOverrides::default(),
            |_| None,
            file,
            Some(path.to_path_buf()),
        )
    }

    /// Resolves the settings from the flags, the environment and a parsed config file.
    fn resolve_file(
        overrides: &ConfigOverrides,
        env: impl Fn(&'static str) -> Option<String>,
        file: FileConfig,
        config_file: Option<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let file_origin = || config_file.clone().map_or(Origin::Default, Origin::File);
        let pick = |flag: &Option<String>,
                    (flag_name, var): (&'static str, &'static str),
                    file_value: Option<String>| {
            if let Some(value) = flag {
                Some((value.clone(), Origin::Flag(flag_name)))
            } else if let Some(value) = env(var) {
                Some((value, Origin::Env(var)))
            } else {
                file_value.map(|value| (value, file_origin()))
            }
        };

        let (store_id, store_origin) =
            pick(&overrides.store, ("--store", "EVENTSYNC_STORE"), file.store)
                .unwrap_or((DEFAULT_STORE_ID.into(), Origin::Default));
        check_id("store id", &store_id, &store_origin)?;

        let client_id = pick(
            &overrides.client_id,
            ("--client-id", "EVENTSYNC_CLIENT_ID"),
            file.client_id,
        );
        if let Some((id, origin)) = &client_id {
            check_id("client id", id, origin)?;
        }

        let data_dir = pick(
            &overrides.data_dir.as_deref().map(path_string),
            ("--data-dir", "EVENTSYNC_DATA_DIR"),
            file.data_dir.as_deref().map(path_string),
        )
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), |(dir, _)| dir.into());

        let (backend, backend_origin) = match pick(
            &overrides.backend,
            ("--backend", "EVENTSYNC_BACKEND"),
            file.backend,
        ) {
            Some((url, origin)) if url.trim().is_empty() => {
                return Err(ConfigError::InvalidValue {
                    what: "backend URL",
                    value: url,
                    origin,
                    message: "it is empty".into(),
                });
            }
            Some(found) => found,
            None => (default_backend_url(&data_dir), Origin::Default),
        };

        Ok(Config {
            backend,
            backend_origin,
            store_id,
            data_dir,
            client_id: client_id.map(|(id, _)| id),
            offline: overrides.offline,
            backend_options: OpenOptions {
                s3: file.s3,
                segment_log: file.segment_log,
                // The same variable `eventsync serve --auth-token` reads: the token an
                // eventsync+ws:// backend sends (never written to a config file).
                remote: eventsync_backends::RemoteOptions {
                    auth_token: env("EVENTSYNC_AUTH_TOKEN"),
                    // The CA that signed an eventsync+wss:// server's certificate, if private.
                    ca_file: env("EVENTSYNC_CA_FILE").map(PathBuf::from),
                },
            },
            tuning: file.tuning,
            config_file,
        })
    }

    /// The folder of the default backend, when the backend was not configured.
    pub fn default_backend_dir(&self) -> Option<PathBuf> {
        (self.backend_origin == Origin::Default).then(|| self.data_dir.join("backend"))
    }

    /// Creates the data dir (and the default backend's folder) if missing, and checks that
    /// it is a writable directory. Errors name the dir.
    pub fn ensure_data_dir(&self) -> Result<(), ConfigError> {
        let dir = &self.data_dir;
        let fail = |message: String| ConfigError::DataDir {
            path: dir.clone(),
            message,
        };
        if dir.exists() && !dir.is_dir() {
            return Err(fail("exists but is not a directory".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
        let metadata = std::fs::metadata(dir).map_err(|e| fail(format!("cannot read it: {e}")))?;
        if metadata.permissions().readonly() {
            return Err(fail("is read-only".into()));
        }
        if let Some(backend_dir) = self.default_backend_dir() {
            std::fs::create_dir_all(&backend_dir).map_err(|e| {
                fail(format!(
                    "cannot create the default backend folder {}: {e}",
                    backend_dir.display()
                ))
            })?;
        }
        Ok(())
    }

    /// This client's id: the configured one, else the one kept in `<data_dir>/client-id`
    /// (see [`kept_client_id`](eventsync::kept_client_id)), generated randomly and
    /// written there on first use. Call [`ensure_data_dir`](Self::ensure_data_dir) first.
    pub fn client_id(&self) -> Result<String, ConfigError> {
        if let Some(id) = &self.client_id {
            return Ok(id.clone());
        }
        eventsync::kept_client_id(&self.data_dir, &eventsync_backends::Entropy::from_os()).map_err(
            |error| ConfigError::DataDir {
                path: self.data_dir.clone(),
                message: error.to_string(),
            },
        )
    }
}

/// Reads the config file named by `--config`, else `EVENTSYNC_CONFIG`, else
/// `./eventsync.toml` if it exists. A named file must exist.
fn read_config_file(
    overrides: &ConfigOverrides,
    env: &impl Fn(&'static str) -> Option<String>,
) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
    let (path, origin) = if let Some(path) = &overrides.config_file {
        (path.clone(), Origin::Flag("--config"))
    } else if let Some(path) = env("EVENTSYNC_CONFIG") {
        (PathBuf::from(path), Origin::Env("EVENTSYNC_CONFIG"))
    } else {
        let path = PathBuf::from(DEFAULT_CONFIG_FILE);
        if !path.exists() {
            return Ok((FileConfig::default(), None));
        }
        (path, Origin::Default)
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile {
        path: path.clone(),
        origin,
        source,
    })?;
    let file = parse_config_file(&path, &text)?;
    Ok((file, Some(path)))
}

/// Parses the config file's text; errors give the file and the line.
fn parse_config_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|error| {
        // `message()` is one line and never quotes the file's text (which may hold secrets).
        let line = error.span().map_or(1, |span| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        });
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message: error.message().replace('\n', " "),
        }
    })
}

/// The default backend: the folder `<data_dir>/backend`, as an absolute `file://` URL.
fn default_backend_url(data_dir: &Path) -> String {
    let folder = data_dir.join("backend");
    let absolute = std::path::absolute(&folder).unwrap_or(folder);
    format!("file://{}", absolute.display())
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Validates a store id or client id, naming the value and its origin on failure.
fn check_id(what: &'static str, value: &str, origin: &Origin) -> Result<(), ConfigError> {
    validate_store_id(value).map_err(|message| ConfigError::InvalidValue {
        what,
        value: value.to_string(),
        origin: origin.clone(),
        message,
    })
}

/// Checks an id (store or client) with the backends' rule, before it names a key or path.
fn validate_store_id(id: &str) -> Result<(), String> {
    eventsync_backends::store_id::validate_store_id(id).map_err(|e| e.to_string())
}

/// A random id of `len` lowercase letters and digits (client ids, todo ids), drawn from the
/// OS: the command line is a real client, never a replayed simulation.
pub fn generate_id(len: usize) -> String {
    eventsync_backends::Entropy::from_os().alphanumeric(len)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn write_file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("eventsync.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn resolve_with(
        overrides: &ConfigOverrides,
        vars: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::resolve(overrides, |name| vars.get(name).cloned())
    }

    #[test]
    fn test_flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            "backend = \"memory://file\"\nstore = \"from-file\"\nclient_id = \"file-client\"\n",
        );
        let config_file = Some(path.clone());
        let from_file = resolve_with(
            &ConfigOverrides {
                config_file: config_file.clone(),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(from_file.store_id, "from-file");
        assert_eq!(from_file.backend, "memory://file");
        assert_eq!(from_file.backend_origin, Origin::File(path.clone()));
        assert_eq!(from_file.client_id.as_deref(), Some("file-client"));

        let vars = [
            ("EVENTSYNC_STORE", "from-env"),
            ("EVENTSYNC_BACKEND", "memory://env"),
        ];
        let from_env = resolve_with(
            &ConfigOverrides {
                config_file: config_file.clone(),
                ..Default::default()
            },
            &vars,
        )
        .unwrap();
        assert_eq!(from_env.store_id, "from-env");
        assert_eq!(from_env.backend_origin, Origin::Env("EVENTSYNC_BACKEND"));

        let from_flag = resolve_with(
            &ConfigOverrides {
                config_file,
                store: Some("from-flag".into()),
                ..Default::default()
            },
            &vars,
        )
        .unwrap();
        assert_eq!(from_flag.store_id, "from-flag");
        assert_eq!(from_flag.backend, "memory://env");
    }

    #[test]
    fn test_config_file_from_env_var_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "store = \"via-var\"\n");
        let config = resolve_with(
            &ConfigOverrides::default(),
            &[("EVENTSYNC_CONFIG", path.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(config.store_id, "via-var");
        assert_eq!(config.config_file, Some(path));
    }

    #[test]
    fn test_defaults_use_a_folder_backend_inside_the_data_dir() {
        let config = resolve_with(
            &ConfigOverrides {
                data_dir: Some("/tmp/some-data".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(config.store_id, DEFAULT_STORE_ID);
        assert_eq!(config.backend, "file:///tmp/some-data/backend");
        assert_eq!(config.backend_origin, Origin::Default);
        assert_eq!(
            config.default_backend_dir(),
            Some(PathBuf::from("/tmp/some-data/backend"))
        );
    }

    #[test]
    fn test_bad_store_id_names_value_and_origin() {
        let error = resolve_with(
            &ConfigOverrides {
                store: Some("../x".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("store id \"../x\""), "{error}");
        assert!(error.contains("--store"), "{error}");
    }

    #[test]
    fn test_unknown_key_names_key_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "store = \"a\"\n\n[s3]\nendpiont = \"x\"\n");
        let error = resolve_with(
            &ConfigOverrides {
                config_file: Some(path.clone()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        let ConfigError::Syntax {
            path: got,
            line,
            message,
        } = &error
        else {
            panic!("expected a syntax error, got {error:?}");
        };
        assert_eq!(got, &path);
        assert_eq!(*line, 4);
        assert!(message.contains("endpiont"), "{message}");
    }

    #[test]
    fn test_bad_toml_gives_line_without_quoting_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[s3]\nsecret_access_key = \"hunter2\" oops\n";
        let path = write_file(dir.path(), text);
        let error = resolve_with(
            &ConfigOverrides {
                config_file: Some(path),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn test_missing_named_config_file_is_an_error() {
        let error = resolve_with(
            &ConfigOverrides {
                config_file: Some("/nonexistent/eventsync.toml".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("/nonexistent/eventsync.toml"), "{error}");
        assert!(error.contains("--config"), "{error}");
    }

    #[test]
    fn test_debug_never_shows_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            "backend = \"s3://user:pw-secret@bucket/p\"\n[s3]\naccess_key_id = \"AKID-secret\"\n\
             secret_access_key = \"sak-secret\"\nsession_token = \"tok-secret\"\n\
             endpoint = \"http://u:ep-secret@127.0.0.1:9000\"\n",
        );
        let config = resolve_with(
            &ConfigOverrides {
                config_file: Some(path),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(
            config.backend_options.s3.secret_access_key.as_deref(),
            Some("sak-secret")
        );
        let debug = format!("{config:?} {config:#?}");
        for value in [
            "pw-secret",
            "AKID-secret",
            "sak-secret",
            "tok-secret",
            "ep-secret",
        ] {
            assert!(!debug.contains(value), "{value} shown in {debug}");
        }
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn test_durations_read_as_human_strings_in_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            "[segment_log]\npoll_min = \"500us\"\npoll-max = \"1.5s\"\n[s3]\nrequest_timeout = \"1m\"\n\
             [tuning]\nlock_timeout = \"250ms\"\n",
        );
        let config = resolve_with(
            &ConfigOverrides {
                config_file: Some(path),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        let options = &config.backend_options;
        assert_eq!(options.segment_log.poll_min, Duration::from_micros(500));
        assert_eq!(options.segment_log.poll_max, Duration::from_millis(1500));
        assert_eq!(options.s3.request_timeout, Some(Duration::from_secs(60)));
        assert_eq!(config.tuning.lock_timeout, Duration::from_millis(250));
    }

    #[test]
    fn test_client_id_is_generated_once_per_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let config = resolve_with(
            &ConfigOverrides {
                data_dir: Some(dir.path().join("data")),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        config.ensure_data_dir().unwrap();
        let first = config.client_id().unwrap();
        let second = config.client_id().unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 12);
        assert!(dir.path().join("data/backend").is_dir());
    }

    #[test]
    fn test_data_dir_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let config = resolve_with(
            &ConfigOverrides {
                data_dir: Some(file.clone()),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        let error = config.ensure_data_dir().unwrap_err().to_string();
        assert!(error.contains(&file.display().to_string()), "{error}");
        assert!(error.contains("not a directory"), "{error}");
    }
}
