//! A client of one `chaos agent` (its /v1 API): what `chaos --agent URL ...` and
//! `chaos run --agents ...` send; and the agent's token file, which both ends read. Blocking (ureq, rustls): each call is one short request, made
//! from the CLI's own thread.

use crate::error::{Error, Result};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

/// How to reach agents: the token file and the TLS files (all paths as the user gave them).
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    pub token_file: Option<PathBuf>,
    /// The CA (PEM) the agents' certificates are checked against.
    pub cacert: Option<PathBuf>,
    /// A client certificate chain and its key (PEM), for agents that require one (mTLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Per request; a run's calls must not hang on a lost node (default 60 s).
    pub timeout: Option<Duration>,
}

pub struct Client {
    /// `https://HOST:PORT`, without a trailing slash.
    pub base: String,
    token: String,
    http: ureq::Agent,
}

/// The client certificate chain and key from PEM files; errors name the flag.
fn client_cert(cert: &Path, key: &Path) -> Result<ureq::tls::ClientCert> {
    let read = |flag: &'static str, p: &Path| {
        std::fs::read(p).map_err(|e| Error::input(flag, format!("{}: {e}", p.display())))
    };
    let pem = read("--client-cert", cert)?;
    let chain: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if chain.is_empty() {
        return Err(Error::input(
            "--client-cert",
            format!("{} holds no PEM certificate", cert.display()),
        ));
    }
    let key = ureq::tls::PrivateKey::from_pem(&read("--client-key", key)?)
        .map_err(|e| Error::input("--client-key", format!("{}: {e}", key.display())))?;
    Ok(ureq::tls::ClientCert::new_with_certs(&chain, key))
}

impl Client {
    /// A client of the agent at `url` (`http://` or `https://`); `flag` is the option that gave
    /// it, named in errors (`--agent`, `--agents`).
    pub fn new(cfg: &ClientConfig, url: &str, flag: &'static str) -> Result<Client> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::input(
                flag,
                format!("'{url}' is not a URL: give http://HOST:PORT or https://HOST:PORT"),
            ));
        }
        let file = cfg.token_file.as_ref().ok_or_else(|| {
            Error::input(
                "--token-file",
                "the agent needs its token: --token-file FILE",
            )
        })?;
        let token = read_token(file)?;
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &cfg.cacert {
            let pem = std::fs::read(ca)
                .map_err(|e| Error::input("--cacert", format!("{}: {e}", ca.display())))?;
            let cert = ureq::tls::Certificate::from_pem(&pem)
                .map_err(|e| Error::input("--cacert", format!("{}: {e}", ca.display())))?;
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])));
        }
        if let Some((c, k)) = &cfg.client_cert {
            tls = tls.client_cert(Some(client_cert(c, k)?));
        }
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout.unwrap_or(Duration::from_secs(60))))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// METHOD PATH with an optional JSON body: the JSON answer. A status of 400 is the user's
    /// to fix (`Error::Input` on `flag`), 404 nothing to act on there (`Error::NoTarget`), 401 a
    /// wrong token; others not 2xx, and an agent
    /// that cannot be reached, are `Error::Tool`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        flag: &'static str,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let resp = match (method, body) {
            ("POST", Some(b)) => self
                .http
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b),
            ("DELETE", _) => self.http.delete(&url).header("Authorization", &auth).call(),
            _ => self.http.get(&url).header("Authorization", &auth).call(),
        };
        let mut resp = resp.map_err(|e| transport(method, &url, &e))?;
        let code = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        self.answer(method, &url, code, &text, flag)
    }

    /// POSTs `body` to `path` and hands `each` every line of the streamed answer as JSON
    /// (NDJSON, as `POST /v1/experiments` answers), as it comes: no timeout but the agent's
    /// own end of the stream. A status other than 2xx is an error as for `call`.
    pub fn stream(
        &self,
        path: &str,
        body: String,
        flag: &'static str,
        mut each: impl FnMut(Value),
    ) -> Result<()> {
        let url = format!("{}{path}", self.base);
        let mut resp = self
            .http
            .post(&url)
            .config()
            .timeout_global(None)
            .build()
            .header("Authorization", &format!("Bearer {}", self.token))
            .send(body)
            .map_err(|e| transport("POST", &url, &e))?;
        let code = resp.status().as_u16();
        if !(200..300).contains(&code) {
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            return self.answer("POST", &url, code, &text, flag).map(drop);
        }
        let reader = std::io::BufReader::new(resp.body_mut().as_reader());
        for line in std::io::BufRead::lines(reader) {
            let line = line.map_err(|e| Error::io(format!("reading the answer of {url}"), e))?;
            if let Ok(v) = serde_json::from_str(&line) {
                each(v);
            }
        }
        Ok(())
    }

    /// A finished request's answer: the JSON of a 2xx, else the error its status means.
    fn answer(
        &self,
        method: &str,
        url: &str,
        code: u16,
        text: &str,
        flag: &'static str,
    ) -> Result<Value> {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::String(text.to_string()));
        match code {
            200..=299 => Ok(v),
            401 => Err(Error::input(
                "--token-file",
                format!(
                    "the agent at {} refused this token (401): give the file of the token it \
                     was started with",
                    self.base
                ),
            )),
            400 => Err(Error::input(
                flag,
                format!(
                    "the agent at {} refused ({code}): {}",
                    self.base,
                    v["error"].as_str().unwrap_or("")
                ),
            )),
            // No such fault, or no target of the request on that node.
            404 => Err(Error::NoTarget {
                flag,
                message: format!(
                    "the agent at {} has nothing to act on (404): {}",
                    self.base,
                    v["error"].as_str().unwrap_or("")
                ),
            }),
            _ => Err(Error::Tool {
                context: format!("{method} {url}"),
                message: format!("status {code}: {}", v["error"].as_str().unwrap_or("")),
            }),
        }
    }
}

/// An agent that could not be reached or spoke no HTTP, with a hint for the usual causes.
fn transport(method: &str, url: &str, e: &ureq::Error) -> Error {
    let text = e.to_string();
    let hint = if text.contains("UnknownIssuer") || text.contains("CaUsedAsEndEntity") {
        "; trust the agent's CA with --cacert FILE"
    } else if text.contains("InvalidContentType") || text.contains("invalid HTTP version") {
        "; check http:// or https:// against how the agent serves (--tls-cert)"
    } else {
        ""
    };
    Error::Tool {
        context: format!("{method} {url}"),
        message: format!("{text}{hint}"),
    }
}

/// Reads a token file: its content without surrounding whitespace; at least 16 bytes.
pub fn read_token(path: &Path) -> Result<String> {
    let t = std::fs::read_to_string(path).map_err(|e| {
        Error::input(
            "--token-file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let t = t.trim().to_string();
    if t.len() < 16 {
        return Err(Error::input(
            "--token-file",
            format!(
                "{} holds {} bytes; use a token of at least 16 (e.g. `head -c 32 /dev/urandom | base64`)",
                path.display(),
                t.len()
            ),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_token_file_needs_sixteen_bytes_and_is_trimmed() {
        let dir = std::env::temp_dir().join(format!("chaos-agent-token-{}", std::process::id()));
        std::fs::write(&dir, "short\n").expect("write");
        match read_token(&dir) {
            Err(Error::Input { flag, .. }) => assert_eq!(flag, "--token-file"),
            other => panic!("{other:?}"),
        }
        std::fs::write(&dir, "  0123456789abcdef0123\n").expect("write");
        assert_eq!(read_token(&dir).expect("token"), "0123456789abcdef0123");
        let _ = std::fs::remove_file(&dir);
        assert!(read_token(Path::new("/nonexistent/token")).is_err());
    }
}
