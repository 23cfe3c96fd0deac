//! The conformance suite against MinIO in Docker, through testcontainers (crate feature
//! `minio`), with the image that `docker/docker-compose.yml` pins (or `MINIO_IMAGE`, as
//! there). Where no Docker engine answers or the image cannot be pulled, each test reports
//! that it did not run, and why (`conformance::report_not_run`: on stderr, and in
//! `scripts/test`'s summary), also under CI: MinIO is an extra, and the required S3 run is
//! `tests/s3.rs`.
//!
//! Run: `cargo test -p eventsync-backends --features minio --test minio -- --test-threads 4`
//! (each test starts its own container).
#![cfg(feature = "minio")]

use eventsync_backends::conformance::Fixture;
use eventsync_backends::{OpenOptions, S3Options, open_object_store};
use testcontainers_modules::minio::MinIO;
use testcontainers_modules::testcontainers::ImageExt;
use testcontainers_modules::testcontainers::core::{CmdWaitFor, ExecCommand};
use testcontainers_modules::testcontainers::runners::AsyncRunner;

const BUCKET: &str = "eventsync-test";

/// The compose file whose MinIO image the test runs, read at build time.
const COMPOSE_FILE: &str = include_str!("../../docker/docker-compose.yml");

/// The MinIO image of the compose file, `name:tag`: its default in
/// `image: ${MINIO_IMAGE:-...}`, or `MINIO_IMAGE` when set and not empty, as compose reads it.
fn pinned_image() -> String {
    if let Ok(image) = std::env::var("MINIO_IMAGE")
        && !image.trim().is_empty()
    {
        return image.trim().to_owned();
    }
    compose_default_image(COMPOSE_FILE, "MINIO_IMAGE")
        .expect("docker/docker-compose.yml has a line `image: ${MINIO_IMAGE:-name:tag}`")
}

/// The default of `image: ${VAR:-default}` in a compose file, for the variable `var`.
fn compose_default_image(compose: &str, var: &str) -> Option<String> {
    let start = format!("image: ${{{var}:-");
    compose.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(start.as_str())?;
        let (image, _) = rest.split_once('}')?;
        (!image.is_empty()).then(|| image.to_owned())
    })
}

/// `name:tag` split at the tag's colon (a registry's port is part of the name); a missing tag
/// is `latest`, as Docker reads it.
fn split_image(image: &str) -> (&str, &str) {
    let name_end = image.rfind('/').map_or(0, |slash| slash + 1);
    match image[name_end..].rfind(':') {
        Some(colon) => (&image[..name_end + colon], &image[name_end + colon + 1..]),
        None => (image, "latest"),
    }
}

async fn minio_fixture() -> Result<Fixture, String> {
    let image = pinned_image();
    let (name, tag) = split_image(&image);
    let container = MinIO::default()
        .with_name(name)
        .with_tag(tag)
        .start()
        .await
        .map_err(|e| format!("cannot start MinIO ({image}) through Docker: {e}"))?;
    let make_bucket = ExecCommand::new([
        "sh",
        "-c",
        &format!(
            "mc alias set local http://127.0.0.1:9000 minioadmin minioadmin && mc mb --ignore-existing local/{BUCKET}"
        ),
    ])
    .with_cmd_ready_condition(CmdWaitFor::exit_code(0));
    if let Err(e) = container.exec(make_bucket).await {
        panic!("MinIO ({image}) started but the bucket could not be created: {e}");
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
    Ok(Fixture::new("minio", store, prefix)
        .remote()
        .with_guard(container))
}

eventsync_backends::conformance_tests!(minio, minio_fixture());

#[test]
fn test_the_image_is_the_one_the_compose_file_pins() {
    let image = compose_default_image(COMPOSE_FILE, "MINIO_IMAGE").expect("an image line");
    let (name, tag) = split_image(&image);
    assert_eq!(name, "quay.io/minio/minio", "{image}");
    assert!(tag.starts_with("RELEASE.2025-"), "{image}");
    assert_eq!(
        compose_default_image(COMPOSE_FILE, "MC_IMAGE").map(|mc| split_image(&mc).0.to_owned()),
        Some("quay.io/minio/mc".to_owned())
    );
}

#[test]
fn test_split_image_keeps_a_registry_port_in_the_name() {
    assert_eq!(
        split_image("localhost:5000/minio:dev"),
        ("localhost:5000/minio", "dev")
    );
    assert_eq!(
        split_image("localhost:5000/minio"),
        ("localhost:5000/minio", "latest")
    );
    assert_eq!(split_image("minio"), ("minio", "latest"));
}
