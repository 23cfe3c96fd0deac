//! The conformance suite against a temporary local folder, through `open_object_store`
//! (LocalFileSystem with fsync on).

use eventsync_backends::conformance::Fixture;
use eventsync_backends::{OpenOptions, open_object_store};

async fn file_fixture() -> Result<Fixture, String> {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("file://{}", dir.path().join("backend").display());
    let (store, prefix) =
        open_object_store(&url, &OpenOptions::default()).expect("open the folder");
    Ok(Fixture::new("file", store, prefix).with_guard(dir))
}

eventsync_backends::conformance_tests!(file, file_fixture());
