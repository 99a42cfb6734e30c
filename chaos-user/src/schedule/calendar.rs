//! When a schedule may run: its ticks (cron, `@every`, or random moments counted in window
//! time), its windows (weekdays and times of day, in its time zone) and its blackouts (dates).
//! Pure functions of the time given: the planner and the unit tests drive them with any clock.

use chrono::{DateTime, Datelike, Duration as Span, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::time::Duration;

/// How far ahead a schedule is searched for its next tick (a cron pattern for 29 February in
/// a window on Mondays may have none for years): none within this is "no next run".
const LOOKAHEAD_DAYS: i64 = 400;

pub enum When {
    Cron(Box<croner::Cron>),
    /// `@every D`: ticks D apart from the scheduler's start (the first one D after it).
    Every(Duration),
    /// Chaos Monkey: moments `mean` apart on average in window time, each run with
    /// `probability`.
    Random {
        mean: Duration,
        probability: f64,
    },
}

/// Weekdays (Monday first) and a time of day, `from` included, `to` excluded.
#[derive(Debug, Clone)]
pub struct Window {
    pub days: [bool; 7],
    pub from: NaiveTime,
    pub to: NaiveTime,
}

/// Dates, both included, on which the schedule must not run (its ticks there are skipped).
#[derive(Debug, Clone)]
pub struct Blackout {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// A tick while the previous run goes on is skipped (and recorded).
    Forbid,
    Allow,
}

pub struct Schedule {
    pub when: When,
    pub tz: Tz,
    pub windows: Vec<Window>,
    pub blackouts: Vec<Blackout>,
    pub concurrency: Concurrency,
}

fn span(d: Duration) -> Span {
    Span::from_std(d).unwrap_or(Span::MAX)
}

impl Schedule {
    /// `date` at `time` in the schedule's zone, in UTC (the earlier instant when the clock is
    /// set back; the first after a gap when it springs forward).
    fn at(&self, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let local = date.and_time(time);
        let t = self.tz.from_local_datetime(&local);
        t.earliest()
            .or_else(|| {
                self.tz
                    .from_local_datetime(&(local + Span::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether `t` is inside a window (always, without windows).
    pub fn in_window(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.tz);
        let (day, time) = (
            local.weekday().num_days_from_monday() as usize,
            local.time(),
        );
        self.windows.is_empty()
            || self
                .windows
                .iter()
                .any(|w| w.days[day] && w.from <= time && time < w.to)
    }

    /// The blackout `t` falls in, if any.
    pub fn blackout(&self, t: DateTime<Utc>) -> Option<&Blackout> {
        let date = t.with_timezone(&self.tz).date_naive();
        self.blackouts
            .iter()
            .find(|b| b.from <= date && date <= b.to)
    }

    /// The window that holds `t` or the first after it: (start, end), the start no earlier
    /// than `t`. Without windows: from `t` on, without end.
    fn window_from(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        if self.windows.is_empty() {
            return Some((t, None));
        }
        let first = t.with_timezone(&self.tz).date_naive();
        for offset in 0..=LOOKAHEAD_DAYS {
            let date = first + Span::days(offset);
            let day = date.weekday().num_days_from_monday() as usize;
            let best = self
                .windows
                .iter()
                .filter(|w| w.days[day])
                .filter_map(|w| Some((self.at(date, w.from)?, self.at(date, w.to)?)))
                .filter(|(_, end)| *end > t)
                .map(|(start, end)| (start.max(t), end))
                .min();
            if let Some((start, end)) = best {
                return Some((start, Some(end)));
            }
        }
        None
    }

    /// The first tick strictly after `after` that is inside a window, for cron and `@every`
    /// (anchored at `anchor`); None when there is none within the lookahead, or for random
    /// schedules (`advance`).
    pub fn next_tick(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let limit = after + Span::days(LOOKAHEAD_DAYS);
        let mut from = after;
        loop {
            let candidate = match &self.when {
                When::Cron(c) => c
                    .find_next_occurrence(&from.with_timezone(&self.tz), false)
                    .ok()?
                    .with_timezone(&Utc),
                When::Every(every) => {
                    let every = span(*every);
                    let n = ((from - anchor).num_nanoseconds()? / every.num_nanoseconds()?) + 1;
                    anchor + every * i32::try_from(n).ok()?
                }
                When::Random { .. } => return None,
            };
            if candidate > limit {
                return None;
            }
            if self.in_window(candidate) {
                return Some(candidate);
            }
            // Jump to just before the next window opens, rather than tick by tick.
            let (start, _) = self.window_from(candidate)?;
            from = (start - Span::nanoseconds(1)).max(candidate);
        }
    }

    /// `from` moved on by `amount` of window time (time outside every window does not count):
    /// the next random moment. None when the windows never open again within the lookahead.
    pub fn advance(&self, from: DateTime<Utc>, amount: Duration) -> Option<DateTime<Utc>> {
        let mut left = span(amount);
        let mut cur = from;
        for _ in 0..(LOOKAHEAD_DAYS * 24) {
            let (start, end) = self.window_from(cur)?;
            let Some(end) = end else {
                return start.checked_add_signed(left);
            };
            let open = end - start;
            if left < open {
                return Some(start + left);
            }
            left -= open;
            cur = end;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn every(secs: u64, windows: Vec<Window>) -> Schedule {
        Schedule {
            when: When::Every(Duration::from_secs(secs)),
            tz: chrono_tz::UTC,
            windows,
            blackouts: Vec::new(),
            concurrency: Concurrency::Forbid,
        }
    }

    fn weekdays(from: &str, to: &str) -> Window {
        let t = |s| NaiveTime::parse_from_str(s, "%H:%M:%S").expect("time");
        let mut days = [false; 7];
        for d in [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ] {
            days[d.num_days_from_monday() as usize] = true;
        }
        Window {
            days,
            from: t(from),
            to: t(to),
        }
    }

    #[test]
    fn every_three_seconds_stops_when_the_window_closes_and_resumes_when_it_opens() {
        // Monday 2026-11-30, a window closing 8 s after the start.
        let start = utc("2026-11-30T12:00:00Z");
        let s = every(3, vec![weekdays("09:00:00", "12:00:08")]);
        let mut ticks = Vec::new();
        let mut t = start;
        while let Some(next) = s.next_tick(t, start) {
            if next > utc("2026-12-01T09:00:10Z") {
                break;
            }
            ticks.push(next);
            t = next;
        }
        let first_day: Vec<_> = ticks
            .iter()
            .filter(|t| **t < utc("2026-12-01T00:00:00Z"))
            .collect();
        assert_eq!(
            first_day,
            vec![&utc("2026-11-30T12:00:03Z"), &utc("2026-11-30T12:00:06Z")]
        );
        // The next morning, on the same 3 s grid from the start.
        let next_day: Vec<_> = ticks
            .iter()
            .filter(|t| **t >= utc("2026-12-01T00:00:00Z"))
            .collect();
        assert_eq!(next_day[0], &utc("2026-12-01T09:00:00Z"));
        assert!(
            next_day
                .iter()
                .all(|t| (**t - start).num_seconds() % 3 == 0)
        );
    }

    #[test]
    fn weekends_and_blackouts() {
        let s = Schedule {
            blackouts: vec![Blackout {
                from: NaiveDate::from_ymd_opt(2026, 12, 24).expect("date"),
                to: NaiveDate::from_ymd_opt(2026, 12, 26).expect("date"),
            }],
            ..every(3600, vec![weekdays("09:00:00", "17:00:00")])
        };
        // Friday 17:30: the next tick is Monday 09:00.
        let fri = utc("2026-12-04T17:30:00Z");
        assert_eq!(
            s.next_tick(fri, utc("2026-12-04T09:00:00Z")),
            Some(utc("2026-12-07T09:00:00Z"))
        );
        assert!(s.blackout(utc("2026-12-25T10:00:00Z")).is_some());
        assert!(s.blackout(utc("2026-12-27T10:00:00Z")).is_none());
    }

    #[test]
    fn cron_in_a_time_zone() {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse("0 9 * * MON-FRI")
            .expect("cron");
        let s = Schedule {
            when: When::Cron(Box::new(cron)),
            tz: "Europe/Berlin".parse().expect("zone"),
            windows: Vec::new(),
            blackouts: Vec::new(),
            concurrency: Concurrency::Forbid,
        };
        // 09:00 in Berlin (UTC+1 in winter) on the next weekday.
        let sat = utc("2026-12-05T10:00:00Z");
        assert_eq!(s.next_tick(sat, sat), Some(utc("2026-12-07T08:00:00Z")));
    }

    #[test]
    fn random_moments_count_window_time_only() {
        let s = Schedule {
            when: When::Random {
                mean: Duration::from_secs(3600),
                probability: 1.0,
            },
            ..every(1, vec![weekdays("09:00:00", "17:00:00")])
        };
        // 16:30 Friday + 2 h of window time: 30 min on Friday, 90 min on Monday.
        let fri = utc("2026-12-04T16:30:00Z");
        assert_eq!(
            s.advance(fri, Duration::from_secs(2 * 3600)),
            Some(utc("2026-12-07T10:30:00Z"))
        );
        // Outside the windows, time starts at the next opening.
        assert_eq!(
            s.advance(utc("2026-12-05T12:00:00Z"), Duration::from_secs(60)),
            Some(utc("2026-12-07T09:01:00Z"))
        );
    }
}
