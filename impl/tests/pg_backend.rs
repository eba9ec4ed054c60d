//! The PostgreSQL backend beyond the shared conformance suite: schema migration, connection
//! loss (typed, retryable, nothing half-applied), VOL-2 across connections through advisory
//! locks, the fence of VOL-7, and sync and cleanup from two connections never overlapping with
//! VOL-1 checked after every round. Needs `CELLAR_TEST_PG` (`.ci/postgres.sh start`); without
//! it every test prints a `SKIPPED` line and returns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::pg::{PgCell, PgError, PgModeLock, PgPool, PgStore, schema};
use cellar::storage::cell::{Cell, MemCell};
use cellar::storage::store::{MemStore, Store};
use cellar::storage::volume::{
    CleanupJob, CleanupStep, HashList, Mode, ModeLock, SyncJob, SyncStep, Volume, VolumeError,
    check_vol1,
};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

mod pg_support;

fn pg_url(test: &str) -> Option<String> {
    pg_support::pg_url(&format!("pg_backend::{test}"))
}

fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{test}-{}-{nanos}", std::process::id())
}

fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

fn pool(url: &str) -> Arc<PgPool> {
    Arc::new(PgPool::open(url, 2).unwrap())
}

/// Terminates every session whose application_name is `name`; returns how many.
fn kill_sessions(url: &str, name: &str) -> i64 {
    let row = admin(url)
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&name],
        )
        .unwrap();
    row.get(0)
}

#[test]
fn schema_is_versioned_and_a_newer_one_is_refused() {
    let Some(url) = pg_url("schema_is_versioned_and_a_newer_one_is_refused") else { return };
    // A database of its own, so the version can be tampered with.
    let db = unique("schema").replace('-', "_");
    admin(&url).batch_execute(&format!("CREATE DATABASE \"{db}\"")).unwrap();
    let db_url = format!("{}/{db}", url.rsplit_once('/').unwrap().0);
    let mut c = admin(&db_url);
    assert_eq!(schema::migrate(&mut c).unwrap(), 0, "fresh database: created from version 0");
    assert_eq!(schema::migrate(&mut c).unwrap(), schema::SCHEMA_VERSION, "idempotent");
    c.execute("UPDATE cellar_schema SET version = 99", &[]).unwrap();
    match PgPool::open(&db_url, 1) {
        Err(PgError::SchemaTooNew { found: 99, known }) => {
            assert_eq!(known, schema::SCHEMA_VERSION)
        }
        other => panic!("a newer schema was not refused: {other:?}"),
    }
    drop(c);
    admin(&url).batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)")).unwrap();
}

#[test]
fn unreachable_server_is_a_typed_retryable_error() {
    let _ = pg_url("unreachable_server_is_a_typed_retryable_error");
    // Port 1 on loopback: nothing listens there. (Needs no server, so it always runs.)
    match PgPool::open("postgres://nobody@127.0.0.1:1/none?connect_timeout=2", 1) {
        Err(e @ PgError::Connect { .. }) => assert!(e.is_retryable()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(PgPool::open("not a url at all", 1), Err(PgError::BadUrl(_))));
}

#[test]
fn lost_connection_is_retryable_and_the_next_operation_reconnects() {
    let Some(url) = pg_url("lost_connection_is_retryable_and_the_next_operation_reconnects") else {
        return;
    };
    let app = unique("lost");
    let sep = if url.contains('?') { '&' } else { '?' };
    let cell = PgCell::new(pool(&format!("{url}{sep}application_name={app}")), &app);
    assert!(cell.cas(b"", b"before").unwrap().swapped);
    assert_eq!(kill_sessions(&url, &app), 1, "the pool's one idle connection");
    let err = cell.cas(b"before", b"after").unwrap_err();
    assert!(PgError::is_retryable_in(&err), "not retryable: {err}");
    assert!(matches!(PgError::find(&err), Some(PgError::ConnectionLost { .. })), "{err}");
    assert_eq!(cell.read().unwrap(), b"before", "nothing applied, and the cell reconnected");
    assert!(cell.cas(b"before", b"after").unwrap().swapped, "the retry succeeds");
}

#[test]
fn connection_killed_mid_swap_applies_nothing() {
    let Some(url) = pg_url("connection_killed_mid_swap_applies_nothing") else { return };
    let name = unique("midswap");
    let cell = Arc::new(PgCell::new(pool(&url), &name));
    assert!(cell.cas(b"", b"old").unwrap().swapped);
    // Hold the row's lock so the swap's UPDATE blocks inside the server.
    let mut blocker = admin(&url);
    let mut tx = blocker.transaction().unwrap();
    tx.execute("SELECT value FROM cellar_cells WHERE name = $1 FOR UPDATE", &[&name]).unwrap();
    let racer = {
        let cell = cell.clone();
        std::thread::spawn(move || cell.cas(b"old", b"new"))
    };
    let mut killed = 0;
    for _ in 0..200 {
        let row = admin(&url)
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE cellar_cells%'",
                &[],
            )
            .unwrap();
        killed = row.get::<_, i64>(0);
        if killed > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(killed, 1, "the blocked swap was found and killed");
    let err = racer.join().unwrap().unwrap_err();
    assert!(PgError::is_retryable_in(&err), "{err}");
    tx.rollback().unwrap();
    assert_eq!(cell.read().unwrap(), b"old", "the killed swap left nothing behind");
}

#[test]
fn advisory_locks_exclude_modes_across_connections() {
    let Some(url) = pg_url("advisory_locks_exclude_modes_across_connections") else { return };
    let volume = unique("modes");
    let (a, b) = (PgModeLock::new(pool(&url), &volume), PgModeLock::new(pool(&url), &volume));
    let e1 = a.begin(Mode::Expand).unwrap();
    let e2 = b.begin(Mode::Expand).unwrap();
    assert!(matches!(
        b.begin(Mode::Contract),
        Err(VolumeError::ModeConflict { wanted: Mode::Contract, held: Mode::Expand })
    ));
    drop(e1);
    assert!(a.begin(Mode::Contract).is_err(), "VOL-2: one expand still holds");
    drop(e2);
    let c1 = a.begin(Mode::Contract).unwrap();
    let _c2 = b.begin(Mode::Contract).unwrap();
    assert!(matches!(b.begin(Mode::Expand), Err(VolumeError::ModeConflict { .. })));
    drop(c1);
}

#[test]
fn a_dead_holders_session_releases_its_mode() {
    let Some(url) = pg_url("a_dead_holders_session_releases_its_mode") else { return };
    let volume = unique("dead");
    let (a, b) = (PgModeLock::new(pool(&url), &volume), PgModeLock::new(pool(&url), &volume));
    let hold = a.begin(Mode::Contract).unwrap();
    assert!(b.begin(Mode::Expand).is_err());
    // VOL-4: the server releases the locks of a session that ends (here: killed, as when the
    // holder's process dies and its socket closes).
    assert_eq!(kill_sessions(&url, &a.session_name(Mode::Contract)), 1);
    let _e = b.begin(Mode::Expand).unwrap();
    drop(hold);
}

/// VOL-7: a holder whose session was lost while it lived on cannot publish or delete once the
/// other mode has begun elsewhere.
#[test]
fn the_fence_refuses_writes_after_the_lock_was_lost() {
    let Some(url) = pg_url("the_fence_refuses_writes_after_the_lock_was_lost") else { return };
    let volume = unique("fence");
    let (pa, pb) = (pool(&url), pool(&url));
    let (lock_a, lock_b) =
        (PgModeLock::new(pa.clone(), &volume), PgModeLock::new(pb.clone(), &volume));
    let cell_a = PgCell::new(pa.clone(), &volume);
    let store_a = PgStore::new(pa, &volume);
    assert!(cell_a.attach_fence(lock_a.fence()) && store_a.attach_fence(lock_a.fence()));
    let blob = store_a.post(b"blob").unwrap();

    // Expand lost: A's publish after B's cleanup began is refused.
    let expand = lock_a.begin(Mode::Expand).unwrap();
    assert!(cell_a.cas(b"", b"v1").unwrap().swapped, "a fenced swap with a good token");
    kill_sessions(&url, &lock_a.session_name(Mode::Expand));
    let contract = lock_b.begin(Mode::Contract).unwrap();
    let err = cell_a.cas(b"v1", b"v2").unwrap_err();
    assert!(matches!(PgError::find(&err), Some(PgError::ModeLost { .. })), "{err}");
    assert_eq!(cell_a.read().unwrap(), b"v1", "nothing published");
    drop((expand, contract));

    // Contract lost: A's delete after B's sync began is refused.
    let contract = lock_a.begin(Mode::Contract).unwrap();
    kill_sessions(&url, &lock_a.session_name(Mode::Contract));
    let expand = lock_b.begin(Mode::Expand).unwrap();
    let err = store_a.delete(&blob).unwrap_err();
    assert!(matches!(PgError::find(&err), Some(PgError::ModeLost { .. })), "{err}");
    assert!(store_a.exists(&blob).unwrap(), "nothing deleted");
    drop((contract, expand));
    // With no hold in this process the fence does not apply: plain operations work again.
    store_a.delete(&blob).unwrap();
}

/// The planted bug that removes mode exclusion must be caught by the same check.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_no_mode_exclusion_lets_modes_overlap() {
    let Some(url) = pg_url("planted_no_mode_exclusion_lets_modes_overlap") else { return };
    let volume = unique("planted");
    let (a, b) = (PgModeLock::new(pool(&url), &volume), PgModeLock::new(pool(&url), &volume));
    let _bug = cellar::bugs::plant("volume:no-mode-exclusion").unwrap();
    let _e = a.begin(Mode::Expand).unwrap();
    assert!(b.begin(Mode::Contract).is_ok(), "with the bug, VOL-2 no longer holds");
}

/// The planted bug that skips the fence must let a holder that lost its lock publish: the
/// check of `the_fence_refuses_writes_after_the_lock_was_lost` is what catches it.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_no_fence_lets_a_lost_holder_publish() {
    let Some(url) = pg_url("planted_no_fence_lets_a_lost_holder_publish") else { return };
    let volume = unique("nofence");
    let (pa, pb) = (pool(&url), pool(&url));
    let (lock_a, lock_b) = (PgModeLock::new(pa.clone(), &volume), PgModeLock::new(pb, &volume));
    let cell_a = PgCell::new(pa, &volume);
    cell_a.attach_fence(lock_a.fence());
    let _bug = cellar::bugs::plant("pg:no-fence").unwrap();
    let _expand = lock_a.begin(Mode::Expand).unwrap();
    kill_sessions(&url, &lock_a.session_name(Mode::Expand));
    let _contract = lock_b.begin(Mode::Contract).unwrap();
    assert!(cell_a.cas(b"", b"published during a cleanup").unwrap().swapped, "VOL-7 broken");
}

/// One "process" of the cross-process test: its own pool, lock, cell and store on the volume.
fn pg_volume(url: &str, volume: &str) -> Volume {
    let pool = pool(url);
    let lock = PgModeLock::new(pool.clone(), volume);
    let cell = PgCell::new(pool.clone(), volume);
    let store = PgStore::new(pool, volume);
    cell.attach_fence(lock.fence());
    store.attach_fence(lock.fence());
    Volume::with_modes(Arc::new(cell), Arc::new(store), Arc::new(lock))
}

/// Two connections (as two processes would) run syncs and cleanups on one PostgreSQL volume:
/// the holders never overlap (VOL-2, counted by both sides) and VOL-1 holds after every round.
#[test]
fn sync_and_cleanup_from_two_connections_never_overlap() {
    const ROUNDS: u32 = 25;
    let Some(url) = pg_url("sync_and_cleanup_from_two_connections_never_overlap") else { return };
    let volume = unique("xproc");
    let (syncer, cleaner) = (pg_volume(&url, &volume), pg_volume(&url, &volume));
    let checker = pg_volume(&url, &volume);
    // Holders currently inside their mode: +1 after begin, -1 before the hold is dropped, so the
    // counts never overstate overlap.
    let (expanding, contracting) = (AtomicI64::new(0), AtomicI64::new(0));
    let (mut synced, mut cleaned, mut conflicts) = (0u32, 0u32, 0u32);
    std::thread::scope(|s| {
        let sync_side = s.spawn(|| {
            let (mut ok, mut refused) = (0, 0);
            for round in 0..ROUNDS {
                let src = Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()));
                let hs: Vec<_> = (0..3)
                    .map(|i| src.store.post(format!("{volume} {round} {i}").as_bytes()).unwrap())
                    .collect();
                assert!(src.cell.cas(b"", &HashList::encode(&hs)).unwrap().swapped);
                let decide = |s: &[u8], _: &[u8]| Some(s.to_vec());
                match SyncJob::begin(&src, &syncer, Some(&HashList), &decide) {
                    Ok(mut job) => {
                        expanding.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(
                            contracting.load(Ordering::SeqCst),
                            0,
                            "VOL-2: expand began during contract"
                        );
                        while !matches!(job.step().unwrap(), SyncStep::Done(_)) {}
                        expanding.fetch_sub(1, Ordering::SeqCst);
                        drop(job);
                        ok += 1;
                    }
                    Err(VolumeError::ModeConflict { .. }) => refused += 1,
                    Err(e) => panic!("sync: {e}"),
                }
                // A short pause between rounds, so a busy machine cannot let one side starve
                // the other of every window.
                std::thread::sleep(Duration::from_millis(3));
                assert_eq!(
                    check_vol1(&checker, &HashList).unwrap(),
                    None,
                    "VOL-1 after sync round {round}"
                );
            }
            (ok, refused)
        });
        let clean_side = s.spawn(|| {
            let (mut ok, mut refused) = (0, 0);
            for round in 0..ROUNDS {
                match CleanupJob::begin(&cleaner, &HashList) {
                    Ok(mut job) => {
                        contracting.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(
                            expanding.load(Ordering::SeqCst),
                            0,
                            "VOL-2: contract began during expand"
                        );
                        while !matches!(job.step().unwrap(), CleanupStep::Done(_)) {}
                        contracting.fetch_sub(1, Ordering::SeqCst);
                        drop(job);
                        ok += 1;
                    }
                    Err(VolumeError::ModeConflict { .. }) => refused += 1,
                    Err(e) => panic!("cleanup: {e}"),
                }
                std::thread::sleep(Duration::from_millis(2));
                assert_eq!(
                    check_vol1(&checker, &HashList).unwrap(),
                    None,
                    "VOL-1 after cleanup round {round}"
                );
            }
            (ok, refused)
        });
        let (s_ok, s_refused) = sync_side.join().unwrap();
        let (c_ok, c_refused) = clean_side.join().unwrap();
        (synced, cleaned, conflicts) = (s_ok, c_ok, s_refused + c_refused);
    });
    assert!(
        synced > 0 && cleaned > 0,
        "both sides made progress: {synced} syncs, {cleaned} cleanups"
    );
    let _ = writeln!(
        std::io::stderr(),
        "pg_backend: {synced} syncs, {cleaned} cleanups, {conflicts} refused with ModeConflict"
    );
    // The last value's blobs are present and nothing else survives a final cleanup.
    let outcome = cellar::storage::volume::cleanup(&checker, &HashList).unwrap();
    assert_eq!(outcome.blobs_kept, 3);
}
