//! The `gossip` profile's secure channels and network attacker (`specs/channel.md`): a campaign
//! with the attacker passes CH-5 (no forged frame reaches a node), CH-10 (nothing on the wire
//! shows a ref) and GOS-5 (convergence once it stops); each oracle is seen to fail — CH-5 under
//! the planted bug `gossip:accept-unauthenticated`, CH-10 on plain gossip bytes. Through the
//! library (what `cellar sim --profile gossip` calls).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::merge::MergePolicy;
use cellar::net::channel::ChannelPsk;
use cellar_sim::attacker::Attacker;
use cellar_sim::channels::{SecretScan, SecureNet};
use cellar_sim::gossip::{Cluster, GROUP_SALT, Packet};
use cellar_sim::knobs::{FaultKind, Profile};
use cellar_sim::rng::SimRng;
use cellar_sim::world::GOSSIP_CONFIG;

mod common;

#[test]
fn attacker_campaign_passes_every_oracle() {
    let (s, failed) = common::campaign(&common::config(Profile::Gossip, &[], None), 8);
    assert!(failed.is_none(), "{failed:?}");
    let f = &s.faults;
    for (k, n) in [
        ("attacks", f.attacks),
        ("channel_established", f.channel_established),
        ("channel_refused", f.channel_refused),
        ("attacker_seen_bytes", f.attacker_seen_bytes),
        ("gossip_writes", f.gossip_writes),
    ] {
        assert!(n > 0, "{k} must be exercised: {f:?}");
    }
}

#[test]
fn no_attack_no_attacker() {
    let (s, failed) =
        common::campaign(&common::config(Profile::Gossip, &[FaultKind::Attack], None), 2);
    assert!(failed.is_none(), "{failed:?}");
    assert_eq!(s.faults.attacks, 0);
    assert!(s.faults.channel_established > 0, "channels are on without the attacker too");
}

/// Two nodes, node 1 has written and announces: the plain announce and its channel segments.
fn announce() -> (Cluster, Vec<Packet>) {
    let mut c = Cluster::new(2, MergePolicy::LastWriteWins, GOSSIP_CONFIG, 1);
    c.client_write(1, 1, Some(b"marker value")).unwrap();
    let packets = c.tick(1, 0).unwrap();
    assert!(!packets.is_empty());
    (c, packets)
}

#[test]
fn the_secret_scan_sees_refs_in_plain_gossip_but_not_in_channel_bytes_ch10() {
    let (c, packets) = announce();
    let mut scan = SecretScan::default();
    scan.learn(c.secrets());
    // Seen to fail: a plain announce carries the head ref, key and all.
    let err = scan.scan(&packets[0].bytes).unwrap_err();
    assert!(err.rule.starts_with("CH-10"), "{err:?}");
    // The same packet over a channel: the handshake, then the encrypted announce.
    let mut net = SecureNet::new(2, ChannelPsk::from_bytes(GROUP_SALT), 7).unwrap();
    let mut wire = net.send(packets[0].clone(), 0).unwrap();
    let mut delivered = Vec::new();
    for _ in 0..4 {
        let mut next = Vec::new();
        for seg in wire {
            scan.scan(&seg.bytes).unwrap();
            let (back, packets) = net.deliver(&seg, 1).unwrap();
            next.extend(back);
            delivered.extend(packets);
        }
        next.extend(net.send(packets[0].clone(), 1).unwrap());
        wire = next;
    }
    assert_eq!(delivered.first(), Some(&packets[0]), "the announce arrives whole");
}

#[test]
fn the_attacker_never_gets_a_message_through_ch5() {
    let (_, packets) = announce();
    let mut net = SecureNet::new(2, ChannelPsk::from_bytes(GROUP_SALT), 7).unwrap();
    let mut attacker = Attacker::new(3).unwrap();
    let mut rng = SimRng::new(5);
    let mut wire = net.send(packets[0].clone(), 0).unwrap();
    // Honest deliveries: a channel the attack had silenced would pass the check above vacuously.
    let mut honest = 0usize;
    for round in 0..300 {
        let mut next = Vec::new();
        for seg in &wire {
            attacker.observe(seg);
        }
        wire.extend(attacker.act(&mut rng, &mut net, 2, round / 10));
        for seg in wire {
            // CH-5 is checked inside `deliver`: an error here is a forged frame accepted.
            let (back, delivered) = net.deliver(&seg, round / 10).unwrap();
            next.extend(back);
            assert!(delivered.iter().all(|p| *p == packets[0]));
            honest += delivered.len();
        }
        next.extend(net.send(packets[0].clone(), round / 10).unwrap());
        net.tick(round / 10);
        wire = next;
    }
    let a = attacker.counts;
    assert!(a.replayed > 0 && a.flipped > 0 && a.truncated > 0 && a.injected > 0, "{a:?}");
    assert!(a.connects > 0, "{a:?}");
    assert!(net.counts.refused > 0);
    assert!(honest > 0, "no honest packet was delivered under the attack");
    println!("CH-5: {honest} honest deliveries, {a:?}");
}

#[cfg(feature = "planted-bugs")]
#[test]
fn accept_unauthenticated_is_caught_by_ch5_and_reproduced() {
    let bug = "gossip:accept-unauthenticated";
    let with_bug = common::config(Profile::Gossip, &[], Some(bug));
    let (_, failed) = common::campaign(&with_bug, 50);
    let failed = failed.expect("a 50-seed campaign finds the bug");
    let rule = common::rule(&failed).unwrap().to_owned();
    assert!(rule.starts_with("CH-5"), "{rule}");
    let again = common::replay(&with_bug, failed.seed);
    assert_eq!(common::rule(&again), Some(rule.as_str()), "--seed reproduces");
    let clean = common::replay(&common::config(Profile::Gossip, &[], None), failed.seed);
    assert!(clean.failure.is_none(), "seed {} passes without the bug", failed.seed);
}
