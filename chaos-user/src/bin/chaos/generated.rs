//! Shell completions and the man page, generated from the clap definitions themselves, so they
//! never drift from the flags (`cargo xtask install` writes them where shells and man look).

use clap::CommandFactory;
use std::{io::Write, process::ExitCode};

// `chaos completions SHELL`: the completion script on stdout.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub fn completions(a: CompletionsArgs) -> chaos::Result<ExitCode> {
    let mut cmd = whole();
    clap_complete::generate(a.shell, &mut cmd, "chaos", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Every subcommand with its arguments: the subcommands are built only when given (`defer`),
/// which completions and the man page cannot wait for.
fn whole() -> clap::Command {
    let mut cmd = crate::Cli::command();
    cmd.build();
    cmd
}

/// `chaos man`: the man page (roff, section 1) on stdout.
pub fn man() -> chaos::Result<ExitCode> {
    let page = render_man().map_err(|e| chaos::Error::io("writing the man page", e))?;
    std::io::stdout()
        .write_all(&page)
        .map_err(|e| chaos::Error::io("writing the man page", e))?;
    Ok(ExitCode::SUCCESS)
}

/// chaos(1): the top-level page, then each subcommand's options as a section of it.
fn render_man() -> std::io::Result<Vec<u8>> {
    let cmd = whole();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // Not clap's own `help` subcommands, which building adds.
        let subs: Vec<_> = std::iter::once(sub.clone())
            .chain(
                sub.get_subcommands()
                    .filter(|s| s.get_name() != "help")
                    .cloned(),
            )
            .collect();
        for s in subs {
            let name = if s.get_name() == sub.get_name() {
                format!("chaos {}", s.get_name())
            } else {
                format!("chaos {} {}", sub.get_name(), s.get_name())
            };
            writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
            if let Some(about) = s.get_about() {
                writeln!(out, "{about}")?;
            }
            // Its own options: the global ones (and --version) are on the page once, above.
            let own = s.clone().mut_args(|a| {
                let inherited = a.is_global_set() || a.get_id() == "version";
                if inherited { a.hide(true) } else { a }
            });
            clap_mangen::Man::new(own).render_options_section(&mut out)?;
        }
    }
    out.extend_from_slice(EXTRA.as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// What clap does not know: exit statuses (README, "Exit status"), files and environment.
const EXTRA: &str = r#".SH "EXIT STATUS"
.TP
0
The fault ran until its duration, a signal or chaos stop ended it; for chaos run, the hypothesis held.
.TP
1
The kernel lacks a mechanism or an attach failed, nothing left attached; for chaos run, the hypothesis did not hold.
.TP
2
Bad input (a flag, a file, a guard without \-\-force), nothing attached; for chaos run, any error.
.TP
3
The target vanished mid-fault (process, cgroup, interface or network namespace); everything was detached.
.TP
130
Interrupted while starting; nothing was attached.
.SH FILES
.TP
/run/chaos
Records of what the kernel would not remove by itself (cls_bpf filters, qdiscs, ifb devices, background faults), written before it is created; chaos cleanup reads them.
.TP
/sys/fs/bpf/chaos
Pinned links and maps of background faults.
.SH ENVIRONMENT
.TP
CHAOS_STATE_DIR, CHAOS_PIN_DIR
Other places for the two directories above.
.TP
NO_COLOR
No colour in log lines (there is none either when stderr is not a terminal).
.TP
SSH_CONNECTION
Names the interface an SSH session arrives on, which the guards protect.
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// Every visible subcommand and its flags are in the page; completions know the
    /// subcommands in every shell clap_complete supports.
    #[test]
    fn the_man_page_and_completions_cover_every_subcommand() {
        let page = String::from_utf8(render_man().expect("render")).expect("utf-8");
        for needle in [
            "EXIT STATUS",
            "CHAOS NET DROP",
            "CHAOS NET DELAY",
            "CHAOS SYSCALL",
            "CHAOS RUN",
            "\\-\\-duration",
            "\\-\\-errno",
            "\\-\\-latency",
        ] {
            assert!(page.contains(needle), "man page lacks {needle}");
        }
        for shell in clap_complete::Shell::value_variants() {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut whole(), "chaos", &mut script);
            let script = String::from_utf8(script).expect("utf-8");
            for sub in ["net", "syscall", "doctor", "cleanup"] {
                assert!(script.contains(sub), "{shell} completions lack {sub}");
            }
        }
    }
}
