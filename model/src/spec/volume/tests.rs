//! Unit tests of `VolumeSpec`: each rule accepts what `specs/volume.md` allows and rejects the rest.

use super::*;

type Spec = VolumeSpec<u8, &'static str>;
const S: HolderId = HolderId(0);
const S2: HolderId = HolderId(1);
const C: HolderId = HolderId(9);

fn set(blobs: &[u8]) -> BTreeSet<u8> {
    blobs.iter().copied().collect()
}

fn empty() -> Spec {
    VolumeSpec::new("v0", set(&[]), set(&[])).unwrap()
}

fn publish(
    holder: HolderId,
    expected: &'static str,
    new: &'static str,
    r: &[u8],
) -> VolumeStep<u8, &'static str> {
    VolumeStep::Publish { holder, expected, new, new_reachable: set(r) }
}

#[test]
fn sync_then_cleanup() {
    let mut v = empty();
    assert_eq!(v.apply(VolumeStep::BeginExpand { holder: S }), Ok(Effect::ModeTaken(Mode::Expand)));
    assert_eq!(
        v.apply(VolumeStep::BeginExpand { holder: S2 }),
        Ok(Effect::ModeTaken(Mode::Expand))
    );
    let post = |blob| VolumeStep::PostBlob { holder: S, blob };
    assert_eq!(v.apply(post(1)), Ok(Effect::BlobPosted { already_present: false }));
    assert_eq!(v.apply(post(1)), Ok(Effect::BlobPosted { already_present: true }));
    v.apply(post(2)).unwrap();
    assert_eq!(v.apply(publish(S, "v0", "v1", &[1])), Ok(Effect::Published { swapped: true }));
    assert_eq!((v.cell(), v.reachable()), (&"v1", &set(&[1])), "the published cell's blobs");
    let holding = Holding { mode: Mode::Expand, alive: true };
    assert_eq!(v.holders().iter().collect::<Vec<_>>(), [(&S, &holding), (&S2, &holding)]);
    // A lost CAS is an ordinary outcome.
    assert_eq!(v.apply(publish(S2, "v0", "v2", &[2])), Ok(Effect::Published { swapped: false }));
    v.apply(VolumeStep::EndExpand { holder: S }).unwrap();
    v.apply(VolumeStep::EndExpand { holder: S2 }).unwrap();
    v.apply(VolumeStep::BeginContract { holder: C }).unwrap();
    // VOL-1: reachable blobs cannot be deleted; unreachable ones can.
    assert!(matches!(
        v.apply(VolumeStep::DeleteBlob { holder: C, blob: 1 }),
        Err(VolumeReject::Vol1ReachableDelete { blob: 1, .. })
    ));
    assert_eq!(
        v.apply(VolumeStep::DeleteBlob { holder: C, blob: 2 }),
        Ok(Effect::BlobDeleted { was_present: true })
    );
    assert_eq!(v.store(), &set(&[1]));
    assert!(v.check_invariants().is_ok());
}

#[test]
fn modes_exclude_each_other_vol2() {
    let mut v = empty();
    v.apply(VolumeStep::BeginContract { holder: C }).unwrap();
    let before = v.clone();
    assert!(matches!(
        v.apply(VolumeStep::BeginExpand { holder: S }),
        Err(VolumeReject::ModeConflict { wanted: Mode::Expand, held: Mode::Contract, .. })
    ));
    assert_eq!(v, before, "a rejected step changes nothing");
    v.apply(VolumeStep::EndContract { holder: C }).unwrap();
    v.apply(VolumeStep::BeginExpand { holder: S }).unwrap();
    assert!(matches!(
        v.apply(VolumeStep::BeginContract { holder: C }),
        Err(VolumeReject::ModeConflict { wanted: Mode::Contract, .. })
    ));
}

#[test]
fn publish_needs_blobs_vol3() {
    let mut v = empty();
    v.apply(VolumeStep::BeginExpand { holder: S }).unwrap();
    v.apply(VolumeStep::PostBlob { holder: S, blob: 1 }).unwrap();
    assert!(matches!(
        v.apply(publish(S, "v0", "v1", &[1, 2])),
        Err(VolumeReject::Vol3MissingBlob { blob: 2, .. })
    ));
    assert_eq!(v.cell(), &"v0");
}

#[test]
fn steps_need_their_mode() {
    let mut v = empty();
    assert!(matches!(
        v.apply(VolumeStep::PostBlob { holder: S, blob: 1 }),
        Err(VolumeReject::NotHolder { .. })
    ));
    assert!(matches!(v.apply(publish(S, "v0", "v1", &[])), Err(VolumeReject::NotHolder { .. })));
    assert!(matches!(
        v.apply(VolumeStep::DeleteBlob { holder: C, blob: 1 }),
        Err(VolumeReject::NotHolder { .. })
    ));
    v.apply(VolumeStep::BeginExpand { holder: S }).unwrap();
    assert!(matches!(
        v.apply(VolumeStep::BeginExpand { holder: S }),
        Err(VolumeReject::AlreadyHolding { .. })
    ));
    assert!(matches!(
        v.apply(VolumeStep::EndContract { holder: S }),
        Err(VolumeReject::NotHolder { .. })
    ));
}

#[test]
fn crash_keeps_mode_until_recovery_vol4() {
    let mut v = empty();
    v.apply(VolumeStep::BeginExpand { holder: S }).unwrap();
    // VOL-4: nobody releases a live holder's mode.
    assert!(matches!(
        v.apply(VolumeStep::Recover { holder: S }),
        Err(VolumeReject::Vol4LiveHolderReleased { .. })
    ));
    assert_eq!(
        v.apply(VolumeStep::Crash { holder: S }),
        Ok(Effect::Crashed { held: Some(Mode::Expand) })
    );
    assert!(matches!(
        v.apply(VolumeStep::PostBlob { holder: S, blob: 1 }),
        Err(VolumeReject::HolderDead { .. })
    ));
    // VOL-2: the dead holder's Expand still excludes Contract.
    assert!(matches!(
        v.apply(VolumeStep::BeginContract { holder: C }),
        Err(VolumeReject::ModeConflict { .. })
    ));
    assert_eq!(v.apply(VolumeStep::Recover { holder: S }), Ok(Effect::Recovered(Mode::Expand)));
    v.apply(VolumeStep::BeginContract { holder: C }).unwrap();
    assert!(matches!(
        v.apply(VolumeStep::Recover { holder: S }),
        Err(VolumeReject::NothingToRecover { .. })
    ));
}

#[test]
fn constructor_and_invariants_check_vol1() {
    assert!(matches!(
        Spec::new("v", set(&[1]), set(&[])),
        Err(VolumeReject::Vol1MissingBlob { blob: 1 })
    ));
    let mut v = Spec::new("v", set(&[1]), set(&[1])).unwrap();
    v.apply(VolumeStep::BeginContract { holder: C }).unwrap();
    // The unchecked path exists to show what a system without the rule does.
    v.apply_unchecked(VolumeStep::DeleteBlob { holder: C, blob: 1 });
    assert!(matches!(v.check_invariants(), Err(VolumeReject::Vol1MissingBlob { blob: 1 })));
    v.apply_unchecked(VolumeStep::BeginExpand { holder: S });
    v.apply_unchecked(VolumeStep::PostBlob { holder: S, blob: 1 });
    assert!(matches!(v.check_invariants(), Err(VolumeReject::ModeConflict { .. })));
}
