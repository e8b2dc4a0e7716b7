//! Bearer tokens of the deletion service, with scopes, stored only as SHA-256 hashes.

use super::{Store, now_ms};
use crate::error::{Error, Result};
use rand::TryRngCore;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Submit deletion requests.
    Submit,
    /// Read request status, the model and the ledger.
    Read,
    /// Everything, metrics included.
    Admin,
}

impl Scope {
    /// Parses `submit`, `read` or `admin`.
    pub fn parse(text: &str) -> Result<Scope> {
        match text.trim() {
            "submit" => Ok(Scope::Submit),
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            other => Err(Error::invalid(format!(
                "unknown scope '{other}' (expected submit, read or admin)"
            ))),
        }
    }

    /// The scope's name.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Submit => "submit",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenInfo {
    /// The token's name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Revocation time, if revoked.
    pub revoked_at_ms: Option<i64>,
}

impl TokenInfo {
    /// True when the token grants `scope` (admin grants every scope).
    pub fn allows(&self, scope: Scope) -> bool {
        self.revoked_at_ms.is_none()
            && (self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin))
    }

    /// One row of a token listing: name, scopes, active or revoked.
    pub fn row(&self) -> String {
        let scopes: Vec<&str> = self.scopes.iter().map(|s| s.name()).collect();
        let state = if self.revoked_at_ms.is_some() {
            "revoked"
        } else {
            "active"
        };
        format!("{:<20} {:<20} {state}", self.name, scopes.join(","))
    }
}

fn token_hash(token: &str) -> String {
    super::object_hash(token.as_bytes())
}

fn parse_scopes(text: &str) -> Result<Vec<Scope>> {
    let scopes = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Scope::parse)
        .collect::<Result<Vec<_>>>()?;
    if scopes.is_empty() {
        return Err(Error::invalid(
            "a token needs at least one scope: submit, read or admin",
        ));
    }
    Ok(scopes)
}

impl Store {
    /// Creates a token named `name` with `scopes` (comma-separated) and returns it: the only
    /// time it is shown; the store keeps its hash.
    pub fn add_token(&mut self, name: &str, scopes: &str) -> Result<String> {
        let scopes = parse_scopes(scopes)?;
        if name.trim().is_empty() {
            return Err(Error::invalid("a token needs a name"));
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut secret)
            .map_err(|e| Error::invalid(format!("no randomness for a token: {e}")))?;
        let token = format!(
            "ul_{}",
            secret
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let names: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
        let inserted = self.conn.execute(
            "INSERT INTO tokens(name, token_hash, scopes, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![name, token_hash(&token), names.join(","), now_ms()],
        );
        match inserted {
            Ok(_) => Ok(token),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::invalid(format!("a token named '{name}' exists")))
            }
            Err(e) => Err(self.db()(e)),
        }
    }

    /// Every token (revoked ones included), by name.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let mut statement = self
            .conn
            .prepare("SELECT name, scopes, created_at_ms, revoked_at_ms FROM tokens ORDER BY name")
            .map_err(self.db())?;
        let raw = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })
            .map_err(self.db())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.db())?;
        raw.into_iter()
            .map(|(name, scopes, created_at_ms, revoked_at_ms)| {
                Ok(TokenInfo {
                    name,
                    scopes: parse_scopes(&scopes)?,
                    created_at_ms,
                    revoked_at_ms,
                })
            })
            .collect()
    }

    /// Revokes the token named `name`.
    pub fn revoke_token(&mut self, name: &str) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE tokens SET revoked_at_ms = ?2 WHERE name = ?1 AND revoked_at_ms IS NULL",
                params![name, now_ms()],
            )
            .map_err(self.db())?;
        if changed == 0 {
            return Err(Error::invalid(format!("no active token named '{name}'")));
        }
        Ok(())
    }

    /// The token presented by a client, if it is known (revoked tokens are returned with
    /// their revocation time, so that [`TokenInfo::allows`] refuses them).
    pub fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>> {
        let row = self
            .conn
            .query_row(
                "SELECT name, scopes, created_at_ms, revoked_at_ms FROM tokens WHERE token_hash = ?1",
                params![token_hash(token)],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(self.db())?;
        row.map(|(name, scopes, created_at_ms, revoked_at_ms)| {
            Ok(TokenInfo {
                name,
                scopes: parse_scopes(&scopes)?,
                created_at_ms,
                revoked_at_ms,
            })
        })
        .transpose()
    }
}
