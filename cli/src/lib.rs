//! The `eventsync` command line, beside the library: the arguments ([`Cli`]), the
//! configuration ([`config`]: file, environment, flags), and one module per subcommand.
//!
//! `src/main.rs` parses a [`Cli`], calls [`init_tracing`] and [`run`], and prints a failure
//! as one line. Everything here returns the library's [`Error`], whose message names what
//! was wrong and where.

mod backend;
mod bench;
mod compact;
pub mod config;
mod copy;
mod demo;
mod doctor;
mod export;
mod import;
mod log;
mod serve;
mod snapshot;
mod status;
mod sync;
mod todo;
mod verify;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use eventsync_backends::{GlobalEvent, SyncBackend};

use crate::config::{Config, ConfigOverrides};
use eventsync::Store;
use eventsync::{Error, Result};

/// `eventsync`: a local-first event store that syncs through an object store.
#[derive(Debug, Parser)]
#[command(name = "eventsync", version, about, max_term_width = 100)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes. Each also comes from an `EVENTSYNC_*` variable or
/// `eventsync.toml`; the flag wins.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Backend URL: memory://, file:///abs/path or a folder path, s3://bucket/prefix
    /// [env: EVENTSYNC_BACKEND] [default: a folder inside the data dir]
    #[arg(long, global = true, value_name = "URL")]
    pub backend: Option<String>,
    /// Store id [env: EVENTSYNC_STORE] [default: default]
    #[arg(long, global = true, value_name = "ID")]
    pub store: Option<String>,
    /// Where this client keeps its files [env: EVENTSYNC_DATA_DIR] [default: ./.eventsync]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// This client's id [env: EVENTSYNC_CLIENT_ID] [default: generated once per data dir]
    #[arg(long, global = true, value_name = "ID")]
    pub client_id: Option<String>,
    /// Config file [env: EVENTSYNC_CONFIG] [default: ./eventsync.toml if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Commit locally only; commits stay pending until a later sync
    #[arg(long, global = true)]
    pub offline: bool,
    /// Log more to stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// The flags as config overrides.
    pub fn overrides(&self) -> ConfigOverrides {
        ConfigOverrides {
            backend: self.backend.clone(),
            store: self.store.clone(),
            data_dir: self.data_dir.clone(),
            client_id: self.client_id.clone(),
            config_file: self.config.clone(),
            offline: self.offline,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The example todo app built on the library
    #[command(subcommand)]
    Todo(todo::TodoCommand),
    /// Push pending events and pull new ones
    Sync(sync::SyncArgs),
    /// Local head, backend-confirmed head, pending events, backend head
    Status(status::StatusArgs),
    /// The backend's events, read straight from the backend
    Log(log::LogArgs),
    /// Probe the configured backend's capabilities and give a verdict
    Doctor,
    /// Write the backend's whole log to FILE in LiveStore's export format (version 1)
    Export(export::ExportArgs),
    /// Check a file in LiveStore's export format, then push it into an empty store (or,
    /// with --force, a new store that replaces this one)
    Import(import::ImportArgs),
    /// Copy the store (--store) from one backend to another with its history and backend id;
    /// run it again to finish an interrupted copy; verifies the copy at the end
    Copy(copy::CopyArgs),
    /// Audit the store's whole log in the backend: every checksum, the numbering, parents and
    /// hash chain; names each bad key and exits non-zero on any fault
    Verify(verify::VerifyArgs),
    /// Pack every complete window of segments after the last pack into one object each
    /// (segments are kept); safe to run from several clients at once
    Compact(compact::CompactArgs),
    /// Sync, then write a snapshot of the state at the backend-confirmed head into the
    /// backend: fresh clients of this schema boot from it and pull only the events after it;
    /// then delete the older snapshots but the newest --keep (`snapshot_keep`, 3) of each
    /// schema. --prune only deletes
    Snapshot(snapshot::SnapshotArgs),
    /// Several simulated clients committing concurrently through one backend (a fresh
    /// temp folder unless --backend is given), then checks that they converged
    Demo(demo::DemoArgs),
    /// Measures every performance figure beside its limit on this machine (raw SQLite, raw
    /// PUTs and GETs), in one run (a fresh temp folder unless --backend is given)
    Bench(bench::BenchArgs),
    /// Serve LiveStore's sync protocol (WebSocket and HTTP, sync-cf 0.4.0) over the
    /// configured backend, for LiveStore apps and clients without bucket credentials
    Serve(serve::ServeArgs),
}

/// Resolves the configuration and runs the subcommand.
pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::from_env(&cli.global.overrides())?;
    tracing::debug!(?config, "resolved configuration");
    match &cli.command {
        Command::Todo(command) => todo::run(&config, command).await,
        Command::Sync(args) => sync::run(&config, args).await,
        Command::Status(args) => status::run(&config, args).await,
        Command::Log(args) => log::run(&config, args).await,
        Command::Doctor => doctor::run(&config).await,
        Command::Export(args) => export::run(&config, args).await,
        Command::Import(args) => import::run(&config, args).await,
        Command::Copy(args) => copy::run(&config, args).await,
        Command::Verify(args) => verify::run(&config, args).await,
        Command::Compact(args) => compact::run(&config, args).await,
        Command::Snapshot(args) => snapshot::run(&config, args).await,
        Command::Demo(args) => demo::run(&config, args).await,
        Command::Bench(args) => bench::run(&config, args).await,
        Command::Serve(args) => serve::run(&config, args).await,
    }
}

/// Sends tracing output to stderr: `warn` by default, more with each `-v`; `RUST_LOG`
/// overrides.
pub fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Opens the configured store: creates the data dir, settles the client id, opens the
/// backend, boots the leader (online unless `config.offline`).
async fn open_store(config: &Config) -> Result<Store> {
    config.ensure_data_dir()?;
    let client_id = config.client_id()?;
    let backend = backend::open_backend(config, &config.backend, &config.store_id).await?;
    Store::builder(Arc::new(eventsync_todo::todo_schema()))
        .with_backend(backend)
        .with_store_id(config.store_id.clone())
        .with_data_dir(config.data_dir.clone())
        .with_client_id(client_id)
        .with_offline(config.offline)
        .with_tuning(config.tuning.clone())
        .open()
        .await
        .map_err(|e| {
            context(
                e,
                format!(
                    "opening store {:?} in {}",
                    config.store_id,
                    config.data_dir.display()
                ),
            )
        })
}

/// Opens the configured backend alone (for `log`), creating the default backend's folder
/// when no backend was configured.
async fn open_configured_backend(config: &Config) -> Result<Arc<dyn SyncBackend>> {
    if config.default_backend_dir().is_some() {
        config.ensure_data_dir()?;
    }
    backend::open_backend(config, &config.backend, &config.store_id).await
}

/// Runs `body` on the opened store, then shuts the store down (draining what is queued).
/// The body's error wins over a shutdown error.
async fn with_store<T>(config: &Config, body: impl AsyncFnOnce(&Store) -> Result<T>) -> Result<T> {
    let store = open_store(config).await?;
    let result = body(&store).await;
    let closed = store
        .shutdown()
        .await
        .map_err(|e| context(e, "shutting the store down".into()));
    let value = result?;
    closed?;
    Ok(value)
}

/// The same error kind with `what` as its message and `error` as its cause.
fn context(error: Error, what: String) -> Error {
    error.context(what)
}

/// Writes one line to stdout; a closed stdout is an error rather than a panic.
fn out(line: impl std::fmt::Display) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::new(eventsync::ErrorKind::Closed, "writing to stdout").with_source(e))
}

/// One event as a readable line: `e3  v1.TodoCreated  {"id":…}  client=… session=…`.
fn event_line(event: &GlobalEvent) -> String {
    format!(
        "{:<6} {:<20} {}  client={} session={}",
        event.seq_num.to_string(),
        event.name,
        event.args,
        event.client_id,
        event.session_id
    )
}

/// A progress display on stderr, `{bar} {pos}/{len} {what}` (the length set by the caller
/// once known), hidden when stderr is not a terminal.
fn progress_bar(what: &'static str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0).with_message(what);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({elapsed})")
    {
        bar.set_style(style);
    }
    bar
}

/// Waits for Ctrl-C; if the signal cannot be watched, waits forever (the user can still
/// kill the process).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn test_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn test_global_flags_parse_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "eventsync",
            "todo",
            "list",
            "--json",
            "--store",
            "s1",
            "--offline",
            "-vv",
        ])
        .unwrap();
        assert_eq!(cli.global.store.as_deref(), Some("s1"));
        assert!(cli.global.offline);
        assert_eq!(cli.global.verbose, 2);
        assert!(matches!(cli.command, Command::Todo(_)));
    }

    #[test]
    fn test_event_line_shows_seq_name_and_origin() {
        let event = GlobalEvent {
            seq_num: eventsync_backends::GlobalSeq(3),
            parent_seq_num: eventsync_backends::GlobalSeq(2),
            name: "v1.TodoCreated".into(),
            args: serde_json::json!({"id": "a", "text": "milk"}),
            client_id: "c1".into(),
            session_id: "s1".into(),
        };
        let line = event_line(&event);
        assert!(line.starts_with("e3 "), "{line}");
        assert!(line.contains("v1.TodoCreated"), "{line}");
        assert!(line.contains(r#""text":"milk""#), "{line}");
        assert!(line.contains("client=c1 session=s1"), "{line}");
    }
}
