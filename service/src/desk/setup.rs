//! Desk settings: skill groups (who answers what, by which assignment rule, and when a silent
//! visitor's conversation closes) and channels (which WeCom account's private chats become
//! conversations, in which group, with which welcome and rating prompt).

use chrono::{DateTime, Utc};
use entity::{
    desk_channels, desk_conversations, desk_skill_groups,
    states::{AssignmentRule, ConversationState},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    rbac::perm,
    validate::{self, Violations},
};

/// A silent visitor's conversation closes after this long by default (30 minutes).
pub const DEFAULT_INACTIVITY_SECS: i32 = 1800;
const MIN_INACTIVITY_SECS: i32 = 60;
const MAX_INACTIVITY_SECS: i32 = 7 * 24 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SkillGroupView {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub assignment_rule: AssignmentRule,
    /// A conversation whose visitor has written nothing for this long is closed.
    pub inactivity_timeout_secs: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<desk_skill_groups::Model> for SkillGroupView {
    fn from(m: desk_skill_groups::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            description: m.description,
            assignment_rule: m.assignment_rule,
            inactivity_timeout_secs: m.inactivity_timeout_secs,
            created_at: to_utc(m.created_at),
            updated_at: to_utc(m.updated_at),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillGroupInput {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Default `round_robin`.
    pub assignment_rule: Option<AssignmentRule>,
    /// 60 to 604800 seconds; default 1800.
    #[schema(minimum = 60, maximum = 604800)]
    pub inactivity_timeout_secs: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillGroupPatch {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub description: Option<Option<String>>,
    pub assignment_rule: Option<AssignmentRule>,
    #[schema(minimum = 60, maximum = 604800)]
    pub inactivity_timeout_secs: Option<i32>,
}

fn check_timeout(v: &mut Violations, secs: Option<i32>) {
    if let Some(secs) = secs
        && !(MIN_INACTIVITY_SECS..=MAX_INACTIVITY_SECS).contains(&secs)
    {
        v.add(
            "inactivity_timeout_secs",
            format!("must be between {MIN_INACTIVITY_SECS} and {MAX_INACTIVITY_SECS} seconds"),
        );
    }
}

fn name_taken(e: ServiceError) -> ServiceError {
    if e.is_unique_violation() {
        ServiceError::conflict("name", "another one already has this name")
    } else {
        e
    }
}

/// Every skill group, by name. Agents read them too (to transfer into one).
pub async fn list_groups(ctx: &Context, actor: &Actor) -> ServiceResult<Vec<SkillGroupView>> {
    if !actor.has(perm::DeskManage) && !actor.has(perm::DeskSupervise) {
        actor.require(perm::DeskWork)?;
    }
    Ok(desk_skill_groups::Entity::find()
        .order_by_asc(desk_skill_groups::Column::Name)
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(SkillGroupView::from)
        .collect())
}

pub async fn find_group<C: sea_orm::ConnectionTrait>(
    conn: &C,
    id: i64,
) -> ServiceResult<desk_skill_groups::Model> {
    desk_skill_groups::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("skill group"))
}

pub async fn create_group(
    ctx: &Context,
    actor: &Actor,
    input: SkillGroupInput,
) -> ServiceResult<SkillGroupView> {
    let entry = AuditEntry::new(
        "desk.skill_group.create",
        OperationType::Create,
        "skill_group",
    );
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let mut v = Violations::new();
        let name = v.take(validate::text("name", &input.name, 1, 100));
        let description = v.take(validate::optional_text(
            "description",
            input.description.as_deref(),
            500,
        ));
        check_timeout(&mut v, input.inactivity_timeout_secs);
        v.finish()?;
        let (Some(name), Some(description)) = (name, description) else {
            return Err(ServiceError::invalid("name", "is invalid"));
        };
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let id = desk_skill_groups::Entity::insert(desk_skill_groups::ActiveModel {
            name: Set(name.clone()),
            description: Set(description),
            assignment_rule: Set(input.assignment_rule.unwrap_or(AssignmentRule::RoundRobin)),
            inactivity_timeout_secs: Set(input
                .inactivity_timeout_secs
                .unwrap_or(DEFAULT_INACTIVITY_SECS)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(|e| name_taken(e.into()))?
        .last_insert_id;
        let view = SkillGroupView::from(find_group(&txn, id).await?);
        audit::commit_created(txn, actor, &entry, id, name, view, now).await
    })
    .await
}

pub async fn update_group(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: SkillGroupPatch,
) -> ServiceResult<SkillGroupView> {
    let entry = AuditEntry::new(
        "desk.skill_group.update",
        OperationType::Update,
        "skill_group",
    );
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let mut v = Violations::new();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| v.take(validate::text("name", n, 1, 100)));
        let description = match &patch.description {
            Some(d) => v.take(validate::optional_text("description", d.as_deref(), 500)),
            None => None,
        };
        check_timeout(&mut v, patch.inactivity_timeout_secs);
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = find_group(&txn, id).await?;
        let mut row: desk_skill_groups::ActiveModel = before.clone().into();
        if let Some(name) = name {
            row.name = Set(name);
        }
        if let Some(description) = description {
            row.description = Set(description);
        }
        if let Some(rule) = patch.assignment_rule {
            row.assignment_rule = Set(rule);
        }
        if let Some(secs) = patch.inactivity_timeout_secs {
            row.inactivity_timeout_secs = Set(secs);
        }
        row.updated_at = Set(now);
        desk_skill_groups::Entity::update(row)
            .exec(&txn)
            .await
            .map_err(|e| name_taken(e.into()))?;
        let after = SkillGroupView::from(find_group(&txn, id).await?);
        let name = after.name.clone();
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            name,
            &SkillGroupView::from(before),
            after,
            now,
        )
        .await
    })
    .await
}

/// A group that still has a channel or an open conversation cannot go.
pub async fn delete_group(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new(
        "desk.skill_group.delete",
        OperationType::Delete,
        "skill_group",
    );
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = find_group(&txn, id).await?;
        let channels = desk_channels::Entity::find()
            .filter(desk_channels::Column::SkillGroupId.eq(id))
            .count(&txn)
            .await?;
        let open = desk_conversations::Entity::find()
            .filter(desk_conversations::Column::SkillGroupId.eq(id))
            .filter(desk_conversations::Column::State.ne(ConversationState::Closed))
            .count(&txn)
            .await?;
        if channels > 0 || open > 0 {
            return Err(ServiceError::conflict(
                "id",
                format!(
                    "the group still has {channels} channel(s) and {open} open conversation(s); move them first"
                ),
            ));
        }
        desk_skill_groups::Entity::delete_by_id(id).exec(&txn).await?;
        let name = before.name.clone();
        audit::commit_deleted(txn, actor, &entry, id, name, &SkillGroupView::from(before), now)
            .await
    })
    .await
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeskChannelView {
    pub id: i64,
    pub name: String,
    /// The WeCom account visitors write to.
    pub account_id: i64,
    /// Where its new conversations queue.
    pub skill_group_id: i64,
    /// Sent when a conversation opens.
    pub welcome_message: Option<String>,
    /// Sent when an agent closes a conversation; the visitor's next message `1`–`5` is their rating.
    pub rating_prompt: Option<String>,
    pub enabled: bool,
    /// Who set it up: the desk's own messages (welcome, rating prompt) go out on their behalf.
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<desk_channels::Model> for DeskChannelView {
    fn from(m: desk_channels::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            account_id: m.account_id,
            skill_group_id: m.skill_group_id,
            welcome_message: m.welcome_message,
            rating_prompt: m.rating_prompt,
            enabled: m.enabled,
            created_by: m.created_by,
            created_at: to_utc(m.created_at),
            updated_at: to_utc(m.updated_at),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeskChannelInput {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub account_id: i64,
    pub skill_group_id: i64,
    #[schema(max_length = 2000)]
    pub welcome_message: Option<String>,
    #[schema(max_length = 2000)]
    pub rating_prompt: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeskChannelPatch {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    pub skill_group_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub welcome_message: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub rating_prompt: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// Message bodies: up to 2000 characters, line breaks allowed.
fn message_text(
    field: &str,
    value: Option<&str>,
) -> Result<Option<String>, crate::error::FieldError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.chars().count() > 2000 => Err(crate::error::FieldError::new(
            field,
            "must be at most 2000 characters",
        )),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

pub async fn list_channels(ctx: &Context, actor: &Actor) -> ServiceResult<Vec<DeskChannelView>> {
    actor.require(perm::DeskManage)?;
    Ok(desk_channels::Entity::find()
        .order_by_asc(desk_channels::Column::Name)
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(DeskChannelView::from)
        .collect())
}

async fn find_channel<C: sea_orm::ConnectionTrait>(
    conn: &C,
    id: i64,
) -> ServiceResult<desk_channels::Model> {
    desk_channels::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("channel"))
}

async fn check_group_exists<C: sea_orm::ConnectionTrait>(
    conn: &C,
    v: &mut Violations,
    id: i64,
) -> ServiceResult<()> {
    if desk_skill_groups::Entity::find_by_id(id)
        .one(conn)
        .await?
        .is_none()
    {
        v.add("skill_group_id", "no such skill group");
    }
    Ok(())
}

pub async fn create_channel(
    ctx: &Context,
    actor: &Actor,
    input: DeskChannelInput,
) -> ServiceResult<DeskChannelView> {
    let entry = AuditEntry::new("desk.channel.create", OperationType::Create, "channel");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let mut v = Violations::new();
        let name = v.take(validate::text("name", &input.name, 1, 100));
        let welcome = v.take(message_text(
            "welcome_message",
            input.welcome_message.as_deref(),
        ));
        let rating = v.take(message_text(
            "rating_prompt",
            input.rating_prompt.as_deref(),
        ));
        if entity::wework_accounts::Entity::find_by_id(input.account_id)
            .one(&ctx.db)
            .await?
            .is_none()
        {
            v.add("account_id", "no such account");
        }
        check_group_exists(&ctx.db, &mut v, input.skill_group_id).await?;
        v.finish()?;
        let (Some(name), Some(welcome), Some(rating)) = (name, welcome, rating) else {
            return Err(ServiceError::invalid("name", "is invalid"));
        };
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let id = desk_channels::Entity::insert(desk_channels::ActiveModel {
            name: Set(name.clone()),
            account_id: Set(input.account_id),
            skill_group_id: Set(input.skill_group_id),
            welcome_message: Set(welcome),
            rating_prompt: Set(rating),
            enabled: Set(input.enabled.unwrap_or(true)),
            created_by: Set(actor.user_id()?),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(|e| {
            let e: ServiceError = e.into();
            if e.is_unique_violation() {
                ServiceError::conflict("account_id", "the account is already a channel")
            } else {
                e
            }
        })?
        .last_insert_id;
        let view = DeskChannelView::from(find_channel(&txn, id).await?);
        audit::commit_created(txn, actor, &entry, id, name, view, now).await
    })
    .await
}

pub async fn update_channel(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: DeskChannelPatch,
) -> ServiceResult<DeskChannelView> {
    let entry = AuditEntry::new("desk.channel.update", OperationType::Update, "channel");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let mut v = Violations::new();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| v.take(validate::text("name", n, 1, 100)));
        let welcome = match &patch.welcome_message {
            Some(w) => v.take(message_text("welcome_message", w.as_deref())),
            None => None,
        };
        let rating = match &patch.rating_prompt {
            Some(r) => v.take(message_text("rating_prompt", r.as_deref())),
            None => None,
        };
        if let Some(group) = patch.skill_group_id {
            check_group_exists(&ctx.db, &mut v, group).await?;
        }
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = find_channel(&txn, id).await?;
        let mut row: desk_channels::ActiveModel = before.clone().into();
        if let Some(name) = name {
            row.name = Set(name);
        }
        if let Some(group) = patch.skill_group_id {
            row.skill_group_id = Set(group);
        }
        if let Some(welcome) = welcome {
            row.welcome_message = Set(welcome);
        }
        if let Some(rating) = rating {
            row.rating_prompt = Set(rating);
        }
        if let Some(enabled) = patch.enabled {
            row.enabled = Set(enabled);
        }
        row.updated_at = Set(now);
        desk_channels::Entity::update(row).exec(&txn).await?;
        let after = DeskChannelView::from(find_channel(&txn, id).await?);
        let name = after.name.clone();
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            name,
            &DeskChannelView::from(before),
            after,
            now,
        )
        .await
    })
    .await
}

/// Removing a channel removes its visitors and their history: refused while a conversation
/// is open (disable the channel first and let them close).
pub async fn delete_channel(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("desk.channel.delete", OperationType::Delete, "channel");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = find_channel(&txn, id).await?;
        let open = desk_conversations::Entity::find()
            .filter(desk_conversations::Column::ChannelId.eq(id))
            .filter(desk_conversations::Column::State.ne(ConversationState::Closed))
            .count(&txn)
            .await?;
        if open > 0 {
            return Err(ServiceError::conflict(
                "id",
                format!("{open} conversation(s) of the channel are still open; disable it and let them close"),
            ));
        }
        desk_channels::Entity::delete_by_id(id).exec(&txn).await?;
        let name = before.name.clone();
        audit::commit_deleted(txn, actor, &entry, id, name, &DeskChannelView::from(before), now).await
    })
    .await
}
