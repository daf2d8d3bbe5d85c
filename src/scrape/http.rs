//! The HTTP side of a scrape: one client per job (TLS settings), auth
//! headers read per request (so rotated token files are picked up, as
//! Prometheus does), and the body streamed in chunks.

use crate::config::{ScrapeConfig, TlsConfig};
use crate::exposition::{self, Format};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("Get \"{url}\": {reason}")]
    Request { url: String, reason: String },
    #[error("server returned HTTP status {0}")]
    Status(u16),
    #[error("reading the body: {0}")]
    Body(String),
    #[error("body size limit exceeded (limit {0} bytes)")]
    BodyTooLarge(u64),
    #[error("cannot read {what} {path}: {source}")]
    Secret {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("tls_config: {0}")]
pub struct ClientError(String);

/// Builds the client a job's targets share.
pub fn build_client(sc: &ScrapeConfig) -> Result<reqwest::Client, ClientError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("kubegate/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .gzip(sc.enable_compression)
        .pool_idle_timeout(Duration::from_secs(90))
        // Prometheus does not follow redirects to other hosts silently either;
        // a few same-purpose redirects are fine.
        .redirect(reqwest::redirect::Policy::limited(5));
    b = apply_tls(b, &sc.tls_config)?;
    b.build().map_err(|e| ClientError(crate::error_chain(&e)))
}

fn apply_tls(
    mut b: reqwest::ClientBuilder,
    tls: &TlsConfig,
) -> Result<reqwest::ClientBuilder, ClientError> {
    if let Some(ca) = &tls.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| ClientError(format!("ca_file {}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ClientError(format!("ca_file {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(ClientError(format!(
                "ca_file {} holds no certificate",
                ca.display()
            )));
        }
        // Only the configured CA, as Prometheus: the system roots are not added.
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = std::fs::read(cert)
            .map_err(|e| ClientError(format!("cert_file {}: {e}", cert.display())))?;
        pem.push(b'\n');
        pem.extend(
            std::fs::read(key)
                .map_err(|e| ClientError(format!("key_file {}: {e}", key.display())))?,
        );
        b = b.identity(
            reqwest::Identity::from_pem(&pem)
                .map_err(|e| ClientError(format!("client certificate: {e}")))?,
        );
    }
    if tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    Ok(b)
}

fn read_secret(what: &'static str, path: &std::path::Path) -> Result<String, FetchError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| FetchError::Secret {
            what,
            path: path.display().to_string(),
            source,
        })
}

/// The `Authorization` header value for a job, if any.
pub fn authorization(sc: &ScrapeConfig) -> Result<Option<String>, FetchError> {
    if let Some(b) = &sc.basic_auth {
        let password = match (&b.password, &b.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => read_secret("password_file", f)?,
            (None, None) => String::new(),
        };
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", b.username));
        return Ok(Some(format!("Basic {token}")));
    }
    if let Some(t) = &sc.bearer_token {
        return Ok(Some(format!("Bearer {t}")));
    }
    if let Some(f) = &sc.bearer_token_file {
        return Ok(Some(format!(
            "Bearer {}",
            read_secret("bearer_token_file", f)?
        )));
    }
    if let Some(a) = &sc.authorization {
        let cred = match (&a.credentials, &a.credentials_file) {
            (Some(c), _) => c.clone(),
            (None, Some(f)) => read_secret("credentials_file", f)?,
            (None, None) => String::new(),
        };
        return Ok(Some(format!("{} {cred}", a.kind)));
    }
    Ok(None)
}

/// A response whose body is still to be read.
pub struct Response {
    inner: reqwest::Response,
    pub format: Format,
    limit: u64,
    read: u64,
}

impl Response {
    /// The next decompressed chunk; None at the end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, FetchError> {
        let c = self
            .inner
            .chunk()
            .await
            .map_err(|e| FetchError::Body(crate::error_chain(&e)))?;
        if let Some(c) = &c {
            self.read += c.len() as u64;
            if self.limit > 0 && self.read > self.limit {
                return Err(FetchError::BodyTooLarge(self.limit));
            }
        }
        Ok(c)
    }
}

pub async fn start(
    client: &reqwest::Client,
    sc: &ScrapeConfig,
    url: &str,
    timeout: Duration,
) -> Result<Response, FetchError> {
    let mut req = client
        .get(url)
        .header(reqwest::header::ACCEPT, exposition::SCRAPE_ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", timeout.as_secs_f64()),
        );
    if !sc.enable_compression {
        req = req.header(reqwest::header::ACCEPT_ENCODING, "identity");
    }
    if let Some(auth) = authorization(sc)? {
        req = req.header(reqwest::header::AUTHORIZATION, auth);
    }
    let resp = req.send().await.map_err(|e| FetchError::Request {
        url: url.to_owned(),
        reason: crate::error_chain(&e),
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    let format = exposition::format_from_content_type(
        resp.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    Ok(Response {
        inner: resp,
        format,
        limit: sc.body_size_limit.0,
        read: 0,
    })
}
