//! What the `gridhub` binary's tests share: running the binary in a directory, and
//! `gridhub serve` on free ports.

use std::path::Path;
use std::process::{Command, Output};

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

/// A `gridhub serve` child; killed if the test ends before it stops it.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gridhub serve` of the config in `cwd` on free ports (other tests may serve the demo's),
/// and the URL it listens on.
pub fn serve(cwd: &Path) -> (Server, String) {
    use std::io::{BufRead, BufReader};
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
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start gridhub serve"),
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
    std::thread::spawn(move || for _ in lines {});
    (server, url)
}
