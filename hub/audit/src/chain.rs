//! The keyed chain: record MACs, and the head anchor file that records where the log ended.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{AuditError, Result};

type HmacSha256 = Hmac<Sha256>;

/// The `prev_hash` of the first record: 64 zeros.
pub(crate) const ZERO_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Prefix of the anchor MAC's input. Record MAC inputs start with the 8-byte sequence
/// number; no record reaches the number these bytes spell, so the two never collide.
const ANCHOR_DOMAIN: &[u8] = b"gridhub-audit-anchor\0";

/// Prefix of a witness entry's MAC input (distinct from the anchor's, for the same reason).
const WITNESS_DOMAIN: &[u8] = b"gridhub-audit-witness\0";

/// The audit key, ready to MAC (the HMAC key schedule is computed once).
#[derive(Clone)]
pub(crate) struct Key(HmacSha256);

impl Key {
    /// `None` for an empty key.
    pub(crate) fn new(secret: &[u8]) -> Option<Key> {
        if secret.is_empty() {
            return None;
        }
        // HMAC takes keys of any length; this cannot fail.
        HmacSha256::new_from_slice(secret).ok().map(Key)
    }

    /// HMAC-SHA256(key, seq as 8 bytes big-endian || prev_hash as 64 ASCII hex || json).
    fn record_mac(&self, seq: u64, prev: &str, json: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(&seq.to_be_bytes());
        mac.update(prev.as_bytes());
        mac.update(json.as_bytes());
        mac
    }

    /// The hash of a new record, lowercase hex.
    pub(crate) fn record_hash(&self, seq: u64, prev: &str, json: &str) -> String {
        hex::encode(self.record_mac(seq, prev, json).finalize().into_bytes())
    }

    /// Whether `hash` is the MAC of (`seq`, `prev`, `json`). `prev` must itself look like a
    /// hash: without that, characters could be moved between `prev` and `json` without
    /// changing the MAC input.
    pub(crate) fn authenticates(&self, seq: u64, prev: &str, json: &str, hash: &str) -> bool {
        is_hash(prev)
            && hex::decode(hash)
                .is_ok_and(|tag| self.record_mac(seq, prev, json).verify_slice(&tag).is_ok())
    }

    /// HMAC-SHA256(key, "gridhub-audit-witness\0" || seq as 8 bytes big-endian || hash || at).
    fn witness_mac(&self, seq: u64, hash: &str, at: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(WITNESS_DOMAIN);
        mac.update(&seq.to_be_bytes());
        mac.update(hash.as_bytes());
        mac.update(at.as_bytes());
        mac
    }

    /// The MAC of a witness entry, lowercase hex.
    pub(crate) fn witness_tag(&self, seq: u64, hash: &str, at: &str) -> String {
        hex::encode(self.witness_mac(seq, hash, at).finalize().into_bytes())
    }

    /// Whether `tag` is the MAC of the witness entry (`seq`, `hash`, `at`).
    pub(crate) fn witness_authentic(&self, seq: u64, hash: &str, at: &str, tag: &str) -> bool {
        hex::decode(tag).is_ok_and(|t| self.witness_mac(seq, hash, at).verify_slice(&t).is_ok())
    }

    fn anchor_mac(&self, seq: u64, hash: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(ANCHOR_DOMAIN);
        mac.update(&seq.to_be_bytes());
        mac.update(hash.as_bytes());
        mac
    }
}

/// 64 lowercase hex digits.
pub(crate) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The last record of the log as of the last append: the contents of `<log>.head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

/// What was found in the anchor file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AnchorState {
    /// No anchor file.
    Missing,
    /// The file exists but is not an anchor (the reason).
    Unreadable(String),
    /// A well-formed anchor whose MAC does not verify with this key.
    NotAuthentic(Anchor),
    Valid(Anchor),
}

impl AnchorState {
    /// The anchored position, authentic or not: a hint for telling edits from insertions.
    pub(crate) fn hint(&self) -> Option<&Anchor> {
        match self {
            AnchorState::Valid(a) | AnchorState::NotAuthentic(a) => Some(a),
            AnchorState::Missing | AnchorState::Unreadable(_) => None,
        }
    }
}

/// The anchor file's format: one JSON object.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorFile {
    seq: u64,
    hash: String,
    /// HMAC-SHA256(key, "gridhub-audit-anchor\0" || seq as 8 bytes big-endian || hash), hex.
    mac: String,
}

/// The anchor at `path`. Another process may be overwriting it in place at this instant
/// (its appends are serialised with this one's by the database, its anchor write is not):
/// an anchor that does not read as valid is read once more before it counts.
pub(crate) fn read_anchor(path: &Path, key: &Key) -> Result<AnchorState> {
    match read_anchor_once(path, key)? {
        AnchorState::Unreadable(_) | AnchorState::NotAuthentic(_) => {
            std::thread::sleep(std::time::Duration::from_millis(5));
            read_anchor_once(path, key)
        }
        state => Ok(state),
    }
}

fn read_anchor_once(path: &Path, key: &Key) -> Result<AnchorState> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AnchorState::Missing),
        Err(source) => {
            return Err(AuditError::Anchor {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let file: AnchorFile = match serde_json::from_str(&text) {
        Ok(file) => file,
        Err(e) => return Ok(AnchorState::Unreadable(e.to_string())),
    };
    let authentic = hex::decode(&file.mac).is_ok_and(|tag| {
        key.anchor_mac(file.seq, &file.hash)
            .verify_slice(&tag)
            .is_ok()
    });
    let anchor = Anchor {
        seq: file.seq,
        hash: file.hash,
    };
    Ok(if authentic {
        AnchorState::Valid(anchor)
    } else {
        AnchorState::NotAuthentic(anchor)
    })
}

/// Distinguishes temporary files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The anchor file's length: its JSON padded with spaces and a newline, so that a new anchor
/// overwrites the old one in place within one disk sector (512 bytes), without changing the
/// file's size.
const ANCHOR_LEN: usize = 256;

/// Records where the log ended. The first anchor is written to a temporary file, synced,
/// renamed over the path and the directory synced. Every later one overwrites the
/// existing file in place — the same [`ANCHOR_LEN`] bytes, within one sector — and syncs
/// its data: one `fdatasync` instead of a new file, a rename and two syncs on every append.
/// A power loss while the anchor is written leaves the old anchor (the log's continuation
/// check accepts an anchor behind the log) or, on a disk that tears sector writes, an
/// unreadable one, which stops appends until the operator checks the log: never a wrong
/// anchor that verifies.
pub(crate) fn write_anchor(path: &Path, key: &Key, seq: u64, hash: &str) -> io::Result<()> {
    let file = AnchorFile {
        seq,
        hash: hash.to_owned(),
        mac: hex::encode(key.anchor_mac(seq, hash).finalize().into_bytes()),
    };
    let mut text = serde_json::to_string(&file)?;
    if text.len() < ANCHOR_LEN {
        text.push_str(&" ".repeat(ANCHOR_LEN - 1 - text.len()));
    }
    text.push('\n');
    match fs::OpenOptions::new().write(true).open(path) {
        Ok(mut existing) if existing.metadata()?.is_file() => {
            existing.write_all(text.as_bytes())?;
            if existing.metadata()?.len() != text.len() as u64 {
                existing.set_len(text.len() as u64)?;
            }
            existing.sync_data()
        }
        Ok(_) => Err(io::Error::other("the head anchor is not a regular file")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace_anchor(path, &text),
        Err(e) => Err(e),
    }
}

/// Writes `text` as the anchor atomically: a temporary file next to it, synced, renamed over
/// the anchor, the directory synced (so the rename itself survives a power loss).
fn replace_anchor(path: &Path, text: &str) -> io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = Path::new(&temp);
    let written = (|| {
        let mut f = File::create(temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(temp, path)
    })();
    if written.is_err() {
        // Best effort: the temporary file is useless once the rename did not happen.
        let _ = fs::remove_file(temp);
    }
    written?;
    sync_dir(path)
}

#[cfg(unix)]
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// Directories cannot be opened for fsync on this platform; the rename is as durable as
/// the file system makes it.
#[cfg(not(unix))]
pub(crate) fn sync_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_covers_seq_prev_and_json() {
        let key = Key::new(b"k").unwrap();
        let h = key.record_hash(3, ZERO_HASH, "{}");
        assert!(key.authenticates(3, ZERO_HASH, "{}", &h));
        assert!(!key.authenticates(4, ZERO_HASH, "{}", &h));
        assert!(!key.authenticates(3, &h, "{}", &h));
        assert!(!key.authenticates(3, ZERO_HASH, "{ }", &h));
        assert!(
            !Key::new(b"other")
                .unwrap()
                .authenticates(3, ZERO_HASH, "{}", &h)
        );
    }

    #[test]
    fn prev_must_be_a_hash() {
        // Moving a character from the JSON into prev keeps the MAC input identical.
        let key = Key::new(b"k").unwrap();
        let h = key.record_hash(1, ZERO_HASH, "{}");
        let prev = format!("{ZERO_HASH}{{");
        assert!(!key.authenticates(1, &prev, "}", &h));
    }

    #[test]
    fn anchor_round_trip_and_key_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db.head");
        let key = Key::new(b"k").unwrap();
        assert_eq!(read_anchor(&path, &key).unwrap(), AnchorState::Missing);
        write_anchor(&path, &key, 7, ZERO_HASH).unwrap();
        let anchor = Anchor {
            seq: 7,
            hash: ZERO_HASH.to_owned(),
        };
        assert_eq!(
            read_anchor(&path, &key).unwrap(),
            AnchorState::Valid(anchor.clone())
        );
        let other = Key::new(b"other").unwrap();
        assert_eq!(
            read_anchor(&path, &other).unwrap(),
            AnchorState::NotAuthentic(anchor)
        );
        fs::write(&path, "7 0000").unwrap();
        assert!(matches!(
            read_anchor(&path, &key).unwrap(),
            AnchorState::Unreadable(_)
        ));
        // Only the anchor itself is left: temporary files were renamed away.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn later_anchors_overwrite_the_file_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db.head");
        let key = Key::new(b"k").unwrap();
        let hash = "ab".repeat(32);
        write_anchor(&path, &key, 1, ZERO_HASH).unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        for seq in [2, 99, u64::MAX] {
            write_anchor(&path, &key, seq, &hash).unwrap();
            let meta = fs::metadata(&path).unwrap();
            assert_eq!((meta.ino(), meta.len()), (inode, ANCHOR_LEN as u64));
            assert_eq!(
                read_anchor(&path, &key).unwrap(),
                AnchorState::Valid(Anchor {
                    seq,
                    hash: hash.clone()
                })
            );
        }
        // An anchor of an earlier version (the bare JSON line, shorter or longer) is
        // overwritten to exactly the new one.
        for len in [10, 400] {
            fs::write(&path, "x".repeat(len)).unwrap();
            write_anchor(&path, &key, 5, &hash).unwrap();
            assert_eq!(fs::metadata(&path).unwrap().len(), ANCHOR_LEN as u64);
            assert_eq!(
                read_anchor(&path, &key).unwrap(),
                AnchorState::Valid(Anchor {
                    seq: 5,
                    hash: hash.clone()
                })
            );
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
