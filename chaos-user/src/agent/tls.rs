//! HTTPS for the agent: rustls with the certificate and key from PEM files (a Kubernetes TLS
//! Secret mounted into the pod), read again when either file changes, so that a rotated
//! certificate is served from the next connection on without a restart. A connection whose
//! handshake fails is dropped and the listener goes on.

use crate::error::{Error, Result};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
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
    cert: PathBuf,
    key: PathBuf,
    /// The files' modification times the acceptor was built from.
    stamp: (Option<SystemTime>, Option<SystemTime>),
    acceptor: TlsAcceptor,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The server configuration from PEM files; errors name the flag and the file.
pub fn config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
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
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| {
            Error::input(
                "--tls-key",
                format!("the certificate and key do not fit: {e}"),
            )
        })?;
    Ok(Arc::new(cfg))
}

impl TlsListener {
    pub fn new(tcp: TcpListener, cert: PathBuf, key: PathBuf) -> Result<Self> {
        let acceptor = TlsAcceptor::from(config(&cert, &key)?);
        let stamp = (mtime(&cert), mtime(&key));
        Ok(TlsListener {
            tcp,
            cert,
            key,
            stamp,
            acceptor,
        })
    }

    /// Rebuilds the acceptor when a file changed; a broken pair keeps the previous one.
    fn reload(&mut self) {
        let now = (mtime(&self.cert), mtime(&self.key));
        if now == self.stamp {
            return;
        }
        match config(&self.cert, &self.key) {
            Ok(cfg) => {
                self.acceptor = TlsAcceptor::from(cfg);
                self.stamp = now;
                tracing::info!("TLS certificate reloaded from {}", self.cert.display());
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
