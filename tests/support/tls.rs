//! Certificates made by a test: a CA of its own and a certificate it signed.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair,
};

/// A certificate for some names, signed by a CA made for it.
pub struct SignedCertificate {
    /// The CA's certificate, as PEM: what a client is told to trust.
    pub ca_pem: String,
    /// The certificate.
    pub certificate: Certificate,
    /// Its private key.
    pub key: KeyPair,
}

impl SignedCertificate {
    /// A certificate for `names` (DNS names, or IP addresses written out), signed by a new
    /// CA. Each has a name of its own (OpenSSL takes a certificate whose issuer is its own
    /// subject for a self-signed one).
    pub fn for_names(names: &[&str]) -> Self {
        let named = |name: &str| {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, name);
            dn
        };
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.distinguished_name = named("weir test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name = named("weir test certificate");
        let certificate = params.signed_by(&key, &issuer).expect("certificate");
        Self {
            ca_pem: ca.pem(),
            certificate,
            key,
        }
    }
}
