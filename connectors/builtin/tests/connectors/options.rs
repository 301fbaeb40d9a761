//! Option parsing shared by all connectors.

use gridhub_connector::ConnectorError;

use crate::support::Env;

fn kinds() -> Vec<&'static str> {
    gridhub_connectors::builtin_registry().kinds()
}

#[test]
fn registry_registers_every_enabled_kind() {
    let expected: Vec<&str> = vec![
        #[cfg(feature = "csv")]
        "csv",
        #[cfg(feature = "parquet")]
        "parquet",
        #[cfg(feature = "sqlite")]
        "sqlite",
        #[cfg(feature = "xlsx")]
        "xlsx",
    ];
    assert_eq!(kinds(), expected);
}

#[test]
fn unknown_option_names_source_and_key() {
    let env = Env::new();
    for kind in kinds() {
        let err = env.build_err(
            kind,
            "src_a",
            "name = 'src_a'\ntype = 'x'\nlabel = 'y'\npath = 'f'\nencodign = 'gbk'",
        );
        assert!(
            matches!(err, ConnectorError::InvalidOptions { .. }),
            "{kind}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("src_a"), "{kind}: {msg}");
        assert!(msg.contains("encodign"), "{kind}: {msg}");
    }
}

#[test]
fn common_keys_are_accepted() {
    let env = Env::new();
    for kind in kinds() {
        env.build(
            kind,
            "ok",
            "name = 'ok'\ntype = 'whatever'\nlabel = '社区登记'\npath = 'file'",
        );
    }
}

#[test]
fn bad_values_name_the_option() {
    let env = Env::new();
    let cases: Vec<(&str, &str, &str)> = vec![
        #[cfg(feature = "csv")]
        ("csv", "path = 'a.csv'\nencoding = 'big5'", "big5"),
        #[cfg(feature = "csv")]
        ("csv", "path = 'a.csv'\ndelimiter = ',,'", "delimiter"),
        #[cfg(feature = "csv")]
        ("csv", "path = 'a.csv'\nheader = 'yes'", "header"),
        #[cfg(feature = "csv")]
        ("csv", "path = 'a.csv'\ntables = { a = 'b.csv' }", "tables"),
        #[cfg(feature = "csv")]
        ("csv", "label = 'x'", "path"),
        #[cfg(feature = "parquet")]
        ("parquet", "tables = {}", "tables"),
        #[cfg(feature = "xlsx")]
        ("xlsx", "path = 'a.xlsx'\nheader_row = 0", "header_row"),
        #[cfg(feature = "xlsx")]
        ("xlsx", "tables = { a = 'b' }", "path"),
        #[cfg(feature = "sqlite")]
        ("sqlite", "path = 3", "path"),
    ];
    for (kind, options, word) in cases {
        let err = env.build_err(kind, "src_b", options);
        assert!(
            matches!(err, ConnectorError::InvalidOptions { .. }),
            "{kind}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("src_b") && msg.contains(word),
            "{kind} {options:?}: {msg}"
        );
    }
}

#[test]
fn unknown_kind_lists_known_kinds() {
    let env = Env::new();
    let err = gridhub_connectors::builtin_registry()
        .build("excel", env.ctx("s", ""))
        .unwrap_err();
    assert!(matches!(err, ConnectorError::UnknownKind { .. }));
    assert!(err.to_string().contains(&kinds().join(", ")), "{err}");
}
