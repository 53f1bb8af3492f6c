//! First start of a data directory: the join token for agents and the first
//! administrator's API token, each written to a file readable only by the
//! server's user. Later starts reuse them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ferry_store::{Database, StoreError};

use crate::auth::{self, JOIN_TOKEN_PREFIX, USER_TOKEN_PREFIX};

/// What initialisation found or created.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    /// `DATA/join.token`: agents enrol with the token in it.
    pub join_token_file: PathBuf,
    /// `DATA/admin.token`, written on the first start only.
    pub admin_token_file: PathBuf,
    /// True when this start created the administrator.
    pub created_admin: bool,
}

/// Writes a secret file with mode 0600, replacing it atomically.
pub fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("{}: {e}", path.display()))
}

pub async fn initialise(db: &dyn Database, data: &Path) -> Result<InitOutcome, StoreError> {
    let join_file = data.join("join.token");
    let admin_file = data.join("admin.token");

    // The join token is kept in its file so operators can enrol more hosts
    // later; the database holds its hash to check enrolments.
    let existing = db.get_setting("join_token_hash").await?;
    let join_token = match std::fs::read_to_string(&join_file) {
        Ok(t) if existing.as_deref() == Some(auth::token_hash(t.trim()).as_str()) => t.trim().to_string(),
        _ if existing.is_some() => {
            // The file is gone or edited: issue a fresh token rather than
            // leave the operator without one.
            let token = auth::new_token(JOIN_TOKEN_PREFIX);
            tracing::warn!("{} was missing or changed; a new join token was issued", join_file.display());
            db_set_join(db, &token, true).await?;
            token
        }
        _ => {
            let token = auth::new_token(JOIN_TOKEN_PREFIX);
            db_set_join(db, &token, false).await?;
            token
        }
    };
    write_secret(&join_file, &format!("{join_token}\n")).map_err(io(&join_file))?;

    let mut created_admin = false;
    if db.get_setting("admin_created").await?.is_none() {
        let token = auth::new_token(USER_TOKEN_PREFIX);
        db.add_api_token("admin", true, "initial", &auth::token_hash(&token), crate::now_ms()).await?;
        write_secret(&admin_file, &format!("{token}\n")).map_err(io(&admin_file))?;
        db.init_setting("admin_created", "1").await?;
        created_admin = true;
    }
    Ok(InitOutcome { join_token_file: join_file, admin_token_file: admin_file, created_admin })
}

async fn db_set_join(db: &dyn Database, token: &str, replace: bool) -> Result<(), StoreError> {
    if replace {
        db.set_setting("join_token_hash", &auth::token_hash(token)).await
    } else {
        db.init_setting("join_token_hash", &auth::token_hash(token)).await.map(|_| ())
    }
}
