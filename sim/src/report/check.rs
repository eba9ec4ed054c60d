//! Model-check results as report suites: one suite per model, one case per property; or, for a
//! mutant run, one case for the mutant, passing when the mutant is caught.

use super::{Case, Counts, Status, Suite};
use cellar_model::check::{Report as ModelReport, Trace, Verdict};
use cellar_model::models::{MutantInfo, Sizes};

/// `cellar check --model M --size k=v …`: the command that re-runs one model at these sizes.
pub fn command(model: &str, sizes: &Sizes, mutant: Option<&str>) -> String {
    let mut c = match mutant {
        Some(m) => format!("cellar check --mutant {m}"),
        None => format!("cellar check --model {model}"),
    };
    for (k, v) in sizes.values() {
        c.push_str(&format!(" --size {k}={v}"));
    }
    c
}

/// Numbered steps and the final state.
pub fn trace_text(trace: &Trace) -> String {
    let mut s = String::new();
    for (i, step) in trace.steps.iter().enumerate() {
        s.push_str(&format!("{:>3}. {step}\n", i + 1));
    }
    s.push_str(&format!("then: {}\n", trace.final_state));
    s
}

fn model_counts(r: &ModelReport, sizes: &Sizes) -> Counts {
    let mut c = Counts::new();
    c.insert("states_generated".into(), r.states_generated.into());
    c.insert("unique_states".into(), r.unique_states.into());
    c.insert("max_depth".into(), r.max_depth.into());
    c.insert("exhaustive".into(), r.exhaustive.into());
    for (k, v) in sizes.values() {
        c.insert(format!("size.{k}"), (*v).into());
    }
    c
}

fn property_case(model: &str, v: &Verdict, reproduce: &str, model_counts: &Counts) -> Case {
    let mut counts = model_counts.clone();
    counts.insert("kind".into(), v.kind.into());
    let steps = v.trace.as_ref().map(|t| t.steps.len());
    if let Some(n) = steps {
        counts.insert("trace_steps".into(), n.into());
    }
    let (status, message, details) = match (v.holds, v.decided, &v.trace) {
        (true, _, Some(t)) => (Status::Passed, None, format!("example:\n{}", trace_text(t))),
        (true, _, None) => (Status::Passed, None, String::new()),
        (false, true, Some(t)) => (
            Status::Failed,
            Some(format!(
                "{} violated: shortest counterexample of {} steps",
                v.kind,
                t.steps.len()
            )),
            format!("shortest counterexample:\n{}", trace_text(t)),
        ),
        (false, true, None) => (
            Status::Failed,
            Some("no reachable state shows this: impossible at this size".into()),
            String::new(),
        ),
        (false, false, _) => (
            Status::Skipped,
            Some("not reached before checking stopped (undecided)".into()),
            String::new(),
        ),
    };
    Case {
        name: v.name.to_string(),
        classname: format!("check.{model}"),
        reproduce: (status == Status::Failed).then(|| reproduce.to_string()),
        status,
        time_seconds: None,
        counts,
        message,
        details,
    }
}

/// One suite per model checked, one case per property (each with the model's counts).
pub fn property_suites(reports: &[(ModelReport, Sizes)]) -> Vec<Suite> {
    reports
        .iter()
        .map(|(r, sizes)| {
            let reproduce = command(r.model, sizes, None);
            let counts = model_counts(r, sizes);
            let cases = r
                .properties
                .iter()
                .map(|v| property_case(r.model, v, &reproduce, &counts))
                .collect();
            Suite {
                name: format!("check {}", r.model),
                time_seconds: Some(r.seconds),
                counts,
                cases,
            }
        })
        .collect()
}

/// The suite of one mutant run: its case passes when some property fails (the mutant is
/// caught, `cellar check --mutant` exits 1); `system-out` carries the shortest counterexample of
/// the property that must catch it.
pub fn mutant_suite(mutant: &MutantInfo, report: &ModelReport, sizes: &Sizes) -> Suite {
    let caught = !report.passed();
    let mut counts = model_counts(report, sizes);
    let by = report
        .verdict(mutant.caught_by)
        .filter(|v| !v.holds && v.decided)
        .or_else(|| report.properties.iter().find(|v| !v.holds && v.decided));
    let mut details = format!("what: {}\nmust be caught by: {}\n", mutant.what, mutant.caught_by);
    if let Some(v) = by {
        details.push_str(&format!("caught by: {}\n", v.name));
        if let Some(t) = &v.trace {
            counts.insert("counterexample_steps".into(), t.steps.len().into());
            details.push_str(&format!(
                "shortest counterexample ({} steps):\n{}",
                t.steps.len(),
                trace_text(t)
            ));
        }
    }
    let case = Case {
        name: format!("mutant {}", mutant.name),
        classname: format!("check.mutants.{}", report.model),
        status: if caught { Status::Passed } else { Status::Failed },
        time_seconds: Some(report.seconds),
        counts,
        message: (!caught).then(|| format!("mutant {} was NOT caught", mutant.name)),
        details,
        reproduce: Some(command(report.model, sizes, Some(mutant.name))),
    };
    Suite {
        name: format!("check mutant {}", mutant.name),
        time_seconds: Some(report.seconds),
        counts: Counts::new(),
        cases: vec![case],
    }
}
