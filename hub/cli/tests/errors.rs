//! Errors as a user of the `gridhub` binary reads them, locally (`query --as P`) and from a
//! running hub (`query --server URL --token T`): each fails with a failing exit status and
//! one `error:` line that says what to change — the tables the principal may read, the line
//! and column of a syntax error, what would allow a denied read, the setting of a timeout or
//! memory limit, the accepted forms of a bad time. An internal error of a running hub reaches the user as an id only, which
//! the server's log has with the details.

mod common;

use std::path::Path;
use std::process::Output;

use common::{gridhub, serve_with};

/// The demo's principals this file queries as.
const VOLUNTEER: &str = "zhou.volunteer";
const CITY_ANALYST: &str = "wang.city";
const AUDITOR: &str = "wu.audit";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one error line of a failed run.
fn failure(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let text = stderr(o);
    let line = text
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{text}"));
    line.to_string()
}

fn demo(cwd: &Path) {
    let out = gridhub(&["demo", "--scale", "1000"], cwd);
    assert!(out.status.success(), "demo failed: {}", stderr(&out));
}

fn issue(cwd: &Path, principal: &str) -> String {
    let out = gridhub(&["token", "issue", "--principal", principal], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Where a query runs: on the config in the directory, or on a server with a token.
enum Target<'a> {
    Local,
    Server { url: &'a str, token: &'a str },
}

fn query(cwd: &Path, target: &Target, principal: &str, sql: &str) -> Output {
    match target {
        Target::Local => gridhub(&["query", "--as", principal, sql], cwd),
        Target::Server { url, token } => {
            gridhub(&["query", "--server", url, "--token", token, sql], cwd)
        }
    }
}

/// The cases that read the same locally and remotely.
fn unknown_syntax_and_denied(cwd: &Path, volunteer: &Target, analyst: &Target) {
    let line = failure(&query(
        cwd,
        volunteer,
        VOLUNTEER,
        "SELECT name FROM persons",
    ));
    assert!(line.contains("unknown table 'persons'"), "{line}");
    assert!(line.contains("person"), "{line}");
    assert!(
        !line.contains("health_record"),
        "a table the volunteer may not read: {line}"
    );

    let line = failure(&query(
        cwd,
        analyst,
        CITY_ANALYST,
        "SELECT name\nFORM person",
    ));
    assert!(
        line.starts_with("error: SQL error at line 2, column 6:"),
        "{line}"
    );

    let line = failure(&query(
        cwd,
        volunteer,
        VOLUNTEER,
        "SELECT * FROM health_record",
    ));
    assert!(line.starts_with("error: access denied: "), "{line}");
    assert!(line.contains(DENIED_HINT), "{line}");
}

/// `audit search --since` a time that is not one: the text and the accepted forms, not a
/// SQL error.
fn bad_time(out: &Output) {
    let line = failure(out);
    assert!(line.contains("'yesterday' is not a time"), "{line}");
    assert!(
        line.contains("RFC 3339, e.g. 2026-12-01T08:00:00+08:00"),
        "{line}"
    );
    assert!(!line.contains("SQL"), "{line}");
}

/// What a denial says would allow the read.
const DENIED_HINT: &str = "needs role";

#[test]
fn local_query_errors_say_what_to_change() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    demo(cwd);
    unknown_syntax_and_denied(cwd, &Target::Local, &Target::Local);
    bad_time(&gridhub(
        &["audit", "search", "--by", AUDITOR, "--since", "yesterday"],
        cwd,
    ));

    // Locally the operator runs the hub: an internal error names its cause.
    let anchor = break_the_audit_anchor(cwd);
    let line = failure(&query(cwd, &Target::Local, CITY_ANALYST, "SELECT 1"));
    assert!(line.contains(&anchor), "{line}");
}

#[test]
fn server_query_errors_say_what_to_change() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    demo(cwd);
    let (server, url) = serve_with(cwd, &[]);
    let volunteer = issue(cwd, VOLUNTEER);
    let analyst = issue(cwd, CITY_ANALYST);
    unknown_syntax_and_denied(
        cwd,
        &Target::Server {
            url: &url,
            token: &volunteer,
        },
        &Target::Server {
            url: &url,
            token: &analyst,
        },
    );
    let auditor = issue(cwd, AUDITOR);
    bad_time(&gridhub(
        &[
            "audit",
            "--server",
            &url,
            "--token",
            &auditor,
            "search",
            "--since",
            "yesterday",
        ],
        cwd,
    ));

    // The running hub's audit log breaks: the query is refused with an id only.
    let anchor = break_the_audit_anchor(cwd);
    let line = failure(&query(
        cwd,
        &Target::Server {
            url: &url,
            token: &analyst,
        },
        CITY_ANALYST,
        "SELECT count(*) FROM person",
    ));
    let id = line
        .strip_prefix("error: internal error ")
        .and_then(|rest| rest.strip_suffix(" (the hub's log has the details)"))
        .unwrap_or_else(|| panic!("not an id only: {line}"));
    assert_eq!(id.len(), 16, "{line}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    let log = server.log();
    let logged = log
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("id {id} not in the server's log:\n{log}"));
    assert!(logged.contains(&anchor), "the cause is logged: {logged}");
}

#[test]
fn server_limits_name_their_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    demo(cwd);
    let (_server, url) = serve_with(
        cwd,
        &[
            ("GRIDHUB_QUERY_TIMEOUT_SECS", "1"),
            ("GRIDHUB_QUERY_MEMORY_MB", "1"),
        ],
    );
    let analyst = issue(cwd, CITY_ANALYST);
    let remote = Target::Server {
        url: &url,
        token: &analyst,
    };

    // Runs for minutes, in little memory: stopped at the deadline.
    let line = failure(&query(
        cwd,
        &remote,
        CITY_ANALYST,
        "SELECT count(*) FROM person a CROSS JOIN person b CROSS JOIN person c \
         WHERE a.name <> c.name",
    ));
    assert!(line.contains("[server] query_timeout_secs"), "{line}");
    assert!(line.ends_with("(DeadlineExceeded)"), "{line}");

    // An aggregate without groups keeps every name of a million rows: far over 1 MiB.
    let line = failure(&query(
        cwd,
        &remote,
        CITY_ANALYST,
        "SELECT array_agg(a.name) FROM person a CROSS JOIN person b",
    ));
    assert!(line.contains("Resources exhausted"), "{line}");
    assert!(line.ends_with("(ResourceExhausted)"), "{line}");
}

/// Replace the audit log's head anchor of the demo hub by a directory (as a full or broken
/// disk would leave it unwritable); returns the anchor's file name.
fn break_the_audit_anchor(cwd: &Path) -> String {
    let state = cwd.join("gridhub-demo/.gridhub");
    let anchor = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".db.head"))
        .unwrap_or_else(|| panic!("no head anchor in {}", state.display()));
    std::fs::remove_file(&anchor).unwrap();
    std::fs::create_dir(&anchor).unwrap();
    anchor.file_name().unwrap().to_string_lossy().into_owned()
}
