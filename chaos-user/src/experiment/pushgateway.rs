//! `chaos run --pushgateway URL`: the experiment's metrics pushed to a Prometheus Pushgateway,
//! for runs too short to be scraped or run from a CI job. One group per experiment, `job="chaos"`
//! and `experiment=NAME` (base64url in the path, which the Pushgateway's API allows for any
//! value, slashes and spaces included); each push replaces the group (PUT): at the start
//! (status running) and at the end (the outcome, counts, recovery time).

use super::ExperimentMetrics;
use crate::error::{Error, Result};
use base64::Engine as _;
use std::time::Duration;

pub struct Pushgateway {
    /// `http://HOST:9091`, without a trailing slash.
    base: String,
    http: ureq::Agent,
}

impl Pushgateway {
    /// Errors (on `--pushgateway`): not an http(s) URL.
    pub fn new(url: &str) -> Result<Pushgateway> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::input(
                "--pushgateway",
                format!("'{url}' is not a URL: give http://HOST:9091"),
            ));
        }
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Pushgateway {
            base: url.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// The group's URL: /metrics/job/chaos/experiment@base64/NAME.
    fn group(&self, experiment: &str) -> String {
        let name = base64::engine::general_purpose::URL_SAFE.encode(experiment);
        format!("{}/metrics/job/chaos/experiment@base64/{name}", self.base)
    }

    /// PUTs the metrics as they are now (the classic text format, which every Pushgateway
    /// reads). Errors (`Error::Tool`): unreachable, or a status other than 200/202.
    pub fn push(&self, metrics: &ExperimentMetrics, experiment: &str) -> Result<()> {
        let url = self.group(experiment);
        let body = crate::exposition::classic(&metrics.encode());
        let tool = |message: String| Error::Tool {
            context: format!("pushing to {url}"),
            message,
        };
        let mut resp = self
            .http
            .put(&url)
            .header("Content-Type", "text/plain; version=0.0.4")
            .send(body)
            .map_err(|e| tool(e.to_string()))?;
        match resp.status().as_u16() {
            200 | 202 => Ok(()),
            code => Err(tool(format!(
                "status {code}: {}",
                resp.body_mut().read_to_string().unwrap_or_default().trim()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_group_names_the_experiment_in_base64url() {
        let p = super::Pushgateway::new("http://pg:9091/").expect("url");
        assert_eq!(
            p.group("dep down/a"),
            "http://pg:9091/metrics/job/chaos/experiment@base64/ZGVwIGRvd24vYQ=="
        );
        assert!(super::Pushgateway::new("pg:9091").is_err());
    }
}
