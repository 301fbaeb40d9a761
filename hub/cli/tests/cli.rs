//! The `gridhub` binary as a user runs it: demo, query formats, catalog, and errors that
//! are one clear sentence with a failing exit code.

mod common;

use std::process::{Command, Output};

use common::{audit_search_csv, gridhub};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_then_query_catalog_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();

    // The demo on its default directory, at a small scale.
    let out = gridhub(&["demo", "--scale", "2000"], cwd);
    assert!(out.status.success(), "demo failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Generating a synthetic city of 2000 persons"),
        "{text}"
    );
    for title in ["独居老人", "健康码", "电话不一致", "被拒绝"] {
        assert!(text.contains(title), "showcase {title} missing:\n{text}");
    }
    // The showcase again as principals, and a refusal with its reason.
    assert!(text.contains("As chen.community"), "{text}");
    assert!(text.contains("As zhou.volunteer"), "{text}");
    assert!(text.contains("refused: "), "{text}");
    assert!(cwd.join("gridhub-demo/gridhub.toml").exists());

    // Twice: the data is reused.
    let out = gridhub(&["demo", "--scale", "2000"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Reusing the synthetic city"),
        "{}",
        stdout(&out)
    );

    // With principals in the config, a query must say who runs it.
    let out = gridhub(&["query", "SELECT 1"], cwd);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--as ID"), "{}", stderr(&out));
    let out = gridhub(&["principals", "-f", "csv"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().count(),
        12,
        "header + one principal per role + a second security officer"
    );

    // `query` finds the demo config by default; formats.
    let out = gridhub(
        &[
            "query",
            "--as",
            "li.district",
            "--format",
            "csv",
            "SELECT code, name FROM admin_unit WHERE level = 'district' ORDER BY code",
        ],
        cwd,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("code,name"));
    assert_eq!(lines.count(), 2, "two districts: {csv}");

    let out = gridhub(
        &[
            "query",
            "--as",
            "li.district",
            "-f",
            "json",
            "SELECT count(*) AS n FROM person",
        ],
        cwd,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json = stdout(&out);
    assert!(json.trim_start().starts_with("[{\"n\":"), "{json}");

    // Chinese text in a table stays aligned: every line of the table has the same width.
    let out = gridhub(
        &[
            "query",
            "--as",
            "li.district",
            "SELECT code, name FROM admin_unit ORDER BY code",
        ],
        cwd,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("社区"), "{table}");
    let widths: Vec<usize> = table
        .lines()
        .filter(|l| l.starts_with('│') || l.starts_with('┌') || l.starts_with('└'))
        .map(unicode_width)
        .collect();
    assert!(
        widths.windows(2).all(|w| w[0] == w[1]),
        "ragged table:\n{table}"
    );

    let out = gridhub(&["catalog"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    let cat = stdout(&out);
    for s in [
        "community_register",
        "property_a",
        "property_b",
        "district_health",
        "city_population",
        "party_service",
        "sensor_feed",
    ] {
        assert!(cat.contains(s), "catalog lacks {s}:\n{cat}");
    }

    // Errors: one sentence on stderr, failing exit code.
    let out = gridhub(
        &["query", "--as", "li.district", "SELECT * FROM persons"],
        cwd,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with("error: unknown table 'persons' (known tables: "),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let out = gridhub(
        &["query", "--as", "li.district", "SELECT * FROM person WHERE"],
        cwd,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("SQL error"), "{}", stderr(&out));

    let out = gridhub(&["query", "--config", "nope.toml", "SELECT 1"], cwd);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("config file not found: nope.toml"),
        "{}",
        stderr(&out)
    );
}

/// Display width of a line, counting CJK characters as two columns.
/// `gridhub bench policy` keeps working (at a tiny scale: the figures are meaningless here,
/// only that every step runs, the governed answer equals the operator's, and the bench
/// dir's policy is restored).
#[test]
fn bench_policy_runs_at_a_small_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bench");
    let dir_arg = dir.to_str().unwrap();
    let args = [
        "bench", "policy", "--scale", "300", "--dir", dir_arg, "--runs", "1",
    ];
    let out = gridhub(&args, tmp.path());
    assert!(out.status.success(), "bench failed: {}", stderr(&out));
    let text = stdout(&out);
    for line in ["governed plan, warm", "policies on (city-wide worker)"] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    let config = dir.join("gridhub.toml");
    let out = gridhub(
        &[
            "policy",
            "--config",
            config.to_str().unwrap(),
            "history",
            "--by",
            "qian.security",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let history = stdout(&out);
    assert!(history.contains("bench: 10,000 lines"), "{history}");
    assert!(history.contains("rollback to 1"), "{history}");
}

fn unicode_width(line: &str) -> usize {
    line.chars()
        .map(|c| {
            let cp = c as u32;
            if (0x1100..=0x115F).contains(&cp)
                || (0x2E80..=0xA4CF).contains(&cp)
                || (0xAC00..=0xD7A3).contains(&cp)
                || (0xF900..=0xFAFF).contains(&cp)
                || (0xFF00..=0xFF60).contains(&cp)
            {
                2
            } else {
                1
            }
        })
        .sum()
}

/// `gridhub serve` on the demo config, and the CLI's remote mode: a token from
/// `gridhub token issue`, then `query`, `catalog`, `policy history` and `audit search` with
/// `--server` print what the local commands print; a revoked token is refused; SIGTERM
/// stops the server cleanly.
#[test]
fn serve_and_remote_cli_agree_with_local() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let out = gridhub(&["demo", "--scale", "2000"], cwd);
    assert!(out.status.success(), "demo failed: {}", stderr(&out));

    let (mut server, url) = common::serve(cwd);

    let issue = |who: &str| {
        let out = gridhub(&["token", "issue", "--principal", who], cwd);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let zhao = issue("zhao.street");
    let sql = "SELECT name, phone, area_code FROM person ORDER BY name, phone";
    let local = gridhub(&["query", "--as", "zhao.street", "-f", "csv", sql], cwd);
    assert!(local.status.success(), "{}", stderr(&local));
    let remote = gridhub(
        &[
            "query", "--server", &url, "--token", &zhao, "-f", "csv", sql,
        ],
        cwd,
    );
    assert!(remote.status.success(), "{}", stderr(&remote));
    assert!(stdout(&local).lines().count() > 1);
    assert_eq!(
        stdout(&remote),
        stdout(&local),
        "remote and local query differ"
    );

    let local = gridhub(&["catalog", "--columns", "--as", "zhao.street"], cwd);
    let remote = gridhub(
        &["catalog", "--columns", "--server", &url, "--token", &zhao],
        cwd,
    );
    assert!(remote.status.success(), "{}", stderr(&remote));
    assert_eq!(
        stdout(&remote),
        stdout(&local),
        "remote and local catalog differ"
    );

    let qian = issue("qian.security");
    let local = gridhub(&["policy", "history", "--by", "qian.security"], cwd);
    let remote = gridhub(
        // Remote flags may follow the subcommand.
        &["policy", "history", "--server", &url, "--token", &qian],
        cwd,
    );
    assert!(remote.status.success(), "{}", stderr(&remote));
    assert_eq!(stdout(&remote), stdout(&local), "policy history differs");
    // Remotely the token acts: --by is refused rather than trusted.
    let out = gridhub(
        &[
            "policy",
            "--server",
            &url,
            "--token",
            &zhao,
            "history",
            "--by",
            "qian.security",
        ],
        cwd,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("drop --by"), "{}", stderr(&out));
    // A street officer may not read it.
    let out = gridhub(
        &["policy", "--server", &url, "--token", &zhao, "history"],
        cwd,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("zhao.street (roles street_officer) may not"),
        "{}",
        stderr(&out)
    );

    let wu = issue("wu.audit");
    let local = audit_search_csv("wu.audit", "zhao.street", cwd);
    let remote = gridhub(
        &[
            "audit",
            "--server",
            &url,
            "--token",
            &wu,
            "-f",
            "csv",
            "search",
            "--principal",
            "zhao.street",
        ],
        cwd,
    );
    assert!(local.status.success(), "{}", stderr(&local));
    assert!(remote.status.success(), "{}", stderr(&remote));
    assert_eq!(stdout(&remote), stdout(&local), "audit search differs");
    assert!(stdout(&local).contains(sql), "{}", stdout(&local));

    // Revoked: refused from the next call on. (`--config` is global: after the leaf too.)
    let out = gridhub(
        &["token", "list", "--config", "gridhub-demo/gridhub.toml"],
        cwd,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out)
        .lines()
        .find(|l| l.contains("zhao.street"))
        .and_then(|l| l.split(['│', '┆']).nth(1))
        .map(|s| s.trim().to_string())
        .expect("zhao's token listed");
    let out = gridhub(&["token", "revoke", &id], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = gridhub(&["query", "--server", &url, "--token", &zhao, sql], cwd);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));

    let pid = server.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = server.0.wait().unwrap();
    assert!(
        status.success(),
        "gridhub serve did not stop cleanly: {status:?}"
    );
}
