//! The `cell` model: K clients read and CAS one cell through a server, over a network that
//! loses (at most `losses` messages in all), duplicates and reorders messages; clients retry
//! (CELL-1, CELL-2).
//!
//! Client `c` runs the program `[CAS(0 → c+1), Read]` (the first `ops` of it), one operation at
//! a time, numbering requests by their position. A client whose reply is late may resend its
//! request (at most `retries` times per operation). Requests stay in the network after delivery
//! (duplication) until lost; replies are consumed when delivered (a duplicate reply for an
//! operation already answered is ignored by sequence number, so duplicating replies adds no
//! behaviour). Any message may be lost at any time; any in-flight message may be delivered next.
//!
//! The server keeps, per client, the reply to the last request it executed and replays it when
//! the same request arrives again, so a retried or duplicated CAS is executed at most once.
//! Every invocation and return is recorded in stateright's `LinearizabilityTester` against
//! [`CasRegister`]; CELL-1 holds if the history so far is linearizable.
//!
//! Clients are not symmetric (client `c` writes `c+1`), so this model uses no symmetry.

use super::{ModelKind, SetupError, SizeKey, Sizes};
use crate::check::Explain;
use crate::spec::{CasOp, CasRegister, CasRet};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use stateright::{Model, Property};
use std::collections::BTreeSet;

/// `CELL-1` property name.
pub const PROP_LINEARIZABLE: &str = "CELL-1 every history is linearizable";

/// Size parameters.
pub const SIZE_KEYS: &[SizeKey] = &[
    SizeKey { key: "clients", default: 3, min: 1, max: 4, what: "client processes" },
    SizeKey { key: "ops", default: 2, min: 1, max: 2, what: "operations per client (CAS, Read)" },
    SizeKey { key: "retries", default: 1, min: 0, max: 2, what: "resends per operation" },
    SizeKey { key: "losses", default: 2, min: 0, max: 4, what: "lost messages in total" },
];

/// Cell value.
type Val = u8;

/// The cell model's mutants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellMutant {
    /// `cell:cas-without-compare`: the server swaps whatever the cell holds.
    CasWithoutCompare,
    /// `cell:retry-reexecutes`: the server executes every delivered request, duplicates too.
    RetryReexecutes,
}

/// The model's configuration.
#[derive(Clone, Debug)]
pub struct CellModel {
    clients: u8,
    ops: u8,
    retries: u8,
    losses: u8,
    mutant: Option<CellMutant>,
}

/// A message in flight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Msg {
    /// Client → server.
    Request {
        /// Sender.
        client: u8,
        /// Position of the operation in the client's program.
        seq: u8,
        /// The operation.
        op: CasOp<Val>,
    },
    /// Server → client.
    Reply {
        /// Addressee.
        client: u8,
        /// The request answered.
        seq: u8,
        /// The result.
        ret: CasRet<Val>,
    },
}

/// One client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Client {
    /// Operations completed (= sequence number of the current/next one).
    pub done: u8,
    /// An operation is outstanding.
    pub awaiting: bool,
    /// Resends left for the outstanding operation.
    pub retries_left: u8,
}

/// A state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CellState {
    /// The server's cell.
    pub value: Val,
    /// Per client, the server's reply to its last executed request.
    pub replies: Vec<Option<(u8, CasRet<Val>)>>,
    /// The clients.
    pub clients: Vec<Client>,
    /// Messages in flight.
    pub network: BTreeSet<Msg>,
    /// Every invocation and return so far.
    pub history: LinearizabilityTester<u8, CasRegister<Val>>,
    /// A client has been told its CAS lost (CELL-2).
    pub saw_lost_swap: bool,
    /// Losses still allowed.
    pub losses_left: u8,
    /// The tester refused an invocation or return (a client protocol bug; fails CELL-1).
    pub history_broken: bool,
}

/// A step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CellAction {
    /// Client starts its next operation.
    Invoke(u8),
    /// Client resends its outstanding request.
    Resend(u8),
    /// The network delivers a message.
    Deliver(Msg),
    /// The network loses a message.
    Lose(Msg),
}

fn show_op(op: &CasOp<Val>) -> String {
    match op {
        CasOp::Read => "Read".to_string(),
        CasOp::Cas { expected, new } => format!("CAS({expected} → {new})"),
    }
}

fn show_ret(ret: &CasRet<Val>) -> String {
    match ret {
        CasRet::Read(v) => format!("read {v}"),
        CasRet::Cas { swapped: true, current } => format!("swapped, cell = {current}"),
        CasRet::Cas { swapped: false, current } => format!("lost, cell = {current}"),
    }
}

impl CellModel {
    /// The model at `sizes`, optionally mutated.
    ///
    /// # Errors
    /// [`SetupError::UnknownMutant`] for a mutant of another model.
    pub fn new(sizes: &Sizes, mutant: Option<&str>) -> Result<Self, SetupError> {
        let mutant = match mutant {
            None => None,
            Some("cell:cas-without-compare") => Some(CellMutant::CasWithoutCompare),
            Some("cell:retry-reexecutes") => Some(CellMutant::RetryReexecutes),
            Some(other) => return Err(SetupError::UnknownMutant(other.to_string())),
        };
        debug_assert_eq!(sizes.kind(), ModelKind::Cell);
        Ok(Self {
            clients: sizes.get("clients"),
            ops: sizes.get("ops"),
            retries: sizes.get("retries"),
            losses: sizes.get("losses"),
            mutant,
        })
    }

    fn op(client: u8, seq: u8) -> CasOp<Val> {
        if seq == 0 { CasOp::Cas { expected: 0, new: client + 1 } } else { CasOp::Read }
    }

    fn execute(&self, value: &mut Val, op: &CasOp<Val>) -> CasRet<Val> {
        match (op, self.mutant) {
            (CasOp::Cas { new, .. }, Some(CellMutant::CasWithoutCompare)) => {
                *value = *new;
                CasRet::Cas { swapped: true, current: *new }
            }
            _ => {
                let mut register = CasRegister::new(*value);
                let ret = register.apply(op);
                *value = *register.value();
                ret
            }
        }
    }

    fn serve(&self, s: &mut CellState, client: u8, seq: u8, op: &CasOp<Val>) {
        let c = usize::from(client);
        let reexecute = self.mutant == Some(CellMutant::RetryReexecutes);
        let last = s.replies[c].as_ref().map(|(done, r)| (*done, r.clone()));
        let ret = match last {
            // Older than the last executed request: the client has its answer; ignore.
            Some((done, _)) if seq < done && !reexecute => return,
            // The last executed request again: replay its reply, never execute twice.
            Some((done, ret)) if seq == done && !reexecute => ret,
            _ => {
                let ret = self.execute(&mut s.value, op);
                s.replies[c] = Some((seq, ret.clone()));
                ret
            }
        };
        s.network.insert(Msg::Reply { client, seq, ret });
    }

    /// Drops messages whose delivery and loss are both no-ops: replies to operations the
    /// client has finished, and (for the correct server) requests older than the last one it
    /// executed for that client. A sound reduction: no behaviour depends on them.
    fn prune(&self, s: &mut CellState) {
        let reexecute = self.mutant == Some(CellMutant::RetryReexecutes);
        let clients = &s.clients;
        let replies = &s.replies;
        s.network.retain(|m| match m {
            Msg::Reply { client, seq, .. } => {
                let c = clients[usize::from(*client)];
                c.awaiting && c.done == *seq
            }
            Msg::Request { client, seq, .. } => {
                reexecute
                    || replies[usize::from(*client)].as_ref().is_none_or(|(done, _)| seq >= done)
            }
        });
    }

    fn receive(s: &mut CellState, client: u8, seq: u8, ret: CasRet<Val>) {
        let c = &mut s.clients[usize::from(client)];
        if !c.awaiting || c.done != seq {
            return;
        }
        c.awaiting = false;
        c.done += 1;
        if matches!(ret, CasRet::Cas { swapped: false, .. }) {
            s.saw_lost_swap = true;
        }
        // A return without an invocation cannot happen here; if it did, CELL-1 reports it.
        s.history_broken |= s.history.on_return(client, ret).is_err();
    }
}

impl Model for CellModel {
    type State = CellState;
    type Action = CellAction;

    fn init_states(&self) -> Vec<CellState> {
        let n = usize::from(self.clients);
        vec![CellState {
            value: 0,
            replies: vec![None; n],
            clients: vec![Client { done: 0, awaiting: false, retries_left: 0 }; n],
            network: BTreeSet::new(),
            history: LinearizabilityTester::new(CasRegister::new(0)),
            saw_lost_swap: false,
            history_broken: false,
            losses_left: self.losses,
        }]
    }

    fn actions(&self, s: &CellState, out: &mut Vec<CellAction>) {
        for (i, c) in s.clients.iter().enumerate() {
            let i = u8::try_from(i).unwrap_or(u8::MAX);
            if !c.awaiting && c.done < self.ops {
                out.push(CellAction::Invoke(i));
            }
            let request = Msg::Request { client: i, seq: c.done, op: Self::op(i, c.done) };
            if c.awaiting && c.retries_left > 0 && !s.network.contains(&request) {
                out.push(CellAction::Resend(i));
            }
        }
        for m in &s.network {
            out.push(CellAction::Deliver(m.clone()));
            if s.losses_left > 0 {
                out.push(CellAction::Lose(m.clone()));
            }
        }
    }

    fn next_state(&self, last: &CellState, action: CellAction) -> Option<CellState> {
        let mut s = last.clone();
        match action {
            CellAction::Invoke(i) => {
                let c = &mut s.clients[usize::from(i)];
                let op = Self::op(i, c.done);
                c.awaiting = true;
                c.retries_left = self.retries;
                s.network.insert(Msg::Request { client: i, seq: c.done, op: op.clone() });
                s.history_broken |= s.history.on_invoke(i, op).is_err();
            }
            CellAction::Resend(i) => {
                let c = &mut s.clients[usize::from(i)];
                c.retries_left -= 1;
                s.network.insert(Msg::Request { client: i, seq: c.done, op: Self::op(i, c.done) });
            }
            CellAction::Deliver(Msg::Request { client, seq, op }) => {
                // Requests stay in flight: the network may deliver them again.
                self.serve(&mut s, client, seq, &op);
            }
            CellAction::Deliver(m @ Msg::Reply { .. }) => {
                s.network.remove(&m);
                if let Msg::Reply { client, seq, ret } = m {
                    Self::receive(&mut s, client, seq, ret);
                }
            }
            CellAction::Lose(m) => {
                s.network.remove(&m);
                s.losses_left -= 1;
            }
        }
        self.prune(&mut s);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(PROP_LINEARIZABLE, |_, s: &CellState| {
                !s.history_broken && s.history.serialized_history().is_some()
            }),
            Property::sometimes(
                "CELL-2 a lost swap is reported, not an error",
                |_, s: &CellState| s.saw_lost_swap,
            ),
            Property::sometimes(
                "CELL-1 every client completes its program",
                |m: &Self, s: &CellState| s.clients.iter().all(|c| c.done == m.ops),
            ),
        ]
    }
}

impl Explain for CellModel {
    fn name(&self) -> &'static str {
        "cell"
    }

    fn describe_step(&self, s: &CellState, action: &CellAction) -> String {
        match action {
            CellAction::Invoke(i) => {
                let seq = s.clients[usize::from(*i)].done;
                format!("client {i} sends request #{seq}: {}", show_op(&Self::op(*i, seq)))
            }
            CellAction::Resend(i) => {
                let seq = s.clients[usize::from(*i)].done;
                format!(
                    "client {i} times out and resends request #{seq}: {}",
                    show_op(&Self::op(*i, seq))
                )
            }
            CellAction::Deliver(Msg::Request { client, seq, op }) => {
                let replay =
                    s.replies[usize::from(*client)].as_ref().is_some_and(|(d, _)| d == seq)
                        && self.mutant != Some(CellMutant::RetryReexecutes);
                let mut value = s.value;
                let outcome = if replay {
                    "already executed: replays its reply".to_string()
                } else {
                    format!("executes it: {}", show_ret(&self.execute(&mut value, op)))
                };
                format!(
                    "server receives client {client}'s request #{seq} {}; {outcome}",
                    show_op(op)
                )
            }
            CellAction::Deliver(Msg::Reply { client, seq, ret }) => {
                let c = s.clients[usize::from(*client)];
                let note = if c.awaiting && c.done == *seq { "" } else { " (stale, ignored)" };
                format!("client {client} receives the reply to #{seq}: {}{note}", show_ret(ret))
            }
            CellAction::Lose(Msg::Request { client, seq, .. }) => {
                format!("the network loses client {client}'s request #{seq}")
            }
            CellAction::Lose(Msg::Reply { client, seq, .. }) => {
                format!("the network loses the reply to client {client}'s #{seq}")
            }
        }
    }

    fn describe_state(&self, s: &CellState) -> String {
        let lin = match s.history.serialized_history() {
            Some(order) => {
                let steps: Vec<String> = order
                    .iter()
                    .map(|(op, ret)| format!("{} = {}", show_op(op), show_ret(ret)))
                    .collect();
                format!("linearizable as [{}]", steps.join("; "))
            }
            None => {
                "NOT linearizable: no order of these operations explains every reply".to_string()
            }
        };
        format!("cell holds {}; history {lin}", s.value)
    }

    fn representative(&self, s: &CellState) -> CellState {
        s.clone()
    }
}
