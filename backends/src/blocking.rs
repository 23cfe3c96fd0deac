//! CPU-heavy work (decoding a pack, building a snapshot image) kept off the async workers
//! where that is safe for determinism.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work` on tokio's blocking pool under a multi-thread runtime, so that it does not
/// hold up a worker; inline under a current-thread runtime, where a blocking thread would
/// finish at a moment the runtime does not control: a seeded simulation must see one
/// interleaving per seed (a pack decoded ahead on another thread changed the order of later
/// requests from one run of a seed to the next). Err names why the work stopped.
pub async fn run_cpu<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    if Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| error.to_string())
}
