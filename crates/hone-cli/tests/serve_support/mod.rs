//! What the `hone serve` tests through the binary share: the model check, and a server child
//! process that is killed when the guard drops (on failure too).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Whether smollm2 is in the cache; prints why the test is skipped when it is not.
pub fn model_cached() -> bool {
    let ok = hone_model::fetch::known_model("smollm2")
        .map(|m| m.cached_path().is_file())
        .unwrap_or(false);
    if !ok {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
    }
    ok
}

/// A running `hone serve`; killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `hone serve ARGS --port 0` and waits (up to `HONE_SERVE_START_SECS`, default
    /// 180 s) for its `listening on http://...` line.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with_env(args, &[])
    }

    /// [`Server::start`] with `env` (NAME, VALUE) set on the child (an admin key, say).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr_path = dir.path().join("serve.stderr");
        let err = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hone"))
            .arg("serve")
            .args(args)
            .args(["--port", "0"])
            .env("HONE_THREADS", "2")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("hone serve starts");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keeps draining stdout after the ready line so the server never blocks on it.
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let secs = std::env::var("HONE_SERVE_START_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(180);
        let mut server = Server {
            child,
            base: String::new(),
            port: 0,
            stderr_path,
            _dir: dir,
        };
        match rx.recv_timeout(Duration::from_secs(secs)) {
            Ok(url) => {
                server.port = url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("no port in `{url}`"));
                server.base = url;
            }
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                panic!(
                    "hone serve did not print its listening line within {secs} s (exit: {status:?}); \
                     stderr:\n{}",
                    server.stderr()
                );
            }
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Kills the process at once (SIGKILL: no drain, no shutdown) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory of the server process (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let err = self.stderr();
            let tail: String = err
                .chars()
                .rev()
                .take(4000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!("--- hone serve stderr (tail) ---\n{tail}\n--- end ---");
        }
    }
}
