//! Shared by the fuzz targets: switching a planted bug on for a whole campaign, so that each
//! stateful target is seen to fail (`docs/fuzzing.md`).

/// `CELLAR_FUZZ_BUG=NAME` (with the crate built `--features planted-bugs`) plants the bug for
/// the rest of the process. libFuzzer calls the target on the thread that ran `init`, and planted
/// bugs are per thread, so the bug is active for every input.
///
/// # Panics
/// If the name is unknown or the feature is off: a campaign meant to show a bug being caught must
/// not silently run without it.
pub fn plant_from_env() {
    let Ok(name) = std::env::var("CELLAR_FUZZ_BUG") else { return };
    match cellar::bugs::plant(&name) {
        Ok(guard) => std::mem::forget(guard),
        Err(e) => panic!("CELLAR_FUZZ_BUG: {e} (build with --features planted-bugs)"),
    }
}
