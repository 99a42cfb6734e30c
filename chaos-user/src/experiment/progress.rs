//! Live progress: a status line redrawn on a terminal, plain log lines otherwise (CI logs), or
//! lines sent to a channel (an experiment the agent runs streams them to its client).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

pub struct Progress {
    bar: Option<ProgressBar>,
    /// Where lines go instead of stderr.
    sink: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    t0: Instant,
    last_log: Option<Instant>,
}

/// How often a plain status line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    pub fn new(
        total: Duration,
        quiet: bool,
        sink: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    ) -> Self {
        let bar = (!quiet && sink.is_none() && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total.as_millis() as u64),
                ProgressDrawTarget::stderr(),
            );
            let style =
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Self {
            bar,
            sink,
            t0: Instant::now(),
            last_log: None,
        }
    }

    /// Restarts the clock when injection begins.
    pub fn start(&mut self) {
        self.t0 = Instant::now();
    }

    /// A line that stays: a phase change, an abort, a first failure.
    pub fn line(&self, text: &str) {
        let line = format!(
            "chaos run [{:7.2}s] {text}",
            self.t0.elapsed().as_secs_f64()
        );
        match (&self.bar, &self.sink) {
            (Some(bar), _) => bar.println(line),
            (None, Some(sink)) => {
                let _ = sink.send(line);
            }
            (None, None) => eprintln!("{line}"),
        }
    }

    /// The status: redrawn in place on a terminal, logged every few seconds otherwise.
    pub fn status(&mut self, text: &str) {
        let elapsed = self.t0.elapsed();
        match &self.bar {
            Some(bar) => {
                bar.set_position(elapsed.as_millis() as u64);
                bar.set_message(text.to_string());
            }
            None => {
                if self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    self.last_log = Some(Instant::now());
                    self.line(text);
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
