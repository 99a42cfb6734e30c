//! Kubernetes targets on the command line (`--pod`, `--selector`, `--namespace`,
//! `--container`, `--mode`, `--runtime-endpoint`) and `chaos targets`, which shows what they
//! resolve to on this node.

use crate::common::{self, Attached, out};
use chaos::{
    k8s::{Mode, Query, Resolved, Selector},
    multi::{MultiFault, Part},
    session::{self, Fault, Stop},
    watch::Watched,
};
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Kubernetes targets (found on this node through CRI)")]
pub struct PodArgs {
    /// A pod, as NAMESPACE/NAME: every container of it, or --container's.
    #[arg(long, value_name = "NS/NAME", conflicts_with_all = ["selector", "cgroup", "pid"])]
    pub pod: Option<String>,
    /// Pods by label, as kubectl -l takes them: app=web, tier!=cache, 'env in (prod,staging)',
    /// 'env notin (dev)', canary, !canary (comma-separated: all must hold); with --namespace.
    #[arg(long, value_name = "SELECTOR", value_parser = selector, conflicts_with_all = ["cgroup", "pid"])]
    pub selector: Option<Selector>,
    /// The namespace --selector looks in.
    #[arg(long, value_name = "NS", requires = "selector")]
    pub namespace: Option<String>,
    /// Only this container of each pod (default: every container).
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// How many of the matching containers: all, one (at random), fixed:N, percent:P (as Chaos
    /// Mesh's mode). The choice is printed.
    #[arg(long, value_name = "MODE", default_value = "all", value_parser = mode)]
    pub mode: Mode,
    /// The container runtime's CRI socket (default: containerd's, then CRI-O's usual path).
    #[arg(long, value_name = "PATH")]
    pub runtime_endpoint: Option<String>,
}

fn selector(s: &str) -> Result<Selector, String> {
    s.parse()
}
fn mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

impl PodArgs {
    pub fn query(&self) -> Query {
        Query {
            pod: self.pod.clone(),
            namespace: self.namespace.clone(),
            selector: self.selector.clone(),
            container: self.container.clone(),
            mode: self.mode,
            endpoint: self
                .runtime_endpoint
                .as_deref()
                .map(chaos::k8s::cri::endpoint_path),
        }
    }

    /// The chosen containers (`None`: no Kubernetes target given), the choice printed.
    pub async fn resolve(&self, json: bool) -> chaos::Result<Option<Vec<Resolved>>> {
        let q = self.query();
        if !q.is_set() {
            q.check()?;
            return Ok(None);
        }
        let chosen = q.resolve(chaos::k8s::clock_seed()).await?;
        if !json {
            let names: Vec<String> = chosen.iter().map(Resolved::label).collect();
            out!("targets:   {} (mode {})", names.join(", "), q.mode);
        }
        Ok(Some(chosen))
    }
}

// `chaos targets`: what a Kubernetes target resolves to, before injecting anything.
#[derive(Debug, clap::Args)]
pub struct TargetsArgs {
    #[command(flatten)]
    pods: PodArgs,
    // --pod/--selector conflict with these in PodArgs; `targets` has none of them.
    #[arg(long, hide = true)]
    cgroup: Option<String>,
    #[arg(long, hide = true)]
    pid: Option<u32>,
}

pub async fn targets(a: TargetsArgs, json: bool) -> chaos::Result<ExitCode> {
    let q = a.pods.query();
    if !q.is_set() {
        return Err(chaos::Error::input(
            "--pod",
            "say what to look up: --pod NAMESPACE/NAME or --selector KEY=VALUE --namespace NS",
        ));
    }
    let all = q.resolve_all().await?;
    let chosen = q.mode.pick(all.clone(), chaos::k8s::clock_seed());
    for r in &all {
        let picked = chosen.iter().any(|c| c.container_id == r.container_id);
        let iface = chaos::netns::interfaces_in(&r.netns)
            .map(|v| v.join(","))
            .unwrap_or_else(|e| format!("({e})"));
        if json {
            #[derive(serde::Serialize)]
            struct Line<'a> {
                event: &'static str,
                #[serde(flatten)]
                target: &'a Resolved,
                interfaces: &'a str,
                chosen: bool,
            }
            common::print_json(&Line {
                event: "target",
                target: r,
                interfaces: &iface,
                chosen: picked,
            });
        } else {
            out!(
                "{} {}  pid {}  cgroup {}  netns {} (inode {})  interfaces {}",
                if picked { "*" } else { " " },
                r.label(),
                r.pid,
                r.cgroup,
                r.netns.display(),
                r.netns_inode,
                iface
            );
        }
    }
    if !json {
        out!(
            "{} of {} containers chosen by mode {} (* above; another run may choose others)",
            chosen.len(),
            all.len(),
            q.mode
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A part of a fault on Kubernetes targets, checked against the system and ready to attach.
pub struct Planned<P> {
    pub label: String,
    pub plan: P,
    /// For a part on one container: applies the fault again when the container restarts.
    pub follow: Option<chaos::multi::Follow>,
}

/// Attaches every planned part (all were checked first, so bad input attached nothing), runs
/// them as one fault, prints the attached line and the summary with each target's counts.
pub async fn run_parts<P>(
    fault_name: String,
    planned: Vec<Planned<P>>,
    attach: impl Fn(&P) -> chaos::Result<(Box<dyn Fault>, Vec<Watched>, &'static str, String)>,
    duration: std::time::Duration,
    json: bool,
) -> chaos::Result<ExitCode> {
    let mut stop = Stop::install()?;
    let mut parts = Vec::new();
    let (mut backend, mut details) = ("", Vec::new());
    for p in planned {
        let (fault, watched, code, detail) = attach(&p.plan)?;
        backend = code;
        details.push(format!("{}: {detail}", p.label));
        let part = Part::new(p.label, fault, watched);
        parts.push(match p.follow {
            Some(f) => part.following(f),
            None => part,
        });
    }
    let fault = MultiFault::new(parts);
    // The duration counts from the attach (the kernel's deadline too).
    let started = std::time::Instant::now();
    Attached {
        event: "attached",
        fault: &fault_name,
        fault_id: common::fault_id(&fault),
        detail: details.join("; "),
        backend,
        program_ids: fault.program_ids(),
        duration_ms: duration.as_millis() as u64,
    }
    .print(json);
    let summary = session::run(fault, fault_name, started, duration, &mut stop, &[]).await?;
    common::print_summary(&summary, json);
    Ok(common::exit_status(&summary))
}

/// What several targets cannot have: one events file and one background record per fault.
pub fn check_controls(n: usize, events: bool, background: bool) -> chaos::Result<()> {
    if background {
        return Err(chaos::Error::input(
            "--background",
            "a fault on Kubernetes targets runs in the foreground (its parts are followed \
             while it runs); drop --background, or target a cgroup with --cgroup",
        ));
    }
    if n > 1 && events {
        return Err(chaos::Error::input(
            "--events",
            format!(
                "{n} targets were chosen and each would need its own events file; drop \
                 --events or narrow the target (--container, --mode one)"
            ),
        ));
    }
    Ok(())
}
