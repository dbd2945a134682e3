//! The gates' HTTP clients (judges, Prometheus, live prompt targets): reqwest over rustls
//! with the ring provider, installed as the process default on first use, and certificates
//! verified by rustls-platform-verifier (on Linux the system CA bundle; `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` override it).

/// Installs ring as the process's rustls provider unless one is installed already. Call it
/// before building any reqwest client (reqwest is built without a provider of its own).
pub fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A reqwest client builder with the TLS provider in place.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_builds_with_the_provider_installed() {
        assert!(super::client_builder().build().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
