//! The PostgreSQL server's URL for the tests that need one (`pg_backend.rs`,
//! `backend_conformance.rs`, `registry.rs`): `CELLAR_TEST_PG`, set by `.ci/postgres.sh start`.

use std::io::Write;

/// The URL, or `None` after printing `SKIPPED {test}: ..` past the harness's output capture, so
/// a skip is seen, not silent. With `CI` set a missing URL fails the test instead: CI starts a
/// server (`.ci/run`), so there a missing URL is a broken CI, not a skip.
pub fn pg_url(test: &str) -> Option<String> {
    match std::env::var("CELLAR_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: CI is set but CELLAR_TEST_PG is not"
            );
            let why = "CELLAR_TEST_PG is not set (bash .ci/postgres.sh start)";
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            None
        }
    }
}
