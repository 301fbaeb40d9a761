//! The `gridhub` binary as a user runs it: demo, query formats, catalog, and errors that
//! are one clear sentence with a failing exit code.

use std::path::Path;
use std::process::{Command, Output};

fn gridhub(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gridhub"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GRIDHUB_CONFIG")
        .output()
        .expect("run gridhub")
}

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
    assert_eq!(stdout(&out).lines().count(), 11, "header + ten principals");

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
