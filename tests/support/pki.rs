//! Certificates made in the test (rcgen): a CA and server certificates
//! signed by it, for TLS servers on 127.0.0.1.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test certificate authority (a root, or an intermediate of one).
pub struct TestCa {
    pub pem: String,
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and the TLS configuration serving it.
pub struct ServerCert {
    pub der: CertificateDer<'static>,
    pub config: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one.
    #[allow(dead_code)] // not every test binary uses every helper
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` whose TLS configuration sends
    /// `extra` after it (intermediates, or anything a hostile server adds).
    #[allow(dead_code)]
    pub fn server_sending(&self, names: &[&str], extra: &[&CertificateDer<'static>]) -> ServerCert {
        self.server_chain(names, |_| {}, extra)
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> ServerCert {
        self.server_with(names, |_| {})
    }

    /// One that expired in 2020.
    pub fn expired_server(&self, names: &[&str]) -> ServerCert {
        self.server_with(names, |p| {
            p.not_before = rcgen::date_time_ymd(2019, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        })
    }

    fn server_with(
        &self,
        names: &[&str],
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> ServerCert {
        self.server_chain(names, tweak, &[])
    }

    fn server_chain(
        &self,
        names: &[&str],
        tweak: impl FnOnce(&mut CertificateParams),
        extra: &[&CertificateDer<'static>],
    ) -> ServerCert {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "tether test server");
        tweak(&mut params);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let der = cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                std::iter::once(der.clone())
                    .chain(extra.iter().map(|c| (*c).clone()))
                    .collect(),
                key,
            )
            .unwrap();
        ServerCert {
            der,
            config: Arc::new(config),
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}
