//! The identity of a `wss://` test server: a test CA made at start, and two
//! certificates it signed for `localhost` and `127.0.0.1`: the one the
//! server serves, and another with another key (what a server whose key
//! changed serves: the chain verifies, a pin on the first key fails).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What a TLS test server serves and what its clients need to trust it.
pub(crate) struct Identity {
    /// The test CA, PEM: a client's `tls.extra_ca_pem`.
    pub(crate) ca_pem: String,
    /// base64(SHA-256(SubjectPublicKeyInfo)) of the served certificate's
    /// key: a client's `tls.pin_sha256`.
    pub(crate) pin_sha256: String,
    /// Serves the pinned certificate.
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// Serves the certificate with the other key.
    pub(crate) other_key: Arc<rustls::ServerConfig>,
}

fn fail(e: impl std::fmt::Display) -> String {
    format!("cannot make the test certificates: {e}")
}

pub(crate) fn identity() -> Result<Identity, String> {
    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.distinguished_name
        .push(DnType::CommonName, "tether-testkit CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca, ca_key);
    let (config, key) = server_config(&issuer)?;
    let (other_key, _) = server_config(&issuer)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info());
    use base64::Engine;
    Ok(Identity {
        ca_pem: ca_cert.pem(),
        pin_sha256: base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
        config,
        other_key,
    })
}

/// A certificate with a fresh key, signed by `issuer`, and its config.
fn server_config(
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(Arc<rustls::ServerConfig>, KeyPair), String> {
    let key = KeyPair::generate().map_err(fail)?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(fail)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "tether-testkit server");
    let cert = params.signed_by(&key, issuer).map_err(fail)?;
    let der: CertificateDer<'static> = cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(fail)?
        .with_no_client_auth()
        .with_single_cert(vec![der], private)
        .map_err(fail)?;
    Ok((Arc::new(config), key))
}
