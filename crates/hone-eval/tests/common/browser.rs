//! A real headless Chromium for tests, driven through chromedriver's W3C WebDriver HTTP API
//! (with `ureq`; no Node, no Selenium).
//!
//! Use it from a test file of this crate with
//!
//! ```ignore
//! #[path = "common/browser.rs"]
//! mod browser;
//!
//! #[test]
//! fn report_renders() {
//!     if browser::skip_if_unavailable() { return; }   // prints "SKIP: chromium not installed"
//!     let png = browser::artifacts_dir().join("report.png");
//!     browser::screenshot(&html_path, &png).unwrap();
//!     browser::check_png(&std::fs::read(&png).unwrap(), 5_000).unwrap();
//! }
//! ```
//!
//! or drive a page: [`Browser::launch`], [`Browser::open_file`], [`Browser::find`] /
//! [`Browser::click`] / [`Browser::type_text`] / [`Browser::press_key`], [`Browser::execute`],
//! [`Browser::wait_for_download`], [`Browser::screenshot_png`] / [`Browser::full_page_png`].
//!
//! Chromium and chromedriver are found at `$HONE_CHROMIUM` / `$HONE_CHROMEDRIVER`, else on
//! `PATH` (`chromium`, `chromium-browser`, `google-chrome`; `chromedriver`), else the Debian
//! paths `/usr/bin/chromium`, `/usr/bin/chromedriver`. CI installs Debian's `chromium` and
//! `chromium-driver` (`.ci/run`).
//!
//! Each [`Browser`] runs its own chromedriver on a free local port and a Chromium with a fresh
//! profile in a temporary folder, started with the flags a closed network needs (no background
//! networking, no component updates, no QUIC). Dropping it ends the session, kills chromedriver
//! and any Chromium process still using that profile. Browsers within one test binary run one at
//! a time (a process-wide lock), which keeps a 2-core machine responsive.
//!
//! The module allows dead code itself (each test binary uses only part of it): do not add
//! `#[allow(dead_code)]` to the `mod` line, clippy rejects the duplicate.

#![allow(dead_code)]

use std::fmt;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C key of an element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What went wrong with the browser.
#[derive(Debug)]
pub enum BrowserError {
    /// Chromium or chromedriver is not installed (tests should skip).
    NotInstalled(String),
    /// chromedriver answered with an error, or could not be reached.
    Driver(String),
    /// Waited too long for something.
    Timeout(String),
    /// A local file could not be read or written.
    Io(PathBuf, std::io::Error),
    /// A screenshot that is not a usable PNG.
    BadPng(String),
}

impl BrowserError {
    /// True for [`BrowserError::NotInstalled`].
    pub fn is_not_installed(&self) -> bool {
        matches!(self, BrowserError::NotInstalled(_))
    }
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrowserError::NotInstalled(m) => write!(f, "{m}"),
            BrowserError::Driver(m) => write!(f, "webdriver: {m}"),
            BrowserError::Timeout(m) => write!(f, "timed out: {m}"),
            BrowserError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            BrowserError::BadPng(m) => write!(f, "bad PNG: {m}"),
        }
    }
}

impl std::error::Error for BrowserError {}

/// Results of this module.
pub type BrowserResult<T> = Result<T, BrowserError>;

/// The two programs a [`Browser`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// The Chromium (or Chrome) binary.
    pub chromium: PathBuf,
    /// The matching chromedriver.
    pub chromedriver: PathBuf,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn from_env_or(var: &str, names: &[&str], fallbacks: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    on_path(names).or_else(|| fallbacks.iter().map(PathBuf::from).find(|p| p.is_file()))
}

/// The Chromium binary, if installed.
pub fn find_chromium() -> Option<PathBuf> {
    from_env_or(
        "HONE_CHROMIUM",
        &[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
        &["/usr/bin/chromium", "/usr/lib/chromium/chromium"],
    )
}

/// The chromedriver binary, if installed.
pub fn find_chromedriver() -> Option<PathBuf> {
    from_env_or(
        "HONE_CHROMEDRIVER",
        &["chromedriver"],
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    )
}

/// Both programs, or [`BrowserError::NotInstalled`] naming what is missing.
pub fn find_tools() -> BrowserResult<Tools> {
    match (find_chromium(), find_chromedriver()) {
        (Some(chromium), Some(chromedriver)) => Ok(Tools {
            chromium,
            chromedriver,
        }),
        (c, d) => Err(BrowserError::NotInstalled(format!(
            "chromium: {}, chromedriver: {}; apt-get install chromium chromium-driver",
            c.map(|p| p.display().to_string())
                .unwrap_or_else(|| "missing".into()),
            d.map(|p| p.display().to_string())
                .unwrap_or_else(|| "missing".into()),
        ))),
    }
}

/// True (after printing `SKIP: chromium not installed`) when Chromium or chromedriver is
/// missing; call it first in a browser test and return when it says so.
pub fn skip_if_unavailable() -> bool {
    match find_tools() {
        Ok(_) => false,
        Err(e) => {
            eprintln!("SKIP: chromium not installed ({e})");
            true
        }
    }
}

/// `target/test-artifacts` (or `$CARGO_TARGET_DIR/test-artifacts`), created if needed: where
/// tests keep screenshots for people to look at.
pub fn artifacts_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(t) if t.is_absolute() => t,
        Some(t) => root.join(t),
        None => root.join("target"),
    };
    let dir = target.join("test-artifacts");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A `file://` URL for a local path (made absolute, with unsafe bytes percent-encoded).
pub fn file_url(path: &Path) -> BrowserResult<String> {
    let abs = std::fs::canonicalize(path).map_err(|e| BrowserError::Io(path.into(), e))?;
    let mut url = String::from("file://");
    for &b in abs.to_string_lossy().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(url)
}

/// How to start a browser.
#[derive(Debug, Clone)]
pub struct Options {
    /// Window width in CSS pixels.
    pub width: u32,
    /// Window height in CSS pixels.
    pub height: u32,
    /// Where downloads go; `None`: a folder inside the browser's temporary profile, removed when
    /// the [`Browser`] is dropped (see [`Browser::download_dir`]).
    pub download_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 900,
            download_dir: None,
        }
    }
}

/// An element found on the page (a WebDriver element reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(pub String);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A headless Chromium session; ends (and kills its processes) on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: Option<String>,
    agent: ureq::Agent,
    profile: tempfile::TempDir,
    downloads: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts chromedriver and Chromium with [`Options::default`].
    pub fn launch() -> BrowserResult<Self> {
        Self::launch_with(Options::default())
    }

    /// Starts chromedriver and Chromium.
    pub fn launch_with(opts: Options) -> BrowserResult<Self> {
        let tools = find_tools()?;
        let lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let profile = tempfile::Builder::new()
            .prefix("hone-chromium-")
            .tempdir()
            .map_err(|e| BrowserError::Io(std::env::temp_dir(), e))?;
        let downloads = match opts.download_dir {
            Some(d) => d,
            None => profile.path().join("downloads"),
        };
        std::fs::create_dir_all(&downloads).map_err(|e| BrowserError::Io(downloads.clone(), e))?;
        let downloads = std::fs::canonicalize(&downloads)
            .map_err(|e| BrowserError::Io(downloads.clone(), e))?;
        let log_path = profile.path().join("chromedriver.log");
        let port = free_port()?;
        let log =
            std::fs::File::create(&log_path).map_err(|e| BrowserError::Io(log_path.clone(), e))?;
        let driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| BrowserError::Io(log_path.clone(), e))?,
            )
            .stderr(log)
            .spawn()
            .map_err(|e| BrowserError::Io(tools.chromedriver.clone(), e))?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build();
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            agent,
            profile,
            downloads,
            _lock: lock,
        };
        b.wait_ready(Duration::from_secs(30))
            .map_err(|e| BrowserError::Driver(format!("{e}; log: {}", b.driver_log())))?;
        let user_data = b.profile.path().join("profile");
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "goog:chromeOptions": {
                    "binary": tools.chromium,
                    "args": [
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--disable-dev-shm-usage",
                        "--hide-scrollbars",
                        "--force-device-scale-factor=1",
                        "--lang=en-US",
                        format!("--window-size={},{}", opts.width, opts.height),
                        format!("--user-data-dir={}", user_data.display()),
                    ],
                    "prefs": {
                        "download.default_directory": b.downloads,
                        "download.prompt_for_download": false,
                        "download.directory_upgrade": true,
                        "safebrowsing.enabled": false,
                    },
                },
            }}
        });
        let v = b
            .call("POST", "/session", Some(caps))
            .map_err(|e| BrowserError::Driver(format!("{e}; log: {}", b.driver_log())))?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| BrowserError::Driver(format!("no session id in {v}")))?;
        b.session = Some(id.to_string());
        let dl = b.downloads.display().to_string();
        b.cdp(
            "Browser.setDownloadBehavior",
            json!({ "behavior": "allow", "downloadPath": dl }),
        )?;
        Ok(b)
    }

    /// The folder downloads land in.
    pub fn download_dir(&self) -> &Path {
        &self.downloads
    }

    /// Navigates to `url` and waits for the page to load.
    pub fn goto(&self, url: &str) -> BrowserResult<()> {
        self.cmd("POST", "url", Some(json!({ "url": url })))
            .map(|_| ())
    }

    /// Opens a local file.
    pub fn open_file(&self, path: &Path) -> BrowserResult<()> {
        self.goto(&file_url(path)?)
    }

    /// Reloads the page.
    pub fn refresh(&self) -> BrowserResult<()> {
        self.cmd("POST", "refresh", Some(json!({}))).map(|_| ())
    }

    /// The page title.
    pub fn title(&self) -> BrowserResult<String> {
        Ok(self
            .cmd("GET", "title", None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> BrowserResult<Element> {
        let v = self.cmd(
            "POST",
            "element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        element_of(&v).ok_or_else(|| BrowserError::Driver(format!("`{css}`: no element in {v}")))
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, css: &str) -> BrowserResult<Vec<Element>> {
        let v = self.cmd(
            "POST",
            "elements",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(element_of).collect())
            .unwrap_or_default())
    }

    /// Waits until an element matches `css`.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> BrowserResult<Element> {
        let start = Instant::now();
        loop {
            match self.find(css) {
                Ok(e) => return Ok(e),
                Err(e) if start.elapsed() > timeout => {
                    return Err(BrowserError::Timeout(format!("waiting for `{css}`: {e}")))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Clicks an element, like a user (it must be visible and not covered).
    pub fn click(&self, el: &Element) -> BrowserResult<()> {
        self.cmd("POST", &format!("element/{}/click", el.0), Some(json!({})))
            .map(|_| ())
    }

    /// Finds the element matching `css` and clicks it.
    pub fn click_css(&self, css: &str) -> BrowserResult<()> {
        let el = self.find(css)?;
        self.click(&el)
    }

    /// Types text into an element (focusing it first).
    pub fn type_text(&self, el: &Element, text: &str) -> BrowserResult<()> {
        self.cmd(
            "POST",
            &format!("element/{}/value", el.0),
            Some(json!({ "text": text })),
        )
        .map(|_| ())
    }

    /// Clears an input.
    pub fn clear(&self, el: &Element) -> BrowserResult<()> {
        self.cmd("POST", &format!("element/{}/clear", el.0), Some(json!({})))
            .map(|_| ())
    }

    /// The element's rendered text.
    pub fn text(&self, el: &Element) -> BrowserResult<String> {
        let v = self.cmd("GET", &format!("element/{}/text", el.0), None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// A DOM property of the element (`value`, `checked`, ...).
    pub fn property(&self, el: &Element, name: &str) -> BrowserResult<Value> {
        self.cmd("GET", &format!("element/{}/property/{name}", el.0), None)
    }

    /// Whether a checkbox or radio button is checked.
    pub fn is_selected(&self, el: &Element) -> BrowserResult<bool> {
        let v = self.cmd("GET", &format!("element/{}/selected", el.0), None)?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// Presses and releases one key on whatever has focus (`"n"`, `"4"`, or a WebDriver key
    /// code such as `"\u{E007}"` for Enter).
    pub fn press_key(&self, key: &str) -> BrowserResult<()> {
        let actions = json!({ "actions": [{
            "type": "key", "id": "keyboard",
            "actions": [{ "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }],
        }]});
        self.cmd("POST", "actions", Some(actions))?;
        self.cmd("DELETE", "actions", None).map(|_| ())
    }

    /// Runs JavaScript in the page (`return ...` gives the value); `arguments[i]` are `args`.
    pub fn execute(&self, script: &str, args: &[Value]) -> BrowserResult<Value> {
        self.cmd(
            "POST",
            "execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> BrowserResult<Value> {
        self.cmd(
            "POST",
            "goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
    }

    /// Resizes the window.
    pub fn set_window_size(&self, width: u32, height: u32) -> BrowserResult<()> {
        self.cmd(
            "POST",
            "window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .map(|_| ())
    }

    /// A PNG of the viewport.
    pub fn screenshot_png(&self) -> BrowserResult<Vec<u8>> {
        let v = self.cmd("GET", "screenshot", None)?;
        base64_decode(v.as_str().unwrap_or_default())
    }

    /// A PNG of the whole page (up to `max_height` CSS pixels tall), beyond the viewport; scrolls
    /// to the top first.
    pub fn full_page_png(&self, max_height: u32) -> BrowserResult<Vec<u8>> {
        // From the top, so sticky headers sit where they belong.
        self.execute("window.scrollTo(0, 0)", &[])?;
        let m = self.cdp("Page.getLayoutMetrics", json!({}))?;
        let size = &m["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(1280.0).ceil();
        let height = size["height"]
            .as_f64()
            .unwrap_or(900.0)
            .ceil()
            .min(max_height as f64);
        let v = self.cdp(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
            }),
        )?;
        base64_decode(v["data"].as_str().unwrap_or_default())
    }

    /// Waits until `name` is fully downloaded into [`Browser::download_dir`] (present, no
    /// `.crdownload` beside it, size stable), and returns its path.
    pub fn wait_for_download(&self, name: &str, timeout: Duration) -> BrowserResult<PathBuf> {
        let path = self.downloads.join(name);
        let partial = self.downloads.join(format!("{name}.crdownload"));
        let start = Instant::now();
        let mut last = None;
        loop {
            if path.is_file() && !partial.exists() {
                let len = std::fs::metadata(&path).map(|m| m.len()).ok();
                if len.is_some() && len == last && len != Some(0) {
                    return Ok(path);
                }
                last = len;
            }
            if start.elapsed() > timeout {
                let seen: Vec<String> = std::fs::read_dir(&self.downloads)
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                return Err(BrowserError::Timeout(format!(
                    "download {} (folder has: {seen:?})",
                    path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// chromedriver's log so far (its last 4 KB).
    pub fn driver_log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.profile.path().join("chromedriver.log")) {
            let _ = f.read_to_string(&mut s);
        }
        let cut = s.len().saturating_sub(4096);
        let cut = (cut..s.len())
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(s.len());
        s[cut..].to_string()
    }

    fn wait_ready(&mut self, timeout: Duration) -> BrowserResult<()> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(BrowserError::Driver(format!(
                    "chromedriver exited: {status}"
                )));
            }
            if let Ok(v) = self.call("GET", "/status", None) {
                if v["ready"].as_bool() == Some(true) {
                    return Ok(());
                }
            }
            if start.elapsed() > timeout {
                return Err(BrowserError::Timeout("chromedriver to start".into()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A command of the current session.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> BrowserResult<Value> {
        let session = self
            .session
            .as_deref()
            .ok_or_else(|| BrowserError::Driver("no session".into()))?;
        self.call(method, &format!("/session/{session}/{path}"), body)
    }

    /// One WebDriver request; returns its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> BrowserResult<Value> {
        let url = format!("{}{path}", self.base);
        let req = self.agent.request(method, &url);
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let v: Value = r.into_json().unwrap_or(Value::Null);
                return Err(BrowserError::Driver(format!(
                    "{method} {path}: HTTP {code}: {}: {}",
                    v["value"]["error"].as_str().unwrap_or("error"),
                    v["value"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .lines()
                        .next()
                        .unwrap_or_default()
                )));
            }
            Err(e) => return Err(BrowserError::Driver(format!("{method} {path}: {e}"))),
        };
        let mut v: Value = resp
            .into_json()
            .map_err(|e| BrowserError::Driver(format!("{method} {path}: {e}")))?;
        Ok(v["value"].take())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = self
                .agent
                .request("DELETE", &format!("{}/session/{s}", self.base))
                .timeout(Duration::from_secs(10))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_processes_using(self.profile.path());
    }
}

/// Kills (by pid) every process whose command line mentions `marker`: the Chromium processes of
/// one profile, should any outlive their chromedriver.
fn kill_processes_using(marker: &Path) {
    let marker = marker.to_string_lossy().into_owned();
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&marker) {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn free_port() -> BrowserResult<u16> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BrowserError::Io(PathBuf::from("127.0.0.1:0"), e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| BrowserError::Io(PathBuf::from("127.0.0.1:0"), e))
}

fn element_of(v: &Value) -> Option<Element> {
    v.get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .map(|s| Element(s.to_string()))
}

/// Standard base64 (with or without padding) to bytes.
fn base64_decode(s: &str) -> BrowserResult<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return Err(BrowserError::BadPng(format!("bad base64 byte {c:#x}"))),
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Checks that `bytes` is a PNG (signature and IHDR) of at least `min_bytes`, and returns its
/// width and height.
pub fn check_png(bytes: &[u8], min_bytes: usize) -> BrowserResult<(u32, u32)> {
    const SIG: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    if bytes.len() < 33 || bytes[..8] != SIG || &bytes[12..16] != b"IHDR" {
        return Err(BrowserError::BadPng("no PNG signature and IHDR".into()));
    }
    if bytes.len() < min_bytes {
        return Err(BrowserError::BadPng(format!(
            "{} bytes, expected at least {min_bytes}: a blank page?",
            bytes.len()
        )));
    }
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if w == 0 || h == 0 {
        return Err(BrowserError::BadPng(format!("{w}×{h}")));
    }
    Ok((w, h))
}

/// Renders a local HTML file in headless Chromium (1280 px wide) and writes a PNG of the whole
/// page (up to 8000 px tall) to `png_out`, creating its folder. Returns the PNG's width and
/// height. [`BrowserError::NotInstalled`] when Chromium is missing: check
/// [`skip_if_unavailable`] first.
pub fn screenshot(html_path: &Path, png_out: &Path) -> BrowserResult<(u32, u32)> {
    let b = Browser::launch()?;
    b.open_file(html_path)?;
    // Let fonts and layout settle.
    b.execute(
        "return document.fonts ? document.fonts.ready.then(() => true) : true",
        &[],
    )
    .ok();
    let png = b.full_page_png(8000)?;
    let dims = check_png(&png, 1)?;
    if let Some(dir) = png_out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| BrowserError::Io(dir.into(), e))?;
    }
    std::fs::write(png_out, &png).map_err(|e| BrowserError::Io(png_out.into(), e))?;
    Ok(dims)
}
