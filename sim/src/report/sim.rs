//! Simulation results as report suites: one suite per profile (campaign), one case for the
//! campaign and one per further failing seed, each failure with its seed, rule, last events
//! and the command that replays it.

use super::{Case, Counts, Status, Suite};
use crate::campaign::{Summary, replay_command};
use crate::minimize::Minimized;
use crate::run::{RunConfig, RunReport};
use serde::Serialize;

/// A minimized failing run.
#[derive(Debug, Clone, Serialize)]
pub struct MinimizedRun {
    /// Its simulated operations.
    pub ops: u64,
    /// The command that replays it.
    pub replay: String,
}

/// A failing seed, as `cellar sim --json` prints it under `failure`.
#[derive(Debug, Clone, Serialize)]
pub struct FailedSeed {
    /// The seed.
    pub seed: u64,
    /// The rule broken.
    pub rule: String,
    /// What happened.
    pub detail: String,
    /// The fault knobs the seed drew.
    pub knobs: serde_json::Value,
    /// The last events before the failure.
    pub last_events: Vec<String>,
    /// Where its full trace was written, if it could be.
    pub trace_file: Option<String>,
    /// The command that replays it.
    pub replay: String,
    /// The minimized run, if the failure was shrunk.
    pub minimized: Option<MinimizedRun>,
}

impl FailedSeed {
    /// The failure of `report` (run with `cfg`); `None` if it passed.
    pub fn of(
        cfg: &RunConfig,
        report: &RunReport,
        trace_file: Option<String>,
        minimized: Option<&Minimized>,
    ) -> Option<Self> {
        let f = report.failure.as_ref()?;
        Some(Self {
            seed: cfg.seed,
            rule: f.violation.rule.clone(),
            detail: f.violation.detail.clone(),
            knobs: serde_json::to_value(&report.knobs).unwrap_or_default(),
            last_events: f.tail.clone(),
            trace_file,
            replay: replay_command(cfg),
            minimized: minimized
                .map(|m| MinimizedRun { ops: m.ops, replay: replay_command(&m.config) }),
        })
    }

    /// A failing seed known only by its violation (a further failure of a `--keep-going`
    /// campaign: not traced or minimized).
    pub fn brief(cfg: &RunConfig, rule: &str, detail: &str) -> Self {
        Self {
            seed: cfg.seed,
            rule: rule.to_string(),
            detail: detail.to_string(),
            knobs: serde_json::Value::Null,
            last_events: Vec::new(),
            trace_file: None,
            replay: replay_command(cfg),
            minimized: None,
        }
    }

    fn message(&self) -> String {
        format!("seed {}: {}: {}", self.seed, self.rule, self.detail)
    }

    fn details(&self) -> String {
        let mut s =
            format!("failing seed: {}\nrule: {}\ndetail: {}\n", self.seed, self.rule, self.detail);
        if !self.knobs.is_null() {
            s.push_str(&format!("fault knobs: {}\n", self.knobs));
        }
        if !self.last_events.is_empty() {
            s.push_str("last events:\n");
            for e in &self.last_events {
                s.push_str(&format!("  {e}\n"));
            }
        }
        if let Some(t) = &self.trace_file {
            s.push_str(&format!("full trace: {t}\n"));
        }
        if let Some(m) = &self.minimized {
            s.push_str(&format!("minimized ({} ops): {}\n", m.ops, m.replay));
        }
        s
    }
}

fn summary_counts(s: &Summary) -> Counts {
    let mut c = Counts::new();
    c.insert("seeds".into(), s.seeds.into());
    c.insert("seeds_passed".into(), s.passed.into());
    c.insert("ops".into(), s.ops.into());
    c.insert("sim_seconds".into(), s.sim_seconds.into());
    c.insert("wall_seconds".into(), s.wall_seconds.into());
    c.insert("acceleration".into(), s.acceleration.into());
    c.insert("ops_per_second".into(), s.ops_per_second.into());
    if let Ok(serde_json::Value::Object(faults)) = serde_json::to_value(s.faults) {
        for (k, v) in faults {
            c.insert(format!("faults.{k}"), v);
        }
    }
    c
}

fn suite_name(profile: &str, bug: Option<&str>) -> String {
    match bug {
        Some(b) => format!("sim {profile} bug {b}"),
        None => format!("sim {profile}"),
    }
}

fn failed_case(classname: &str, name: String, counts: Counts, f: &FailedSeed) -> Case {
    Case {
        name,
        classname: classname.to_string(),
        status: Status::Failed,
        time_seconds: None,
        counts,
        message: Some(f.message()),
        details: f.details(),
        reproduce: Some(f.replay.clone()),
    }
}

/// The suite of a campaign of seeds `first..first + summary.seeds` (or more, if it stopped at
/// a failure): the campaign case, failing with the first failing seed, and one failing case per
/// further failing seed in `failures` (first failure first).
pub fn campaign_suite(
    summary: &Summary,
    first_seed: u64,
    count: u64,
    failures: &[FailedSeed],
) -> Suite {
    let classname = format!("sim.{}", summary.profile);
    let name = format!("campaign seeds {first_seed}..{}", first_seed.saturating_add(count));
    let counts = summary_counts(summary);
    let mut cases = vec![match failures.first() {
        Some(f) => failed_case(&classname, name, counts, f),
        None => Case {
            name,
            classname: classname.clone(),
            status: Status::Passed,
            time_seconds: Some(summary.wall_seconds),
            counts,
            message: None,
            details: String::new(),
            reproduce: None,
        },
    }];
    for f in failures.iter().skip(1) {
        cases.push(failed_case(&classname, format!("seed {}", f.seed), Counts::new(), f));
    }
    Suite {
        name: suite_name(&summary.profile, summary.bug.as_deref()),
        time_seconds: Some(summary.wall_seconds),
        counts: Counts::new(),
        cases,
    }
}

/// The suite of one replayed seed (`cellar sim --seed N`).
pub fn replay_suite(cfg: &RunConfig, report: &RunReport, failure: Option<&FailedSeed>) -> Suite {
    let profile = format!("{:?}", cfg.profile).to_lowercase();
    let classname = format!("sim.{profile}");
    let mut counts = Counts::new();
    counts.insert("ops".into(), report.ops.into());
    counts.insert("events".into(), report.events.into());
    counts.insert("sim_seconds".into(), (report.sim_us as f64 / 1e6).into());
    counts.insert("trace_hash".into(), format!("{:016x}", report.trace_hash).into());
    let name = format!("seed {}", cfg.seed);
    let case = match failure {
        Some(f) => failed_case(&classname, name, counts, f),
        None => Case {
            name,
            classname,
            status: Status::Passed,
            time_seconds: None,
            counts,
            message: None,
            details: String::new(),
            reproduce: Some(replay_command(cfg)),
        },
    };
    Suite {
        name: suite_name(&profile, cfg.bug.as_deref()),
        time_seconds: None,
        counts: Counts::new(),
        cases: vec![case],
    }
}
