//! The TLS client settings of an `eventsync+wss://` backend: rustls with the ring provider,
//! trusting the system's root certificates and, when given, the CA certificates of a PEM
//! file. There is no way to switch verification off.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::BackendError;

fn invalid(message: String) -> BackendError {
    BackendError::Invalid { message }
}

/// The client settings: the system's roots plus the certificates of `ca_file`.
pub(crate) fn client_config(
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, BackendError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if !native.errors.is_empty() {
        tracing::debug!(errors = ?native.errors, "some system root certificates could not be read");
    }
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| invalid(format!("CA file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(invalid(format!(
                "CA file {} holds no CERTIFICATE block",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                invalid(format!(
                    "CA file {}: a certificate rustls cannot trust: {e}",
                    path.display()
                ))
            })?;
        }
    } else if added == 0 {
        return Err(invalid(
            "no trusted root certificates: the system has none readable and no CA file was given (EVENTSYNC_CA_FILE)".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS settings: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether an I/O error of a connection attempt is rustls refusing the server's
/// certificate (not worth retrying: it will be refused again).
pub(crate) fn is_certificate_error(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for path in [&empty, &missing] {
            match client_config(Some(path)) {
                Err(BackendError::Invalid { message }) => {
                    assert!(message.contains(&path.display().to_string()), "{message}");
                }
                other => panic!("{} gave {other:?}", path.display()),
            }
        }
    }
}
