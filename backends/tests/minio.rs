//! The conformance suite against MinIO in Docker, through testcontainers (crate feature
//! `minio`). Where no Docker engine answers, each test says so on stderr and passes: MinIO
//! is an extra, and the required S3 run is `tests/s3.rs`.
//!
//! Run: `cargo test -p eventsync-backends --features minio --test minio -- --test-threads 4`
//! (each test starts its own container).
#![cfg(feature = "minio")]

use std::io::Write;

use eventsync_backends::conformance::Fixture;
use eventsync_backends::{OpenOptions, S3Options, open_object_store};
use testcontainers_modules::minio::MinIO;
use testcontainers_modules::testcontainers::core::{CmdWaitFor, ExecCommand};
use testcontainers_modules::testcontainers::runners::AsyncRunner;

const BUCKET: &str = "eventsync-test";

fn did_not_run(why: String) -> Option<Fixture> {
    // Straight to stderr, past the test harness's capture, so it shows in every run.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!! MINIO CONFORMANCE TEST DID NOT RUN: {why} !!!!\n"
    );
    None
}

async fn minio_fixture() -> Option<Fixture> {
    let container = match MinIO::default().start().await {
        Ok(container) => container,
        Err(e) => return did_not_run(format!("cannot start MinIO through Docker: {e}")),
    };
    let make_bucket = ExecCommand::new([
        "sh",
        "-c",
        &format!(
            "mc alias set local http://127.0.0.1:9000 minioadmin minioadmin && mc mb --ignore-existing local/{BUCKET}"
        ),
    ])
    .with_cmd_ready_condition(CmdWaitFor::exit_code(0));
    if let Err(e) = container.exec(make_bucket).await {
        panic!("MinIO started but the bucket could not be created: {e}");
    }
    let host = container.get_host().await.expect("container host");
    let port = container
        .get_host_port_ipv4(9000)
        .await
        .expect("container port");
    let options = OpenOptions {
        s3: S3Options {
            endpoint: Some(format!("http://{host}:{port}")),
            allow_http: Some(true),
            region: Some("us-east-1".into()),
            access_key_id: Some("minioadmin".into()),
            secret_access_key: Some("minioadmin".into()),
            ..S3Options::default()
        },
        ..OpenOptions::default()
    };
    let (store, prefix) =
        open_object_store(&format!("s3://{BUCKET}/conformance"), &options).expect("open MinIO");
    Some(
        Fixture::new("minio", store, prefix)
            .remote()
            .with_guard(container),
    )
}

eventsync_backends::conformance_tests!(minio, minio_fixture());
