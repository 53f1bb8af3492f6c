//! `ferry login`, `whoami`, `user`, `token`, `member` and `env update`
//! (R26), and the credentials file `ferry login` writes.

use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ferry_proto::api::{
    AddMember, CreateToken, CreateUser, EnvironmentInfo, Login, MemberInfo, NewToken, SetProduction, TokenInfo,
    UserInfo,
};

use crate::output::{table, time};
use crate::{Client, Output};

/// What `ferry login` keeps: the server and a token for it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct SavedCredentials {
    pub server: String,
    pub user: String,
    pub token: String,
    /// The `--ca-cert` the sign-in trusted the server with (absolute), used
    /// again by later commands that give none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// `$XDG_CONFIG_HOME/ferry/credentials.json`, or `~/.config/ferry/...`.
pub fn credentials_path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!("neither XDG_CONFIG_HOME nor HOME is set: cannot find the credentials file"),
        },
    };
    Ok(base.join("ferry").join("credentials.json"))
}

/// The credentials `ferry login` saved, if any.
pub fn saved_credentials() -> Result<Option<SavedCredentials>> {
    let path = credentials_path()?;
    match std::fs::read(&path) {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("{} is not readable", path.display()))?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the credentials file with mode 0600, replacing it atomically, so
/// the token is never readable by others, not even for a moment.
fn save_credentials(saved: &SavedCredentials) -> Result<PathBuf> {
    let path = credentials_path()?;
    let dir = path.parent().context("credentials path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(saved)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The first line of standard input, without its line ending.
pub fn read_password_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

/// `ferry login URL --user U --password-stdin`.
///
/// `ca_cert`: as `--ca-cert` of every command, for an https server whose
/// certificate the public web roots do not vouch for.
pub async fn login(
    url: &str,
    user: &str,
    password: &str,
    token_name: &str,
    ca_cert: Option<&std::path::Path>,
) -> Result<()> {
    let server = url.trim_end_matches('/').to_string();
    let http = crate::client::http_client(ca_cert)?;
    let body = Login { user: user.to_string(), password: password.to_string(), token_name: Some(token_name.into()) };
    let path = "/api/v1/login";
    let resp = http.post(format!("{server}{path}")).json(&body).send().await;
    let token: NewToken = crate::client::decode(path, resp).await?;
    // Absolute, so that commands run from another directory find it.
    let ca_cert = ca_cert.map(std::path::absolute).transpose().context("--ca-cert")?;
    let saved = SavedCredentials { server, user: token.user.clone(), token: token.token, ca_cert };
    let file = save_credentials(&saved)?;
    println!(
        "signed in to {} as {} (token {} '{}' saved in {})",
        saved.server,
        saved.user,
        token.id,
        token.name,
        file.display()
    );
    Ok(())
}

fn rights(u: &UserInfo) -> String {
    let mut r = Vec::new();
    if u.admin {
        r.push("administrator");
    }
    if u.production {
        r.push("production");
    }
    if u.disabled {
        r.push("disabled");
    }
    if r.is_empty() { "-".into() } else { r.join(",") }
}

/// `ferry whoami`.
pub async fn whoami(c: &Client, out: Output) -> Result<()> {
    let u: UserInfo = c.get("/api/v1/whoami").await?;
    out.print(&u, |u| format!("{} ({})\n", u.name, rights(u)))
}

/// `ferry user create NAME [--admin] [--production] --password-stdin`.
pub async fn user_create(c: &Client, req: CreateUser, out: Output) -> Result<()> {
    let u: UserInfo = c.post("/api/v1/users", &req).await?;
    out.print(&u, |u| format!("created user {} ({})\n", u.name, rights(u)))
}

/// `ferry user list`.
pub async fn user_list(c: &Client, out: Output) -> Result<()> {
    let users: Vec<UserInfo> = c.get("/api/v1/users").await?;
    out.print(&users, |l| {
        table(
            &["USER", "RIGHTS", "EMAIL"],
            l.iter().map(|u| vec![u.name.clone(), rights(u), u.email.clone().unwrap_or_else(|| "-".into())]).collect(),
        )
    })
}

/// `ferry user set NAME --email ADDR`: where the user's e-mail
/// notifications go (an empty address clears it).
pub async fn user_set(c: &Client, name: &str, req: &ferry_proto::api::UpdateUser, out: Output) -> Result<()> {
    let u: UserInfo = c.post(&format!("/api/v1/users/{name}"), req).await?;
    out.print(&u, |u| {
        let mut text = match &u.email {
            Some(e) => format!("user {} gets e-mail at {e}\n", u.name),
            None => format!("user {} has no e-mail address: e-mail rules skip them\n", u.name),
        };
        let rights: Vec<&str> = [(u.admin, "administrator"), (u.production, "production right")]
            .iter()
            .filter(|r| r.0)
            .map(|r| r.1)
            .collect();
        text.push_str(&format!(
            "rights: {}\n",
            if rights.is_empty() { "none beyond project roles".into() } else { rights.join(", ") }
        ));
        text
    })
}

/// `ferry user disable|enable NAME`.
pub async fn user_set_disabled(c: &Client, name: &str, disabled: bool, out: Output) -> Result<()> {
    let verb = if disabled { "disable" } else { "enable" };
    let u: UserInfo = c.post(&format!("/api/v1/users/{name}/{verb}"), &serde_json::json!({})).await?;
    out.print(&u, |u| format!("user {} is {}\n", u.name, if u.disabled { "disabled" } else { "enabled" }))
}

/// `ferry token create NAME`: prints the token, once.
pub async fn token_create(c: &Client, name: &str, out: Output) -> Result<()> {
    let t: NewToken = c.post("/api/v1/tokens", &CreateToken { name: name.into() }).await?;
    out.print(&t, |t| format!("{}\n", t.token))?;
    if matches!(out, Output::Table) {
        eprintln!("token {} '{}' of {}: it is shown this once", t.id, t.name, t.user);
    }
    Ok(())
}

/// `ferry token list`.
pub async fn token_list(c: &Client, out: Output) -> Result<()> {
    let tokens: Vec<TokenInfo> = c.get("/api/v1/tokens").await?;
    out.print(&tokens, |l| {
        table(
            &["ID", "NAME", "CREATED"],
            l.iter().map(|t| vec![t.id.to_string(), t.name.clone(), time(&t.created_at)]).collect(),
        )
    })
}

/// `ferry token revoke ID`.
pub async fn token_revoke(c: &Client, id: i64) -> Result<()> {
    let _: serde_json::Value = c.delete(&format!("/api/v1/tokens/{id}")).await?;
    println!("revoked token {id}");
    Ok(())
}

/// `ferry member add PROJECT USER ROLE`.
pub async fn member_add(c: &Client, project: &str, user: &str, role: &str, out: Output) -> Result<()> {
    let req = AddMember { user: user.into(), role: role.into() };
    let m: MemberInfo = c.post(&format!("/api/v1/projects/{project}/members"), &req).await?;
    out.print(&m, |m| format!("{} is a {} of project {project}\n", m.user, m.role))
}

/// `ferry member remove PROJECT USER`.
pub async fn member_remove(c: &Client, project: &str, user: &str) -> Result<()> {
    let _: serde_json::Value = c.delete(&format!("/api/v1/projects/{project}/members/{user}")).await?;
    println!("{user} is no longer a member of project {project}");
    Ok(())
}

/// `ferry member list PROJECT`.
pub async fn member_list(c: &Client, project: &str, out: Output) -> Result<()> {
    let members: Vec<MemberInfo> = c.get(&format!("/api/v1/projects/{project}/members")).await?;
    out.print(&members, |l| {
        table(
            &["USER", "ROLE", "SINCE"],
            l.iter().map(|m| vec![m.user.clone(), m.role.clone(), time(&m.created_at)]).collect(),
        )
    })
}

/// `ferry env update PROJECT ENV --production true|false`.
pub async fn env_set_production(c: &Client, project: &str, env: &str, production: bool, out: Output) -> Result<()> {
    let path = format!("/api/v1/projects/{project}/environments/{env}/production");
    let e: EnvironmentInfo = c.post(&path, &SetProduction { production }).await?;
    out.print(&e, |e| {
        let what = if e.production { "a production environment" } else { "not a production environment" };
        format!("{}/{} is {what}\n", e.project, e.name)
    })
}
