//! The crash-durability workload: pipelined connections on keys of their own, a SIGKILL at a
//! seeded instant, a restart, and every key judged against what was acknowledged durable.

use super::wire::*;
use super::*;

/// One mutation of a key, as the harness saw it.
#[derive(Debug, Clone)]
pub(super) struct Mutation {
    /// The value it installs (`None`: a delete).
    value: Option<Vec<u8>>,
    /// `Some(seq)` once acknowledged; `None` while unanswered or when the answer was lost.
    acked: Option<u64>,
    /// Acknowledged with `flush`.
    flushed: bool,
    /// Definitely refused (conflict, version mismatch, invalid): it never happened.
    refused: bool,
}

#[derive(Debug, Default)]
pub(super) struct KeyLog {
    /// The value at the start of the round (after the last restart).
    base: Option<Vec<u8>>,
    muts: Vec<Mutation>,
    /// The version last seen (for CAS expectations).
    version: Option<u64>,
}

/// What every connection of a round shares.
pub(super) struct Shared {
    clock: AtomicU64,
    /// Send instants of `Flush` requests that were answered.
    flushes: Mutex<Vec<u64>>,
    stop: AtomicBool,
}

impl Shared {
    pub(super) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }
}

pub(super) enum Op {
    Write(u64, Vec<u8>, bool),
    Delete(u64, bool),
    CasPair(u64, Vec<u8>, bool),
    Read(u64),
    Flush,
}

pub(super) fn single_key(base: u64, c: u64, j: u64) -> u64 {
    base + c * 64 + j
}

pub(super) fn pair_key(base: u64, c: u64, m: u64) -> u64 {
    base + c * 64 + 32 + 2 * m
}

pub(super) fn seed_base(seed: u64) -> u64 {
    (seed + 1) << 24
}

pub(super) fn value_of(tag: &str, len: usize) -> Vec<u8> {
    let mut v = tag.as_bytes().to_vec();
    v.push(b':');
    v.resize(len.max(v.len()), b'.');
    v
}

/// The newest value a live server must return for a key: the last acknowledged, not refused
/// mutation's, or the base; `None` if an unanswered mutation makes it unknown.
pub(super) fn newest(log: &KeyLog) -> Option<Option<Vec<u8>>> {
    for m in log.muts.iter().rev() {
        if m.refused {
            continue;
        }
        return if m.acked.is_some() { Some(m.value.clone()) } else { None };
    }
    Some(log.base.clone())
}

/// One connection's share of a round: batches of pipelined requests on its own keys until the
/// server dies or the round is stopped.
pub(super) fn connection_round(
    socket: &Path,
    seed: u64,
    round: usize,
    c: u64,
    mut rng: SimRng,
    logs: &mut BTreeMap<u64, KeyLog>,
    shared: &Shared,
) -> Result<usize, String> {
    let base = seed_base(seed);
    let Ok(mut conn) = Conn::open(socket) else { return Ok(0) };
    let mut n = 0u64;
    let mut ops = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        let batch = rng.range(1, 7);
        let mut used = BTreeSet::new();
        let mut sent: Vec<(u64, Op, u64)> = Vec::new();
        for _ in 0..batch {
            n += 1;
            let tag = format!("s{seed}r{round}c{c}n{n}");
            let op = match rng.below(100) {
                0..=44 => {
                    let len = if rng.below(10) == 0 {
                        rng.range(5000, 40_000)
                    } else {
                        rng.range(1, 3000)
                    };
                    Op::Write(
                        single_key(base, c, rng.below(SINGLE_KEYS)),
                        value_of(&tag, len as usize),
                        rng.below(10) < 3,
                    )
                }
                45..=54 => {
                    Op::Delete(single_key(base, c, rng.below(SINGLE_KEYS)), rng.below(10) < 3)
                }
                55..=71 => Op::CasPair(
                    pair_key(base, c, rng.below(PAIRS)),
                    value_of(&tag, rng.range(1, 500) as usize),
                    rng.below(10) < 3,
                ),
                72..=97 => Op::Read(single_key(base, c, rng.below(SINGLE_KEYS))),
                _ => Op::Flush,
            };
            let keys: Vec<u64> = match &op {
                Op::Write(k, ..) | Op::Delete(k, _) | Op::Read(k) => vec![*k],
                Op::CasPair(k, ..) => vec![*k, *k + 1],
                Op::Flush => vec![],
            };
            if keys.iter().any(|k| used.contains(k)) {
                continue;
            }
            used.extend(keys);
            let request = match &op {
                Op::Write(k, v, f) => {
                    Request::Write { key: *k, value: v.clone(), options: opts(*f) }
                }
                Op::Delete(k, f) => Request::Delete { key: *k, expected: None, flush: *f },
                Op::CasPair(k, v, f) => {
                    let expect = |key: u64| match logs.get(&key).and_then(|l| l.version) {
                        Some(v) => Expected::Version(v),
                        None => Expected::Absent,
                    };
                    let items = vec![
                        CasItem { key: *k, expected: expect(*k), new_value: Some(v.clone()) },
                        CasItem {
                            key: *k + 1,
                            expected: expect(*k + 1),
                            new_value: Some(v.clone()),
                        },
                    ];
                    Request::Cas { items, flush: *f }
                }
                Op::Read(k) => Request::Read { key: *k },
                Op::Flush => Request::Flush,
            };
            let t = shared.tick();
            match &op {
                Op::Write(k, v, _) => logs.entry(*k).or_default().muts.push(Mutation {
                    value: Some(v.clone()),
                    acked: None,
                    flushed: false,
                    refused: false,
                }),
                Op::Delete(k, _) => logs.entry(*k).or_default().muts.push(Mutation {
                    value: None,
                    acked: None,
                    flushed: false,
                    refused: false,
                }),
                Op::CasPair(k, v, _) => {
                    for key in [*k, *k + 1] {
                        logs.entry(key).or_default().muts.push(Mutation {
                            value: Some(v.clone()),
                            acked: None,
                            flushed: false,
                            refused: false,
                        });
                    }
                }
                _ => {}
            }
            let id = n;
            if conn.send(id, request).is_err() {
                return Ok(ops);
            }
            sent.push((id, op, t));
        }
        let mut pending: BTreeMap<u64, (Op, u64)> =
            sent.into_iter().map(|(id, op, t)| (id, (op, t))).collect();
        while !pending.is_empty() {
            let Ok(Some(f)) = conn.recv() else { return Ok(ops) };
            let Some((op, sent_at)) = pending.remove(&f.id) else {
                return Err(format!("PROTO-7: a reply for id {} which is not in flight", f.id));
            };
            ops += 1;
            let at = shared.tick();
            judge_reply(&op, sent_at, at, &f.response, logs, shared)?;
        }
    }
    Ok(ops)
}

/// Records a reply in the key logs; a read is checked against the newest acknowledged value.
pub(super) fn judge_reply(
    op: &Op,
    sent_at: u64,
    at: u64,
    r: &Response,
    logs: &mut BTreeMap<u64, KeyLog>,
    shared: &Shared,
) -> Result<(), String> {
    let mark = |log: &mut KeyLog, ok: bool, flush: bool, definite_no: bool| {
        if let Some(m) = log.muts.last_mut() {
            if ok {
                m.acked = Some(at);
                m.flushed = flush;
            }
            m.refused = definite_no;
        }
    };
    let definite_no = |r: &Response| matches!(r, Response::Error(e) if matches!(e.kind, ErrorKind::InvalidRequest | ErrorKind::VersionMismatch | ErrorKind::NotFound | ErrorKind::MalformedFrame));
    match op {
        Op::Write(k, _, flush) => {
            let log = logs.entry(*k).or_default();
            let ok = matches!(r, Response::Written { .. });
            if !ok && !matches!(r, Response::Error(_)) {
                return Err(format!("Write of key {k} answered {r:?}"));
            }
            mark(log, ok, *flush, definite_no(r));
        }
        Op::Delete(k, flush) => {
            let log = logs.entry(*k).or_default();
            let ok = matches!(r, Response::Deleted { .. });
            mark(log, ok, *flush, definite_no(r));
        }
        Op::CasPair(k, _, flush) => match r {
            Response::Cas(CasReply::Applied { versions }) => {
                for (i, key) in [*k, *k + 1].into_iter().enumerate() {
                    let log = logs.entry(key).or_default();
                    mark(log, true, *flush, false);
                    log.version = versions.get(i).copied().flatten();
                }
            }
            Response::Cas(CasReply::Conflict { key, current, .. }) => {
                for kk in [*k, *k + 1] {
                    mark(logs.entry(kk).or_default(), false, false, true);
                }
                logs.entry(*key).or_default().version = *current;
            }
            other => {
                let no = definite_no(other);
                for kk in [*k, *k + 1] {
                    mark(logs.entry(kk).or_default(), false, false, no);
                }
            }
        },
        Op::Read(k) => {
            let log = logs.entry(*k).or_default();
            let got = match r {
                Response::Record(rec) => rec.as_ref().map(|x| x.value.clone()),
                other => return Err(format!("Read of key {k} answered {other:?}")),
            };
            if let Some(want) = newest(log)
                && got != want
            {
                return Err(format!(
                    "SEC-6: a read of key {k} returned {} but the newest acknowledged value is {}",
                    show(got.as_deref()),
                    show(want.as_deref())
                ));
            }
        }
        Op::Flush => {
            if matches!(r, Response::Flushed) {
                shared.flushes.lock().unwrap_or_else(PoisonError::into_inner).push(sent_at);
            }
        }
    }
    Ok(())
}

pub(super) fn show(v: Option<&[u8]>) -> String {
    match v {
        None => "absent".into(),
        Some(v) => {
            let head: String = v.iter().take_while(|b| **b != b':').map(|b| *b as char).collect();
            format!("{head} ({} bytes)", v.len())
        }
    }
}

/// The values a key may hold after a crash: the last durable mutation's (or the base), and any
/// later one's that was not refused.
pub(super) fn allowed_after_crash(log: &KeyLog, flushes: &[u64]) -> (Vec<Option<Vec<u8>>>, String) {
    let durable = |m: &Mutation| {
        !m.refused && m.acked.is_some_and(|a| m.flushed || flushes.iter().any(|f| *f > a))
    };
    let d = log.muts.iter().rposition(durable);
    let mut allowed = Vec::new();
    let why = match d {
        Some(i) => {
            allowed.push(log.muts[i].value.clone());
            let m = &log.muts[i];
            format!(
                "the last durable write ({}, acknowledged {})",
                show(m.value.as_deref()),
                if m.flushed { "with flush" } else { "before an answered Flush was sent" }
            )
        }
        None => {
            allowed.push(log.base.clone());
            format!("the value at the last restart ({})", show(log.base.as_deref()))
        }
    };
    let from = d.map_or(0, |i| i + 1);
    for m in log.muts.iter().skip(from).filter(|m| !m.refused) {
        allowed.push(m.value.clone());
    }
    (allowed, why)
}

pub(super) fn read_all(
    socket: &Path,
    keys: &[u64],
) -> Result<BTreeMap<u64, (Vec<u8>, u64)>, String> {
    let mut c = Conn::open(socket)?;
    let mut out = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        match c.call(i as u64 + 1, Request::Read { key: *k })? {
            Response::Record(Some(r)) => {
                out.insert(*k, (r.value, r.version));
            }
            Response::Record(None) => {}
            other => {
                return Err(format!("after the restart, a read of key {k} answered {other:?}"));
            }
        }
    }
    Ok(out)
}

/// One seed of the crash workload: `cfg.rounds` × (workload, SIGKILL, restart, judge).
pub(super) fn crash_seed(cfg: &SectorConfig, server: &mut ServerProc, seed: u64) -> Case {
    let mut rng = SimRng::new(seed);
    let conns = cfg.connections.max(1) as u64;
    let base = seed_base(seed);
    let keys: Vec<u64> = (0..conns)
        .flat_map(|c| {
            (0..SINGLE_KEYS).map(move |j| single_key(base, c, j)).chain(
                (0..PAIRS).flat_map(move |m| [pair_key(base, c, m), pair_key(base, c, m) + 1]),
            )
        })
        .collect();
    let mut logs: Vec<BTreeMap<u64, KeyLog>> = (0..conns).map(|_| BTreeMap::new()).collect();
    let (mut ops, mut crashes) = (0usize, 0usize);
    let mut failure = None;
    'rounds: for round in 0..cfg.rounds.max(1) {
        // The base of this round: what the server holds now.
        let state = match read_all(&cfg.socket, &keys) {
            Ok(s) => s,
            Err(e) => {
                failure =
                    Some(format!("round {round}: reading every key before the workload: {e}"));
                break;
            }
        };
        for (c, l) in logs.iter_mut().enumerate() {
            l.clear();
            for k in keys.iter().filter(|k| (**k - base) / 64 == c as u64) {
                let entry = l.entry(*k).or_default();
                entry.base = state.get(k).map(|(v, _)| v.clone());
                entry.version = state.get(k).map(|(_, v)| *v);
            }
        }
        let shared = Arc::new(Shared {
            clock: AtomicU64::new(1),
            flushes: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let crash_ms = rng.range(60, 350);
        let results: Vec<(BTreeMap<u64, KeyLog>, Result<usize, String>)> =
            std::thread::scope(|s| {
                let handles: Vec<_> = logs
                    .drain(..)
                    .enumerate()
                    .map(|(c, mut log)| {
                        let sh = Arc::clone(&shared);
                        let socket = cfg.socket.clone();
                        let r = rng.fork();
                        s.spawn(move || {
                            let out =
                                connection_round(&socket, seed, round, c as u64, r, &mut log, &sh);
                            (log, out)
                        })
                    })
                    .collect();
                std::thread::sleep(Duration::from_millis(crash_ms));
                server.kill();
                shared.stop.store(true, Ordering::SeqCst);
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            (BTreeMap::new(), Err("a workload thread panicked".into()))
                        })
                    })
                    .collect()
            });
        crashes += 1;
        for (log, r) in results {
            logs.push(log);
            match r {
                Ok(n) => ops += n,
                Err(e) => failure = failure.or(Some(format!("round {round}: {e}"))),
            }
        }
        if failure.is_some() {
            break;
        }
        if let Err(e) = server.start() {
            failure = Some(format!("round {round}: restarting the server: {e}"));
            break;
        }
        let after = match read_all(&cfg.socket, &keys) {
            Ok(s) => s,
            Err(e) => {
                failure = Some(format!("round {round}: reading every key after the restart: {e}"));
                break;
            }
        };
        let flushes = shared.flushes.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for l in &logs {
            for (k, log) in l {
                let got = after.get(k).map(|(v, _)| v.clone());
                let (allowed, why) = allowed_after_crash(log, &flushes);
                if !allowed.contains(&got) {
                    failure = Some(format!(
                        "round {round} (SIGKILL after {crash_ms} ms): key {k} holds {} after the \
                         restart; allowed: {} or a later write (SEC-2, SEC-7, PROTO-8: an \
                         acknowledged durable write was lost or a value came from nowhere)",
                        show(got.as_deref()),
                        why
                    ));
                    break 'rounds;
                }
            }
        }
        for c in 0..conns {
            for m in 0..PAIRS {
                let k = pair_key(base, c, m);
                let (a, b) = (after.get(&k).map(|x| &x.0), after.get(&(k + 1)).map(|x| &x.0));
                if a != b {
                    failure = Some(format!(
                        "round {round}: SEC-8: the CAS pair {k}/{} disagrees after the restart: {} vs {}",
                        k + 1,
                        show(a.map(Vec::as_slice)),
                        show(b.map(Vec::as_slice))
                    ));
                    break 'rounds;
                }
            }
        }
    }
    Case {
        name: format!("seed {seed}"),
        seed: Some(seed),
        info: format!("{ops} operations answered, {crashes} crashes"),
        failure,
    }
}

/// PROTO-10: acknowledged unflushed writes, SIGTERM, exit 0 (when the status is the server's),
/// the socket file removed, and every write there after a restart.
pub(super) fn shutdown_check(cfg: &SectorConfig, server: &mut ServerProc) -> Case {
    let name = "PROTO-10 shutdown".to_owned();
    let result = (|| -> Result<String, String> {
        let mut c = Conn::open(&cfg.socket)?;
        let base = PROBE_KEY_BASE + 1_000_000;
        let mut want = BTreeMap::new();
        for i in 0..40u64 {
            let v = format!("shutdown {i}").into_bytes();
            c.send(
                i + 1,
                Request::Write { key: base + i, value: v.clone(), options: opts(false) },
            )?;
            want.insert(base + i, v);
        }
        let got = c.collect(40)?;
        if got.len() != 40 || got.iter().any(|f| !matches!(f.response, Response::Written { .. })) {
            return Err("the writes before SIGTERM were not all acknowledged".into());
        }
        drop(c);
        let status = server.terminate()?;
        let mut info = format!("exit status {status}");
        if let Some(code) = status.code()
            && code != 0
        {
            return Err(format!("PROTO-10: the server exited with {status} after SIGTERM"));
        }
        if status.code().is_none() {
            info.push_str(" (the shell around the server was signalled; its own status unseen)");
        }
        // The command may be a shell around the server: give the server itself time to finish.
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        while cfg.socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if cfg.socket.exists() {
            return Err("PROTO-10: the socket file is still there after the server exited".into());
        }
        server.start()?;
        let keys: Vec<u64> = want.keys().copied().collect();
        let after = read_all(&cfg.socket, &keys)?;
        for (k, v) in &want {
            if after.get(k).map(|x| &x.0) != Some(v) {
                return Err(format!(
                    "PROTO-10: key {k} lost its acknowledged write across SIGTERM and restart \
                     (holds {})",
                    show(after.get(k).map(|x| x.0.as_slice()))
                ));
            }
        }
        Ok(info + "; socket removed; 40 acknowledged writes survived")
    })();
    match result {
        Ok(info) => Case { name, seed: None, info, failure: None },
        Err(e) => Case { name, seed: None, info: String::new(), failure: Some(e) },
    }
}
