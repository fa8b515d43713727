//! Permission marker types. A route names one in its signature (`Authorized<perm::UsersRead>`),
//! so what it needs is visible where it is declared, and checked before the handler runs.

pub trait Permission: Send + Sync + 'static {
    const NAME: &'static str;
}

macro_rules! permissions {
    ($($ty:ident => $name:literal),* $(,)?) => {
        $(
            #[doc = concat!("`", $name, "`")]
            #[derive(Debug, Clone, Copy)]
            pub struct $ty;
            impl Permission for $ty {
                const NAME: &'static str = $name;
            }
        )*
        /// Every permission the code refers to; each must exist in the `permissions` table.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

permissions! {
    ProfileSelf => "profile:self",
    UsersRead => "users:read",
    UsersCreate => "users:create",
    UsersUpdate => "users:update",
    UsersDelete => "users:delete",
    RolesRead => "roles:read",
    RolesCreate => "roles:create",
    RolesUpdate => "roles:update",
    RolesDelete => "roles:delete",
    PermissionsRead => "permissions:read",
    AuditLogsRead => "audit_logs:read",
    LoginLogsRead => "login_logs:read",
    LogsRead => "logs:read",
    MonitoringRead => "monitoring:read",
    AlertRulesRead => "alert_rules:read",
    AlertRulesCreate => "alert_rules:create",
    AlertRulesUpdate => "alert_rules:update",
    AlertRulesDelete => "alert_rules:delete",
    AlertsRead => "alerts:read",
    AlertsAck => "alerts:ack",
    InstancesRead => "instances:read",
    InstancesCreate => "instances:create",
    InstancesUpdate => "instances:update",
    InstancesDelete => "instances:delete",
    InstancesControl => "instances:control",
    AccountsRead => "accounts:read",
    AccountsUpdate => "accounts:update",
    AccountsControl => "accounts:control",
    ContactsRead => "contacts:read",
    ContactsCreate => "contacts:create",
    ContactsUpdate => "contacts:update",
    ContactsDelete => "contacts:delete",
    ContactsImport => "contacts:import",
    ContactsExport => "contacts:export",
    GroupsRead => "groups:read",
    GroupsUpdate => "groups:update",
    TagsRead => "tags:read",
    TagsCreate => "tags:create",
    TagsUpdate => "tags:update",
    TagsDelete => "tags:delete",
    SegmentsRead => "segments:read",
    SegmentsCreate => "segments:create",
    SegmentsUpdate => "segments:update",
    SegmentsDelete => "segments:delete",
    TemplatesRead => "templates:read",
    TemplatesCreate => "templates:create",
    TemplatesUpdate => "templates:update",
    TemplatesDelete => "templates:delete",
    MessagesRead => "messages:read",
    MessagesSend => "messages:send",
    TasksRead => "tasks:read",
    TasksCreate => "tasks:create",
    TasksUpdate => "tasks:update",
    TasksDelete => "tasks:delete",
    TasksControl => "tasks:control",
    TasksExport => "tasks:export",
    DeskWork => "desk:work",
    DeskSupervise => "desk:supervise",
    DeskManage => "desk:manage",
}

/// The OpenAPI shape of a permission name: one of [`ALL`], the catalogue the migrations seed.
pub struct PermissionName;

impl utoipa::PartialSchema for PermissionName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(ALL.iter().copied()))
            .into()
    }
}

impl utoipa::ToSchema for PermissionName {}
