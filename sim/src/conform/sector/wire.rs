//! The server process the harness starts and kills, and a raw protocol connection to it.

use super::*;

/// The server under test, when the harness starts it (`--restart`).
pub(super) struct ServerProc {
    pub(super) cmd: String,
    pub(super) socket: PathBuf,
    pub(super) log: PathBuf,
    pub(super) child: Option<Child>,
}

pub(super) fn signal_group(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads
        // (`process_group(0)` at spawn); it touches no memory of ours.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

impl ServerProc {
    pub(super) fn start(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(&self.cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {:?}: {e}", self.cmd))?;
        self.child = Some(child);
        self.wait_ready()
    }

    pub(super) fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "the server exited ({status}) before accepting connections; its output is in \
                     {}",
                    self.log.display()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server did not accept connections on {} within {START_TIMEOUT_MS} ms",
                    self.socket.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the server's whole process group.
    pub(super) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal_group(&c, libc::SIGKILL);
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (PROTO-10); the exit status of the command.
    pub(super) fn terminate(&mut self) -> Result<std::process::ExitStatus, String> {
        let Some(mut c) = self.child.take() else {
            return Err("no server running".into());
        };
        signal_group(&c, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    signal_group(&c, libc::SIGKILL);
                    let _ = c.wait();
                    return Err(format!(
                        "the server did not exit within {START_TIMEOUT_MS} ms of SIGTERM"
                    ));
                }
            }
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(super) struct Conn {
    pub(super) stream: UnixStream,
}

impl Conn {
    pub(super) fn open(socket: &Path) -> Result<Conn, String> {
        let stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_millis(REPLY_TIMEOUT_MS)))
            .map_err(|e| e.to_string())?;
        Ok(Conn { stream })
    }

    pub(super) fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(|e| format!("send: {e}"))
    }

    pub(super) fn send(&mut self, id: u64, request: Request) -> Result<(), String> {
        let bytes =
            encode_request_frame(&RequestFrame { id, request }).map_err(|e| e.to_string())?;
        self.send_raw(&bytes)
    }

    /// The next reply; `None` when the server closed the connection.
    pub(super) fn recv(&mut self) -> Result<Option<ResponseFrame>, String> {
        match read_frame_body(&mut self.stream) {
            Ok(ReadFrame::Body(b)) => decode_response_body(&b).map(Some).map_err(|e| {
                format!("PROTO-2: the server sent a response that does not decode: {e}")
            }),
            Ok(ReadFrame::Eof) => Ok(None),
            Ok(ReadFrame::Truncated) => {
                Err("PROTO-5: the server's stream ended inside a frame".into())
            }
            Ok(ReadFrame::TooLarge { length_bytes }) => {
                Err(format!("PROTO-1: the server sent a frame of {length_bytes} bytes"))
            }
            Err(e) => Err(format!("no reply within {REPLY_TIMEOUT_MS} ms ({e})")),
        }
    }

    pub(super) fn call(&mut self, id: u64, request: Request) -> Result<Response, String> {
        self.send(id, request)?;
        match self.recv()? {
            Some(f) if f.id == id => Ok(f.response),
            Some(f) => Err(format!(
                "PROTO-7: asked with id {id}, answered with id {}: {:?}",
                f.id, f.response
            )),
            None => Err("the server closed the connection".into()),
        }
    }

    /// Replies until `n` have come or the server closes; the ids in arrival order.
    pub(super) fn collect(&mut self, n: usize) -> Result<Vec<ResponseFrame>, String> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.recv()? {
                Some(f) => out.push(f),
                None => break,
            }
        }
        Ok(out)
    }
}

pub(super) fn body_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

pub(super) fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

pub(super) fn is_error(r: &Response, kind: ErrorKind) -> bool {
    matches!(r, Response::Error(e) if e.kind == kind)
}

pub(super) fn opts(flush: bool) -> WriteOptions {
    WriteOptions { flush, ..WriteOptions::default() }
}
