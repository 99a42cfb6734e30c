//! An experiment file's `schedule:` block, as written, and its check into a `Schedule`. Errors
//! name the field (`schedule.cron`, `schedule.windows[1].from`, ...) and the fix.

use super::calendar::{Blackout, Concurrency, Schedule, When, Window};
use crate::{error::Error, scalar::Dur};
use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::Deserialize;

/// ```yaml
/// schedule:
///   cron: "0 */30 9-17 * * MON-FRI"   # 5 fields, or 6 with seconds first; @hourly; @every 2h
///   time_zone: Europe/Berlin          # IANA name; default UTC
///   windows: [{days: MON-FRI, from: "09:00", to: "17:00"}]
///   blackouts: ["2026-12-24", {from: "2026-12-24", to: "2027-01-02"}]
///   concurrency: forbid               # or allow
/// ```
/// or, instead of `cron`, Chaos Monkey's random moments:
/// `random: {mean_time_between: 2d, probability: 0.1}` (also spelled `kill:`, as Chaos Monkey's
/// users write it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub cron: Option<String>,
    #[serde(alias = "kill")]
    pub random: Option<RandomSpec>,
    pub time_zone: Option<String>,
    #[serde(default)]
    pub windows: Vec<WindowSpec>,
    #[serde(default)]
    pub blackouts: Vec<BlackoutSpec>,
    pub concurrency: Option<String>,
}

/// Moments drawn at random inside the windows, `mean_time_between` apart on average (counted in
/// window time only: "two work days"), each run with `probability` (default 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSpec {
    pub mean_time_between: Dur,
    pub probability: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `MON-FRI`, `SAT,SUN`, `[MON, WED]`; default every day.
    pub days: Option<Days>,
    /// `HH:MM` or `HH:MM:SS`, in the schedule's time zone.
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Days {
    Text(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BlackoutSpec {
    /// One day, `YYYY-MM-DD`.
    Day(String),
    /// Every day from one date to another, both included.
    Range { from: String, to: String },
}

fn invalid(at: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Invalid {
        at: at.into(),
        message: message.into(),
    }
}

impl ScheduleSpec {
    /// Checks every field; `at` is where the block is (`schedule`).
    pub fn check(self, at: &str) -> Result<Schedule, Error> {
        let when = match (self.cron, self.random) {
            (Some(c), None) => cron(&c, &format!("{at}.cron"))?,
            (None, Some(r)) => {
                let p = r.probability.unwrap_or(1.0);
                if !(p > 0.0 && p <= 1.0) {
                    return Err(invalid(
                        format!("{at}.random.probability"),
                        format!("{p} is not a probability above 0 and up to 1, e.g. 0.1"),
                    ));
                }
                if r.mean_time_between.0.is_zero() {
                    return Err(invalid(
                        format!("{at}.random.mean_time_between"),
                        "give a positive duration, e.g. 2d",
                    ));
                }
                When::Random {
                    mean: r.mean_time_between.0,
                    probability: p,
                }
            }
            _ => {
                return Err(invalid(
                    at,
                    "give one of cron (e.g. \"0 9 * * MON-FRI\" or \"@every 2h\") or random \
                     ({mean_time_between: 2d, probability: 0.1})",
                ));
            }
        };
        let tz = match self.time_zone.as_deref() {
            None => chrono_tz::UTC,
            Some(name) => name.parse().map_err(|_| {
                invalid(
                    format!("{at}.time_zone"),
                    format!("'{name}' is not an IANA time zone; e.g. Europe/Berlin or UTC"),
                )
            })?,
        };
        let windows = self
            .windows
            .into_iter()
            .enumerate()
            .map(|(i, w)| window(w, &format!("{at}.windows[{i}]")))
            .collect::<Result<_, _>>()?;
        let blackouts = self
            .blackouts
            .into_iter()
            .enumerate()
            .map(|(i, b)| blackout(b, &format!("{at}.blackouts[{i}]")))
            .collect::<Result<_, _>>()?;
        let concurrency = match self.concurrency.as_deref() {
            None | Some("forbid") => Concurrency::Forbid,
            Some("allow") => Concurrency::Allow,
            Some(other) => {
                return Err(invalid(
                    format!("{at}.concurrency"),
                    format!("'{other}' is not forbid or allow"),
                ));
            }
        };
        Ok(Schedule {
            when,
            tz,
            windows,
            blackouts,
            concurrency,
        })
    }
}

fn cron(text: &str, at: &str) -> Result<When, Error> {
    if let Some(d) = text.trim().strip_prefix("@every ") {
        let every = humantime::parse_duration(d.trim()).map_err(|e| {
            invalid(
                at,
                format!("'{d}' after @every is not a duration ({e}); e.g. @every 2h"),
            )
        })?;
        if every < std::time::Duration::from_secs(1) {
            return Err(invalid(at, "@every needs at least 1s between runs"));
        }
        return Ok(When::Every(every));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(text)
        .map(|c| When::Cron(Box::new(c)))
        .map_err(|e| {
            invalid(
                at,
                format!(
                    "'{text}' is not a cron pattern ({e}); e.g. \"0 9 * * MON-FRI\" (minute hour \
                     day month weekday, seconds first optional) or \"@every 2h\""
                ),
            )
        })
}

fn time(text: &str, at: &str) -> Result<NaiveTime, Error> {
    NaiveTime::parse_from_str(text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .map_err(|_| invalid(at, format!("'{text}' is not HH:MM or HH:MM:SS")))
}

fn weekday(name: &str, at: &str) -> Result<Weekday, Error> {
    name.trim()
        .parse::<Weekday>()
        .map_err(|_| invalid(at, format!("'{name}' is not a weekday (MON, TUE, ... SUN)")))
}

fn window(w: WindowSpec, at: &str) -> Result<Window, Error> {
    let (from, to) = (
        time(&w.from, &format!("{at}.from"))?,
        time(&w.to, &format!("{at}.to"))?,
    );
    if from >= to {
        return Err(invalid(
            format!("{at}.to"),
            format!(
                "{} is not after {}: a window ends the day it starts; split one over midnight \
                 in two",
                w.to, w.from
            ),
        ));
    }
    let at_days = format!("{at}.days");
    let mut days = [w.days.is_none(); 7];
    let items: Vec<String> = match w.days {
        None => Vec::new(),
        Some(Days::List(l)) => l,
        Some(Days::Text(t)) => t.split(',').map(str::to_string).collect(),
    };
    for item in items {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (weekday(a, &at_days)?, weekday(b, &at_days)?);
                let mut d = a;
                loop {
                    days[d.num_days_from_monday() as usize] = true;
                    if d == b {
                        break;
                    }
                    d = d.succ();
                }
            }
            None => days[weekday(&item, &at_days)?.num_days_from_monday() as usize] = true,
        }
    }
    Ok(Window { days, from, to })
}

fn date(text: &str, at: &str) -> Result<NaiveDate, Error> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(at, format!("'{text}' is not a date YYYY-MM-DD")))
}

fn blackout(b: BlackoutSpec, at: &str) -> Result<Blackout, Error> {
    let (from, to) = match b {
        BlackoutSpec::Day(d) => {
            let d = date(&d, at)?;
            (d, d)
        }
        BlackoutSpec::Range { from, to } => (
            date(&from, &format!("{at}.from"))?,
            date(&to, &format!("{at}.to"))?,
        ),
    };
    if to < from {
        return Err(invalid(format!("{at}.to"), "ends before it starts"));
    }
    Ok(Blackout { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<Schedule, Error> {
        let spec: ScheduleSpec = serde_norway::from_str(yaml).expect("YAML");
        spec.check("schedule")
    }

    fn at(yaml: &str) -> String {
        match check(yaml) {
            Err(Error::Invalid { at, .. }) => at,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted: {yaml}"),
        }
    }

    #[test]
    fn each_error_names_its_field() {
        assert_eq!(at("cron: '61 * * * *'"), "schedule.cron");
        assert_eq!(at("cron: '@every soon'"), "schedule.cron");
        assert_eq!(
            at("time_zone: Mars/Olympus\ncron: '@every 1h'"),
            "schedule.time_zone"
        );
        assert_eq!(
            at("cron: '@every 1h'\nwindows: [{days: MON-FRI, from: '09:00', to: '08:00'}]"),
            "schedule.windows[0].to"
        );
        assert_eq!(
            at("cron: '@every 1h'\nwindows: [{days: MON-FUN, from: '09:00', to: '17:00'}]"),
            "schedule.windows[0].days"
        );
        assert_eq!(
            at("cron: '@every 1h'\nblackouts: ['24.12.2026']"),
            "schedule.blackouts[0]"
        );
        assert_eq!(
            at("random: {mean_time_between: 2d, probability: 1.5}"),
            "schedule.random.probability"
        );
        assert_eq!(
            at("concurrency: sometimes\ncron: '@every 1h'"),
            "schedule.concurrency"
        );
        assert_eq!(at("time_zone: UTC"), "schedule");
    }

    #[test]
    fn days_ranges_lists_and_seconds() {
        let s = check(
            "cron: '30 0 9 * * MON-FRI'\ntime_zone: Europe/Berlin\n\
             windows: [{days: 'SAT,SUN', from: '10:00:30', to: '12:00'}, {days: [WED], from: '09:00', to: '10:00'}]",
        )
        .expect("valid");
        assert_eq!(
            s.windows[0].days,
            [false, false, false, false, false, true, true]
        );
        assert_eq!(
            s.windows[1].days,
            [false, false, true, false, false, false, false]
        );
        assert_eq!(
            s.windows[0].from,
            NaiveTime::from_hms_opt(10, 0, 30).expect("time")
        );
        assert!(matches!(s.when, When::Cron(_)));
        assert!(
            matches!(check("cron: '@every 90s'").expect("valid").when, When::Every(d) if d.as_secs() == 90)
        );
    }
}
