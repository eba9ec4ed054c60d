//! The PROTO-* probes: one connection (or a few) each, fixed requests, judged replies.

use super::wire::*;
use super::*;

pub(super) fn probe_round_trip(socket: &Path) -> Result<String, String> {
    let mut c = Conn::open(socket)?;
    let key = PROBE_KEY_BASE + 1;
    let value = b"cellar conform probe".to_vec();
    let version =
        match c.call(1, Request::Write { key, value: value.clone(), options: opts(true) })? {
            Response::Written { version } => version,
            other => return Err(format!("Write answered {other:?}")),
        };
    match c.call(2, Request::Read { key })? {
        Response::Record(Some(r)) if r.value == value && r.version == version && r.key == key => {}
        other => return Err(format!("Read after Write answered {other:?}")),
    }
    match c.call(3, Request::Compare { key, expected: Expected::Version(version) })? {
        Response::Compared { matches: true } => {}
        other => return Err(format!("Compare with the written version answered {other:?}")),
    }
    match c.call(4, Request::Delete { key, expected: None, flush: true })? {
        Response::Deleted { existed: true } => {}
        other => return Err(format!("Delete answered {other:?}")),
    }
    match c.call(5, Request::Read { key })? {
        Response::Record(None) => {}
        other => return Err(format!("Read after Delete answered {other:?}")),
    }
    match c.call(6, Request::Stat)? {
        Response::Stat(_) => {}
        other => return Err(format!("Stat answered {other:?}")),
    }
    Ok("write, read, compare, delete, stat".into())
}

pub(super) fn probe_oversize(socket: &Path) -> Result<String, String> {
    let mut c = Conn::open(socket)?;
    c.send(1, Request::Read { key: PROBE_KEY_BASE + 2 })?;
    c.send(2, Request::Read { key: PROBE_KEY_BASE + 3 })?;
    c.send_raw(&(FRAME_BODY_BYTES_MAX + 1).to_le_bytes())?;
    let mut ids = Vec::new();
    let mut too_large = false;
    loop {
        match c.recv()? {
            None => break,
            Some(f)
                if f.id == REQUEST_ID_NONE && is_error(&f.response, ErrorKind::FrameTooLarge) =>
            {
                too_large = true;
            }
            Some(f) if f.id == 1 || f.id == 2 => ids.push(f.id),
            Some(f) => return Err(format!("unexpected reply {} {:?}", f.id, f.response)),
        }
    }
    ids.sort_unstable();
    if !too_large {
        return Err("no Error(FrameTooLarge) with id 2^64 − 1 before the connection closed".into());
    }
    if ids != [1, 2] {
        return Err(format!(
            "the requests read before the oversized prefix got replies {ids:?}, not [1, 2]"
        ));
    }
    Ok("FrameTooLarge, both earlier requests answered, connection closed".into())
}

pub(super) fn probe_malformed(socket: &Path) -> Result<String, String> {
    let mut c = Conn::open(socket)?;
    let key = PROBE_KEY_BASE + 4;
    let read_body = |id: u64| {
        let mut b = varint(id);
        b.push(0); // Read
        b.extend(varint(key));
        b
    };
    let mut with_trailing = read_body(12);
    with_trailing.push(0);
    let mut bad_bool = varint(13);
    bad_bool.extend([3, 5, 1, b'x', 2, 0, 0, 0, 0, 0]); // Write, compressed = 02
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        ("Request tag 200", [varint(10), varint(200)].concat(), 10),
        ("Request tag 13, one past the table", [varint(11), varint(13)].concat(), 11),
        ("a Read followed by a byte", with_trailing, 12),
        ("a bool byte of 02", bad_bool, 13),
        ("a Read without its key", [varint(14), vec![0]].concat(), 14),
        ("an empty body", Vec::new(), REQUEST_ID_NONE),
        ("an id that does not decode", vec![0xff], REQUEST_ID_NONE),
        ("the reserved id 2^64 − 1", read_body(u64::MAX), REQUEST_ID_NONE),
    ];
    let mut next = 100;
    for (what, body, want_id) in &cases {
        c.send_raw(&body_frame(body))?;
        next += 1;
        c.send(next, Request::Read { key })?;
        let got = c.collect(2)?;
        let malformed = got
            .iter()
            .any(|f| f.id == *want_id && is_error(&f.response, ErrorKind::MalformedFrame));
        let read = got.iter().any(|f| f.id == next && matches!(f.response, Response::Record(_)));
        if !malformed {
            return Err(format!(
                "PROTO-4: {what}: want Error(MalformedFrame) with id {want_id}, got {:?}",
                got.iter().map(|f| (f.id, &f.response)).collect::<Vec<_>>()
            ));
        }
        if !read {
            return Err(format!(
                "PROTO-4: after {what} the connection did not answer the next read (resync rule)"
            ));
        }
    }
    let big = vec![0u8; VALUE_BYTES_MAX as usize + 1];
    let invalid: Vec<(&str, Request)> = vec![
        (
            "a range with last < first",
            Request::ReadRange { ranges: vec![KeyRange { first: 5, last: 4 }] },
        ),
        ("a CAS of no items", Request::Cas { items: vec![], flush: false }),
        ("a value of 8 MiB + 1", Request::Write { key, value: big, options: opts(false) }),
    ];
    for (what, req) in invalid {
        next += 1;
        let r = c.call(next, req)?;
        if !is_error(&r, ErrorKind::InvalidRequest) {
            return Err(format!("{what}: want Error(InvalidRequest), got {r:?}"));
        }
    }
    Ok(format!("{} malformed frames and 3 invalid requests refused, connection kept", cases.len()))
}

pub(super) fn probe_leaving(socket: &Path) -> Result<String, String> {
    let mut c = Conn::open(socket)?;
    c.send_raw(&[100, 0, 0, 0, 1, 2, 3])?;
    drop(c);
    let mut c = Conn::open(socket)?;
    c.send(
        1,
        Request::Write { key: PROBE_KEY_BASE + 5, value: vec![7; 5000], options: opts(true) },
    )?;
    drop(c);
    let mut c = Conn::open(socket)?;
    match c.call(1, Request::Stat)? {
        Response::Stat(_) => Ok("the server still serves".into()),
        other => Err(format!("Stat answered {other:?}")),
    }
}

/// 256 pipelined requests on each of `conns` connections at once, read by a second thread
/// while they are written.
pub(super) fn probe_pipelining(socket: &Path, conns: u64) -> Result<String, String> {
    let mut reordered = 0usize;
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let socket = socket.to_path_buf();
            std::thread::spawn(move || pipeline_one(&socket, c))
        })
        .collect();
    for h in handles {
        reordered += h.join().map_err(|_| "a probe thread panicked".to_owned())??;
    }
    Ok(format!("{conns} connections × 256 requests; {reordered} replies out of order"))
}

pub(super) fn pipeline_one(socket: &Path, c: u64) -> Result<usize, String> {
    let base = PROBE_KEY_BASE + 1000 * (c + 1);
    let mut conn = Conn::open(socket)?;
    for k in 0..32 {
        let r = conn.call(
            k + 1,
            Request::Write {
                key: base + k,
                value: format!("p{c}-{k}").into_bytes(),
                options: opts(false),
            },
        )?;
        if !matches!(r, Response::Written { .. }) {
            return Err(format!("setup write answered {r:?}"));
        }
    }
    let mut expect: HashMap<u64, Option<u64>> = HashMap::new();
    let mut order = Vec::new();
    let mut writer = Conn { stream: conn.stream.try_clone().map_err(|e| e.to_string())? };
    let mut frames = Vec::new();
    for i in 0..256u64 {
        let id = (i * 7919 + c * 13 + 1) % 1_000_003;
        let req = if i % 4 == 0 {
            expect.insert(id, None);
            Request::Write {
                key: base + 100 + i,
                value: vec![i as u8; 64],
                options: opts(i % 8 == 0),
            }
        } else {
            expect.insert(id, Some(i % 32));
            Request::Read { key: base + i % 32 }
        };
        order.push(id);
        frames.push(
            encode_request_frame(&RequestFrame { id, request: req }).map_err(|e| e.to_string())?,
        );
    }
    let sender = std::thread::spawn(move || -> Result<(), String> {
        for f in frames {
            writer.send_raw(&f)?;
        }
        Ok(())
    });
    let got = conn.collect(256)?;
    sender.join().map_err(|_| "sender panicked".to_owned())??;
    let mut seen = BTreeSet::new();
    for f in &got {
        let Some(want) = expect.get(&f.id) else {
            return Err(format!("PROTO-7: a reply for id {} which was never sent", f.id));
        };
        if !seen.insert(f.id) {
            return Err(format!("PROTO-6: id {} answered twice", f.id));
        }
        match (want, &f.response) {
            (None, Response::Written { .. }) => {}
            (Some(k), Response::Record(Some(r)))
                if r.key == base + k && r.value == format!("p{c}-{k}").into_bytes() => {}
            _ => {
                return Err(format!(
                    "PROTO-7: id {} got a reply that is not its own: {:?}",
                    f.id, f.response
                ));
            }
        }
    }
    if got.len() != 256 {
        return Err(format!("PROTO-6: {} of 256 pipelined requests answered", got.len()));
    }
    Ok(got.iter().zip(&order).filter(|(f, id)| f.id != **id).count())
}

pub(super) fn probe_out_of_order(socket: &Path) -> Result<String, String> {
    let mut c = Conn::open(socket)?;
    let key = PROBE_KEY_BASE + 7;
    c.call(1, Request::Write { key, value: b"small".to_vec(), options: opts(true) })?;
    let mut sent = Vec::new();
    for i in 0..4u64 {
        let id = 10 + i * 10;
        c.send(
            id,
            Request::Write {
                key: key + 1 + i,
                value: vec![i as u8; 512 << 10],
                options: opts(true),
            },
        )?;
        sent.push(id);
        for j in 1..=3 {
            c.send(id + j, Request::Read { key })?;
            sent.push(id + j);
        }
    }
    let got = c.collect(sent.len())?;
    let mut ids: Vec<u64> = got.iter().map(|f| f.id).collect();
    let reordered = ids.iter().zip(&sent).filter(|(a, b)| a != b).count();
    for f in &got {
        let ok = match f.id % 10 {
            0 => matches!(f.response, Response::Written { .. }),
            _ => matches!(&f.response, Response::Record(Some(r)) if r.value == b"small"),
        };
        if !ok {
            return Err(format!(
                "PROTO-7: id {} got a reply that is not its own: {:?}",
                f.id, f.response
            ));
        }
    }
    ids.sort_unstable();
    sent.sort_unstable();
    if ids != sent {
        return Err(format!("PROTO-6: sent ids {sent:?}, answered {ids:?}"));
    }
    Ok(format!(
        "{reordered} of {} replies out of order (reads may overtake flushed 512 KiB writes)",
        sent.len()
    ))
}

/// Runs every probe; one case each.
pub fn probes(socket: &Path) -> Vec<Case> {
    type Probe = fn(&Path) -> Result<String, String>;
    let list: [(&str, Probe); 6] = [
        ("PROTO-1/2 round trip", probe_round_trip),
        ("PROTO-3 oversized frame", probe_oversize),
        ("PROTO-4 malformed bodies", probe_malformed),
        ("PROTO-5/8 leaving mid-frame", probe_leaving),
        ("PROTO-6/7 pipelining", |s| probe_pipelining(s, 4)),
        ("PROTO-7 out-of-order replies", probe_out_of_order),
    ];
    list.iter()
        .map(|(name, f)| {
            let (info, failure) = match f(socket) {
                Ok(info) => (info, None),
                Err(e) => (String::new(), Some(e)),
            };
            Case { name: (*name).to_owned(), seed: None, info, failure }
        })
        .collect()
}
