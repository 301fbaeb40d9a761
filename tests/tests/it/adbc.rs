//! The hub server through the Python ADBC Flight SQL driver (`adbc-driver-flightsql` from
//! PyPI, installed by tests/python/setup.sh): connect with a token or with the basic-auth
//! handshake, run a cross-source query with a purpose header, a prepared statement with a
//! parameter, the metadata calls — and compare with the local governed answers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use gridhub_tests::{TestCity, rows, serve, sorted, token};
use serde_json::Value;

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// The venv's python, with the driver installed (the test installs what it needs).
fn python() -> PathBuf {
    let out = Command::new("bash")
        .arg(python_dir().join("setup.sh"))
        .output()
        .expect("run tests/python/setup.sh");
    assert!(
        out.status.success(),
        "tests/python/setup.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("setup.sh prints the python")
            .trim(),
    )
}

fn client(python: &Path, args: &[&str]) -> Value {
    let out = Command::new(python)
        .arg(python_dir().join("adbc_client.py"))
        .args(args)
        .output()
        .expect("run adbc_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "adbc_client.py printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// JSON rows as the text the local rows hold.
fn json_rows(v: &Value) -> Vec<Vec<Option<String>>> {
    v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| match c {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect()
        })
        .collect()
}

// The client runs as a blocking child process on the test's thread; the server runs on the
// runtime's workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_adbc_driver_queries_the_hub() {
    let python = python();
    let city = TestCity::generate(2_000);
    let hub = Arc::new(city.hub().await);
    let server = serve(hub.clone(), |_| {}).await;
    let uri = format!("grpc://{}", server.addr);
    let zhao = token(&hub, "zhao.street");
    let sun = token(&hub, "sun.health");

    // Cross-source, with a purpose: health records of the register's persons.
    let sql = "SELECT p.name, p.phone, h.health_code, count(*) AS records \
               FROM health_record h JOIN person p ON p.person_id = h.person_id \
               GROUP BY p.name, p.phone, h.health_code";
    let local = hub
        .query_as("sun.health", Some("epidemic_response"), sql)
        .await
        .expect("local");
    let answer = client(
        &python,
        &[
            "--uri",
            &uri,
            "--token",
            &sun,
            "--purpose",
            "epidemic_response",
            "--sql",
            sql,
        ],
    );
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(!rows(&local.batches).is_empty());
    assert_eq!(sorted(json_rows(&answer)), sorted(rows(&local.batches)));
    assert_eq!(
        answer["columns"],
        serde_json::json!(["name", "phone", "health_code", "records"])
    );

    // The purpose header is what opens the health codes: without it the health officer gets
    // what the local query without a purpose gets; a volunteer may not read them at all.
    let codes = |v: &Value| -> usize { json_rows(v).iter().filter(|r| r[2].is_some()).count() };
    assert!(codes(&answer) > 0, "{answer}");
    let no_purpose = client(&python, &["--uri", &uri, "--token", &sun, "--sql", sql]);
    match hub.query_as("sun.health", None, sql).await {
        Ok(local) => {
            assert_eq!(no_purpose["ok"], true, "{no_purpose}");
            assert_eq!(sorted(json_rows(&no_purpose)), sorted(rows(&local.batches)));
            assert_eq!(codes(&no_purpose), 0, "health codes without a purpose");
        }
        Err(e) => {
            assert_eq!(no_purpose["ok"], false, "{no_purpose}");
            let error = no_purpose["error"].as_str().unwrap();
            assert!(error.contains(&e.to_string()), "{error} vs local {e}");
        }
    }
    let volunteer = token(&hub, "zhou.volunteer");
    let refused = client(
        &python,
        &["--uri", &uri, "--token", &volunteer, "--sql", sql],
    );
    assert_eq!(refused["ok"], false, "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("PermissionDenied") && error.contains("health_record"),
        "{error}"
    );

    // Basic auth (principal id + token) through the Flight SQL handshake, and a parameter.
    let with_param = "SELECT name FROM person WHERE area_code LIKE $1";
    let local = hub
        .query_as(
            "zhao.street",
            None,
            "SELECT name FROM person WHERE area_code LIKE '420106009001%'",
        )
        .await
        .unwrap();
    let answer = client(
        &python,
        &[
            "--uri",
            &uri,
            "--username",
            "zhao.street",
            "--password",
            &zhao,
            "--sql",
            with_param,
            "--param",
            "420106009001%",
        ],
    );
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(sorted(json_rows(&answer)), sorted(rows(&local.batches)));

    // Metadata: the driver's GetObjects walks catalogs, schemas, tables and columns.
    let catalog = client(&python, &["--uri", &uri, "--token", &zhao, "--catalog"]);
    assert_eq!(catalog["ok"], true, "{catalog}");
    assert_eq!(catalog["catalogs"], serde_json::json!(["gridhub"]));
    let person = &catalog["tables"]["public.person"];
    assert!(
        person
            .as_array()
            .is_some_and(|c| c.contains(&Value::from("phone"))),
        "{catalog}"
    );

    // Refusals: a wrong token, and another principal's token in basic auth.
    let mut wrong = zhao.clone();
    wrong.replace_range(zhao.len() - 4.., "0000");
    for args in [
        vec!["--token", wrong.as_str()],
        vec!["--username", "chen.community", "--password", zhao.as_str()],
    ] {
        let mut all = vec!["--uri", uri.as_str()];
        all.extend(args);
        all.extend(["--sql", "SELECT count(*) FROM person"]);
        let refused = client(&python, &all);
        assert_eq!(refused["ok"], false, "{refused}");
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("Unauthenticated"),
            "{refused}"
        );
    }
    server.shutdown().await.unwrap();
}
