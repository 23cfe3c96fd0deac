//! `eventsync doctor`: the capability probe against the configured backend, with a verdict.

use super::{backend, out};
use crate::config::Config;
use crate::error::{Error, Result};

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
    let outcome = backend::probe(config).await?;
    out(outcome.report.trim_end())?;
    out("")?;
    if outcome.passed {
        out(format!(
            "verdict: OK, {url} serializes conditional writes; eventsync can sync through it"
        ))
    } else {
        out("verdict: FAILED, see the checks above")?;
        Err(Error::invalid(format!(
            "backend {url} failed the capability probe: do not sync through it"
        )))
    }
}
