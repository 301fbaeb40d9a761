//! What the audit log's test binaries share.

use std::path::Path;

use rusqlite::Connection;

/// A raw connection, as an attacker with write access to the file would use, with the
/// append-only triggers dropped.
pub fn attacker(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;
         DROP TRIGGER audit_person_no_update; DROP TRIGGER audit_person_no_delete;",
    )
    .unwrap();
    conn
}
