//! deploy/gridhub.example.toml is a working config: it parses, validates, takes its key
//! from the environment layer, and names every connector kind the hub ships.

use std::path::Path;

use gridhub_engine::HubConfig;
use gridhub_engine::config::ENV_PSEUDONYM_KEY;

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
