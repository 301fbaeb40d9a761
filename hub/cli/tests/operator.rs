//! The operator of a hub without principals: `gridhub query` without `--as` runs
//! ungoverned, in-process, and every query — answered or failed — is audited as
//! `operator:<OS user>` with its outcome and rows. `gridhub serve` of the same hub never
//! answers ungoverned: without credentials, or with any token, nothing runs.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use gridhub_audit::{AuditFilter, Outcome};

fn gridhub_as_user(args: &[&str], cwd: &Path, user: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gridhub"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GRIDHUB_CONFIG")
        .env_remove("GRIDHUB_AUDIT_KEY")
        .env_remove("LOGNAME")
        .env("USER", user)
        .output()
        .expect("run gridhub")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A hub of one CSV source and no principals; its audit key (the operator is audited too)
/// is a file outside the state dir.
fn hub_without_principals(dir: &Path) {
    std::fs::write(dir.join("a.csv"), "code,name\n1,甲\n2,乙\n3,丙\n").unwrap();
    std::fs::write(dir.join("audit.key"), "operator-test-audit-key-0123456789").unwrap();
    std::fs::write(
        dir.join("gridhub.toml"),
        "[hub]\npseudonym_key = \"operator-test-key-0123456789\"\naudit_key_file = \"audit.key\"\n\n\
         [[sources]]\nname = \"a\"\ntype = \"csv\"\npath = \"a.csv\"\n",
    )
    .unwrap();
}

fn operator_records(dir: &Path, principal: &str) -> Vec<gridhub_audit::StoredRecord> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let hub = gridhub_engine::GovernedHub::open_path(&dir.join("gridhub.toml"))
            .await
            .expect("open the hub");
        hub.governance()
            .audit()
            .search(&AuditFilter {
                principal: Some(principal.into()),
                limit: Some(1000),
                ..Default::default()
            })
            .expect("audit search")
    })
}

#[test]
fn operator_queries_are_audited_with_the_os_user() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    hub_without_principals(cwd);

    let sql = "SELECT code, name FROM src_a.a ORDER BY code";
    let out = gridhub_as_user(&["query", "-f", "csv", sql], cwd, "tester");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "code,name\n1,甲\n2,乙\n3,丙\n"
    );
    let failing = "SELECT * FROM src_a.nope";
    let out = gridhub_as_user(&["query", failing], cwd, "tester");
    assert!(!out.status.success());
    assert!(text(&out).contains("nope"), "{}", text(&out));

    let records = operator_records(cwd, "operator:tester");
    let answered: Vec<_> = records.iter().filter(|r| r.record.text == sql).collect();
    assert_eq!(answered.len(), 1, "{records:?}");
    let r = &answered[0].record;
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.rows, Some(3));
    assert_eq!(r.roles, vec!["operator".to_string()]);
    assert!(
        r.tables.iter().any(|t| t.contains("src_a")),
        "{:?}",
        r.tables
    );
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r.record.text == failing)
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "the failed query is audited too: {records:?}"
    );
    assert_eq!(failed[0].record.outcome, Outcome::Error);
    assert!(failed[0].record.message.is_some());
}

#[test]
fn serve_never_answers_ungoverned() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    hub_without_principals(cwd);
    let (_server, url) = common::serve(cwd);
    let sql = "SELECT count(*) FROM src_a.a";

    // No token is issued for anyone: the hub has no principals.
    let out = common::gridhub(&["token", "issue", "--principal", "operator"], cwd);
    assert!(!out.status.success(), "{}", text(&out));

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        for token in [None, Some("ghk_00000000_00"), Some("operator")] {
            let client = gridhub_server::client::HubClient::connect(
                &gridhub_server::client::RemoteOptions {
                    url: url.clone(),
                    token: token.map(str::to_string),
                    ..Default::default()
                },
            )
            .await
            .expect("connect");
            let refused = client.query(sql).await.expect_err("answered ungoverned");
            assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");
            let catalog = client
                .catalog()
                .get_catalog(gridhub_proto::v1::GetCatalogRequest {})
                .await
                .expect_err("catalog answered ungoverned");
            assert_eq!(catalog.code(), tonic::Code::Unauthenticated, "{catalog}");
        }
    });
    // Nothing ran: no query reached the audit log over the network.
    assert!(
        operator_records(cwd, "operator:tester").is_empty(),
        "the network ran an operator query"
    );
}
