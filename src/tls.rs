//! TLS client configuration (rustls with the ring provider): which roots
//! are trusted, extra CAs, and public-key pinning.
//!
//! Trust is decided by one verifier, `TrustVerifier`: the chosen roots
//! (bundled Mozilla roots, or the platform's store), else the extra CAs,
//! then, if pins are set, the chain must carry a pinned key.

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::Error;
use crate::options::{Roots, TlsTrust};

/// The pin of a certificate: base64 SHA-256 of its SubjectPublicKeyInfo.
pub fn spki_sha256_base64(cert_der: &[u8]) -> Option<String> {
    let spki = subject_public_key_info(cert_der)?;
    let hash = ring::digest::digest(&ring::digest::SHA256, spki);
    Some(base64::engine::general_purpose::STANDARD.encode(hash.as_ref()))
}

/// Builds the client configuration of one client from its options.
pub(crate) fn client_config(trust: &TlsTrust) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra = trust.extra_cas.clone();
    let pins = trust.pins.clone();
    let setup_failed =
        |e: &dyn std::fmt::Display| Error::Internal(format!("TLS setup failed: {e}"));

    let (primary, fallback): (Arc<dyn ServerCertVerifier>, _) = match trust.roots {
        Roots::Webpki => {
            let mut roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            add_all(&mut roots, extra)?;
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| setup_failed(&e))?;
            (verifier, None)
        }
        Roots::Platform => {
            let platform = rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| setup_failed(&e))?;
            let fallback = if extra.is_empty() {
                None
            } else {
                let mut roots = RootCertStore::empty();
                add_all(&mut roots, extra)?;
                let v: Arc<dyn ServerCertVerifier> =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| setup_failed(&e))?;
                Some(v)
            };
            (Arc::new(platform), fallback)
        }
    };
    let verifier = TrustVerifier {
        primary,
        fallback,
        pins,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup_failed(&e))?
        .dangerous() // a verifier of our own, which still verifies (above)
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn add_all(roots: &mut RootCertStore, certs: Vec<CertificateDer<'static>>) -> Result<(), Error> {
    for cert in certs {
        roots.add(cert).map_err(|e| {
            Error::InvalidArgument(format!("options: tls.extra_ca_pem: unusable CA: {e}"))
        })?;
    }
    Ok(())
}

/// Chain verification by the configured roots, falling back to the extra
/// CAs, then the pin check.
#[derive(Debug)]
struct TrustVerifier {
    primary: Arc<dyn ServerCertVerifier>,
    /// Extra CAs when the primary is the platform store.
    fallback: Option<Arc<dyn ServerCertVerifier>>,
    pins: Vec<[u8; 32]>,
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verify = |v: &Arc<dyn ServerCertVerifier>| {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        };
        let mut verdict = verify(&self.primary);
        if let (Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)), Some(f)) =
            (&verdict, &self.fallback)
        {
            verdict = verify(f);
        }
        let verified = verdict?;
        if self.pins.is_empty() {
            return Ok(verified);
        }
        let pinned = std::iter::once(end_entity)
            .chain(intermediates)
            .filter_map(|cert| subject_public_key_info(cert))
            .map(|spki| ring::digest::digest(&ring::digest::SHA256, spki))
            .any(|hash| self.pins.iter().any(|pin| pin == hash.as_ref()));
        if pinned {
            Ok(verified)
        } else {
            // Tells pin failures apart from chain failures (see
            // connection::tls_ending).
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.primary.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.primary.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.primary.supported_verify_schemes()
    }
}

/// What a certificate failure means to the app (`ws_error_code`).
pub(crate) fn classify_certificate_error(error: &CertificateError) -> (i32, &'static str) {
    use crate::error::error_code;
    match error {
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => (
            error_code::TLS_EXPIRED,
            "the certificate is expired or not yet valid",
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
            error_code::TLS_HOSTNAME,
            "the certificate is not valid for this host name",
        ),
        CertificateError::ApplicationVerificationFailure => (
            error_code::TLS_PIN,
            "no certificate in the chain matches tls.pin_sha256",
        ),
        _ => (error_code::TLS_UNTRUSTED, "the certificate is not trusted"),
    }
}

// ---- a minimal DER reader: just enough to find the SubjectPublicKeyInfo.

/// One DER element split off an input: (tag, whole element, content, rest).
type DerSplit<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Splits one DER element off `input`.
fn der_element(input: &[u8]) -> Option<DerSplit<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = input.get(2..2 + n)?;
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    Some((tag, whole, &whole[header..], &input[end..]))
}

/// The SubjectPublicKeyInfo (whole DER element) of an X.509 certificate.
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0; // [0] EXPLICIT
    let (SEQUENCE, _, certificate, _) = der_element(cert)? else {
        return None;
    };
    let (SEQUENCE, _, tbs, _) = der_element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = der_element(rest)?.3;
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = der_element(rest)?.3;
    }
    match der_element(rest)? {
        (SEQUENCE, spki, _, _) => Some(spki),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_spki_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["example.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let spki = subject_public_key_info(cert.der()).unwrap();
        use rcgen::PublicKeyData;
        assert_eq!(spki, key.subject_public_key_info().as_slice());
        let pin = spki_sha256_base64(cert.der()).unwrap();
        assert_eq!(
            crate::options::parse_pin(&format!("sha256/{pin}"))
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x02\x01\x00",
            b"hello",
        ] {
            assert_eq!(subject_public_key_info(bad), None);
        }
    }
}
