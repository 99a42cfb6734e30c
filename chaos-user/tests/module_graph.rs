//! The library's layers, checked from its sources (issue 16): the top-level modules import one
//! another without cycles; the core (state, fault, session, background, events, ...) never
//! imports a fault family (`net`, `syscall`); a family never imports another family or the
//! layers above (`experiment`, `doctor`, `agent`); and the library uses no clap (the binary's). An
//! import is any `crate::MODULE` path, including those inside `use crate::{...}` groups; unit
//! tests are not counted.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

const FAMILIES: &[&str] = &["net", "syscall", "kill", "stress"];
const ABOVE_FAMILIES: &[&str] = &["experiment", "doctor", "agent"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = entry.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The source without its `#[cfg(test)] mod tests { ... }` (always last in a file here).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests {")
        .map_or(text, |i| &text[..i])
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segment of every `crate::` path and of every path in a `use crate::{...}`
/// group (at the group's own level).
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut segment_start) = (1, true);
            let mut chars = group.char_indices().peekable();
            while let Some((at, c)) = chars.next() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => segment_start = true,
                    c if is_ident(c) && segment_start && depth == 1 => {
                        let end = group[at..]
                            .find(|c| !is_ident(c))
                            .map_or(group.len(), |e| at + e);
                        found.insert(group[at..end].to_string());
                        segment_start = false;
                        while chars.peek().is_some_and(|&(i, _)| i < end) {
                            chars.next();
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let end = rest.find(|c| !is_ident(c)).unwrap_or(rest.len());
            found.insert(rest[..end].to_string());
        }
    }
    found
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |p: &Path| {
        let rel = p.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("component");
        first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| module_of(p))
        .filter(|m| m != "lib")
        .collect();
    let mut g = Graph::new();
    for p in &files {
        let m = module_of(p);
        if m == "lib" || p.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(p).expect("read source");
        let deps = g.entry(m.clone()).or_default();
        for d in imports(without_tests(&text)) {
            if d != m && modules.contains(&d) {
                deps.insert(d);
            }
        }
    }
    g
}

/// A cycle through `start`, if any (depth-first search).
fn cycle_from(g: &Graph, start: &str) -> Option<Vec<String>> {
    fn walk(
        g: &Graph,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(g, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_parser_finds_grouped_and_inline_imports() {
    let text = "use crate::{\n    cgroup::Cgroup,\n    error::{Error, Result},\n    net,\n};\nfn f() { crate::state::Record::load_all(); }";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["cgroup", "error", "net", "state"]);
}

#[test]
fn modules_have_no_import_cycles() {
    let g = graph();
    assert!(g.len() > 20, "found the modules: {g:?}");
    for m in g.keys() {
        if let Some(cycle) = cycle_from(&g, m) {
            panic!("import cycle: {} -> {m}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_core_never_imports_a_family_and_families_stay_apart() {
    let g = graph();
    for (m, deps) in &g {
        let family = FAMILIES.contains(&m.as_str());
        let above = ABOVE_FAMILIES.contains(&m.as_str());
        for d in deps {
            let to_family = FAMILIES.contains(&d.as_str());
            let to_above = ABOVE_FAMILIES.contains(&d.as_str());
            if family {
                assert!(!to_family && !to_above, "family {m} imports {d}");
            } else if !above {
                assert!(!to_family && !to_above, "core module {m} imports {d}");
            }
        }
    }
}

/// clap is the binary's: the library (which an agent will call without a command line) names
/// no clap item.
#[test]
fn the_library_does_not_use_clap() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for p in files {
        let text = std::fs::read_to_string(&p).expect("read source");
        assert!(!text.contains("clap::"), "{} uses clap", p.display());
    }
}
