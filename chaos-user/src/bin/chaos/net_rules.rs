//! `chaos net rules`: several rules on one interface in one program per hook. Each `--rule` is
//! parsed exactly as `chaos net ACTION` would parse it, with the set's interface, namespace and
//! duration added; the run controls (dry run, budget, events, guards) belong to the set.

use crate::choices::AttachMode;
use crate::{
    common::{self, Attached},
    net::{NetCommand, Split, split},
};
use chaos::{
    Error,
    net::NetFault,
    session::{self, Stop},
};
use clap::{Args, Parser};
use std::{process::ExitCode, time::Instant};

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// One rule: an action and its options as for `chaos net ACTION`, quoted, e.g.
    /// --rule 'delay --latency 100ms --dport 5432'. Repeat for each rule (up to 8).
    #[arg(long = "rule", value_name = "ACTION OPTIONS", required = true)]
    rules: Vec<String>,
    /// Interface every rule attaches to (in --netns if given).
    #[arg(long, value_name = "IFACE")]
    iface: String,
    /// Network namespace of the interface: a name under /run/netns or a path.
    #[arg(long, value_name = "NAME|PATH")]
    netns: Option<String>,
    /// How long the rules last (e.g. 30s, 5m; at most 24h). Enforced in the kernel.
    #[arg(long, value_name = "D", value_parser = common::duration)]
    duration: std::time::Duration,
    /// How to attach: TCX links (Linux >= 6.6) or clsact + cls_bpf.
    #[arg(long, value_enum, default_value = "auto")]
    tc_attach: AttachMode,
    #[command(flatten)]
    controls: common::ControlArgs,
}

/// A single `--rule`, parsed as a `chaos net` command line.
#[derive(Parser)]
#[command(name = "rule", no_binary_name = true)]
struct RuleLine {
    #[command(subcommand)]
    cmd: NetCommand,
}

/// Options that belong to the set, not to one rule.
const SET_ONLY: &[&str] = &[
    "--iface",
    "--netns",
    "--duration",
    "--tc-attach",
    "--dry-run",
    "--max-faults",
    "--events",
    "--events-sample",
    "--force",
    "--background",
];

fn rule_error(i: usize, rule: &str, message: impl std::fmt::Display) -> Error {
    Error::input("--rule", format!("rule {} ('{rule}'): {message}", i + 1))
}

pub async fn run(a: RulesArgs, json: bool) -> chaos::Result<ExitCode> {
    if a.controls.background {
        return Err(Error::input(
            "--background",
            "a rule set runs in the foreground; run single rules with --background instead",
        ));
    }
    let duration = humantime::format_duration(a.duration).to_string();
    let controls: chaos::controls::Controls = a.controls.into();
    let mut plans = Vec::new();
    for (i, rule) in a.rules.iter().enumerate() {
        let words = shlex::split(rule).ok_or_else(|| rule_error(i, rule, "unbalanced quotes"))?;
        if let Some(w) = words.iter().find(|w| SET_ONLY.contains(&w.as_str())) {
            return Err(rule_error(
                i,
                rule,
                format!("{w} belongs to the set: give it once, outside --rule"),
            ));
        }
        let mut line = words.clone();
        line.extend(["--iface".into(), a.iface.clone()]);
        if let Some(ns) = &a.netns {
            line.extend(["--netns".into(), ns.clone()]);
        }
        line.extend(["--duration".into(), duration.clone()]);
        if let Some(mode) = clap::ValueEnum::to_possible_value(&a.tc_attach) {
            line.extend(["--tc-attach".into(), mode.get_name().into()]);
        }
        let parsed = RuleLine::try_parse_from(&line).map_err(|e| {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            rule_error(i, rule, first.to_string())
        })?;
        let Split::One(args, action) = split(parsed.cmd) else {
            return Err(rule_error(i, rule, "a rule cannot itself be a rule set"));
        };
        let mut spec = args.spec(action)?;
        spec.controls = controls.clone();
        plans.push(
            spec.validate()
                .map_err(|e| rule_error(i, rule, chaos::error::chain(&e)))?,
        );
    }
    // Every rule is on the set's interface; each may have its own cgroup.
    let mut watched = Vec::new();
    for p in &plans {
        watched.extend(p.watched()?);
    }
    let mut stop = Stop::install()?;
    let fault = NetFault::attach_set(&plans)?;
    // The duration counts from the attach (the kernel's deadline too).
    let started = Instant::now();
    let detail: Vec<&str> = plans.iter().map(|p| p.detail.as_str()).collect();
    Attached {
        event: "attached",
        fault: "net rules",
        fault_id: common::fault_id(&fault),
        detail: format!("{} via {:?}", detail.join("; "), fault.mode()),
        backend: fault.mode().code(),
        program_ids: fault.program_ids(),
        duration_ms: a.duration.as_millis() as u64,
    }
    .print(json);
    let name = "net rules".to_string();
    let summary = session::run(fault, name, started, a.duration, &mut stop, &watched).await?;
    common::print_summary(&summary, json);
    Ok(common::exit_status(&summary))
}
