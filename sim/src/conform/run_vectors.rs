//! `cellar conform vectors`: feeds every vector to an implementation and judges its answers
//! (`specs/conform.md`, CONF-3).

use crate::conform::process::{Iut, ProcessError};
use crate::conform::vectors::{Op, TestCase, VectorFile, Verdict};
use serde::Serialize;
use serde_json::{Value, json};

/// One judged vector that did not pass.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// The vector file's format.
    pub format: String,
    /// The test id.
    #[serde(rename = "tcId")]
    pub tc_id: u32,
    /// The test's comment.
    pub comment: String,
    /// What the vector expects.
    pub expected: String,
    /// What the implementation answered.
    pub got: String,
    /// Only the error kind differs (a warning unless errors are strict).
    pub kind_only: bool,
}

/// Per-format counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FormatRow {
    /// The format or function.
    pub format: String,
    /// Tests in the file.
    pub tests: usize,
    /// Passed.
    pub passed: usize,
    /// Failed (kind mismatches included only with strict errors).
    pub failed: usize,
    /// Refused with another error kind than the vector's.
    pub kind_mismatches: usize,
    /// Not run: the implementation does not support the format.
    pub skipped: usize,
}

/// The outcome of a vectors run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VectorsReport {
    /// The implementation's `hello` name.
    pub implementation: String,
    /// One row per vector file.
    pub rows: Vec<FormatRow>,
    /// Every failure and kind mismatch.
    pub mismatches: Vec<Mismatch>,
}

impl VectorsReport {
    /// Failed tests in all.
    pub fn failed(&self) -> usize {
        self.rows.iter().map(|r| r.failed).sum()
    }
}

fn names(hello: &Value, key: &str) -> Vec<String> {
    hello
        .get(key)
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
}

/// Runs every test of `files` against `iut`.
pub fn run(
    iut: &mut Iut,
    files: &[VectorFile],
    strict_errors: bool,
) -> Result<VectorsReport, ProcessError> {
    let hello = iut.call(json!({"type": "hello"}))?;
    let mut report = VectorsReport {
        implementation: hello.get("name").and_then(Value::as_str).unwrap_or("?").to_owned(),
        ..VectorsReport::default()
    };
    let supported = [names(&hello, "formats"), names(&hello, "functions")].concat();
    for f in files {
        let mut row =
            FormatRow { format: f.format.clone(), tests: f.tests.len(), ..FormatRow::default() };
        if !supported.contains(&f.format) {
            row.skipped = f.tests.len();
            report.rows.push(row);
            continue;
        }
        for t in &f.tests {
            match judge(iut, f, t)? {
                None => row.passed += 1,
                Some(m) => {
                    if m.kind_only {
                        row.kind_mismatches += 1;
                        if strict_errors {
                            row.failed += 1;
                        } else {
                            row.passed += 1;
                        }
                    } else {
                        row.failed += 1;
                    }
                    report.mismatches.push(m);
                }
            }
        }
        report.rows.push(row);
    }
    Ok(report)
}

fn request(f: &VectorFile, t: &TestCase) -> Value {
    let params = if t.params.is_null() { json!({}) } else { t.params.clone() };
    match f.op {
        Op::Decode => {
            json!({"type": "decode", "format": f.format, "params": params, "bytes": t.input})
        }
        Op::Derive => json!({"type": "derive", "function": f.format, "input": t.input}),
    }
}

fn describe(v: &Value) -> String {
    if v.get("ok") == Some(&Value::Bool(true)) {
        format!("ok {}", v.get("value").unwrap_or(&Value::Null))
    } else {
        format!("error {}", v.pointer("/error/kind").unwrap_or(&Value::Null))
    }
}

/// `None` if the answer conforms, else what went wrong.
fn judge(iut: &mut Iut, f: &VectorFile, t: &TestCase) -> Result<Option<Mismatch>, ProcessError> {
    let answer = iut.call(request(f, t))?;
    let ok = answer.get("ok") == Some(&Value::Bool(true));
    let value = answer.get("value");
    let kind = answer.pointer("/error/kind").and_then(Value::as_str).unwrap_or("");
    let mismatch = |expected: String, kind_only: bool| Mismatch {
        format: f.format.clone(),
        tc_id: t.tc_id,
        comment: t.comment.clone(),
        expected,
        got: describe(&answer),
        kind_only,
    };
    let want_value = t.output.as_ref();
    let want_kind = t.error.map(|k| k.name()).unwrap_or_default();
    Ok(match t.result {
        Verdict::Valid if !ok || value != want_value => {
            Some(mismatch(format!("ok {}", want_value.unwrap_or(&Value::Null)), false))
        }
        Verdict::Valid if f.encode => {
            let enc = iut.call(json!({"type": "encode", "format": f.format, "params": t.params,
                                      "value": want_value}))?;
            let bytes = enc.get("bytes");
            (bytes != Some(&t.input)).then(|| Mismatch {
                expected: format!("encode to {}", t.input),
                got: format!("{}", bytes.unwrap_or(&Value::Null)),
                ..mismatch(String::new(), false)
            })
        }
        Verdict::Valid => None,
        Verdict::Invalid if ok => Some(mismatch(format!("error {want_kind}"), false)),
        Verdict::Invalid if kind != want_kind => Some(mismatch(format!("error {want_kind}"), true)),
        Verdict::Invalid => None,
        Verdict::Acceptable if ok && t.output.is_some() && value != want_value => {
            Some(mismatch(format!("ok {} or an error", want_value.unwrap_or(&Value::Null)), false))
        }
        Verdict::Acceptable => None,
    })
}

/// The summary table.
pub fn table(r: &VectorsReport) -> String {
    let line = |row: &FormatRow| {
        format!(
            "{:<24} {:>6} {:>7} {:>7} {:>6} {:>8}\n",
            row.format, row.tests, row.passed, row.failed, row.kind_mismatches, row.skipped
        )
    };
    let mut s = format!("implementation: {}\n", r.implementation);
    s.push_str(&format!(
        "{:<24} {:>6} {:>7} {:>7} {:>6} {:>8}\n",
        "format", "tests", "passed", "failed", "kinds", "skipped"
    ));
    let mut total = FormatRow { format: "total".to_owned(), ..FormatRow::default() };
    for row in &r.rows {
        s.push_str(&line(row));
        total.tests += row.tests;
        total.passed += row.passed;
        total.failed += row.failed;
        total.kind_mismatches += row.kind_mismatches;
        total.skipped += row.skipped;
    }
    s.push_str(&line(&total));
    s
}
