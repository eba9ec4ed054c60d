//! The models stay browsable: for every model `cellar check --list` names, start
//! `cellar check --model M --explore 127.0.0.1:PORT` (stateright's Explorer) and load, in headless
//! Chromium, the Explorer's page for the state reached from the first initial state by its first
//! enabled action (`/#/steps/0/I`). The dumped DOM must show that state in the model's own words
//! (the text `/.states/0` serves for it) and the action in the path, not the initial page.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it). Without it the test prints a line and
//! passes, unless `CI` is set: then a missing browser is a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "chromium";
/// How long the Explorer may take to start listening.
const SERVE_WAIT_MAX: Duration = Duration::from_secs(30);

fn cellar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cellar"))
}

fn chromium_present() -> bool {
    Command::new(CHROMIUM)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Models as `cellar check --list` prints them (`model NAME` lines).
fn models() -> Vec<String> {
    let out = cellar().args(["check", "--list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().filter_map(|l| l.strip_prefix("model ")).map(|m| m.trim().to_string()).collect()
}

/// A port nobody listens on now (the Explorer binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The Explorer of `model` on 127.0.0.1, once it answers.
struct Explorer {
    child: Child,
    port: u16,
}

impl Explorer {
    fn start(model: &str) -> Self {
        let port = free_port();
        let child = cellar()
            .args(["check", "--model", model, "--explore", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut explorer = Self { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = explorer.child.try_wait().unwrap() {
                panic!("{model}: the Explorer exited with {status}");
            }
            assert!(started.elapsed() < SERVE_WAIT_MAX, "{model}: the Explorer never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        explorer
    }

    /// GET `path`: the response body.
    fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "{path}: {head}");
        body.to_string()
    }
}

impl Drop for Explorer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DOM Chromium renders for `url` once the page's scripts have run.
fn dump_dom(url: &str, profile: &std::path::Path) -> String {
    let out = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Element text as the DOM serialiser escapes it.
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\u{a0}', "&nbsp;")
}

/// Visits one model's Explorer: the state after the first enabled action from init 0.
fn visit(model: &str, profile: &std::path::Path) {
    let explorer = Explorer::start(model);
    let inits: serde_json::Value = serde_json::from_str(&explorer.get("/.states")).unwrap();
    let init_state = inits[0]["state"].as_str().unwrap_or_else(|| panic!("{model}: {inits}"));
    let next: serde_json::Value = serde_json::from_str(&explorer.get("/.states/0")).unwrap();
    let step = next
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"].is_string())
        .unwrap_or_else(|| panic!("{model}: no enabled action from the initial state: {next}"));
    let index = step["actionIndex"].as_u64().unwrap();
    let action = step["action"].as_str().unwrap();
    // The page shows the step's outcome when the model describes one, else the state.
    let shown = step["outcome"].as_str().or(step["state"].as_str()).unwrap();
    assert_ne!(shown, init_state, "{model}: the action must change the state");
    let url = format!("http://127.0.0.1:{}/#/steps/0/{index}", explorer.port);
    let dom = dump_dom(&url, profile);
    assert!(
        dom.contains(&html_text(shown)),
        "{model}: the page at {url} does not show the state after {action}:\n{shown}\n--- DOM:\n{dom}"
    );
    assert!(
        dom.contains(&format!(">{}</a>", html_text(action))),
        "{model}: {action} not in the path"
    );
    assert!(dom.contains(">Init 0</a>"), "{model}: the path does not start at Init 0");
    println!("{model}: {url} shows the state after {action}");
}

#[test]
fn every_model_is_browsable_in_the_explorer() {
    if !chromium_present() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but `{CHROMIUM}` is not installed");
        println!("skipping: `{CHROMIUM}` is not installed (apt-get install -y chromium)");
        return;
    }
    let models = models();
    assert!(models.len() >= 3, "{models:?}");
    let profile = tempfile::tempdir().unwrap();
    for model in &models {
        visit(model, profile.path());
    }
}
