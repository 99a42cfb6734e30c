//! The Prometheus exposition formats chaos serves and pushes: OpenMetrics, as
//! prometheus-client writes it, and the classic text format (version 0.0.4), which promtool and
//! the Pushgateway read; chosen by the scraper's `Accept` header as Prometheus's own client
//! libraries do.

/// The content type and body for a scraper's `Accept` header: OpenMetrics (`open`, as
/// prometheus-client writes it) when it asks for it (Prometheus does), the classic text format
/// otherwise (promtool, curl), as Prometheus's own client libraries negotiate.
pub fn negotiate(accept: Option<&str>, open: String) -> (&'static str, String) {
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            open,
        )
    } else {
        ("text/plain; version=0.0.4; charset=utf-8", classic(&open))
    }
}

/// OpenMetrics text as the classic Prometheus text format (0.0.4): a counter family `x` is
/// exposed as samples `x_total`, so its HELP and TYPE lines name `x_total` there; `# EOF` goes.
pub fn classic(open: &str) -> String {
    let counters: Vec<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines().filter(|l| *l != "# EOF") {
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(&name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{p}{name}{total} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_named_with_total_in_the_classic_format() {
        let open = "# HELP x Things.\n# TYPE x counter\nx_total 3\n# HELP g G.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            super::classic(open),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n# HELP g G.\n# TYPE g gauge\ng 1\n"
        );
    }
}
