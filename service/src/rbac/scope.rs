//! Data scopes (数据权限): how far a user sees, beyond what they may do. A role carries a
//! [`DataScope`]; a user holds the widest scope among their current roles, resolved once per
//! request into a [`Reach`] that every service query applies. Records out of reach answer
//! exactly as records that do not exist (404), so their existence is never revealed.

use std::{collections::BTreeSet, sync::Arc};

use chrono::NaiveDateTime;
use entity::{user_instances, wework_instances};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};

use crate::{ServiceError, ServiceResult};

/// What a role lets its holder see, from narrowest to widest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DataScope {
    /// Within the assigned instances, only the tasks, messages and templates the user created
    /// (plus public templates).
    Own,
    /// Everything on the instances assigned to the user (or created by them); templates they
    /// created or that are public.
    Assigned,
    /// Every record.
    All,
}

impl DataScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::Assigned => "assigned",
            Self::All => "all",
        }
    }

    /// The stored value; anything unknown reads as the narrowest scope, never a wider one.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "all" => Self::All,
            "assigned" => Self::Assigned,
            _ => Self::Own,
        }
    }
}

/// How far one actor sees, resolved from their roles and instance assignments.
#[derive(Debug, Clone)]
pub enum Reach {
    /// Every record: a user holding a role with scope `all`, or the platform itself.
    All,
    Limited {
        user_id: i64,
        /// Instances assigned to the user.
        instances: Arc<BTreeSet<i64>>,
        /// `own` scope: authored records (tasks, messages, templates) only when the user wrote them.
        own_only: bool,
    },
}

impl Reach {
    /// Resolves `scope` for `user_id`, reading their instance assignments when it is limited.
    pub async fn resolve<C: ConnectionTrait>(
        conn: &C,
        user_id: i64,
        scope: DataScope,
    ) -> ServiceResult<Self> {
        if scope == DataScope::All {
            return Ok(Self::All);
        }
        let ids: Vec<i64> = user_instances::Entity::find()
            .select_only()
            .column(user_instances::Column::InstanceId)
            .inner_join(wework_instances::Entity)
            .filter(user_instances::Column::UserId.eq(user_id))
            .filter(wework_instances::Column::DeletedAt.is_null())
            .into_tuple()
            .all(conn)
            .await?;
        Ok(Self::Limited {
            user_id,
            instances: Arc::new(ids.into_iter().collect()),
            own_only: scope == DataScope::Own,
        })
    }

    /// The reach of a user as it stands now (for work done later on their behalf, such as
    /// taking in a task's audience).
    pub async fn of_user<C: ConnectionTrait>(
        conn: &C,
        user_id: i64,
        now: NaiveDateTime,
    ) -> ServiceResult<Self> {
        let scope = super::effective_scope(conn, user_id, now).await?;
        Self::resolve(conn, user_id, scope).await
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }

    /// The scope this reach was resolved from.
    pub fn scope(&self) -> DataScope {
        match self {
            Self::All => DataScope::All,
            Self::Limited { own_only: true, .. } => DataScope::Own,
            Self::Limited { .. } => DataScope::Assigned,
        }
    }

    /// The instances in reach; `None` when every instance is.
    pub fn instance_ids(&self) -> Option<&BTreeSet<i64>> {
        match self {
            Self::All => None,
            Self::Limited { instances, .. } => Some(instances),
        }
    }

    pub fn sees_instance(&self, instance_id: i64) -> bool {
        self.instance_ids()
            .is_none_or(|ids| ids.contains(&instance_id))
    }

    /// Restricts a query on instance-bound rows (instances, accounts, contacts, groups, tags)
    /// to the instances in reach.
    pub fn on_instances(&self, column: impl ColumnTrait) -> Condition {
        match self.instance_ids() {
            None => Condition::all(),
            Some(ids) => Condition::all().add(column.is_in(ids.iter().copied())),
        }
    }

    /// Restricts a query on authored, instance-bound rows (tasks, messages): under `assigned`,
    /// those on an instance in reach or written by the user; under `own`, only the user's.
    pub fn on_authored(
        &self,
        created_by: impl ColumnTrait,
        instance: impl ColumnTrait,
    ) -> Condition {
        match self {
            Self::All => Condition::all(),
            Self::Limited {
                user_id,
                own_only: true,
                ..
            } => Condition::all().add(created_by.eq(*user_id)),
            Self::Limited {
                user_id, instances, ..
            } => Condition::any()
                .add(created_by.eq(*user_id))
                .add(instance.is_in(instances.iter().copied())),
        }
    }

    /// Restricts a query on templates: public ones and the user's own, unless the scope is `all`.
    pub fn on_templates(
        &self,
        created_by: impl ColumnTrait,
        public: impl ColumnTrait,
    ) -> Condition {
        match self {
            Self::All => Condition::all(),
            Self::Limited { user_id, .. } => Condition::any()
                .add(created_by.eq(*user_id))
                .add(public.eq(true)),
        }
    }

    /// `what` on `instance_id` in reach, or the same 404 as a record that does not exist.
    pub fn check_instance(&self, instance_id: i64, what: &'static str) -> ServiceResult<()> {
        if self.sees_instance(instance_id) {
            Ok(())
        } else {
            Err(ServiceError::NotFound(what))
        }
    }

    /// An authored record (see [`Self::on_authored`]) in reach, or a 404.
    pub fn check_authored(
        &self,
        created_by: Option<i64>,
        instance_id: Option<i64>,
        what: &'static str,
    ) -> ServiceResult<()> {
        let visible = match self {
            Self::All => true,
            Self::Limited {
                user_id,
                own_only,
                instances,
            } => {
                created_by == Some(*user_id)
                    || (!own_only && instance_id.is_some_and(|id| instances.contains(&id)))
            }
        };
        if visible {
            Ok(())
        } else {
            Err(ServiceError::NotFound(what))
        }
    }

    /// A template in reach (see [`Self::on_templates`]), or a 404.
    pub fn check_template(&self, created_by: i64, public: bool) -> ServiceResult<()> {
        match self {
            Self::Limited { user_id, .. } if !public && created_by != *user_id => {
                Err(ServiceError::NotFound("template"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(own_only: bool) -> Reach {
        Reach::Limited {
            user_id: 7,
            instances: Arc::new([1, 2].into()),
            own_only,
        }
    }

    #[test]
    fn unknown_stored_scopes_read_as_the_narrowest() {
        assert_eq!(DataScope::from_stored("everything"), DataScope::Own);
        assert_eq!(DataScope::from_stored("all"), DataScope::All);
        assert!(DataScope::All > DataScope::Assigned && DataScope::Assigned > DataScope::Own);
    }

    #[test]
    fn assigned_sees_instance_records_and_its_own_elsewhere() {
        let reach = limited(false);
        assert!(reach.check_instance(2, "contact").is_ok());
        assert!(matches!(
            reach.check_instance(3, "contact"),
            Err(ServiceError::NotFound("contact"))
        ));
        assert!(reach.check_authored(Some(8), Some(1), "task").is_ok());
        assert!(reach.check_authored(Some(7), Some(3), "task").is_ok());
        assert!(reach.check_authored(Some(8), Some(3), "task").is_err());
        assert!(reach.check_authored(Some(8), None, "task").is_err());
    }

    #[test]
    fn own_sees_only_what_the_user_wrote() {
        let reach = limited(true);
        assert!(reach.check_authored(Some(8), Some(1), "task").is_err());
        assert!(reach.check_authored(Some(7), None, "task").is_ok());
        assert!(reach.check_template(8, true).is_ok());
        assert!(reach.check_template(8, false).is_err());
        assert!(reach.check_instance(1, "contact").is_ok());
    }

    #[test]
    fn all_sees_everything() {
        assert!(Reach::All.check_authored(Some(8), None, "task").is_ok());
        assert!(Reach::All.check_template(8, false).is_ok());
        assert!(Reach::All.check_instance(99, "instance").is_ok());
    }
}
