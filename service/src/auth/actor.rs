//! Who is acting: the authenticated user with their effective permissions and request metadata.

use std::{collections::BTreeSet, sync::Arc};

use crate::{
    ServiceError, ServiceResult,
    rbac::{perm::Permission, scope::Reach},
};

/// Where a request came from, for audit rows and login history.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: String,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    /// Database id of the session the request authenticated with.
    pub session_id: Option<i64>,
    pub session_uuid: Option<String>,
    pub permissions: Arc<BTreeSet<String>>,
    /// Which records the user sees (their data scope and instance assignments).
    pub reach: Reach,
    pub meta: RequestMeta,
}

impl Actor {
    /// The platform itself (bootstrap, housekeeping): holds no permissions, so it can only act
    /// through functions written for it.
    pub fn system(meta: RequestMeta) -> Self {
        Self {
            user_id: None,
            username: Some("system".to_owned()),
            session_id: None,
            session_uuid: None,
            permissions: Arc::default(),
            reach: Reach::All,
            meta,
        }
    }

    /// Whether the actor holds permission `P` (`actor.has(perm::AuditLogsRead)`).
    pub fn has<P: Permission>(&self, _: P) -> bool {
        self.holds(P::NAME)
    }

    /// Whether the actor holds the permission named `permission` (names read from input).
    pub fn holds(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// Function-level authorization, checked inside every service function that needs it:
    /// `actor.require(perm::TasksCreate)?`. The name lives once, on the marker type.
    pub fn require<P: Permission>(&self, _: P) -> ServiceResult<()> {
        self.require_named(P::NAME)
    }

    /// `require` for a permission known by name only (the route extractor's `P::NAME`).
    pub fn require_named(&self, permission: &str) -> ServiceResult<()> {
        if self.holds(permission) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this action needs the `{permission}` permission"
            )))
        }
    }

    /// Nobody grants what they do not hold, nor manages someone who holds more than they do.
    pub fn require_all<'a>(
        &self,
        permissions: impl IntoIterator<Item = &'a str>,
        what: &str,
    ) -> ServiceResult<()> {
        let missing: Vec<&str> = permissions.into_iter().filter(|p| !self.holds(p)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "{what} needs permissions you do not hold: {}",
                missing.join(", ")
            )))
        }
    }

    pub fn user_id(&self) -> ServiceResult<i64> {
        self.user_id
            .ok_or_else(|| ServiceError::Forbidden("a user account is required".to_owned()))
    }
}
