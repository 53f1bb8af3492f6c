//! Accounts on SQLite: users, tokens, sessions, sign-in locks and members.

use super::*;

#[async_trait]
impl Accounts for SqliteDatabase {
    async fn add_api_token(
        &self,
        user: &str,
        is_admin: bool,
        token_name: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO users (name, is_admin, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(user)
            .bind(is_admin)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at) \
             SELECT id, ?, ?, ? FROM users WHERE name = ?",
        )
        .bind(token_name)
        .bind(token_hash)
        .bind(now)
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(conflict("token"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_for_token(&self, token_hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_row(&r)).transpose()
    }

    async fn create_user(&self, new: &NewUser, now: i64) -> Result<User> {
        sqlx::query(
            "INSERT INTO users (name, is_admin, production, password_hash, email, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.name)
        .bind(new.is_admin)
        .bind(new.production)
        .bind(new.password_hash.as_deref())
        .bind(new.email.as_deref())
        .bind(now)
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("user '{}'", new.name)))?;
        self.user(&new.name).await
    }

    async fn user(&self, name: &str) -> Result<User> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users u WHERE u.name = ?")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("user '{name}'")))
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users u ORDER BY u.name")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_row).collect()
    }

    async fn password_hash(&self, user_id: i64) -> Result<Option<String>> {
        let hash: Option<Option<String>> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(hash.flatten())
    }

    async fn set_user_disabled(&self, user_id: i64, disabled: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET disabled = ? WHERE id = ?")
            .bind(disabled)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        if !disabled {
            sqlx::query("DELETE FROM sign_in_failures WHERE user_id = ?").bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sign_in_lock(&self, user_id: i64, address: &str, now: i64) -> Result<Option<i64>> {
        let until: Option<i64> =
            sqlx::query_scalar("SELECT locked_until FROM sign_in_failures WHERE user_id = ? AND address = ?")
                .bind(user_id)
                .bind(address)
                .fetch_optional(&self.pool)
                .await?
                .flatten();
        Ok(until.filter(|t| *t > now))
    }

    async fn record_failed_sign_in(
        &self,
        user_id: i64,
        address: &str,
        now: i64,
        lock: fn(u32, i64) -> Option<i64>,
    ) -> Result<Option<i64>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let failures: i64 = sqlx::query_scalar(
            "INSERT INTO sign_in_failures (user_id, address, failures) VALUES (?1, ?2, 1) \
             ON CONFLICT (user_id, address) DO UPDATE SET failures = failures + 1 RETURNING failures",
        )
        .bind(user_id)
        .bind(address)
        .fetch_one(&mut *tx)
        .await?;
        let until = lock(u32::try_from(failures).unwrap_or(u32::MAX), now);
        if until.is_some() {
            // Locked: the count starts again, so the next lock needs as
            // many failures as the first.
            sqlx::query(
                "UPDATE sign_in_failures SET locked_until = ?1, failures = 0 WHERE user_id = ?2 AND address = ?3",
            )
            .bind(until)
            .bind(user_id)
            .bind(address)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(until)
    }

    async fn clear_failed_sign_ins(&self, user_id: i64, address: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE user_id = ? AND address = ?")
            .bind(user_id)
            .bind(address)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_user_rights(&self, user_id: i64, is_admin: bool, production: bool) -> Result<()> {
        let done = sqlx::query("UPDATE users SET is_admin = ?, production = ? WHERE id = ?")
            .bind(is_admin)
            .bind(production)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    async fn set_user_email(&self, user_id: i64, email: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE users SET email = ? WHERE id = ?")
            .bind(email)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    async fn create_api_token(&self, user_id: i64, name: &str, token_hash: &str, now: i64) -> Result<ApiToken> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(conflict("token"))?;
        let row = sqlx::query(
            "SELECT t.id, u.name, t.name, t.created_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.id = ?",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        token_row(&row)
    }

    async fn api_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT t.id, u.name, t.name, t.created_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.user_id = ? ORDER BY t.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_api_token(&self, user_id: i64, token_id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = ? AND user_id = ?")
            .bind(token_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_web_session(&self, user_id: i64, token_hash: &str, now: i64, expires_at: i64) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Ended sessions go when a new one starts: the table stays as small
        // as the number of people signed in.
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= ?").bind(now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict("web session"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_for_web_session(&self, token_hash: &str, now: i64) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND s.expires_at > ?"
        )))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_row(&r)).transpose()
    }

    async fn end_web_session(&self, token_hash: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM web_sessions WHERE token_hash = ?").bind(token_hash).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_member(&self, project: &Project, user: &User, role: ferry_domain::Role, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO project_members (project_id, user_id, role, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(project.id)
        .bind(user.id)
        .bind(role.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_member(&self, project: &Project, user: &User) -> Result<bool> {
        let done = sqlx::query("DELETE FROM project_members WHERE project_id = ? AND user_id = ?")
            .bind(project.id)
            .bind(user.id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn members(&self, project: &Project) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.name, m.role, m.created_at FROM project_members m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = ? ORDER BY u.name",
        )
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    project: project.name.clone(),
                    user: r.try_get(0)?,
                    role: parse(&r.try_get::<String, _>(1)?)?,
                    created_at: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn membership(&self, project_id: i64, user_id: i64) -> Result<Option<ferry_domain::Role>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM project_members WHERE project_id = ? AND user_id = ?")
                .bind(project_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        role.as_deref().map(parse).transpose()
    }

    async fn best_membership(&self, user_id: i64) -> Result<Option<ferry_domain::Role>> {
        let roles: Vec<String> = sqlx::query_scalar("SELECT role FROM project_members WHERE user_id = ?")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(roles.iter().map(|r| parse(r)).collect::<Result<Vec<ferry_domain::Role>>>()?.into_iter().max())
    }
}
