//! What `eventsync bench` reports: each [`Figure`] beside its limit from the same run, the
//! raw [`Limit`]s themselves, printed as a table or as one JSON object with stable keys.

use serde::Serialize;

/// Whether a larger value is better (a rate) or a smaller one (a time, a size, a count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Better {
    /// Events per second and the like.
    Higher,
    /// Seconds, bytes, refusals.
    Lower,
}

/// What a figure must reach, checked against its value or its ratio to its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Goal {
    /// The value is at most this (in the figure's unit).
    AtMost(f64),
    /// The value is at least this (in the figure's unit).
    AtLeast(f64),
    /// The ratio to the limit is at least this.
    RatioAtLeast(f64),
    /// The value is at most the first, and the ratio to the limit at least the second.
    AtMostWithRatio(f64, f64),
}

impl Goal {
    fn met(self, value: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Goal::AtMost(bound) => Some(value <= bound),
            Goal::AtLeast(bound) => Some(value >= bound),
            Goal::RatioAtLeast(bound) => ratio.map(|ratio| ratio >= bound),
            Goal::AtMostWithRatio(most, least) => {
                ratio.map(|ratio| value <= most && ratio >= least)
            }
        }
    }
}

/// A raw baseline of the machine, measured in this run: SQLite without eventsync, PUTs and
/// GETs without the segment log.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Limit {
    /// Stable key, e.g. `sqlite_insert_changeset`.
    pub key: String,
    /// What was measured, for a person.
    pub what: String,
    /// The measured value.
    pub value: f64,
    /// Its unit, e.g. `events/s`.
    pub unit: &'static str,
}

/// One figure of eventsync, its limit from the same run, and its goal.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Figure {
    /// Stable key, e.g. `session_commit_p50`; sizes that change with `--events` or
    /// `--quick` are in `events`, not in the key.
    pub key: &'static str,
    /// What was measured, for a person.
    pub what: String,
    /// How many events the measurement used, when that is a parameter.
    pub events: Option<u64>,
    /// The measured value; `None` when it cannot be measured yet (`note` says why).
    pub value: Option<f64>,
    /// The value's unit.
    pub unit: &'static str,
    /// The same work done raw on this machine in this run, in the same unit.
    pub limit: Option<f64>,
    /// What the limit is.
    pub limit_what: Option<String>,
    /// Which way is better.
    pub better: Better,
    /// The value's speed as a fraction of the limit's: `value / limit` for a rate,
    /// `limit / value` for a time, so that 1.0 is "as fast as the raw work".
    pub ratio: Option<f64>,
    /// The goal, as written in the issue.
    pub goal: String,
    /// Whether the goal is met; `None` when the value (or the ratio it needs) is missing.
    pub met: Option<bool>,
    /// Why a value is missing, or what else the run saw (batches, PUTs).
    pub note: Option<String>,
    #[serde(skip)]
    check: Option<Goal>,
}

impl Figure {
    /// A figure with a value, no limit yet.
    pub(crate) fn new(
        key: &'static str,
        what: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Figure {
        Figure {
            key,
            what: what.into(),
            events: None,
            value: Some(value),
            unit,
            limit: None,
            limit_what: None,
            better: Better::Lower,
            ratio: None,
            goal: String::new(),
            met: None,
            note: None,
            check: None,
        }
    }

    /// A figure that could not be measured, and why.
    pub(crate) fn missing(
        key: &'static str,
        what: impl Into<String>,
        unit: &'static str,
        why: impl Into<String>,
    ) -> Figure {
        Figure {
            value: None,
            note: Some(why.into()),
            ..Figure::new(key, what, 0.0, unit)
        }
    }

    /// Larger values are better (a rate).
    pub(crate) fn higher_is_better(mut self) -> Figure {
        self.better = Better::Higher;
        self.finish()
    }

    /// The number of events the measurement used.
    pub(crate) fn events(mut self, events: u64) -> Figure {
        self.events = Some(events);
        self
    }

    /// The limit, in the figure's unit.
    pub(crate) fn limit(mut self, limit: f64, what: impl Into<String>) -> Figure {
        self.limit = Some(limit);
        self.limit_what = Some(what.into());
        self.finish()
    }

    /// The goal: its text and how it is checked.
    pub(crate) fn goal(mut self, text: impl Into<String>, check: Goal) -> Figure {
        self.goal = text.into();
        self.check = Some(check);
        self.finish()
    }

    /// A goal that is only text (checked by hand or by another figure).
    pub(crate) fn goal_text(mut self, text: impl Into<String>) -> Figure {
        self.goal = text.into();
        self
    }

    /// A note beside the value.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Figure {
        let note = note.into();
        self.note = Some(match self.note.take() {
            Some(before) => format!("{before}; {note}"),
            None => note,
        });
        self
    }

    /// Marks the goal as not met whatever the numbers say (a failed correctness check).
    pub(crate) fn failed(mut self, why: impl Into<String>) -> Figure {
        self.met = Some(false);
        self.check = None;
        self.note(why)
    }

    /// Recomputes the ratio and whether the goal is met.
    fn finish(mut self) -> Figure {
        self.ratio = match (self.value, self.limit) {
            (Some(value), Some(limit)) if value > 0.0 && limit > 0.0 => Some(match self.better {
                Better::Higher => value / limit,
                Better::Lower => limit / value,
            }),
            _ => None,
        };
        if let (Some(check), Some(value)) = (self.check, self.value) {
            self.met = check.met(value, self.ratio);
        }
        self
    }
}

/// A whole run: where it ran, the figures, the limits.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// The JSON layout's version; bumped when a key changes meaning.
    pub format: u32,
    /// The backend, free of credentials.
    pub backend: String,
    /// The backend's kind: `file`, `memory` or `s3`.
    pub backend_kind: String,
    /// `--events`: the size of the large figures.
    pub events: u64,
    /// Whether `--quick` made everything tiny.
    pub quick: bool,
    /// The leader's SQLite durability mode, which the raw SQLite limits use too.
    pub sqlite_durability: String,
    /// Whole run, seconds.
    pub elapsed_s: f64,
    /// eventsync's figures, in the order of the issue's goals table.
    pub figures: Vec<Figure>,
    /// The raw baselines.
    pub limits: Vec<Limit>,
}

impl Report {
    /// The report as one JSON object.
    pub(crate) fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }

    /// The report as lines of a table.
    pub(crate) fn table(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "eventsync bench on {} ({}), events {}{}, SQLite {}, {:.1} s",
                self.backend,
                self.backend_kind,
                self.events,
                if self.quick { ", --quick" } else { "" },
                self.sqlite_durability,
                self.elapsed_s
            ),
            String::new(),
            format!(
                "{:<58} {:>7} {:>14} {:>14} {:>6}  {:<26} {}",
                "figure", "events", "value", "limit", "ratio", "goal", "met"
            ),
        ];
        for figure in &self.figures {
            lines.push(format!(
                "{:<58} {:>7} {:>14} {:>14} {:>6}  {:<26} {}",
                figure.what,
                figure
                    .events
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
                figure
                    .value
                    .map_or_else(|| "n/a".to_string(), |v| amount(v, figure.unit)),
                figure
                    .limit
                    .map_or_else(|| "-".to_string(), |v| amount(v, figure.unit)),
                figure
                    .ratio
                    .map_or_else(|| "-".to_string(), |r| format!("{r:.2}")),
                figure.goal,
                match figure.met {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                }
            ));
            if let Some(limit_what) = &figure.limit_what {
                lines.push(format!("    limit: {limit_what}"));
            }
            if let Some(note) = &figure.note {
                lines.push(format!("    note: {note}"));
            }
        }
        lines.push(String::new());
        lines.push("raw limits measured in this run:".into());
        for limit in &self.limits {
            lines.push(format!(
                "  {:<46} {:>14}  {}",
                limit.key,
                amount(limit.value, limit.unit),
                limit.what
            ));
        }
        lines
    }
}

/// A value with its unit, with as many digits as it needs.
fn amount(value: f64, unit: &str) -> String {
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ratio_is_speed_relative_to_the_limit_both_ways() {
        let time = Figure::new("t", "a time", 4.0, "ms").limit(1.0, "raw");
        assert_eq!(time.ratio, Some(0.25));
        let rate = Figure::new("r", "a rate", 50.0, "events/s")
            .higher_is_better()
            .limit(200.0, "raw");
        assert_eq!(rate.ratio, Some(0.25));
    }

    #[test]
    fn test_goal_checks_value_or_ratio() {
        let fast = Figure::new("t", "a time", 10.0, "µs").goal("≤ 15 µs", Goal::AtMost(15.0));
        assert_eq!(fast.met, Some(true));
        let slow = Figure::new("t", "a time", 16.0, "µs").goal("≤ 15 µs", Goal::AtMost(15.0));
        assert_eq!(slow.met, Some(false));
        let no_limit = Figure::new("r", "a rate", 10.0, "events/s")
            .higher_is_better()
            .goal("≥ 0.5 × raw", Goal::RatioAtLeast(0.5));
        assert_eq!(no_limit.met, None);
        let with_limit = no_limit.limit(15.0, "raw");
        assert_eq!(with_limit.met, Some(true));
        let failed = with_limit.failed("an event was doubled");
        assert_eq!(failed.met, Some(false));
    }

    #[test]
    fn test_missing_figure_has_no_value_and_says_why() {
        let figure = Figure::missing("x", "something", "ms", "no counter yet");
        assert_eq!(figure.value, None);
        assert_eq!(figure.met, None);
        assert_eq!(figure.note.as_deref(), Some("no counter yet"));
        let json = serde_json::to_value(&figure).unwrap();
        assert!(json["value"].is_null());
    }
}
