//! Seeds the permission catalogue and the built-in roles.
//!
//! The catalogue is a snapshot of this version; later migrations add their own permissions and
//! grant them to `super_admin`. The service crate checks at start-up that every permission its
//! routes require exists here.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, module, display name)`; `name` is `resource:action`.
const PERMISSIONS: &[(&str, &str, &str)] = &[
    (
        "profile:self",
        "account",
        "Manage own profile, sessions, password and 2FA",
    ),
    ("users:read", "rbac", "View users"),
    ("users:create", "rbac", "Create users"),
    (
        "users:update",
        "rbac",
        "Edit, disable, unlock users and assign roles",
    ),
    ("users:delete", "rbac", "Delete users"),
    ("roles:read", "rbac", "View roles"),
    ("roles:create", "rbac", "Create roles"),
    ("roles:update", "rbac", "Edit roles and their permissions"),
    ("roles:delete", "rbac", "Delete roles"),
    ("permissions:read", "rbac", "View the permission catalogue"),
    ("audit_logs:read", "audit", "Read the audit log"),
    ("login_logs:read", "audit", "Read login history"),
    ("instances:read", "instances", "View instances"),
    ("instances:create", "instances", "Register instances"),
    (
        "instances:update",
        "instances",
        "Edit instances and their configuration",
    ),
    ("instances:delete", "instances", "Delete instances"),
    (
        "instances:control",
        "instances",
        "Restart, sync and log in instances",
    ),
    ("accounts:read", "instances", "View WeCom accounts"),
    ("accounts:update", "instances", "Edit WeCom accounts"),
    (
        "accounts:control",
        "instances",
        "Log accounts in and out, sync them",
    ),
    ("contacts:read", "contacts", "View and search contacts"),
    ("contacts:create", "contacts", "Create contacts"),
    (
        "contacts:update",
        "contacts",
        "Edit contacts and their tags",
    ),
    ("contacts:delete", "contacts", "Delete contacts"),
    ("contacts:import", "contacts", "Import contacts from files"),
    ("contacts:export", "contacts", "Export contacts"),
    ("groups:read", "contacts", "View groups and members"),
    ("groups:update", "contacts", "Edit groups"),
    ("tags:read", "contacts", "View tags"),
    ("tags:create", "contacts", "Create tags"),
    ("tags:update", "contacts", "Edit tags"),
    ("tags:delete", "contacts", "Delete tags"),
    ("templates:read", "messaging", "View templates"),
    ("templates:create", "messaging", "Create templates"),
    ("templates:update", "messaging", "Edit templates"),
    ("templates:delete", "messaging", "Delete templates"),
    (
        "messages:read",
        "messaging",
        "Read messages and conversations",
    ),
    ("messages:send", "messaging", "Send single messages"),
    ("tasks:read", "messaging", "View message tasks and reports"),
    ("tasks:create", "messaging", "Create message tasks"),
    ("tasks:update", "messaging", "Edit message tasks"),
    ("tasks:delete", "messaging", "Delete message tasks"),
    (
        "tasks:control",
        "messaging",
        "Pause, resume, cancel and retry tasks",
    ),
    ("tasks:export", "messaging", "Export task reports"),
    (
        "monitoring:read",
        "observability",
        "View health dashboards and metrics",
    ),
    (
        "logs:read",
        "observability",
        "Search system, access and error logs",
    ),
    ("alert_rules:read", "observability", "View alert rules"),
    ("alert_rules:create", "observability", "Create alert rules"),
    ("alert_rules:update", "observability", "Edit alert rules"),
    ("alert_rules:delete", "observability", "Delete alert rules"),
    ("alerts:read", "observability", "View alerts"),
    (
        "alerts:ack",
        "observability",
        "Acknowledge and resolve alerts",
    ),
];

const OPERATOR: &[&str] = &[
    "profile:self",
    "instances:read",
    "accounts:read",
    "contacts:read",
    "contacts:create",
    "contacts:update",
    "contacts:delete",
    "contacts:import",
    "contacts:export",
    "groups:read",
    "groups:update",
    "tags:read",
    "tags:create",
    "tags:update",
    "tags:delete",
    "templates:read",
    "templates:create",
    "templates:update",
    "templates:delete",
    "messages:read",
    "messages:send",
    "tasks:read",
    "tasks:create",
    "tasks:update",
    "tasks:delete",
    "tasks:control",
    "tasks:export",
    "monitoring:read",
];

const OPS: &[&str] = &[
    "profile:self",
    "instances:read",
    "instances:create",
    "instances:update",
    "instances:delete",
    "instances:control",
    "accounts:read",
    "accounts:update",
    "accounts:control",
    "contacts:read",
    "groups:read",
    "tags:read",
    "tasks:read",
    "monitoring:read",
    "logs:read",
    "alert_rules:read",
    "alert_rules:create",
    "alert_rules:update",
    "alert_rules:delete",
    "alerts:read",
    "alerts:ack",
];

const VIEWER: &[&str] = &[
    "profile:self",
    "instances:read",
    "accounts:read",
    "contacts:read",
    "groups:read",
    "tags:read",
    "templates:read",
    "messages:read",
    "tasks:read",
    "monitoring:read",
    "alerts:read",
];

/// Role design stays with super admins; admins run everything else.
const ADMIN_EXCLUDED: &[&str] = &["roles:create", "roles:update", "roles:delete"];

fn db_err(e: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(e.to_string())
}

fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut insert = Query::insert();
        insert.into_table("permissions").columns([
            "name",
            "display_name",
            "module",
            "resource",
            "action",
            "sort_order",
            "created_at",
        ]);
        for (order, (name, module, display)) in PERMISSIONS.iter().enumerate() {
            let (resource, action) = name.split_once(':').ok_or_else(|| db_err(name))?;
            insert
                .values([
                    (*name).into(),
                    (*display).into(),
                    (*module).into(),
                    resource.into(),
                    action.into(),
                    <i32 as TryFrom<usize>>::try_from(order)
                        .map_err(db_err)?
                        .into(),
                    now().into(),
                ])
                .map_err(db_err)?;
        }
        manager.exec_stmt(insert).await?;

        let all: Vec<&str> = PERMISSIONS.iter().map(|(name, _, _)| *name).collect();
        let admin: Vec<&str> = all
            .iter()
            .copied()
            .filter(|p| !ADMIN_EXCLUDED.contains(p))
            .collect();
        let roles: [(&str, &str, &str, &[&str]); 5] = [
            (
                "super_admin",
                "Super administrator",
                "Every permission",
                &all,
            ),
            (
                "admin",
                "Administrator",
                "Everything but role design",
                &admin,
            ),
            (
                "operator",
                "Marketing operator",
                "Contacts, templates and broadcasts",
                OPERATOR,
            ),
            (
                "ops",
                "Operations",
                "Instances, accounts, monitoring and alerts",
                OPS,
            ),
            (
                "viewer",
                "Viewer",
                "Read-only access to the business data",
                VIEWER,
            ),
        ];
        for (order, (name, display, description, grants)) in roles.iter().enumerate() {
            let mut role = Query::insert();
            role.into_table("roles")
                .columns([
                    "name",
                    "display_name",
                    "description",
                    "is_system",
                    "sort_order",
                    "deletion_token",
                    "created_at",
                    "updated_at",
                ])
                .values([
                    (*name).into(),
                    (*display).into(),
                    (*description).into(),
                    true.into(),
                    <i32 as TryFrom<usize>>::try_from(order)
                        .map_err(db_err)?
                        .into(),
                    0i64.into(),
                    now().into(),
                    now().into(),
                ])
                .map_err(db_err)?;
            manager.exec_stmt(role).await?;
            crate::builders::grant_to_roles(manager, &[(*name, *grants)]).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let names: Vec<&str> = PERMISSIONS.iter().map(|(name, _, _)| *name).collect();
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("roles")
                    .and_where(Expr::col("is_system").eq(true))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("permissions")
                    .and_where(Expr::col("name").is_in(names))
                    .to_owned(),
            )
            .await
    }
}
