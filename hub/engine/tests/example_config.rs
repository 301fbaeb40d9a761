//! deploy/gridhub.example.toml is a working config: it parses, validates, takes its key
//! from the environment layer, and names every connector kind the hub ships.

use std::path::Path;

use gridhub_engine::HubConfig;
use gridhub_engine::config::{ENV_AUDIT_KEY, ENV_PSEUDONYM_KEY};

#[test]
fn the_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/gridhub.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let env =
        |k: &str| (k == ENV_PSEUDONYM_KEY).then(|| "from-the-service-environment".to_string());
    let config = HubConfig::parse(&path, &text, env).unwrap();
    assert_eq!(config.pseudonym_key, "from-the-service-environment");
    assert_eq!(config.state_dir, Path::new("/var/lib/gridhub"));
    assert_eq!(config.load_memory_mb, 512);
    let mut kinds: Vec<&str> = config.sources.iter().map(|s| s.kind.as_str()).collect();
    kinds.sort();
    kinds.dedup();
    let mut shipped = gridhub_connectors::builtin_registry().kinds();
    shipped.sort();
    assert_eq!(kinds, shipped, "the example shows every connector kind");
    assert!(config.mappings.len() >= 5);

    // Without the environment there is no key, and the error says how to give one.
    let e = HubConfig::parse(&path, &text, |_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains(ENV_PSEUDONYM_KEY), "{e}");
}

/// deploy/gridhub-server.example.toml: the same hub served with TLS and client
/// certificates; every `[server]` key is read, paths resolve against the file.
#[test]
fn the_server_example_config_is_valid() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/gridhub-server.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let pseudonym_only =
        |k: &str| (k == ENV_PSEUDONYM_KEY).then(|| "from-the-service-environment".into());
    // It has principals: without an audit key it is refused, naming the variable.
    let e = HubConfig::parse(&path, &text, pseudonym_only)
        .unwrap_err()
        .to_string();
    assert!(e.contains(ENV_AUDIT_KEY), "{e}");
    let env = |k: &str| match k {
        ENV_PSEUDONYM_KEY => Some("from-the-service-environment".into()),
        ENV_AUDIT_KEY => Some("audit-key-from-the-service-environment".into()),
        _ => None,
    };
    let config = HubConfig::parse(&path, &text, env).unwrap();
    assert_eq!(
        config.audit_key.as_deref(),
        Some("audit-key-from-the-service-environment")
    );
    assert_eq!(
        config.audit_witness.as_deref(),
        Some(Path::new("/srv/gridhub-witness/gridhub-audit.witness"))
    );
    assert_eq!(config.audit_witness_every, 100);
    let server = &config.server;
    assert_eq!(server.listen, "0.0.0.0:50051".parse().unwrap());
    assert_eq!(
        server.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    let tls = server.tls.as_ref().expect("TLS configured");
    let deploy = path.parent().unwrap();
    assert_eq!(tls.cert, deploy.join("tls/hub.crt"));
    assert_eq!(tls.key, deploy.join("tls/hub.key"));
    assert_eq!(tls.client_ca, Some(deploy.join("tls/ca.crt")));
    assert_eq!(server.query_memory_bytes, 1024 << 20);
    assert_eq!(server.max_queries_per_principal, 4);
    assert!(config.principals.len() >= 7);
    // Every role that administers has a principal.
    for role in [
        "security_officer",
        "auditor",
        "street_officer",
        "community_worker",
    ] {
        assert!(
            config
                .principals
                .iter()
                .any(|p| p.roles.iter().any(|r| r == role)),
            "no {role}"
        );
    }
}

/// `[server]` layers like `[hub]`: defaults < environment < file; bad values are refused
/// with the key named.
#[test]
fn server_section_defaults_env_and_errors() {
    let path = Path::new("/etc/gridhub/gridhub.toml");
    let base = "[hub]\npseudonym_key = \"0123456789abcdef\"\n";
    let config = HubConfig::parse(path, base, |_| None).unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:50051".parse().unwrap());
    assert!(config.server.tls.is_none());
    assert_eq!(config.server.query_timeout.as_secs(), 300);
    let env = |k: &str| match k {
        "GRIDHUB_LISTEN" => Some("127.0.0.1:6000".to_string()),
        "GRIDHUB_QUERY_TIMEOUT_SECS" => Some("7".to_string()),
        _ => None,
    };
    let config = HubConfig::parse(path, base, env).unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(config.server.query_timeout.as_secs(), 7);
    let file = format!("{base}[server]\nlisten = \"127.0.0.1:7000\"\n");
    let config = HubConfig::parse(path, &file, env).unwrap();
    assert_eq!(
        config.server.listen,
        "127.0.0.1:7000".parse().unwrap(),
        "file over env"
    );
    for (bad, says) in [
        ("[server]\nlisten = \"nowhere\"\n", "listen"),
        ("[server]\ntls_cert = \"a.crt\"\n", "tls_key"),
        ("[server]\nclient_ca = \"ca.crt\"\n", "client_ca"),
        ("[server]\nquery_memory_mb = 0\n", "query_memory_mb"),
        ("[server]\nlisen = \"127.0.0.1:1\"\n", "lisen"),
    ] {
        let e = HubConfig::parse(path, &format!("{base}{bad}"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
