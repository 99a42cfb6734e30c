//! HTTPS for the agent: rustls with the certificate and key from PEM files (a Kubernetes TLS
//! Secret mounted into the pod), read again when either file changes, so that a rotated
//! certificate is served from the next connection on without a restart. With a client CA,
//! every client must present a certificate that CA issued, valid now (mTLS, rustls's WebPKI
//! verifier); the bearer token is still required. A connection whose handshake fails is
//! dropped and the listener goes on.

use crate::error::{Error, Result};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// A TCP listener that hands out TLS streams (axum's `Listener`).
pub struct TlsListener {
    tcp: TcpListener,
    files: TlsFiles,
    /// The files' modification times the acceptor was built from.
    stamp: (Option<SystemTime>, Option<SystemTime>),
    acceptor: TlsAcceptor,
}

/// The agent's PEM files: its certificate chain and key, and the CA its clients' certificates
/// must come from (mTLS), if any.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The server configuration from PEM files; errors name the flag and the file.
pub fn config(files: &TlsFiles) -> Result<Arc<ServerConfig>> {
    let (cert, key) = (files.cert.as_path(), files.key.as_path());
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::input("--tls-cert", format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::input(
            "--tls-cert",
            format!("{} holds no PEM certificate", cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::input("--tls-key", format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::input("--tls-cert", format!("TLS versions: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
    };
    let cfg = builder.with_single_cert(certs, key).map_err(|e| {
        Error::input(
            "--tls-key",
            format!("the certificate and key do not fit: {e}"),
        )
    })?;
    Ok(Arc::new(cfg))
}

/// Accepts client certificates issued by the CA in `ca` (PEM) and valid now.
fn client_verifier(
    ca: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let bad = |m: String| Error::input("--client-ca", format!("{}: {m}", ca.display()));
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))? {
        roots
            .add(c.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| bad(e.to_string()))
}

impl TlsListener {
    pub fn new(tcp: TcpListener, files: TlsFiles) -> Result<Self> {
        let acceptor = TlsAcceptor::from(config(&files)?);
        let stamp = (mtime(&files.cert), mtime(&files.key));
        Ok(TlsListener {
            tcp,
            files,
            stamp,
            acceptor,
        })
    }

    /// Rebuilds the acceptor when a file changed; a broken pair keeps the previous one.
    fn reload(&mut self) {
        let now = (mtime(&self.files.cert), mtime(&self.files.key));
        if now == self.stamp {
            return;
        }
        match config(&self.files) {
            Ok(cfg) => {
                self.acceptor = TlsAcceptor::from(cfg);
                self.stamp = now;
                tracing::info!(
                    "TLS certificate reloaded from {}",
                    self.files.cert.display()
                );
            }
            Err(e) => tracing::warn!("keeping the previous certificate: {e}"),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            self.reload();
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(e) => tracing::info!("TLS handshake with {addr} failed: {e}"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
