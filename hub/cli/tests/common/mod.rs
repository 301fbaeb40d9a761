//! What the `gridhub` binary's tests share: running the binary in a directory, and
//! `gridhub serve` on free ports with its log kept.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// Run `gridhub` in `cwd`, with no config or audit key from the test's environment.
pub fn gridhub(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gridhub"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GRIDHUB_CONFIG")
        .env_remove("GRIDHUB_AUDIT_KEY")
        .output()
        .expect("run gridhub")
}

/// `gridhub audit -f csv search` as the auditor `by`, for the records of `principal`.
#[allow(dead_code)] // Not every test binary searches the audit log.
pub fn audit_search_csv(by: &str, principal: &str, cwd: &Path) -> Output {
    gridhub(
        &[
            "audit",
            "-f",
            "csv",
            "search",
            "--by",
            by,
            "--principal",
            principal,
        ],
        cwd,
    )
}

/// A `gridhub serve` child and the lines it has logged; killed if the test ends before it
/// stops it.
pub struct Server(pub std::process::Child, Arc<Mutex<Vec<String>>>);

impl Server {
    /// What the server has logged so far (its stderr).
    #[allow(dead_code)] // Not every test binary reads the server's log.
    pub fn log(&self) -> String {
        self.1.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gridhub serve` of the config in `cwd` on free ports (other tests may serve the demo's),
/// and the URL it listens on.
#[allow(dead_code)] // not every test binary that shares this module serves
pub fn serve(cwd: &Path) -> (Server, String) {
    serve_with(cwd, &[])
}

/// [`serve`] with environment variables set for the server (its limits, e.g.
/// `GRIDHUB_QUERY_TIMEOUT_SECS`).
pub fn serve_with(cwd: &Path, env: &[(&str, &str)]) -> (Server, String) {
    use std::io::{BufRead, BufReader};
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_gridhub"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .current_dir(cwd)
            .env_remove("GRIDHUB_CONFIG")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start gridhub serve"),
        log.clone(),
    );
    let mut lines = BufReader::new(server.0.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("gridhub serve ended before it listened")
            .unwrap();
        if let Some(rest) = line.split(" on ").nth(1)
            && line.starts_with("gridhub serving")
        {
            break rest.split(' ').next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            log.lock().unwrap().push(line);
        }
    });
    (server, url)
}
