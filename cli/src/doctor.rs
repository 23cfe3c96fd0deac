//! `eventsync doctor`: the capability probe against the configured backend, with a verdict.

use eventsync_backends::ProbeReport;

use super::{backend, out};
use crate::config::Config;
use eventsync::{Error, Result};

/// Runs `doctor`: prints the configuration it checks, each check, and a verdict; fails
/// (exit 1) when the backend cannot be trusted with concurrent writers.
pub(crate) async fn run(config: &Config) -> Result<()> {
    let url = backend::display_url(&config.backend);
    let config_file = config
        .config_file
        .as_ref()
        .map_or_else(|| "none".to_string(), |path| path.display().to_string());
    out(format!("config file  {config_file}"))?;
    out(format!("backend      {url} ({})", config.backend_origin))?;
    out(format!("store        {}", config.store_id))?;
    out(format!("data dir     {}", config.data_dir.display()))?;
    out("")?;
    if config.default_backend_dir().is_some() {
        config.ensure_data_dir()?;
    }
    let report = backend::probe(config).await?;
    let verdict = Verdict::of(&url, &report);
    out(&verdict.text)?;
    verdict.outcome
}

/// What `doctor` makes of a probe report: the text it prints (each check, then the verdict)
/// and its outcome. Apart from `run`, so that a test can hand it the report of a store that
/// no URL opens (a wrapper that misbehaves on purpose).
struct Verdict {
    /// The checks and the verdict, as printed.
    text: String,
    /// `Ok` when the store can hold an event log; an `Invalid` error naming the backend when
    /// it cannot be trusted with concurrent writers.
    outcome: Result<()>,
}

impl Verdict {
    fn of(url: &str, report: &ProbeReport) -> Verdict {
        let checks = report.to_string();
        if report.passed() {
            Verdict {
                text: format!(
                    "{}\n\nverdict: OK, {url} serializes conditional writes; eventsync can sync through it",
                    checks.trim_end()
                ),
                outcome: Ok(()),
            }
        } else {
            Verdict {
                text: format!(
                    "{}\n\nverdict: FAILED, see the checks above",
                    checks.trim_end()
                ),
                outcome: Err(Error::invalid(format!(
                    "backend {url} failed the capability probe: do not sync through it"
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use eventsync_backends::fault::{CheckThenWriteStore, FaultStore};
    use eventsync_backends::open::{OpenOptions, open_object_store};
    use eventsync_backends::probe::{ProbeOptions, probe_with};
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use object_store::path::Path;

    use super::*;
    use eventsync::ErrorKind;

    /// Doctor's verdict on `store`, probed as `eventsync doctor` probes (16 racers, 20 rounds).
    async fn verdict(store: Arc<dyn ObjectStore>) -> Verdict {
        let options = ProbeOptions::default();
        assert_eq!((options.race_width, options.race_rounds), (16, 20));
        let report = probe_with(store, &Path::from("doctor"), options).await;
        Verdict::of("test://store", &report)
    }

    #[tokio::test]
    async fn test_doctor_refuses_a_store_whose_creates_check_then_write() {
        let store = CheckThenWriteStore::new(Arc::new(InMemory::new()));
        let verdict = verdict(Arc::new(store)).await;
        let error = verdict.outcome.expect_err("doctor accepted the store");
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert!(
            format!("{error:#}").contains("failed the capability probe"),
            "{error}"
        );
        assert!(
            verdict.text.contains("ok   create-twice"),
            "{}",
            verdict.text
        );
        assert!(
            verdict.text.contains("FAIL create-race"),
            "{}",
            verdict.text
        );
        assert!(
            verdict
                .text
                .ends_with("verdict: FAILED, see the checks above")
        );
    }

    #[tokio::test]
    async fn test_doctor_refuses_a_store_that_ignores_create() {
        let store = FaultStore::ignoring_create(Arc::new(InMemory::new()));
        let verdict = verdict(Arc::new(store)).await;
        assert!(verdict.outcome.is_err());
        assert!(
            verdict.text.contains("FAIL create-twice"),
            "{}",
            verdict.text
        );
    }

    #[tokio::test]
    async fn test_doctor_accepts_memory_and_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("backend").display());
        let (folder, _) = open_object_store(&url, &OpenOptions::default()).unwrap();
        for store in [Arc::new(InMemory::new()) as Arc<dyn ObjectStore>, folder] {
            let verdict = verdict(store).await;
            assert!(verdict.outcome.is_ok(), "{}", verdict.text);
            assert!(
                verdict.text.contains("ok   create-race"),
                "{}",
                verdict.text
            );
            assert!(verdict.text.contains("verdict: OK"), "{}", verdict.text);
        }
    }
}
