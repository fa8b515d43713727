//! Users, roles, permissions, sessions and login history.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{create, drop_all, fk, table, with_timestamps};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let users = with_timestamps(
            table("users")
                .col(string_len("username", 50))
                .col(string_len_null("email", 100))
                .col(string_len_null("phone", 20))
                .col(string_len_null("nickname", 100))
                .col(string_len_null("avatar_url", 500))
                .col(string_len("password_hash", 255))
                .col(string_len("status", 16).default("active"))
                .col(date_time_null("last_login_at"))
                .col(string_len_null("last_login_ip", 45))
                .col(integer("failed_login_count").default(0))
                .col(date_time_null("locked_until"))
                .col(date_time_null("password_changed_at"))
                .col(boolean("totp_enabled").default(false))
                .col(text_null("totp_secret"))
                .col(big_integer_null("totp_last_step"))
                .col(big_integer_null("created_by"))
                .col(big_integer("deletion_token").default(0))
                .to_owned(),
        )
        .col(date_time_null("deleted_at"))
        .to_owned();
        create(
            manager,
            users,
            "users",
            &[
                ("username", &["username", "deletion_token"], true),
                ("email", &["email", "deletion_token"], true),
                ("status", &["status"], false),
                ("deleted", &["deleted_at"], false),
            ],
        )
        .await?;

        let roles = with_timestamps(
            table("roles")
                .col(string_len("name", 50))
                .col(string_len("display_name", 100))
                .col(text_null("description"))
                .col(boolean("is_system").default(false))
                .col(integer("sort_order").default(0))
                .col(big_integer("deletion_token").default(0))
                .to_owned(),
        )
        .col(date_time_null("deleted_at"))
        .to_owned();
        create(
            manager,
            roles,
            "roles",
            &[
                ("name", &["name", "deletion_token"], true),
                ("deleted", &["deleted_at"], false),
            ],
        )
        .await?;

        let permissions = table("permissions")
            .col(string_len("name", 100))
            .col(string_len("display_name", 100))
            .col(text_null("description"))
            .col(string_len("module", 50))
            .col(string_len("resource", 50))
            .col(string_len("action", 50))
            .col(integer("sort_order").default(0))
            .col(date_time("created_at"))
            .to_owned();
        create(
            manager,
            permissions,
            "permissions",
            &[("name", &["name"], true), ("module", &["module"], false)],
        )
        .await?;

        let user_roles = table("user_roles")
            .col(big_integer("user_id"))
            .col(big_integer("role_id"))
            .col(big_integer_null("granted_by"))
            .col(date_time_null("expires_at"))
            .col(date_time("created_at"))
            .foreign_key(&mut fk(
                "user_roles",
                "user_id",
                "users",
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                "user_roles",
                "role_id",
                "roles",
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        create(
            manager,
            user_roles,
            "user_roles",
            &[
                ("user_role", &["user_id", "role_id"], true),
                ("role", &["role_id"], false),
                ("expires", &["expires_at"], false),
            ],
        )
        .await?;

        let role_permissions = table("role_permissions")
            .col(big_integer("role_id"))
            .col(big_integer("permission_id"))
            .col(date_time("created_at"))
            .foreign_key(&mut fk(
                "role_permissions",
                "role_id",
                "roles",
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                "role_permissions",
                "permission_id",
                "permissions",
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        create(
            manager,
            role_permissions,
            "role_permissions",
            &[
                ("role_perm", &["role_id", "permission_id"], true),
                ("perm", &["permission_id"], false),
            ],
        )
        .await?;

        let sessions = table("user_sessions")
            .col(uuid("session_uuid"))
            .col(big_integer("user_id"))
            .col(char_len("access_token_hash", 64))
            .col(char_len("refresh_token_hash", 64))
            .col(date_time("access_expires_at"))
            .col(date_time("refresh_expires_at"))
            .col(date_time("absolute_expires_at"))
            .col(date_time("last_activity_at"))
            .col(string_len("ip_address", 45))
            .col(string_len_null("user_agent", 512))
            .col(date_time("created_at"))
            .col(date_time_null("rotated_at"))
            .col(date_time_null("revoked_at"))
            .col(string_len_null("revoked_reason", 50))
            .foreign_key(&mut fk(
                "user_sessions",
                "user_id",
                "users",
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        create(
            manager,
            sessions,
            "user_sessions",
            &[
                ("uuid", &["session_uuid"], true),
                ("access", &["access_token_hash"], true),
                ("refresh", &["refresh_token_hash"], true),
                ("user", &["user_id", "id"], false),
                ("expires", &["absolute_expires_at"], false),
            ],
        )
        .await?;

        // Refresh tokens that were rotated out: presenting one again is token theft.
        let rotated = table("session_rotated_tokens")
            .col(char_len("token_hash", 64))
            .col(big_integer("session_id"))
            .col(date_time("rotated_at"))
            .col(date_time("expires_at"))
            .foreign_key(&mut fk(
                "session_rotated_tokens",
                "session_id",
                "user_sessions",
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        create(
            manager,
            rotated,
            "session_rotated_tokens",
            &[
                ("hash", &["token_hash"], true),
                ("session", &["session_id"], false),
            ],
        )
        .await?;

        let login_logs = table("login_logs")
            .col(big_integer_null("user_id"))
            .col(string_len("login_name", 100))
            .col(string_len("ip_address", 45))
            .col(string_len_null("user_agent", 512))
            .col(string_len("result", 16))
            .col(string_len_null("reason", 50))
            .col(date_time("created_at"))
            .to_owned();
        create(
            manager,
            login_logs,
            "login_logs",
            &[
                ("user", &["user_id", "id"], false),
                ("ip", &["ip_address", "created_at"], false),
                ("created", &["created_at"], false),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(
            manager,
            &[
                "login_logs",
                "session_rotated_tokens",
                "user_sessions",
                "role_permissions",
                "user_roles",
                "permissions",
                "roles",
                "users",
            ],
        )
        .await
    }
}
