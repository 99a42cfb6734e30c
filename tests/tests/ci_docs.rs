//! docs/ci.md: its pipeline jobs are valid YAML, and every `chaos` and `cargo xtask` command
//! line in them is accepted by the real binaries' argument parsers (`--help` after the line is
//! answered only when every flag before it is known), so that a renamed flag fails here rather
//! than in a user's pipeline.

use serde_json::Value;
use std::process::Command;

/// The ```yaml blocks of docs/ci.md, parsed.
fn jobs(text: &str) -> Vec<Value> {
    text.split("```yaml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or(""))
        .map(|y| serde_norway::from_str(y).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{y}")))
        .collect()
}

/// Every string in `v` (a job's `run:` steps and `script:` lines alike), one line each.
fn lines(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.extend(s.lines().map(str::to_string)),
        Value::Array(a) => a.iter().for_each(|x| lines(x, out)),
        Value::Object(o) => o.values().for_each(|x| lines(x, out)),
        _ => {}
    }
}

fn accepted(program: &std::path::Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .arg("--help")
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[test]
fn ci_examples_are_valid_yaml_and_their_commands_parse() {
    let test = "ci_examples_are_valid_yaml_and_their_commands_parse";
    if std::env::var_os("CHAOS_EXAMPLES").is_some() {
        // In a VM guest: no source tree.
        chaos_tests::expect::skip(
            test,
            "no docs/ in the VM guest (the host run checks them)",
            true,
        );
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("docs/ci.md")).expect("docs/ci.md");
    let docs = jobs(&text);
    assert_eq!(docs.len(), 2, "a GitHub Actions and a GitLab CI job");
    let xtask = std::env::var_os("CHAOS_XTASK").map_or_else(
        || chaos_tests::chaos_bin().with_file_name("xtask"),
        std::path::PathBuf::from,
    );
    let mut checked = 0;
    for doc in &docs {
        let mut all = Vec::new();
        lines(doc, &mut all);
        for line in all.iter().map(|l| l.trim()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let r = match words.as_slice() {
                ["chaos", args @ ..] if !args.is_empty() => {
                    accepted(&chaos_tests::chaos_bin(), args)
                }
                ["cargo", "xtask", args @ ..] => accepted(&xtask, args),
                _ => continue,
            };
            r.unwrap_or_else(|e| panic!("docs/ci.md: `{line}` is refused: {e}"));
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "two commands in each job");
}
