//! TLS client configuration (rustls with the ring provider): which roots
//! are trusted, extra CAs, and public-key pinning.
//!
//! Trust is decided by one verifier, `TrustVerifier`: the chosen roots
//! (bundled Mozilla roots, or the platform's store), else the extra CAs,
//! then, if pins are set, a pinned key must be on a path that chains the
//! leaf to it (`PinSet`): a pinned certificate merely sent along with the
//! chain proves nothing (the flaw OkHttp fixed in 2016 by pinning against
//! the cleaned chain).

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::Error;
use crate::options::{Roots, TlsTrust};

/// The pin of a certificate: base64 SHA-256 of its SubjectPublicKeyInfo.
pub fn spki_sha256_base64(cert_der: &[u8]) -> Option<String> {
    let hash = spki_sha256(&CertificateDer::from(cert_der))?;
    Some(base64::engine::general_purpose::STANDARD.encode(hash))
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (the whole DER
/// element), parsed by rustls-webpki; `None` if it is no certificate.
fn spki_sha256(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    Some(sha256(cert.subject_public_key_info().as_ref()))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let hash = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

/// Builds the client configuration of one client from its options.
pub(crate) fn client_config(trust: &TlsTrust) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra = trust.extra_cas.clone();
    let pins = trust.pins.clone();
    let roots_kind = trust.roots;
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
    let pins = PinSet::new(pins, roots_kind, &trust.extra_cas);
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
    pins: PinSet,
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
        if self.pins.is_empty() || self.pins.chain_is_pinned(end_entity, intermediates, now) {
            Ok(verified)
        } else {
            // Tells pin failures apart from chain failures (see
            // wire::websocket::tls_ending).
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

/// The pins of a client, and the trust anchors they name.
#[derive(Debug)]
struct PinSet {
    pins: Vec<[u8; 32]>,
    /// Configured roots and extra CAs whose key is pinned: a server need
    /// not send its root, so a pinned root is found here.
    pinned_anchors: Vec<TrustAnchor<'static>>,
}

impl PinSet {
    fn new(pins: Vec<[u8; 32]>, roots: Roots, extra_cas: &[CertificateDer<'static>]) -> PinSet {
        let pinned = |spki_hash: [u8; 32]| pins.contains(&spki_hash);
        let mut pinned_anchors = Vec::new();
        if !pins.is_empty() {
            for ca in extra_cas {
                if spki_sha256(ca).is_some_and(pinned) {
                    if let Ok(anchor) = webpki::anchor_from_trusted_cert(ca) {
                        pinned_anchors.push(anchor.to_owned());
                    }
                }
            }
            // The platform store's roots cannot be listed here: a root
            // pin then needs the server to send that root.
            if roots == Roots::Webpki {
                pinned_anchors.extend(
                    webpki_roots::TLS_SERVER_ROOTS
                        .iter()
                        .filter(|anchor| {
                            pinned(sha256(&der_sequence(&anchor.subject_public_key_info)))
                        })
                        .cloned(),
                );
            }
        }
        PinSet {
            pins,
            pinned_anchors,
        }
    }

    fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }

    fn is_pinned(&self, cert: &CertificateDer<'_>) -> bool {
        spki_sha256(cert).is_some_and(|hash| self.pins.contains(&hash))
    }

    /// Whether a pinned key is the leaf's, or that of a certificate the
    /// leaf chains up to through the presented intermediates (checked by
    /// building that path with rustls-webpki, the pinned certificate as the
    /// only trust anchor).
    fn chain_is_pinned(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> bool {
        if self.is_pinned(end_entity) {
            return true;
        }
        let Ok(leaf) = webpki::EndEntityCert::try_from(end_entity) else {
            return false;
        };
        let chains_to = |anchors: &[TrustAnchor<'_>]| {
            leaf.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                anchors,
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .is_ok()
        };
        let presented = intermediates
            .iter()
            .filter(|cert| self.is_pinned(cert))
            .filter_map(|cert| webpki::anchor_from_trusted_cert(cert).ok())
            .any(|anchor| chains_to(&[anchor]));
        presented || (!self.pinned_anchors.is_empty() && chains_to(&self.pinned_anchors))
    }
}

/// A DER SEQUENCE around `contents` (trust anchors keep only the contents
/// of their SubjectPublicKeyInfo; pins hash the whole element).
fn der_sequence(contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![0x30];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_of_a_generated_certificate_is_its_spki_hash() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["example.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        use rcgen::PublicKeyData;
        let expected = sha256(&key.subject_public_key_info());
        assert_eq!(spki_sha256(cert.der()), Some(expected));
        let pin = spki_sha256_base64(cert.der()).unwrap();
        assert_eq!(
            crate::options::parse_pin(&format!("sha256/{pin}")).unwrap(),
            expected
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
            assert_eq!(spki_sha256_base64(bad), None);
        }
    }

    #[test]
    fn der_sequences_encode_short_and_long_lengths() {
        assert_eq!(der_sequence(&[1, 2]), vec![0x30, 2, 1, 2]);
        let long = der_sequence(&[0; 300]);
        assert_eq!(&long[..4], &[0x30, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn webpki_roots_hash_like_their_certificates() {
        // A root's anchor, wrapped back, hashes as its certificate's SPKI.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let anchor = webpki::anchor_from_trusted_cert(ca.der()).unwrap();
        assert_eq!(
            Some(sha256(&der_sequence(&anchor.subject_public_key_info))),
            spki_sha256(ca.der())
        );
    }
}
