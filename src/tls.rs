//! TLS client configuration (rustls with the ring provider).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error::Error;
use crate::options::TlsOptions;

/// Parses the certificates of a PEM text; at least one is required.
pub(crate) fn parse_pem_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("options: tls.extra_ca_pem: {e}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidArgument(
            "options: tls.extra_ca_pem holds no CERTIFICATE block".into(),
        ));
    }
    Ok(certs)
}

/// Builds the client configuration of one client from its options.
pub(crate) fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = &options.extra_ca_pem {
        for cert in parse_pem_certificates(pem)? {
            roots.add(cert).map_err(|e| {
                Error::InvalidArgument(format!("options: tls.extra_ca_pem: unusable CA: {e}"))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
