//! A self-signed certificate for TLS listeners, and clients that trust exactly that certificate.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes a self-signed certificate for `localhost` and `127.0.0.1` and its private key as PEM
/// files into `dir`, returning `(cert_path, key_path)`.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("generate a self-signed certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert.pem");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key.pem");
    (cert_path, key_path)
}

/// A client for the test's own servers: no proxy from the environment, every call bounded.
pub fn http_client() -> reqwest::Client {
    base().build().expect("build the test client")
}

/// A client that speaks HTTP/2 with prior knowledge (h2c) over plain TCP.
pub fn h2c_client() -> reqwest::Client {
    base()
        .http2_prior_knowledge()
        .build()
        .expect("build the h2c client")
}

/// A client that trusts only the certificate in `cert_path`; `http1_only` keeps ALPN to
/// `http/1.1`, otherwise it offers `h2` first.
pub fn tls_client(cert_path: &Path, http1_only: bool) -> reqwest::Client {
    let pem = std::fs::read(cert_path).expect("read the test certificate");
    let cert = reqwest::Certificate::from_pem(&pem).expect("parse the test certificate");
    let builder = base().tls_certs_only([cert]);
    let builder = if http1_only {
        builder.http1_only()
    } else {
        builder
    };
    builder.build().expect("build the TLS client")
}

fn base() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
}
