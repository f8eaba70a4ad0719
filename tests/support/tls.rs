//! Certificates made by a test: a CA of its own and a certificate it signed, and client
//! certificates signed by the same CA.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};

/// A certificate for some names, signed by a CA made for it.
pub struct SignedCertificate {
    /// The CA's certificate, as PEM: what a client is told to trust.
    pub ca_pem: String,
    /// The certificate.
    pub certificate: Certificate,
    /// Its private key.
    pub key: KeyPair,
    issuer: Issuer<'static, KeyPair>,
}

fn named(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

impl SignedCertificate {
    /// A certificate for `names` (DNS names, or IP addresses written out), signed by a new
    /// CA. Each has a name of its own (OpenSSL takes a certificate whose issuer is its own
    /// subject for a self-signed one).
    pub fn for_names(names: &[&str]) -> Self {
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
            issuer,
        }
    }

    /// The certificate's PEM, then its key's.
    pub fn pem(&self) -> (String, String) {
        (self.certificate.pem(), self.key.serialize_pem())
    }

    /// A client certificate (for client authentication) with common name `name` and a
    /// URI name, signed by this certificate's CA; its PEM and its key's.
    pub fn client(&self, name: &str, uri: &str) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name = named(name);
        params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("a URI"))];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let certificate = params.signed_by(&key, &self.issuer).expect("certificate");
        (certificate.pem(), key.serialize_pem())
    }
}
