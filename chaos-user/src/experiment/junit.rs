//! `chaos run --junit FILE`: the report as JUnit XML, the format CI systems read (Jenkins,
//! GitLab's test reports, GitHub Actions' test reporters). One test suite per experiment; one
//! test case for the hypothesis, one per probe, one for the recovery. A probe's failure carries
//! its first failing sample and when it was sent. Written by quick-junit, nextest's JUnit
//! library: the format's details (escaping, counts, attributes) are its business, not ours.

use super::report::{Outcome, ProbeReport, Report};
use crate::error::{Error, Result};
use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// The JUnit XML of a finished run.
pub fn render(r: &Report) -> Result<String> {
    let mut suite = TestSuite::new(r.experiment.as_str());
    suite.set_time(secs(r.ended_s));
    for (k, v) in [
        ("target", r.target.clone()),
        ("outcome", outcome(r.outcome).to_string()),
        ("started_at", r.started_at.clone()),
        ("dry_run", r.dry_run.to_string()),
    ] {
        suite.add_property(Property::new(k, v));
    }
    suite.add_test_case(hypothesis(r));
    for p in &r.probes {
        suite.add_test_case(probe(r, p));
    }
    suite.add_test_case(recovery(r));
    write(suite)
}

/// The JUnit XML of a run that ended before it had a report (a bad file, an unhealthy system
/// before injection, a fault that could not be attached): one test case in error.
pub fn render_error(experiment: &str, e: &Error) -> Result<String> {
    let mut suite = TestSuite::new(experiment);
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status
        .set_message(crate::error::chain(e))
        .set_type("not run");
    suite.add_test_case(case("experiment", status));
    write(suite)
}

fn write(suite: TestSuite) -> Result<String> {
    let mut report = quick_junit::Report::new("chaos");
    report.add_test_suite(suite);
    report.to_string().map_err(|e| Error::Tool {
        context: "writing the JUnit report".into(),
        message: e.to_string(),
    })
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Held => "held",
        Outcome::NotHeld => "not_held",
        Outcome::Aborted => "aborted",
        Outcome::Interrupted => "interrupted",
        Outcome::Error => "error",
        Outcome::TargetGone => "target_gone",
    }
}

fn case(name: impl Into<quick_junit::XmlString>, status: TestCaseStatus) -> TestCase {
    let mut c = TestCase::new(name, status);
    c.set_classname("chaos");
    c
}

/// Held: success; not held or aborted: a failure (the hypothesis was tested and refuted); the
/// run cut short (interrupted, an error, a target gone): an error (it was not tested).
fn hypothesis(r: &Report) -> TestCase {
    let status = match r.outcome {
        Outcome::Held => TestCaseStatus::success(),
        o => {
            let kind = match o {
                Outcome::NotHeld | Outcome::Aborted => NonSuccessKind::Failure,
                _ => NonSuccessKind::Error,
            };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(r.reasons.first().cloned().unwrap_or_default())
                .set_type(outcome(o))
                .set_description(r.reasons.join("\n"));
            s
        }
    };
    let mut c = case(format!("hypothesis: {}", r.hypothesis), status);
    c.set_time(secs(r.ended_s));
    c
}

/// Within its tolerance while the faults ran (and not the one an abort tripped on): success.
fn probe(r: &Report, p: &ProbeReport) -> TestCase {
    let tripped = r.abort.as_ref().filter(|a| a.probe == p.name);
    let status = if p.within_tolerance && tripped.is_none() {
        TestCaseStatus::success()
    } else {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        let mut message = format!(
            "{} of {} samples failed while faults ran ({:.1}%, tolerance {:.1}%)",
            p.failures_during_faults,
            p.samples_during_faults,
            p.failure_pct_during_faults,
            p.tolerance_pct
        );
        if let Some(a) = tripped {
            message += &format!("; tripped the abort condition {}", a.condition);
        }
        if let Some(f) = &p.first_failure {
            message += &format!("; first failure at {:.2}s: {}", f.t_s, f.message);
        }
        s.set_message(message).set_type("probe failed");
        s
    };
    case(format!("probe {} ({})", p.name, p.check), status)
}

fn recovery(r: &Report) -> TestCase {
    let status = if r.recovery.recovered {
        TestCaseStatus::success()
    } else {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(format!(
            "not every probe passed again within {:.0}s of the rollback",
            r.recovery.timeout_s
        ))
        .set_type("not recovered");
        s
    };
    let mut c = case(
        format!("recovery within {:.0}s", r.recovery.timeout_s),
        status,
    );
    if let Some(t) = r.recovery.time_to_recover_s {
        c.set_time(secs(t));
    }
    c
}
