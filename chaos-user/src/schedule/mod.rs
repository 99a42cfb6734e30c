//! Experiments on a calendar: an experiment file's `schedule:` block (cron, `@every`, or
//! Chaos Monkey's random moments; a time zone, windows, blackouts, concurrency), checked into a
//! `Schedule` (`spec`) and planned tick by tick (`calendar`, `planner`); experiment::scheduled
//! runs them (`chaos schedule run`). docs/schedules.md.

mod calendar;
mod planner;
mod spec;

pub use calendar::{Concurrency, Schedule, When};
pub use planner::{Decision, Planner};
pub use spec::ScheduleSpec;
