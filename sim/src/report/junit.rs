//! JUnit XML, the one writer behind every `--report DIR` (`cellar check`, `sim`, `verify` and the
//! conformance suites): test suites of test cases, each passed, failed (with a message and a
//! body) or skipped, optionally with standard output.
//!
//! Every string is escaped for its place: attribute values escape `& < > " '` and encode
//! tab, line feed and carriage return as character references (a parser would otherwise
//! normalise them to spaces); text escapes `& < >`. Characters XML 1.0 cannot carry at all
//! (other C0 controls, U+FFFE, U+FFFF) become U+FFFD, so any message, counterexample or trace
//! line yields a well-formed document.

use std::fmt::Write as _;

/// A document: `<testsuites>` holding suites.
#[derive(Debug, Clone, Default)]
pub struct TestSuites {
    /// The `name` attribute of `<testsuites>`.
    pub name: String,
    /// The suites, in order.
    pub suites: Vec<TestSuite>,
}

/// One `<testsuite>`.
#[derive(Debug, Clone, Default)]
pub struct TestSuite {
    /// Its name.
    pub name: String,
    /// `tests`: usually `cases.len()`, more when passing cases are summarised (vectors).
    pub tests: u64,
    /// `failures`.
    pub failures: u64,
    /// `skipped`.
    pub skipped: u64,
    /// `time` in seconds, if measured.
    pub time_seconds: Option<f64>,
    /// The cases written out.
    pub cases: Vec<TestCase>,
}

impl TestSuite {
    /// A suite whose counts are those of `cases`.
    pub fn of_cases(name: impl Into<String>, cases: Vec<TestCase>) -> Self {
        let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
        Self {
            name: name.into(),
            tests: cases.len() as u64,
            failures: count(|o| matches!(o, Outcome::Failed { .. })) as u64,
            skipped: count(|o| matches!(o, Outcome::Skipped { .. })) as u64,
            time_seconds: None,
            cases,
        }
    }
}

/// How a test case ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Outcome {
    /// It passed.
    #[default]
    Passed,
    /// `<failure message="…">body</failure>`.
    Failed {
        /// One line: what failed.
        message: String,
        /// The counterexample, failing seed, replay command… (may be empty).
        body: String,
    },
    /// `<skipped message="…"/>`.
    Skipped {
        /// Why.
        message: String,
    },
}

/// One `<testcase>`.
#[derive(Debug, Clone, Default)]
pub struct TestCase {
    /// `classname`: the suite-like group CI systems sort by.
    pub classname: String,
    /// `name`.
    pub name: String,
    /// `time` in seconds, if measured.
    pub time_seconds: Option<f64>,
    /// Passed, failed or skipped.
    pub outcome: Outcome,
    /// `<system-out>` text (counts, traces), omitted when empty.
    pub system_out: String,
}

/// Replaces characters XML 1.0 cannot carry.
fn legal(c: char) -> char {
    match c {
        '\t' | '\n' | '\r' => c,
        '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
        _ => c,
    }
}

/// Escapes `s` for an attribute value in double quotes.
pub fn escape_attribute(s: &str) -> String {
    escape(s, true)
}

/// Escapes `s` for element text.
pub fn escape_text(s: &str) -> String {
    escape(s, false)
}

/// Markup characters and `\r` always; in an attribute also quotes, tab and newline (which an
/// attribute value would otherwise normalise to spaces).
fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().map(legal) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            _ => out.push(c),
        }
    }
    out
}

fn time_attribute(t: Option<f64>) -> String {
    t.map(|s| format!(" time=\"{:.3}\"", s.max(0.0))).unwrap_or_default()
}

fn write_case(s: &mut String, c: &TestCase) {
    let _ = write!(
        s,
        "    <testcase classname=\"{}\" name=\"{}\"{}",
        escape_attribute(&c.classname),
        escape_attribute(&c.name),
        time_attribute(c.time_seconds)
    );
    if c.outcome == Outcome::Passed && c.system_out.is_empty() {
        s.push_str("/>\n");
        return;
    }
    s.push('>');
    match &c.outcome {
        Outcome::Passed => {}
        Outcome::Failed { message, body } if body.is_empty() => {
            let _ = write!(s, "<failure message=\"{}\"/>", escape_attribute(message));
        }
        Outcome::Failed { message, body } => {
            let _ = write!(
                s,
                "<failure message=\"{}\">{}</failure>",
                escape_attribute(message),
                escape_text(body)
            );
        }
        Outcome::Skipped { message } => {
            let _ = write!(s, "<skipped message=\"{}\"/>", escape_attribute(message));
        }
    }
    if !c.system_out.is_empty() {
        let _ = write!(s, "<system-out>{}</system-out>", escape_text(&c.system_out));
    }
    s.push_str("</testcase>\n");
}

/// The document as text.
pub fn render(doc: &TestSuites) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = |f: fn(&TestSuite) -> u64| doc.suites.iter().map(f).sum::<u64>();
    let _ = writeln!(
        s,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        escape_attribute(&doc.name),
        total(|t| t.tests),
        total(|t| t.failures),
        total(|t| t.skipped)
    );
    for suite in &doc.suites {
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\"{}>",
            escape_attribute(&suite.name),
            suite.tests,
            suite.failures,
            suite.skipped,
            time_attribute(suite.time_seconds)
        );
        for c in &suite.cases {
            write_case(&mut s, c);
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_text_are_escaped_and_illegal_characters_replaced() {
        assert_eq!(escape_attribute("a<b>&\"c'\n\t"), "a&lt;b&gt;&amp;&quot;c&apos;&#10;&#9;");
        assert_eq!(escape_text("x < y && z > \"w\"\n"), "x &lt; y &amp;&amp; z &gt; \"w\"\n");
        assert_eq!(escape_text("\u{0}\u{1b}ok"), "\u{fffd}\u{fffd}ok");
        assert_eq!(escape_attribute("\u{ffff}"), "\u{fffd}");
    }

    #[test]
    fn suite_counts_follow_the_cases() {
        let cases = vec![
            TestCase { name: "a".into(), ..TestCase::default() },
            TestCase {
                name: "b".into(),
                outcome: Outcome::Failed { message: "m".into(), body: String::new() },
                ..TestCase::default()
            },
            TestCase {
                name: "c".into(),
                outcome: Outcome::Skipped { message: "why".into() },
                ..TestCase::default()
            },
        ];
        let suite = TestSuite::of_cases("s", cases);
        assert_eq!((suite.tests, suite.failures, suite.skipped), (3, 1, 1));
        let xml = render(&TestSuites { name: "n".into(), suites: vec![suite] });
        assert!(xml.contains("<testsuites name=\"n\" tests=\"3\" failures=\"1\" skipped=\"1\">"));
        assert!(xml.contains("<failure message=\"m\"/>"), "{xml}");
        assert!(!xml.contains("<failure message=\"m\"/>\n    <failure"), "one failure");
    }
}
