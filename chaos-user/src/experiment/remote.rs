//! `chaos run --agents`: one experiment across nodes. The CLI keeps the experiment (probes,
//! phases, abort, recovery, report) and sends each fault at its start to every agent, as the
//! fault request `chaos --agent` sends; each agent resolves the target on its own node (through
//! CRI) and holds the fault (fd-owned links, in-kernel deadline). A node hosting none of the
//! target's pods answers 404 and has nothing to do. Ending the fault (its end, an abort, an
//! interrupt) deletes it on every agent at once; an agent lost meanwhile is reported, and its
//! fault ends at its in-kernel deadline.

use super::{
    faults::{Plan, Ready},
    plan::Experiment,
    single::FaultRequest,
};
use crate::{
    agent_client::{Client, ClientConfig},
    controls::Controls,
    ebpf::Counters,
    error::{Error, Result},
    events::EventSink,
    fault::Fault,
    scalar::Dur,
};
use serde_json::Value;
use std::{
    net::{IpAddr, ToSocketAddrs},
    sync::{Arc, Mutex},
};

const FLAG: &str = "--agents";

/// The agents of a run, one client each.
pub struct Agents(Vec<Client>);

impl Agents {
    /// `spec`: URLs separated by commas (`https://10.0.0.5:7070,https://10.0.0.6:7070`); a host
    /// name stands for every address it resolves to, so that the DaemonSet's headless Service
    /// (`https://chaos-agent.chaos.svc:7070`) names every agent. Errors name `--agents`.
    pub fn resolve(spec: &str, cfg: &ClientConfig) -> Result<Agents> {
        let mut urls: Vec<String> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            for url in expand(item)? {
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
        }
        if urls.is_empty() {
            return Err(Error::input(
                FLAG,
                "give the agents: https://HOST:PORT (a name resolving to every agent) or a \
                 comma-separated list",
            ));
        }
        let clients = urls
            .iter()
            .map(|u| Client::new(cfg, u, FLAG))
            .collect::<Result<_>>()?;
        Ok(Agents(clients))
    }

    /// Every agent answers an authenticated request now, or the run refuses before anything is
    /// injected (exit 2, naming the agent).
    pub fn check(&self) -> Result<()> {
        for c in &self.0 {
            c.call("GET", "/v1/faults", None, FLAG).map_err(|e| {
                Error::input(
                    FLAG,
                    format!(
                        "the agent at {} cannot take the experiment: {}; nothing was injected",
                        c.base,
                        crate::error::chain(&e)
                    ),
                )
            })?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `f` on every agent at once (a scoped thread each): an abort reaches them all together.
    fn each<T: Send>(&self, f: impl Fn(usize, &Client) -> T + Sync) -> Vec<T> {
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .0
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let f = &f;
                    s.spawn(move || f(i, c))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an agent call panicked"))
                .collect()
        })
    }
}

/// `scheme://HOST:PORT` as URLs of addresses: an IP as is, a name as every address it has.
fn expand(item: &str) -> Result<Vec<String>> {
    let bad = || {
        Error::input(
            FLAG,
            format!("'{item}' is not http(s)://HOST:PORT, e.g. https://chaos-agent.chaos.svc:7070"),
        )
    };
    let (scheme, rest) = item.split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(vec![format!("{scheme}://{hostport}")]);
    }
    let addrs = (bare, port).to_socket_addrs().map_err(|e| {
        Error::input(
            FLAG,
            format!("cannot resolve {bare}: {e}; give the agents' Service name or addresses"),
        )
    })?;
    let mut urls: Vec<String> = addrs.map(|a| format!("{scheme}://{a}")).collect();
    urls.sort();
    urls.dedup();
    Ok(urls)
}

/// The experiment's faults as requests to the agents. Dry-run, `--force` and stress faults
/// stay local for now: refused here (exit 2) rather than silently dropped.
pub fn prepare(
    exp: &Experiment,
    agents: &Arc<Agents>,
    dry_run: bool,
    force: bool,
) -> Result<Vec<Ready>> {
    for (flag, set) in [("--dry-run", dry_run), ("--force", force)] {
        if set {
            return Err(Error::input(
                flag,
                "is not sent to agents yet: run the experiment on the node, or leave it out",
            ));
        }
    }
    exp.faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.spec.stress.is_some() {
                return Err(Error::Invalid {
                    at: format!("faults[{i}] ({})", f.name),
                    message: "stress is not sent to agents yet: run this experiment on the node \
                              (chaos run without --agents)"
                        .into(),
                });
            }
            let kind = match (&f.spec.net, &f.spec.syscall) {
                (Some(_), _) => "net",
                (_, Some(_)) => "syscall",
                _ => "kill",
            };
            let req = FaultRequest {
                name: Some(f.name.clone()),
                target: exp.target_spec.clone(),
                duration: Dur(f.duration),
                net: f.spec.net.clone(),
                syscall: f.spec.syscall.clone(),
                kill: f.spec.kill.clone(),
            };
            let detail = format!(
                "{kind} on {} on each of {} agents",
                exp.target,
                agents.len()
            );
            let plan = Plan::Remote(Box::new(req), agents.clone());
            Ok(Ready::new(
                f,
                &exp.target,
                &Controls::default(),
                (kind.to_string(), detail, (None, None), plan),
            ))
        })
        .collect()
}

/// The fault as one agent holds it.
struct Part {
    agent: usize,
    id: String,
    node: String,
    detail: String,
    last: Counters,
    /// Why the agent's fault ended before we ended it ("target gone: ..."), or that the agent
    /// was lost.
    ended: Option<String>,
    lost: bool,
}

/// A fault held by agents: one part per agent that found targets.
pub struct RemoteFault {
    agents: Arc<Agents>,
    parts: Mutex<Vec<Part>>,
    /// What a poll found (a lost agent, targets gone) and nobody has reported yet: the
    /// counters' poll (each second, for the status line) may be the one that finds it.
    news: Mutex<Vec<String>>,
}

impl RemoteFault {
    /// Starts the request on every agent at once. A node without targets has no part; an agent
    /// that refuses or cannot be reached fails the attach, and the parts started are deleted.
    pub fn attach(req: &FaultRequest, agents: &Arc<Agents>) -> Result<RemoteFault> {
        let body = serde_json::to_string(req).map_err(|source| Error::Json {
            context: "writing the fault request".into(),
            source,
        })?;
        let answers = agents.each(|_, c| c.call("POST", "/v1/faults", Some(body.clone()), FLAG));
        let mut parts = Vec::new();
        let mut failed = None;
        let mut none_here = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok(v) => parts.push(Part {
                    agent: i,
                    id: text(&v, "id"),
                    node: text(&v, "node"),
                    detail: text(&v, "detail"),
                    last: Counters::default(),
                    ended: None,
                    lost: false,
                }),
                Err(Error::NoTarget { message, .. }) => none_here.push(message),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        let fault = RemoteFault {
            agents: agents.clone(),
            parts: Mutex::new(parts),
            news: Mutex::default(),
        };
        if let Some(e) = failed {
            return Err(e);
        }
        if fault.lock().is_empty() {
            return Err(Error::NoTarget {
                flag: "target",
                message: format!("no agent found a target: {}", none_here.join("; ")),
            });
        }
        Ok(fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Part>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Each part's status now; an agent that does not answer is marked lost, once, and that
    /// is news (kept until `detach_gone` reports it).
    fn poll(&self) {
        let mut parts = self.lock();
        let answers = self.agents.each(|i, c| {
            parts
                .iter()
                .find(|p| p.agent == i && !p.lost)
                .map(|p| c.call("GET", &format!("/v1/faults/{}", p.id), None, FLAG))
        });
        let mut news = Vec::new();
        for p in parts.iter_mut() {
            match answers.get(p.agent) {
                Some(Some(Ok(v))) => {
                    p.last.matched = v["matched"].as_u64().unwrap_or(p.last.matched);
                    p.last.injected = v["injected"].as_u64().unwrap_or(p.last.injected);
                    let state = text(v, "state");
                    if state.starts_with("target gone") && p.ended.is_none() {
                        news.push(format!("node {}: {state}", p.node));
                        p.ended = Some(state);
                    }
                }
                Some(Some(Err(e))) => {
                    p.lost = true;
                    let why = format!(
                        "agent {} lost ({}); its fault ends at its in-kernel deadline",
                        self.agents.0[p.agent].base,
                        crate::error::chain(e)
                    );
                    news.push(format!("node {}: {why}", p.node));
                    p.ended = Some(why);
                }
                _ => {}
            }
        }
        drop(parts);
        self.news
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(news);
    }
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

impl Fault for RemoteFault {
    /// The sum of the agents' counters, as last read (lost agents keep their last).
    fn counters(&self) -> Result<Counters> {
        self.poll();
        Ok(self.lock().iter().fold(Counters::default(), |mut c, p| {
            c.matched += p.last.matched;
            c.injected += p.last.injected;
            c
        }))
    }

    fn program_ids(&self) -> Vec<u32> {
        Vec::new()
    }

    fn dry_run(&self) -> bool {
        false
    }

    fn go_live(&mut self) -> Result<()> {
        Err(Error::input("--dry-run", "is not sent to agents yet"))
    }

    fn take_events(&mut self) -> Option<EventSink> {
        None
    }

    fn fault_id(&self) -> u32 {
        0
    }

    /// One part per node: "node NAME: DETAIL" (with why it ended early, if it did).
    fn rules(&self) -> Result<Vec<(String, Counters)>> {
        Ok(self
            .lock()
            .iter()
            .map(|p| {
                let end = p
                    .ended
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})"));
                (format!("node {}: {}{end}", p.node, p.detail), p.last)
            })
            .collect())
    }

    /// Lost agents and parts whose targets vanished are news; the fault is gone when every
    /// part's targets are.
    fn detach_gone(&mut self) -> (Vec<String>, bool) {
        self.poll();
        let news = std::mem::take(&mut *self.news.lock().unwrap_or_else(|p| p.into_inner()));
        let parts = self.lock();
        let none_left = parts.iter().all(|p| {
            p.ended
                .as_deref()
                .is_some_and(|e| e.starts_with("target gone"))
        });
        (news, none_left)
    }
}

impl Drop for RemoteFault {
    /// Deletes the fault on every agent still reachable, at once.
    fn drop(&mut self) {
        let parts = self.lock();
        let _ = self.agents.each(|i, c| {
            if let Some(p) = parts.iter().find(|p| p.agent == i && !p.lost) {
                // 404: it already ended there.
                let _ = c.call("DELETE", &format!("/v1/faults/{}", p.id), None, FLAG);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn agent_addresses_expand_names_and_keep_ips() {
        assert_eq!(
            expand("https://10.0.0.5:7070/").expect("ip"),
            vec!["https://10.0.0.5:7070"]
        );
        assert_eq!(
            expand("http://[::1]:7070").expect("v6"),
            vec!["http://[::1]:7070"]
        );
        let local = expand("http://localhost:7070").expect("a name");
        assert!(
            local
                .iter()
                .all(|u| u == "http://127.0.0.1:7070" || u == "http://[::1]:7070")
                && !local.is_empty(),
            "{local:?}"
        );
        for bad in [
            "10.0.0.5:7070",
            "ftp://h:1",
            "https://host",
            "https://host:x",
        ] {
            assert!(expand(bad).is_err(), "{bad}");
        }
    }
}
