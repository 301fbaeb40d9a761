//! `gridhub audit` on the demo hub as an operator meets it: the witness agrees with an
//! untouched log, a removed log is an alarm that stops audited queries until the loss is
//! acknowledged, and the witness still shows what was lost.

mod common;

use std::path::Path;
use std::process::Output;

use common::{audit_search_csv, gridhub, serve};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `kill -9` of the server while it streams an answer: the record that the query started
/// was durable before the first batch left, nothing says it finished, and the log verifies.
#[test]
fn a_server_killed_mid_stream_leaves_the_started_record() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let out = gridhub(&["demo", "--scale", "2000"], cwd);
    assert!(out.status.success(), "demo failed: {}", text(&out));
    let (mut server, url) = serve(cwd);
    let out = gridhub(&["token", "issue", "--principal", "zhao.street"], cwd);
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let sql = "SELECT a.person_id, b.name FROM person a CROSS JOIN person b";
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use futures::TryStreamExt;
        let remote =
            gridhub_server::client::Remote::connect(&gridhub_server::client::RemoteOptions {
                url: url.clone(),
                token: Some(token),
                ..Default::default()
            })
            .await
            .expect("connect");
        let mut fc = remote.flight_sql();
        let info = fc.execute(sql.into(), None).await.expect("planned");
        let mut stream = fc
            .do_get(info.endpoint[0].ticket.clone().unwrap())
            .await
            .expect("streaming");
        let first = stream
            .try_next()
            .await
            .expect("a batch")
            .expect("not empty");
        assert!(first.num_rows() > 0);
        // Rows have left the hub: now it dies without a chance to write anything.
        server.0.kill().expect("kill -9");
        server.0.wait().unwrap();
    });
    let out = gridhub(
        &[
            "audit",
            "search",
            "--by",
            "wu.audit",
            "--principal",
            "zhao.street",
            "-f",
            "csv",
        ],
        cwd,
    );
    assert!(out.status.success(), "{}", text(&out));
    let records = String::from_utf8_lossy(&out.stdout).into_owned();
    let of_query: Vec<&str> = records.lines().filter(|l| l.contains(sql)).collect();
    assert!(
        of_query.iter().any(|l| l.contains(",started,")),
        "no started record:\n{records}"
    );
    assert!(
        !of_query
            .iter()
            .any(|l| l.contains(",ok,") || l.contains(",error,")),
        "a killed stream cannot have finished:\n{records}"
    );
    let out = gridhub(&["audit", "verify", "--by", "wu.audit"], cwd);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn removed_log_is_an_alarm_until_acknowledged_and_the_witness_remembers() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let out = gridhub(&["demo", "--scale", "300"], cwd);
    assert!(out.status.success(), "demo failed: {}", text(&out));
    let demo = cwd.join("gridhub-demo");
    // The demo's audit key is its own file, outside the state dir, not the pseudonym key.
    let key = std::fs::read_to_string(demo.join("audit.key")).unwrap();
    assert_eq!(key.trim_end().len(), 64);
    assert!(!key.contains(gridhub_synth::DEMO_PSEUDONYM_KEY));

    // Give the hub a witness on "another mount".
    std::fs::create_dir(cwd.join("witness")).unwrap();
    let witness = cwd.join("witness").join("gridhub-audit.witness");
    let config = demo.join("gridhub.toml");
    let toml = std::fs::read_to_string(&config).unwrap().replacen(
        "[hub]\n",
        &format!(
            "[hub]\naudit_witness = {:?}\naudit_witness_every = 2\n",
            witness.display().to_string()
        ),
        1,
    );
    std::fs::write(&config, toml).unwrap();
    let w = witness.to_str().unwrap();
    let out = gridhub(
        &["audit", "verify", "--by", "wu.audit", "--against", w],
        cwd,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("agrees with the witness"),
        "{}",
        text(&out)
    );
    let query = [
        "query",
        "--as",
        "wang.city",
        "SELECT count(*) AS n FROM admin_unit",
    ];
    let out = gridhub(&query, cwd);
    assert!(out.status.success(), "{}", text(&out));

    // `rm audit.db*` on a hub with history.
    for e in std::fs::read_dir(demo.join(".gridhub")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("audit.db")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let out = gridhub(&["audit", "verify", "--by", "wu.audit"], cwd);
    assert!(
        !out.status.success(),
        "a removed log verified: {}",
        text(&out)
    );
    assert!(text(&out).contains("log missing"), "{}", text(&out));
    assert!(text(&out).contains("acknowledge-missing"), "{}", text(&out));
    // Fail closed: the query is not run unaudited.
    let out = gridhub(&query, cwd);
    assert!(
        !out.status.success(),
        "a query ran without an audit log: {}",
        text(&out)
    );
    assert!(text(&out).contains("missing"), "{}", text(&out));

    // The auditor may not acknowledge; the security officer may.
    let ack = |by: &str| {
        gridhub(
            &[
                "audit",
                "acknowledge-missing",
                "--by",
                by,
                "--reason",
                "disk replaced",
            ],
            cwd,
        )
    };
    assert!(!ack("wu.audit").status.success());
    let out = ack("qian.security");
    assert!(out.status.success(), "{}", text(&out));
    let out = gridhub(&query, cwd);
    assert!(out.status.success(), "{}", text(&out));
    let out = gridhub(&["audit", "verify", "--by", "wu.audit"], cwd);
    assert!(out.status.success(), "{}", text(&out));
    let out = audit_search_csv("wu.audit", "qian.security", cwd);
    assert!(
        text(&out).contains("acknowledge the loss of the audit log: disk replaced"),
        "{}",
        text(&out)
    );
    // The witness still holds the lost log's head.
    let out = gridhub(
        &["audit", "verify", "--by", "wu.audit", "--against", w],
        cwd,
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
}

/// Over `--server`, the witness file is read on the client and its contents sent: the hub
/// compares them with its log (an untouched copy agrees, a damaged one does not).
#[test]
fn remote_verify_compares_the_sent_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let out = gridhub(&["demo", "--scale", "300"], cwd);
    assert!(out.status.success(), "demo failed: {}", text(&out));
    std::fs::create_dir(cwd.join("witness")).unwrap();
    let witness = cwd.join("witness").join("gridhub-audit.witness");
    let config = cwd.join("gridhub-demo/gridhub.toml");
    let toml = std::fs::read_to_string(&config).unwrap().replacen(
        "[hub]\n",
        &format!(
            "[hub]\naudit_witness = {:?}\n",
            witness.display().to_string()
        ),
        1,
    );
    std::fs::write(&config, toml).unwrap();

    let (_server, url) = serve(cwd);
    let out = gridhub(&["token", "issue", "--principal", "wu.audit"], cwd);
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();

    // A copy on the auditor's side, which the hub never reads from disk.
    let copy = cwd.join("auditor-copy.witness");
    std::fs::copy(&witness, &copy).unwrap();
    let verify = |w: &Path| {
        let w = w.to_str().unwrap();
        gridhub(
            &[
                "audit",
                "verify",
                "--server",
                &url,
                "--token",
                &token,
                "--against",
                w,
            ],
            cwd,
        )
    };
    let out = verify(&copy);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("agrees with the witness"),
        "{}",
        text(&out)
    );
    let mut damaged = std::fs::read_to_string(&copy).unwrap();
    damaged.push_str("{\"seq\":1,\"hash\":\"00\",\"at\":\"x\",\"mac\":\"00\"}\n");
    std::fs::write(&copy, damaged).unwrap();
    let out = verify(&copy);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("auditor-copy.witness does not authenticate"),
        "{}",
        text(&out)
    );
}
