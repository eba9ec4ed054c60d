//! An implementation under test as a child process speaking JSON lines (`specs/conform.md`,
//! CONF-1): requests on its standard input, responses on its standard output, its standard
//! error passed through.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

/// How long one response may take before the implementation counts as hung.
pub const RESPONSE_TIMEOUT_MS: u64 = 20_000;

/// Why talking to the implementation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// It could not be started or written to.
    #[error("implementation I/O: {0}")]
    Io(#[from] std::io::Error),
    /// It closed its standard output (exited or crashed).
    #[error("implementation closed its output")]
    Closed,
    /// It did not answer in time.
    #[error("implementation did not answer within {RESPONSE_TIMEOUT_MS} ms")]
    Timeout,
    /// It wrote a line that is not a JSON object with the request's id.
    #[error("implementation wrote a bad response line: {0}")]
    BadLine(String),
}

/// A running implementation.
pub struct Iut {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    next_id: u64,
}

impl Iut {
    /// Starts `sh -c CMD` with `CELLAR_CONFORM_DIR` set to `state_dir`, in a process group of
    /// its own (so a kill reaches the implementation, not just the shell around it).
    pub fn start(cmd: &str, state_dir: &std::path::Path) -> Result<Self, ProcessError> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("sh")
            .process_group(0)
            .arg("-c")
            .arg(cmd)
            .env("CELLAR_CONFORM_DIR", state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().ok_or(ProcessError::Closed)?;
        let stdout = child.stdout.take().ok_or(ProcessError::Closed)?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, stdin, lines, next_id: 1 })
    }

    /// Sends `request` (an object; its `id` is set here) and waits for its response.
    pub fn call(&mut self, request: Value) -> Result<Value, ProcessError> {
        let id = self.send(request)?;
        self.receive(id)
    }

    /// Sends `request` without waiting; returns its id.
    pub fn send(&mut self, mut request: Value) -> Result<u64, ProcessError> {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(o) = request.as_object_mut() {
            o.insert("id".to_owned(), Value::from(id));
        }
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        Ok(id)
    }

    /// Waits for the response to request `id` (the next line: one request in flight).
    pub fn receive(&mut self, id: u64) -> Result<Value, ProcessError> {
        let line = match self.lines.recv_timeout(Duration::from_millis(RESPONSE_TIMEOUT_MS)) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => return Err(ProcessError::Timeout),
            Err(RecvTimeoutError::Disconnected) => return Err(ProcessError::Closed),
        };
        let v: Value =
            serde_json::from_str(&line).map_err(|_| ProcessError::BadLine(line.clone()))?;
        if v.get("id").and_then(Value::as_u64) != Some(id) {
            return Err(ProcessError::BadLine(line));
        }
        Ok(v)
    }

    /// Kills the process group at once (SIGKILL) and reaps the shell.
    pub fn kill(mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group the child leads
            // (`process_group(0)` at spawn); it touches no memory of ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes its input and waits for it to exit.
    pub fn finish(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}
