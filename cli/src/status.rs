//! `eventsync status [--json]`: where this client's replica stands against the backend.

use clap::Args;

use super::{backend, out, with_store};
use crate::config::Config;
use eventsync::Result;
use eventsync::Store;

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object (StoreStatus, camelCase, plus the redacted backend URL)
    #[arg(long)]
    json: bool,
}

/// Runs `status`. The store is opened offline so that looking does not sync (pending
/// events stay pending); the backend's head is asked for directly unless `--offline`.
pub(crate) async fn run(config: &Config, args: &StatusArgs) -> Result<()> {
    let offline_config = Config {
        offline: true,
        ..config.clone()
    };
    with_store(&offline_config, async |store: &Store| {
        let mut status = store.status().await?;
        if status.backend_head.is_none() && !config.offline {
            let backend = backend::open_backend(config, &config.backend, &config.store_id).await;
            status.backend_head = match backend {
                Ok(backend) => backend.head().await.ok(),
                Err(_) => None,
            };
        }
        let url = backend::display_url(&config.backend);
        if args.json {
            let mut json = serde_json::to_value(&status)
                .map_err(|e| eventsync::Error::internal("encoding status").with_source(e))?;
            json["backend"] = url.into();
            return out(json);
        }
        let backend_head = match status.backend_head {
            Some(head) => head.to_string(),
            None if config.offline => "not asked (--offline)".into(),
            None => "unreachable".into(),
        };
        out(format!("store                  {}", status.store_id))?;
        out(format!("client                 {}", status.client_id))?;
        out(format!("backend                {url}"))?;
        out(format!("local head             {}", status.local_head))?;
        out(format!(
            "backend-confirmed head {}",
            status.backend_confirmed_head
        ))?;
        out(format!("pending                {}", status.pending))?;
        out(format!("backend head           {backend_head}"))
    })
    .await
}
