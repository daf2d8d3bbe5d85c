//! TLS for the beats listener (rustls, ring provider), with the
//! certificate, key and client CA files reloaded when they change.

use crate::config::{BeatsTls, ClientAuth};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Rustls(String),
}

fn pem_err(path: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> TlsError + '_ {
    move |e| TlsError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Builds the server configuration from the files as they are now.
pub fn load(cfg: &BeatsTls) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert_file)
        .map_err(pem_err(&cfg.cert_file))?
        .collect::<Result<_, _>>()
        .map_err(pem_err(&cfg.cert_file))?;
    if certs.is_empty() {
        return Err(TlsError::File {
            path: cfg.cert_file.clone(),
            reason: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file).map_err(pem_err(&cfg.key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = match &cfg.client_ca_file {
        None => WebPkiClientVerifier::no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(pem_err(ca))? {
                roots
                    .add(c.map_err(pem_err(ca))?)
                    .map_err(|e| TlsError::File {
                        path: ca.clone(),
                        reason: e.to_string(),
                    })?;
            }
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let b = match cfg.client_auth {
                ClientAuth::Required => b,
                ClientAuth::Optional => b.allow_unauthenticated(),
            };
            b.build().map_err(|e| TlsError::Rustls(e.to_string()))?
        }
    };
    let sc = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(format!("certificate and key: {e}")))?;
    Ok(Arc::new(sc))
}

type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(cfg: &BeatsTls) -> Stamp {
    [
        Some(&cfg.cert_file),
        Some(&cfg.key_file),
        cfg.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

/// The configuration in use; new connections take the latest.
pub struct Reloading {
    cfg: BeatsTls,
    current: RwLock<(Arc<ServerConfig>, Stamp)>,
}

impl Reloading {
    pub fn new(cfg: BeatsTls) -> Result<Self, TlsError> {
        let st = stamp(&cfg);
        let sc = load(&cfg)?;
        Ok(Reloading {
            cfg,
            current: RwLock::new((sc, st)),
        })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
        tokio_rustls::TlsAcceptor::from(cur.0.clone())
    }

    /// Reloads if a file changed. `Some(Ok)` reloaded, `Some(Err)` the new
    /// files are bad and the old configuration stays, `None` no change.
    pub fn check(&self) -> Option<Result<(), TlsError>> {
        let now = stamp(&self.cfg);
        if self.current.read().unwrap_or_else(|e| e.into_inner()).1 == now {
            return None;
        }
        let res = load(&self.cfg);
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        // Remember the stamp even on failure, so a bad file is reported
        // once, not at every check.
        cur.1 = now;
        Some(res.map(|sc| cur.0 = sc))
    }

    pub fn interval(&self) -> std::time::Duration {
        self.cfg.reload_interval.0
    }
}
