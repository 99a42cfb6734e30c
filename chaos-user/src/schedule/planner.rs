//! What a schedule does at each tick, as time goes by: run, skip (a blackout, the random
//! draw, the previous run still going), or count as missed the ticks that passed while the
//! scheduler was not running (reported once, never replayed in a burst). Driven by the time it
//! is given, so the unit tests use a fake clock; `chaos schedule run` gives it the real one.

use super::calendar::{Concurrency, Schedule, When};
use chrono::{DateTime, Duration as Span, Utc};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// A tick acted on later than this after its time counts as missed (so does every tick but
/// the latest, when several are due at once).
pub const GRACE: Span = Span::seconds(5);

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Run(DateTime<Utc>),
    Skip {
        at: DateTime<Utc>,
        why: String,
    },
    /// Ticks that passed while nothing was watching, from the first to the last.
    Missed {
        count: u64,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    },
}

pub struct Planner {
    schedule: Schedule,
    anchor: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    /// Random draws made so far, for the moments and for the probability: draw N of a stream
    /// comes from (seed, stream, N) alone, so a copy of the planner (`upcoming`) plans the
    /// moments this one will, whatever was decided at them.
    draws: [u64; 2],
    /// The seed of the random draws (printed, so that a run can be replayed).
    pub seed: u64,
}

impl Planner {
    /// Plans from `start` (the anchor of `@every`).
    pub fn new(schedule: Schedule, start: DateTime<Utc>, seed: u64) -> Planner {
        let mut p = Planner {
            schedule,
            anchor: start,
            next: None,
            draws: [0; 2],
            seed,
        };
        p.next = p.after(start);
        p
    }

    /// Picks up where an earlier planner (the agent before a restart) left off: the ticks
    /// after `last` (its last look at the clock) are planned on the grid of `anchor`; those
    /// that passed meanwhile come out of `due` as missed.
    pub fn resume(
        schedule: Schedule,
        anchor: DateTime<Utc>,
        last: DateTime<Utc>,
        seed: u64,
    ) -> Planner {
        let mut p = Planner {
            schedule,
            anchor,
            next: None,
            draws: [0; 2],
            seed,
        };
        p.next = p.after(last);
        p
    }

    /// The start of the `@every` grid.
    pub fn anchor(&self) -> DateTime<Utc> {
        self.anchor
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The next tick, if the schedule has one.
    pub fn next(&self) -> Option<DateTime<Utc>> {
        self.next
    }

    /// A uniform draw in [0, 1) of stream 0 (moments) or 1 (probability).
    fn uniform(&mut self, stream: usize) -> f64 {
        let n = self.draws[stream];
        self.draws[stream] += 1;
        let key =
            self.seed ^ (n.wrapping_mul(2) + stream as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        StdRng::seed_from_u64(key).random::<f64>()
    }

    fn after(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.schedule.when {
            When::Random { mean, .. } => {
                // An exponential draw: a Poisson process of moments, `mean` apart on average.
                let u = self.uniform(0);
                let draw = -(1.0 - u).ln() * mean.as_secs_f64();
                self.schedule
                    .advance(t, std::time::Duration::from_secs_f64(draw))
            }
            _ => self.schedule.next_tick(t, self.anchor),
        }
    }

    /// What to do now for every tick due by `now`; `busy`: a run is still going. Plans the next
    /// tick after them.
    pub fn due(&mut self, now: DateTime<Utc>, busy: bool) -> Vec<Decision> {
        let mut due = Vec::new();
        while let Some(t) = self.next.filter(|t| *t <= now) {
            self.next = self.after(t);
            due.push(t);
        }
        // Only the latest tick may still run, and only when it is not late: never a burst.
        let last = due.pop_if(|t| now - *t <= GRACE);
        let mut out = Vec::new();
        if let (Some(first), Some(last)) = (due.first(), due.last()) {
            out.push(Decision::Missed {
                count: due.len() as u64,
                first: *first,
                last: *last,
            });
        }
        out.extend(last.map(|t| self.decide(t, busy)));
        out
    }

    fn decide(&mut self, t: DateTime<Utc>, busy: bool) -> Decision {
        if let Some(b) = self.schedule.blackout(t) {
            let why = match b.from == b.to {
                true => format!("blackout {}", b.from),
                false => format!("blackout {} to {}", b.from, b.to),
            };
            return Decision::Skip { at: t, why };
        }
        if let When::Random { probability, .. } = self.schedule.when
            && self.uniform(1) >= probability
        {
            return Decision::Skip {
                at: t,
                why: format!("not drawn (probability {probability})"),
            };
        }
        if busy && self.schedule.concurrency == Concurrency::Forbid {
            return Decision::Skip {
                at: t,
                why: "the previous run is still going (concurrency: forbid)".into(),
            };
        }
        Decision::Run(t)
    }

    /// The next `n` ticks from now, without deciding them (for `chaos schedule next`): a copy
    /// of the planner moves on, this one does not.
    pub fn upcoming(&self, n: usize) -> Vec<DateTime<Utc>> {
        let mut copy = Planner {
            schedule: Schedule {
                when: match &self.schedule.when {
                    When::Cron(c) => When::Cron(c.clone()),
                    When::Every(d) => When::Every(*d),
                    When::Random { mean, probability } => When::Random {
                        mean: *mean,
                        probability: *probability,
                    },
                },
                tz: self.schedule.tz,
                windows: self.schedule.windows.clone(),
                blackouts: self.schedule.blackouts.clone(),
                concurrency: self.schedule.concurrency,
            },
            anchor: self.anchor,
            next: self.next,
            draws: self.draws,
            seed: self.seed,
        };
        let mut out = Vec::new();
        while let Some(t) = copy.next.filter(|_| out.len() < n) {
            out.push(t);
            copy.next = copy.after(t);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::calendar::Blackout;
    use std::time::Duration;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn every(secs: u64) -> Schedule {
        Schedule {
            when: When::Every(Duration::from_secs(secs)),
            tz: chrono_tz::UTC,
            windows: Vec::new(),
            blackouts: Vec::new(),
            concurrency: Concurrency::Forbid,
        }
    }

    /// Every decision over `secs` seconds of a fake clock stepping one second at a time.
    fn drive(
        p: &mut Planner,
        start: DateTime<Utc>,
        secs: i64,
        busy: impl Fn(i64) -> bool,
    ) -> Vec<Decision> {
        (1..=secs)
            .flat_map(|s| p.due(start + Span::seconds(s), busy(s)))
            .collect()
    }

    #[test]
    fn a_blackout_skips_its_ticks() {
        let start = utc("2026-12-24T23:59:50Z");
        let s = Schedule {
            blackouts: vec![Blackout {
                from: chrono::NaiveDate::from_ymd_opt(2026, 12, 25).expect("date"),
                to: chrono::NaiveDate::from_ymd_opt(2026, 12, 25).expect("date"),
            }],
            ..every(5)
        };
        let mut p = Planner::new(s, start, 1);
        let d = drive(&mut p, start, 20, |_| false);
        assert_eq!(
            d,
            vec![
                Decision::Run(utc("2026-12-24T23:59:55Z")),
                Decision::Skip {
                    at: utc("2026-12-25T00:00:00Z"),
                    why: "blackout 2026-12-25".into()
                },
                Decision::Skip {
                    at: utc("2026-12-25T00:00:05Z"),
                    why: "blackout 2026-12-25".into()
                },
                Decision::Skip {
                    at: utc("2026-12-25T00:00:10Z"),
                    why: "blackout 2026-12-25".into()
                },
            ]
        );
    }

    #[test]
    fn a_tick_during_a_run_is_skipped_when_forbidden_and_run_when_allowed() {
        let start = utc("2026-12-01T10:00:00Z");
        let busy = |s: i64| (4..8).contains(&s);
        let mut p = Planner::new(every(3), start, 1);
        let d = drive(&mut p, start, 9, busy);
        assert!(matches!(d[0], Decision::Run(_)));
        assert!(matches!(&d[1], Decision::Skip { why, .. } if why.contains("forbid")));
        assert!(matches!(d[2], Decision::Run(_)));
        let mut p = Planner::new(
            Schedule {
                concurrency: Concurrency::Allow,
                ..every(3)
            },
            start,
            1,
        );
        let d = drive(&mut p, start, 9, busy);
        assert!(d.iter().all(|d| matches!(d, Decision::Run(_))), "{d:?}");
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn ticks_missed_while_down_are_reported_once_not_replayed() {
        let start = utc("2026-12-01T10:00:00Z");
        let mut p = Planner::new(every(10), start, 1);
        // Nothing watched for 65 s: six ticks passed, one is due now.
        let d = p.due(start + Span::seconds(72), false);
        assert_eq!(
            d,
            vec![
                Decision::Missed {
                    count: 6,
                    first: utc("2026-12-01T10:00:10Z"),
                    last: utc("2026-12-01T10:01:00Z")
                },
                Decision::Run(utc("2026-12-01T10:01:10Z")),
            ]
        );
        assert_eq!(p.next(), Some(utc("2026-12-01T10:01:20Z")));
    }

    #[test]
    fn ticks_due_together_run_once() {
        let start = utc("2026-12-01T10:00:00Z");
        let mut p = Planner::new(every(1), start, 1);
        // Four ticks passed in 4 s (less than the grace): only the latest runs.
        let d = p.due(start + Span::seconds(4), false);
        assert_eq!(
            d,
            vec![
                Decision::Missed {
                    count: 3,
                    first: utc("2026-12-01T10:00:01Z"),
                    last: utc("2026-12-01T10:00:03Z")
                },
                Decision::Run(utc("2026-12-01T10:00:04Z")),
            ]
        );
    }

    #[test]
    fn a_resumed_planner_reports_the_ticks_it_slept_through() {
        let start = utc("2026-12-01T10:00:00Z");
        // The agent looked last at 10:00:05 and is back at 10:01:02.
        let mut p = Planner::resume(every(10), start, utc("2026-12-01T10:00:05Z"), 1);
        let d = p.due(utc("2026-12-01T10:01:02Z"), false);
        assert_eq!(
            d,
            vec![
                Decision::Missed {
                    count: 5,
                    first: utc("2026-12-01T10:00:10Z"),
                    last: utc("2026-12-01T10:00:50Z")
                },
                Decision::Run(utc("2026-12-01T10:01:00Z")),
            ]
        );
    }

    #[test]
    fn random_moments_are_seeded_and_drawn_with_their_probability() {
        let start = utc("2026-12-01T10:00:00Z");
        let random = |p: f64| Schedule {
            when: When::Random {
                mean: Duration::from_secs(10),
                probability: p,
            },
            ..every(1)
        };
        let a = Planner::new(random(1.0), start, 7).upcoming(200);
        let b = Planner::new(random(1.0), start, 7).upcoming(200);
        assert_eq!(a, b, "one seed, one plan");
        // 200 moments 10 s apart on average: about 2000 s in all.
        let total = (a[199] - start).num_seconds();
        assert!((1500..2600).contains(&total), "{total}");
        let mut p = Planner::new(random(0.25), start, 7);
        let d = drive(&mut p, start, 4000, |_| false);
        let runs = d.iter().filter(|d| matches!(d, Decision::Run(_))).count();
        assert!(
            (d.len() > 300) && (runs * 100 / d.len()).abs_diff(25) < 8,
            "{runs} of {}",
            d.len()
        );
    }
}
