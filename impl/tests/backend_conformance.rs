//! One backend conformance suite for every `Cell` (mem, file, sealed, sector in-process, sector
//! over a socket, postgres) and every `Store` (mem, dir, sector in-process, sector over a
//! socket, postgres): the same test functions (`backend_conformance/cells.rs`, `stores.rs`),
//! instantiated per backend by a macro, as DittoFS's storetest does. Fixtures, with each
//! backend's side door for corrupting data, are in `backend_conformance/fixtures.rs`.
//!
//! PostgreSQL: the tests read the server's URL from `CELLAR_TEST_PG` (`.ci/postgres.sh start`
//! prints one). Without it they print a `SKIPPED` line to the terminal and return.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

#[path = "backend_conformance/cells.rs"]
mod cells;
#[path = "backend_conformance/fixtures.rs"]
mod fixtures;
#[path = "backend_conformance/stores.rs"]
mod stores;

mod pg_support;

use std::io::Write;

/// Prints a line past the test harness's output capture, so a skip is seen, not silent.
pub fn skip(backend: &str, test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {backend}::{test}: {why}");
}

/// The PostgreSQL URL from `CELLAR_TEST_PG`, or `None` after printing a skip line.
pub fn pg_url(test: &str) -> Option<String> {
    pg_support::pg_url(&format!("postgres::{test}"))
}

/// A name no other test run uses (rows of earlier runs stay in the throwaway database).
pub fn unique_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{test}-{}-{nanos}", std::process::id())
}

macro_rules! cell_suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            use super::cells;
            macro_rules! t {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        if let Some(f) = $fixture(stringify!($name)) {
                            cells::$name(f.as_ref());
                        }
                    }
                };
            }
            t!(empty_state);
            t!(cas_semantics);
            t!(size_limits);
            t!(concurrent_cas);
            t!(corruption_is_detected);
        }
    };
}

macro_rules! store_suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            use super::stores;
            macro_rules! t {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        if let Some(f) = $fixture(stringify!($name)) {
                            stores::$name(f.as_ref());
                        }
                    }
                };
            }
            t!(post_get_exists_delete);
            t!(idempotent_post);
            t!(list_order_and_ranges);
            t!(size_limits);
            t!(corruption_is_detected);
            t!(concurrent_posts);
        }
    };
}

cell_suite!(cell_mem, crate::fixtures::MemCellFx::boxed);
cell_suite!(cell_file, crate::fixtures::FileCellFx::boxed);
cell_suite!(cell_sealed, crate::fixtures::SealedFx::boxed);
cell_suite!(cell_sector, crate::fixtures::SectorCellFx::boxed);
cell_suite!(cell_sector_socket, crate::fixtures::SocketCellFx::boxed);
cell_suite!(cell_postgres, crate::fixtures::PgCellFx::boxed);

store_suite!(store_mem, crate::fixtures::MemStoreFx::boxed);
store_suite!(store_dir, crate::fixtures::DirStoreFx::boxed);
store_suite!(store_sector, crate::fixtures::SectorStoreFx::boxed);
store_suite!(store_sector_socket, crate::fixtures::SocketStoreFx::boxed);
store_suite!(store_postgres, crate::fixtures::PgStoreFx::boxed);
