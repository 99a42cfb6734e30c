//! The report's timeline plot (SVG): probe latency over time with failed samples marked, each
//! fault's window shaded, the abort and the rollback marked, and faults injected per second.

use super::report::Report;
use svg::{
    Document,
    node::element::{Circle, Group, Line, Polyline, Rectangle, Text, Title},
};

const W: f64 = 960.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const LAT_H: f64 = 240.0;
const GAP: f64 = 40.0;
const RATE_H: f64 = 110.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f",
];
const FAULT_FILL: [&str; 4] = ["#ff7f0e", "#d62728", "#bcbd22", "#e377c2"];

struct Scale {
    t0: f64,
    t1: f64,
}

impl Scale {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t - self.t0) / (self.t1 - self.t0) * (W - LEFT - RIGHT)
    }
}

/// Per fault: (t, injected per second) between consecutive counter readings.
fn rates(r: &Report) -> Vec<(usize, f64, f64, f64)> {
    let mut out = Vec::new();
    for (fi, f) in r.faults.iter().enumerate() {
        let mut prev = (f.attached_s.unwrap_or(0.0), 0u64);
        for p in r.injections.iter().filter(|p| p.fault == f.name) {
            let dt = p.t_s - prev.0;
            if dt > 0.05 {
                let rate = p.injected.saturating_sub(prev.1) as f64 / dt;
                out.push((fi, prev.0, p.t_s, rate));
                prev = (p.t_s, p.injected);
            }
        }
    }
    out
}

fn text(x: f64, y: f64, s: impl Into<String>) -> Text {
    Text::new(s).set("x", x).set("y", y).set("font-size", 12)
}

/// Where things go: the time scale and both panels' value ranges.
struct Plot {
    sc: Scale,
    max_lat: f64,
    rate_top: f64,
    max_rate: f64,
}

impl Plot {
    fn lat_y(&self, ms: f64) -> f64 {
        TOP + LAT_H - ms / self.max_lat * LAT_H
    }

    fn bottom(&self) -> f64 {
        self.rate_top + RATE_H
    }
}

pub fn render(r: &Report) -> String {
    let t_min = r.timeline.iter().map(|s| s.t_s).fold(0.0, f64::min);
    let t_max = r
        .timeline
        .iter()
        .map(|s| s.t_s)
        .fold(r.ended_s.max(r.planned_duration_s), f64::max);
    let rates = rates(r);
    let plot = Plot {
        sc: Scale {
            t0: t_min.floor(),
            t1: t_max.ceil().max(t_min.floor() + 1.0),
        },
        max_lat: r.timeline.iter().map(|s| s.latency_ms).fold(1.0, f64::max) * 1.1,
        rate_top: TOP + LAT_H + GAP,
        max_rate: rates.iter().map(|r| r.3).fold(1.0, f64::max) * 1.1,
    };
    let mut doc = frame(r, plot.bottom() + 60.0);
    for g in fault_windows(r, &plot) {
        doc = doc.add(g);
    }
    doc = doc.add(axes(
        &plot.sc,
        plot.lat_y(0.0),
        plot.bottom(),
        plot.max_lat,
        plot.max_rate,
        plot.rate_top,
    ));
    for g in probe_lines(r, &plot) {
        doc = doc.add(g);
    }
    // Faults injected per second.
    for (fi, t_a, t_b, rate) in rates {
        let h = rate / plot.max_rate * RATE_H;
        doc = doc.add(
            Rectangle::new()
                .set("class", "injection-rate")
                .set("x", plot.sc.x(t_a))
                .set("y", plot.bottom() - h)
                .set("width", (plot.sc.x(t_b) - plot.sc.x(t_a)).max(0.5))
                .set("height", h)
                .set("fill", FAULT_FILL[fi % FAULT_FILL.len()])
                .set("fill-opacity", 0.8),
        );
    }
    for g in marks(r, &plot) {
        doc = doc.add(g);
    }
    doc.to_string()
}

/// The page: size, background, and the title with the verdict.
fn frame(r: &Report, height: f64) -> Document {
    let verdict = if r.hypothesis_held {
        "hypothesis held"
    } else {
        "hypothesis did not hold"
    };
    let dry = if r.dry_run { " (dry run)" } else { "" };
    Document::new()
        .set("viewBox", (0, 0, W, height))
        .set("width", W)
        .set("height", height)
        .set("font-family", "sans-serif")
        .add(Title::new(format!("{}: {verdict}", r.experiment)))
        .add(
            Rectangle::new()
                .set("width", W)
                .set("height", height)
                .set("fill", "white"),
        )
        .add(
            text(LEFT, 22.0, format!("{}: {verdict}{dry}", r.experiment))
                .set("font-size", 16)
                .set("font-weight", "bold"),
        )
}

/// Each fault's window, shaded across both panels.
fn fault_windows(r: &Report, plot: &Plot) -> Vec<Group> {
    let mut out = Vec::new();
    for (i, f) in r.faults.iter().enumerate() {
        let (Some(a), Some(d)) = (f.attached_s, f.detached_s) else {
            continue;
        };
        let (x0, x1) = (plot.sc.x(a), plot.sc.x(d));
        out.push(
            Group::new()
                .set("class", "fault-window")
                .set("data-fault", f.name.as_str())
                .set("data-start", format!("{a:.3}"))
                .set("data-end", format!("{d:.3}"))
                .add(Title::new(format!(
                    "{}: {} ({a:.1}s to {d:.1}s)",
                    f.name, f.detail
                )))
                .add(
                    Rectangle::new()
                        .set("x", x0)
                        .set("y", TOP)
                        .set("width", (x1 - x0).max(1.0))
                        .set("height", plot.bottom() - TOP)
                        .set("fill", FAULT_FILL[i % FAULT_FILL.len()])
                        .set("fill-opacity", 0.15),
                )
                .add(text(
                    x0 + 3.0,
                    TOP + 14.0 + 14.0 * i as f64,
                    f.name.as_str(),
                )),
        );
    }
    out
}

/// Each probe's latency line, its failed samples as red dots, and its legend entry.
fn probe_lines(r: &Report, plot: &Plot) -> Vec<Group> {
    let mut out = Vec::new();
    for (pi, p) in r.probes.iter().enumerate() {
        let colour = COLOURS[pi % COLOURS.len()];
        let pts: Vec<String> = r
            .timeline
            .iter()
            .filter(|s| s.probe == p.name)
            .map(|s| format!("{:.1},{:.1}", plot.sc.x(s.t_s), plot.lat_y(s.latency_ms)))
            .collect();
        let mut g = Group::new()
            .set("class", "probe")
            .set("data-probe", p.name.as_str())
            .add(
                Polyline::new()
                    .set("points", pts.join(" "))
                    .set("fill", "none")
                    .set("stroke", colour)
                    .set("stroke-width", 1.5),
            );
        for s in r.timeline.iter().filter(|s| s.probe == p.name && !s.ok) {
            g = g.add(
                Circle::new()
                    .set("class", "failure")
                    .set("cx", plot.sc.x(s.t_s))
                    .set("cy", plot.lat_y(s.latency_ms))
                    .set("r", 3.5)
                    .set("fill", "#d62728")
                    .add(Title::new(format!(
                        "{} at {:.2}s: {}",
                        s.probe, s.t_s, s.message
                    ))),
            );
        }
        let ly = TOP + 14.0 * pi as f64;
        let state = if p.within_tolerance {
            "ok"
        } else {
            "over tolerance"
        };
        g = g
            .add(
                Line::new()
                    .set("x1", W - 200.0)
                    .set("x2", W - 180.0)
                    .set("y1", ly - 4.0)
                    .set("y2", ly - 4.0)
                    .set("stroke", colour)
                    .set("stroke-width", 2),
            )
            .add(text(W - 175.0, ly, format!("{} ({state})", p.name)));
        out.push(g);
    }
    out
}

/// The rollback and, if one tripped, the abort, as dashed lines.
fn marks(r: &Report, plot: &Plot) -> Vec<Group> {
    let mut marks = vec![("rollback", r.rolled_back_s, "#444")];
    if let Some(a) = &r.abort {
        marks.push(("abort", a.tripped_s, "#d62728"));
    }
    marks
        .into_iter()
        .map(|(label, t, colour)| {
            let x = plot.sc.x(t);
            Group::new()
                .set("class", label)
                .add(
                    Line::new()
                        .set("x1", x)
                        .set("x2", x)
                        .set("y1", TOP)
                        .set("y2", plot.bottom())
                        .set("stroke", colour)
                        .set("stroke-dasharray", "4 3"),
                )
                .add(text(x + 3.0, plot.rate_top - 6.0, label).set("fill", colour))
        })
        .collect()
}

fn axes(
    sc: &Scale,
    lat_base: f64,
    rate_base: f64,
    max_lat: f64,
    max_rate: f64,
    rate_top: f64,
) -> Group {
    let mut g = Group::new().set("class", "axes").set("stroke", "#000");
    for (y0, y1) in [(TOP, lat_base), (rate_top, rate_base)] {
        g = g
            .add(
                Line::new()
                    .set("x1", LEFT)
                    .set("x2", LEFT)
                    .set("y1", y0)
                    .set("y2", y1),
            )
            .add(
                Line::new()
                    .set("x1", LEFT)
                    .set("x2", W - RIGHT)
                    .set("y1", y1)
                    .set("y2", y1),
            );
    }
    let span = sc.t1 - sc.t0;
    let step = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| span / s <= 12.0)
        .unwrap_or(1800.0);
    let mut t = (sc.t0 / step).ceil() * step;
    while t <= sc.t1 {
        g = g.add(text(sc.x(t) - 8.0, rate_base + 16.0, format!("{t:.0}s")).set("stroke", "none"));
        t += step;
    }
    g.add(text(4.0, TOP + 10.0, format!("{max_lat:.0} ms")).set("stroke", "none"))
        .add(text(4.0, lat_base, "0 ms").set("stroke", "none"))
        .add(text(4.0, TOP + LAT_H / 2.0, "latency").set("stroke", "none"))
        .add(text(4.0, rate_top + 10.0, format!("{max_rate:.0}/s")).set("stroke", "none"))
        .add(text(4.0, rate_top + RATE_H / 2.0, "injected").set("stroke", "none"))
        .add(text(LEFT, rate_base + 34.0, "seconds since injection began").set("stroke", "none"))
}
