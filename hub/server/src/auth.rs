//! Who is calling: bearer tokens (stored only as SHA-256 hashes in the state dir's
//! `tokens.db`), the Flight SQL handshake's basic auth (user = principal id, password = a
//! token of that principal), and mTLS client certificates (Subject CN = principal id, the
//! certificate already verified against `[server] client_ca` by rustls).
//!
//! A token reads `ghk_<id>_<secret>`: the id finds the row, the secret's hash must match.
//! Tokens expire (`[server] token_ttl_days`) and can be revoked; both take effect on the
//! next call, since every call looks its token up.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use gridhub_engine::GovernedHub;
use gridhub_policy::Principal;
use rand::TryRngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;

use crate::error::ServerError;

/// Where tokens are kept, under the hub's state dir.
pub const TOKENS_FILE: &str = "tokens.db";
const PREFIX: &str = "ghk_";

/// An issued token as listed (never the secret).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub id: String,
    pub principal: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub comment: String,
}

/// The token table.
pub struct TokenStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn store_error(path: &Path, e: rusqlite::Error) -> ServerError {
    ServerError::TokenStore {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn time(text: String) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl TokenStore {
    /// Open (creating) `tokens.db` in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, ServerError> {
        let path = state_dir.join(TOKENS_FILE);
        std::fs::create_dir_all(state_dir).map_err(|e| ServerError::TokenStore {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let conn = Connection::open(&path).map_err(|e| store_error(&path, e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS tokens (
                 id TEXT PRIMARY KEY,
                 principal TEXT NOT NULL,
                 sha256 TEXT NOT NULL,
                 issued_at TEXT NOT NULL,
                 expires_at TEXT NOT NULL,
                 revoked_at TEXT,
                 comment TEXT NOT NULL DEFAULT ''
             );",
        )
        .map_err(|e| store_error(&path, e))?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// Issue a token for `principal`, valid for `ttl`. Returns the token — shown once,
    /// kept only as a hash — and its listing.
    pub fn issue(
        &self,
        principal: &str,
        ttl: Duration,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, TokenInfo), ServerError> {
        let mut bytes = [0u8; 36];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| ServerError::TokenStore {
                path: self.path.display().to_string(),
                message: format!("no randomness from the OS: {e}"),
            })?;
        let id = hex::encode(&bytes[..4]);
        let secret = hex::encode(&bytes[4..]);
        let info = TokenInfo {
            id: id.clone(),
            principal: principal.to_string(),
            issued_at: now,
            expires_at: now + ttl,
            revoked_at: None,
            comment: comment.to_string(),
        };
        self.conn
            .lock()
            .expect("token store lock")
            .execute(
                "INSERT INTO tokens (id, principal, sha256, issued_at, expires_at, comment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    principal,
                    hash(&secret),
                    info.issued_at.to_rfc3339(),
                    info.expires_at.to_rfc3339(),
                    comment
                ],
            )
            .map_err(|e| store_error(&self.path, e))?;
        Ok((format!("{PREFIX}{id}_{secret}"), info))
    }

    /// Revoke a token by id; revoking twice is an error naming the first time.
    pub fn revoke(&self, id: &str, now: DateTime<Utc>) -> Result<TokenInfo, ServerError> {
        let info = self
            .list()?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| ServerError::Unauthenticated {
                message: format!("no token with id {id} (gridhub token list)"),
            })?;
        if let Some(at) = info.revoked_at {
            return Err(ServerError::Unauthenticated {
                message: format!("token {id} was already revoked at {at}"),
            });
        }
        self.conn
            .lock()
            .expect("token store lock")
            .execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1",
                params![id, now.to_rfc3339()],
            )
            .map_err(|e| store_error(&self.path, e))?;
        Ok(TokenInfo {
            revoked_at: Some(now),
            ..info
        })
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, ServerError> {
        let conn = self.conn.lock().expect("token store lock");
        let mut stmt = conn
            .prepare(
                "SELECT id, principal, issued_at, expires_at, revoked_at, comment
                 FROM tokens ORDER BY issued_at, id",
            )
            .map_err(|e| store_error(&self.path, e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    principal: r.get(1)?,
                    issued_at: time(r.get(2)?),
                    expires_at: time(r.get(3)?),
                    revoked_at: r.get::<_, Option<String>>(4)?.map(time),
                    comment: r.get(5)?,
                })
            })
            .map_err(|e| store_error(&self.path, e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| store_error(&self.path, e))
    }

    /// The principal id a token belongs to, if it is known, unexpired and not revoked.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<String, ServerError> {
        let refuse = |message: String| ServerError::Unauthenticated { message };
        let (id, secret) = token
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or_else(|| refuse("not a gridhub token (ghk_…)".into()))?;
        let row: Option<(String, String, String, Option<String>)> = self
            .conn
            .lock()
            .expect("token store lock")
            .query_row(
                "SELECT principal, sha256, expires_at, revoked_at FROM tokens WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| store_error(&self.path, e))?;
        // Unknown id and wrong secret get the same answer.
        let Some((principal, stored, expires_at, revoked_at)) = row else {
            return Err(refuse("unknown token".into()));
        };
        if !constant_time_eq(hash(secret).as_bytes(), stored.as_bytes()) {
            return Err(refuse("unknown token".into()));
        }
        if let Some(at) = revoked_at {
            return Err(refuse(format!("token {id} was revoked at {at}")));
        }
        let expires_at = time(expires_at);
        if now >= expires_at {
            return Err(refuse(format!(
                "token {id} expired at {} (gridhub token issue makes a new one)",
                crate::api::fmt_time(expires_at)
            )));
        }
        Ok(principal)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a caller proved who it is. The network server produces only the first three; the
/// in-process transport ([`crate::in_process`]) only the last two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Certificate,
    Bearer,
    Basic,
    /// In-process: the CLI on the hub's host, acting as a principal it names (`--as`, `--by`).
    Local,
    /// In-process: the operator of a hub without principals, as this OS user. Its queries
    /// run ungoverned and are audited ([`gridhub_engine::operator`]).
    Operator {
        os_user: String,
    },
}

/// Resolves a call's credentials to a principal of the hub.
pub struct Authenticator {
    tokens: TokenStore,
    /// Client certificates identify principals (mTLS configured).
    certificates: bool,
}

impl Authenticator {
    pub fn new(tokens: TokenStore, certificates: bool) -> Self {
        Self {
            tokens,
            certificates,
        }
    }

    pub fn tokens(&self) -> &TokenStore {
        &self.tokens
    }

    /// The calling principal: a verified client certificate first, else the
    /// `authorization` header (`Bearer <token>` or `Basic base64(principal:token)`).
    pub fn authenticate(
        &self,
        hub: &GovernedHub,
        metadata: &MetadataMap,
        peer_certs: Option<&[tonic::transport::CertificateDer<'static>]>,
    ) -> Result<(Principal, Credential), ServerError> {
        let known = |id: &str| {
            hub.governance()
                .principal(id)
                .cloned()
                .map_err(|_| ServerError::Unauthenticated {
                    message: format!("principal '{id}' is not in this hub's config"),
                })
        };
        if self.certificates
            && let Some(cert) = peer_certs.and_then(|c| c.first())
        {
            let id = certificate_principal(cert)?;
            return Ok((known(&id)?, Credential::Certificate));
        }
        let header = metadata
            .get("authorization")
            .ok_or_else(|| ServerError::Unauthenticated {
                message: "no credentials: send `authorization: Bearer <token>` (gridhub token \
                          issue --principal ID) or log in with principal id and token"
                    .into(),
            })?
            .to_str()
            .map_err(|_| ServerError::Unauthenticated {
                message: "the authorization header is not text".into(),
            })?;
        let now = Utc::now();
        if let Some(token) = strip_scheme(header, "Bearer") {
            let id = self.tokens.verify(token.trim(), now)?;
            return Ok((known(&id)?, Credential::Bearer));
        }
        if let Some(encoded) = strip_scheme(header, "Basic") {
            let (user, password) = basic(encoded.trim())?;
            let id = self.tokens.verify(&password, now)?;
            if id != user {
                return Err(ServerError::Unauthenticated {
                    message: format!("the token is not {user}'s"),
                });
            }
            return Ok((known(&id)?, Credential::Basic));
        }
        Err(ServerError::Unauthenticated {
            message: "the authorization header must be `Bearer <token>` or `Basic …`".into(),
        })
    }
}

/// Issue a token for `principal`, who must be a principal of `hub`, valid for `ttl`
/// (default: `[server] token_ttl_days`). The issue is audited as the principal's. Returns
/// the token — shown once, stored only as a hash — and its listing.
pub fn issue_token(
    hub: &GovernedHub,
    principal: &str,
    ttl: Option<Duration>,
    comment: &str,
) -> Result<(String, TokenInfo), ServerError> {
    let p = hub.governance().principal(principal)?.clone();
    let ttl =
        ttl.unwrap_or_else(|| Duration::days(i64::from(hub.hub().config().server.token_ttl_days)));
    let store = TokenStore::open(&hub.hub().config().state_dir)?;
    let (token, info) = store.issue(&p.id, ttl, comment, Utc::now())?;
    hub.governance().audit_change(
        &p,
        gridhub_audit::RecordKind::Token,
        format!(
            "issue token {} for {}, expires {}",
            info.id, p.id, info.expires_at
        ),
        gridhub_audit::Outcome::Ok,
        None,
    )?;
    Ok((token, info))
}

/// Every token of `hub`, oldest first (never the secrets).
pub fn list_tokens(hub: &GovernedHub) -> Result<Vec<TokenInfo>, ServerError> {
    TokenStore::open(&hub.hub().config().state_dir)?.list()
}

/// Revoke the token `id` of `hub`; audited as the change of the principal it was for.
pub fn revoke_token(hub: &GovernedHub, id: &str) -> Result<TokenInfo, ServerError> {
    let info = TokenStore::open(&hub.hub().config().state_dir)?.revoke(id, Utc::now())?;
    let p = hub.governance().principal(&info.principal)?.clone();
    hub.governance().audit_change(
        &p,
        gridhub_audit::RecordKind::Token,
        format!("revoke token {id} of {}", info.principal),
        gridhub_audit::Outcome::Ok,
        None,
    )?;
    Ok(info)
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// `user:password` of a basic-auth header value.
pub fn basic(encoded: &str) -> Result<(String, String), ServerError> {
    let bad = |why: &str| ServerError::Unauthenticated {
        message: format!("basic auth: {why}"),
    };
    // Padded or not: the Go Flight client (ADBC) sends unpadded base64.
    const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = BASE64.decode(encoded).map_err(|_| bad("not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| bad("expected principal:token"))?;
    Ok((user.to_string(), password.to_string()))
}

/// The principal id a client certificate names: its Subject CN.
fn certificate_principal(der: &[u8]) -> Result<String, ServerError> {
    let bad = |why: String| ServerError::Unauthenticated {
        message: format!("client certificate: {why}"),
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| bad(format!("unreadable: {e}")))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .ok_or_else(|| bad("no Subject CN (it must be a principal id)".into()))?;
    cn.as_str()
        .map(str::to_string)
        .map_err(|e| bad(format!("Subject CN is not text: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_revoked_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let now = Utc::now();
        let (token, info) = store
            .issue("zhao.street", Duration::days(1), "t", now)
            .unwrap();
        assert_eq!(store.verify(&token, now).unwrap(), "zhao.street");
        // The secret is not stored.
        let raw = std::fs::read(dir.path().join(TOKENS_FILE)).unwrap();
        let secret = token.rsplit('_').next().unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
        // A changed secret, an unknown id, garbage.
        let mut wrong = token.clone();
        wrong.pop();
        wrong.push(if token.ends_with('0') { '1' } else { '0' });
        for bad in [wrong.as_str(), "ghk_00000000_00", "Bearer x", ""] {
            assert!(store.verify(bad, now).is_err(), "{bad} accepted");
        }
        let expired = store.verify(&token, now + Duration::days(2)).unwrap_err();
        assert!(expired.to_string().contains("expired"), "{expired}");
        store.revoke(&info.id, now).unwrap();
        let revoked = store.verify(&token, now).unwrap_err();
        assert!(revoked.to_string().contains("revoked"), "{revoked}");
        assert!(store.revoke(&info.id, now).is_err());
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn basic_auth_splits_principal_and_token() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("chen.community:ghk_a_b");
        assert_eq!(
            basic(&encoded).unwrap(),
            ("chen.community".to_string(), "ghk_a_b".to_string())
        );
        assert!(basic("%%%").is_err());
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode("a.b:ghk_1_2");
        assert_eq!(basic(&unpadded).unwrap().0, "a.b");
    }
}
