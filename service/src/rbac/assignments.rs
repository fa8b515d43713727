//! Which instances a user is assigned to: the reach of a user whose data scope is `assigned` or
//! `own`. Written by administrators (`PUT /users/{id}/instances`, audited with the user) and,
//! for a limited user, when they create an instance.

use chrono::NaiveDateTime;
use entity::{user_instances, wework_instances};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::{ServiceResult, auth::actor::Actor, validate::Violations};

/// At most this many instances per user in one assignment.
pub const MAX_ASSIGNED: usize = 1000;

/// The live instances assigned to `user_id`, ascending.
pub async fn of_user<C: ConnectionTrait>(conn: &C, user_id: i64) -> ServiceResult<Vec<i64>> {
    Ok(user_instances::Entity::find()
        .select_only()
        .column(user_instances::Column::InstanceId)
        .inner_join(wework_instances::Entity)
        .filter(user_instances::Column::UserId.eq(user_id))
        .filter(wework_instances::Column::DeletedAt.is_null())
        .order_by_asc(user_instances::Column::InstanceId)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Assigns a new instance to the limited user who just created it, in the creating transaction.
pub async fn assign_created<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    instance_id: i64,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    user_instances::Entity::insert(row(user_id, instance_id, Some(user_id), now))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Checks a requested assignment: no repeats, and only instances the assigning actor sees
/// (anything else reads as missing, so an assignment cannot probe for ids).
pub async fn check<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    instance_ids: &[i64],
) -> ServiceResult<()> {
    let mut v = Violations::new();
    if instance_ids.len() > MAX_ASSIGNED {
        v.add("instance_ids", format!("at most {MAX_ASSIGNED} instances"));
        return v.finish();
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, id) in instance_ids.iter().enumerate() {
        if !seen.insert(*id) {
            v.add(format!("instance_ids[{i}]"), "is listed twice");
        } else if crate::instances::find_visible(conn, actor, *id)
            .await
            .is_err()
        {
            v.add(format!("instance_ids[{i}]"), "no such instance");
        }
    }
    v.finish()
}

/// Replaces a user's assignments.
pub async fn replace(
    txn: &DatabaseTransaction,
    assigned_by: Option<i64>,
    user_id: i64,
    instance_ids: &[i64],
    now: NaiveDateTime,
) -> ServiceResult<()> {
    user_instances::Entity::delete_many()
        .filter(user_instances::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    if instance_ids.is_empty() {
        return Ok(());
    }
    user_instances::Entity::insert_many(
        instance_ids
            .iter()
            .map(|id| row(user_id, *id, assigned_by, now)),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

fn row(
    user_id: i64,
    instance_id: i64,
    assigned_by: Option<i64>,
    now: NaiveDateTime,
) -> user_instances::ActiveModel {
    user_instances::ActiveModel {
        user_id: Set(user_id),
        instance_id: Set(instance_id),
        assigned_by: Set(assigned_by),
        created_at: Set(now),
        ..Default::default()
    }
}
