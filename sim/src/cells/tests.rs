//! The cell clients' retry rule against the real protocol server, with the network played by
//! hand: which reply is lost, which copy arrives, who swaps in between. Each case names the
//! outcome the rule must give; changing the rule (for example treating every conflict as a
//! definite "not swapped") fails one of them.

use super::server::CellServer;
use super::{Action, Cells};
use crate::net::Msg;
use crate::rng::SimRng;
use crate::ssd::{SimSsd, SsdConfig};
use cellar::sector::adapters::share;
use cellar::sector::{Engine, EngineConfig, SECTOR_SIZE_BYTES};
use cellar_model::spec::CasOp;

const ZONE_SECTORS: u64 = 8;

struct Rig {
    cells: Cells,
    server: CellServer,
    rng: SimRng,
    now: u64,
}

impl Rig {
    fn new(clients: u32) -> Rig {
        let cfg = SsdConfig {
            read_latency_us_max: 1,
            write_latency_us_max: 1,
            flush_latency_us_max: 1,
            misdirect_ppm: 0,
            trim_stale_ppm: 0,
            zone_sector_count: ZONE_SECTORS,
            zone_base_sector: 2,
        };
        let ssd = SimSsd::new(2 + 16 * ZONE_SECTORS, cfg, SimRng::new(1));
        let ecfg =
            EngineConfig::default().zone_size_bytes(ZONE_SECTORS as usize * SECTOR_SIZE_BYTES);
        let engine = share(Engine::format(ssd, ecfg).unwrap());
        Rig {
            cells: Cells::new(clients, 1, 10, 0),
            server: CellServer::new(engine),
            rng: SimRng::new(2),
            now: 0,
        }
    }

    /// Client `i` starts a CAS from `expected` to a new value `uid`.
    fn cas(&mut self, i: u32, expected: u64, uid: u64) -> Vec<Msg> {
        let bytes = |v: u64| if v == 0 { Vec::new() } else { v.to_le_bytes().to_vec() };
        let op = CasOp::Cas { expected: bytes(expected), new: bytes(uid) };
        sends(self.cells.start(i, 0, op, self.now, &mut self.rng, 0))
    }

    /// The server answers `msgs`; returns its replies.
    fn serve(&mut self, msgs: Vec<Msg>) -> Vec<Msg> {
        self.now += 10;
        msgs.into_iter()
            .flat_map(|m| {
                let served = self.server.receive(m.conn, &m.bytes);
                served.replies.into_iter().map(move |bytes| Msg {
                    conn: m.conn,
                    to_server: false,
                    bytes,
                })
            })
            .collect()
    }

    /// Replies reach their clients; returns what the clients send next.
    fn deliver(&mut self, msgs: Vec<Msg>) -> Vec<Msg> {
        self.now += 10;
        let mut out = Vec::new();
        for m in msgs {
            out.extend(sends(
                self.cells.on_bytes(m.conn, &m.bytes, self.now, &mut self.rng, 0).unwrap(),
            ));
        }
        out
    }

    /// Serves and delivers until the clients send nothing more.
    fn round_trip(&mut self, mut msgs: Vec<Msg>) {
        while !msgs.is_empty() {
            let replies = self.serve(msgs);
            msgs = self.deliver(replies);
        }
    }

    /// Client `i`'s retry timer fires.
    fn timeout(&mut self, i: u32) -> Vec<Msg> {
        let timer = self.cells.clients[i as usize].pending.as_ref().unwrap().timer;
        sends(self.cells.timeout(i, timer, &mut self.rng, 0))
    }
}

fn sends(acts: Vec<Action>) -> Vec<Msg> {
    acts.into_iter().filter_map(|a| if let Action::Send(m) = a { Some(m) } else { None }).collect()
}

/// Runs client 0's CAS up to its swap request and returns that request (unsent).
fn up_to_the_swap(rig: &mut Rig) -> Vec<Msg> {
    let read = rig.cas(0, 0, 1_000);
    let replies = rig.serve(read);
    let swap = rig.deliver(replies);
    assert!(!swap.is_empty(), "the read matched: the swap goes out");
    swap
}

#[test]
fn a_lost_swap_reply_then_a_conflicting_retry_reads_back_its_own_value() {
    let mut rig = Rig::new(1);
    let swap = up_to_the_swap(&mut rig);
    let _lost = rig.serve(swap); // applied; the reply is lost
    let retry = rig.timeout(0);
    rig.round_trip(retry); // Conflict, then Read: the value is the client's own
    assert_eq!(rig.cells.stats.completed, 1, "a definite answer: swapped");
    assert_eq!(rig.cells.stats.ambiguous, 0);
    assert_eq!(rig.cells.pending(), 0);
    rig.cells.check_linearizable().unwrap();
}

#[test]
fn a_retried_swap_overwritten_since_is_left_open() {
    let mut rig = Rig::new(2);
    let swap = up_to_the_swap(&mut rig);
    let _lost = rig.serve(swap); // applied; the reply is lost
    // Client 1 swaps the value away meanwhile.
    let other = rig.cas(1, 1_000, 2_000);
    rig.round_trip(other);
    let retry = rig.timeout(0);
    rig.round_trip(retry);
    assert_eq!(rig.cells.stats.ambiguous, 1, "swapped or not cannot be told: left open");
    assert_eq!(rig.cells.pending(), 0);
    rig.cells.check_linearizable().unwrap();
}

#[test]
fn one_copy_that_conflicts_is_a_definite_not_swapped() {
    let mut rig = Rig::new(2);
    let swap = up_to_the_swap(&mut rig);
    // Client 1 swaps first, so client 0's only copy conflicts.
    let other = rig.cas(1, 0, 2_000);
    rig.round_trip(other);
    let completed = rig.cells.stats.completed;
    rig.round_trip(swap);
    assert_eq!(rig.cells.stats.ambiguous, 0, "one copy: the conflict is definite");
    assert_eq!(rig.cells.stats.completed, completed + 1);
    rig.cells.check_linearizable().unwrap();
}
