//! Reports for CI systems (`--report DIR`): `conform.json` and JUnit XML `junit.xml`.

use crate::conform::run_vectors::VectorsReport;
use std::path::Path;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// JUnit XML: one test suite per format, one test case per failed vector plus one passing case
/// for the rest (counts carry the totals).
pub fn junit(r: &VectorsReport) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"cellar conform vectors\">\n",
    );
    for row in &r.rows {
        s.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
            xml_escape(&row.format),
            row.tests,
            row.failed,
            row.skipped
        ));
        for m in r.mismatches.iter().filter(|m| m.format == row.format) {
            let tag = if m.kind_only { "system-out" } else { "failure" };
            s.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"tcId {}: {}\"><{tag} message=\"expected {}, got {}\"/></testcase>\n",
                xml_escape(&m.format),
                m.tc_id,
                xml_escape(&m.comment),
                xml_escape(&m.expected),
                xml_escape(&m.got)
            ));
        }
        if row.skipped > 0 {
            s.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"all\"><skipped message=\"format not supported\"/></testcase>\n",
                xml_escape(&row.format)
            ));
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

/// Writes `conform.json` and `junit.xml` into `dir` (created if absent).
pub fn write(dir: &Path, r: &VectorsReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("conform.json"), json + "\n")?;
    std::fs::write(dir.join("junit.xml"), junit(r))
}

/// JUnit XML of a cell or store suite run: one test case per seed.
pub fn junit_suite(suite: &str, outcomes: &[crate::conform::suites::SeedOutcome]) -> String {
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"cellar conform {suite}\">\n  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failed}\">\n",
        outcomes.len()
    );
    for o in outcomes {
        s.push_str(&format!("    <testcase classname=\"{suite}\" name=\"seed {}\">", o.seed));
        if let Some(f) = &o.failure {
            s.push_str(&format!("<failure message=\"{}\"/>", xml_escape(f)));
        }
        s.push_str("</testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

/// Writes `conform.json` and `junit.xml` of a suite run into `dir`.
pub fn write_suite(
    dir: &Path,
    suite: &str,
    outcomes: &[crate::conform::suites::SeedOutcome],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json =
        serde_json::to_string_pretty(&serde_json::json!({"suite": suite, "seeds": outcomes}))
            .map_err(std::io::Error::other)?;
    std::fs::write(dir.join("conform.json"), json + "\n")?;
    std::fs::write(dir.join("junit.xml"), junit_suite(suite, outcomes))
}

/// JUnit XML of a run made of named cases (probes, seeds, checks): one test case each.
pub fn junit_cases(suite: &str, cases: &[crate::conform::sector::Case]) -> String {
    let failed = cases.iter().filter(|c| c.failure.is_some()).count();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"cellar conform {suite}\">\n  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failed}\">\n",
        cases.len()
    );
    for c in cases {
        s.push_str(&format!(
            "    <testcase classname=\"{suite}\" name=\"{}\">",
            xml_escape(&c.name)
        ));
        match &c.failure {
            Some(f) => s.push_str(&format!("<failure message=\"{}\"/>", xml_escape(f))),
            None if !c.info.is_empty() => {
                s.push_str(&format!("<system-out>{}</system-out>", xml_escape(&c.info)));
            }
            None => {}
        }
        s.push_str("</testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

/// Writes `conform.json` and `junit.xml` of a run made of named cases into `dir`.
pub fn write_cases(
    dir: &Path,
    suite: &str,
    cases: &[crate::conform::sector::Case],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&serde_json::json!({"suite": suite, "cases": cases}))
        .map_err(std::io::Error::other)?;
    std::fs::write(dir.join("conform.json"), json + "\n")?;
    std::fs::write(dir.join("junit.xml"), junit_cases(suite, cases))
}
