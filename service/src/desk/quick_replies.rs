//! Quick replies: texts an agent sends with one click, their own or shared by the desk's
//! managers, with variables filled in per conversation (`{{ nickname }}`, `{{ agent_no }}`).

use chrono::{DateTime, Utc};
use entity::{desk_conversations, desk_quick_replies, desk_visitors};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    auth::actor::Actor,
    clock::to_utc,
    rbac::perm,
    templates::render,
    validate::{self, Violations},
};

/// The variables a quick reply may use.
pub const VARIABLES: &[&str] = &["nickname", "agent_no", "agent_name"];
const MAX_BODY: usize = 2000;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuickReplyView {
    pub id: i64,
    /// Whether every agent sees it (else it is the owner's own).
    pub shared: bool,
    pub owner_user_id: Option<i64>,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<desk_quick_replies::Model> for QuickReplyView {
    fn from(m: desk_quick_replies::Model) -> Self {
        Self {
            id: m.id,
            shared: m.owner_user_id.is_none(),
            owner_user_id: m.owner_user_id,
            title: m.title,
            body: m.body,
            created_at: to_utc(m.created_at),
            updated_at: to_utc(m.updated_at),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuickReplyInput {
    #[schema(min_length = 1, max_length = 100)]
    pub title: String,
    /// Up to 2000 characters; may use `{{ nickname }}`, `{{ agent_no }}`, `{{ agent_name }}`.
    #[schema(min_length = 1, max_length = 2000)]
    pub body: String,
    /// Shared with every agent (needs `desk:manage`); default false, your own.
    #[serde(default)]
    pub shared: bool,
}

fn check(input: &QuickReplyInput) -> ServiceResult<(String, String)> {
    let mut v = Violations::new();
    let title = v.take(validate::text("title", &input.title, 1, 100));
    let body = input.body.trim().to_owned();
    if body.is_empty() {
        v.add("body", "must not be empty");
    } else if body.chars().count() > MAX_BODY {
        v.add("body", format!("must be at most {MAX_BODY} characters"));
    } else {
        match render::variables_of(&body) {
            Ok(used) => {
                if let Some(unknown) = used.iter().find(|u| !VARIABLES.contains(&u.as_str())) {
                    v.add(
                        "body",
                        format!(
                            "`{unknown}` is not a variable; use {}",
                            VARIABLES.join(", ")
                        ),
                    );
                }
            }
            Err(e) => v.add("body", e.to_string()),
        }
    }
    v.finish()?;
    Ok((title.unwrap_or_default(), body))
}

/// The actor's own quick replies and the shared ones, by title.
pub async fn list(ctx: &Context, actor: &Actor) -> ServiceResult<Vec<QuickReplyView>> {
    if !actor.has(perm::DeskManage) {
        actor.require(perm::DeskWork)?;
    }
    let user = actor.user_id()?;
    Ok(desk_quick_replies::Entity::find()
        .filter(
            Condition::any()
                .add(desk_quick_replies::Column::OwnerUserId.is_null())
                .add(desk_quick_replies::Column::OwnerUserId.eq(user)),
        )
        .order_by_asc(desk_quick_replies::Column::Title)
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(QuickReplyView::from)
        .collect())
}

/// One the actor may use: theirs or shared (anyone else's is 404).
async fn visible(
    ctx: &Context,
    actor: &Actor,
    id: i64,
) -> ServiceResult<desk_quick_replies::Model> {
    let row = desk_quick_replies::Entity::find_by_id(id)
        .one(&ctx.db)
        .await?
        .ok_or(ServiceError::NotFound("quick reply"))?;
    match row.owner_user_id {
        None => Ok(row),
        Some(owner) if Some(owner) == actor.user_id => Ok(row),
        Some(_) => Err(ServiceError::NotFound("quick reply")),
    }
}

/// One the actor may change: their own, or a shared one with `desk:manage`.
async fn editable(
    ctx: &Context,
    actor: &Actor,
    id: i64,
) -> ServiceResult<desk_quick_replies::Model> {
    let row = visible(ctx, actor, id).await?;
    if row.owner_user_id.is_none() {
        actor.require(perm::DeskManage)?;
    }
    Ok(row)
}

pub async fn create(
    ctx: &Context,
    actor: &Actor,
    input: QuickReplyInput,
) -> ServiceResult<QuickReplyView> {
    if input.shared {
        actor.require(perm::DeskManage)?;
    } else {
        actor.require(perm::DeskWork)?;
    }
    let (title, body) = check(&input)?;
    let now = ctx.clock.now_db();
    let id = desk_quick_replies::Entity::insert(desk_quick_replies::ActiveModel {
        owner_user_id: Set(if input.shared {
            None
        } else {
            Some(actor.user_id()?)
        }),
        title: Set(title),
        body: Set(body),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&ctx.db)
    .await?
    .last_insert_id;
    Ok(visible(ctx, actor, id).await?.into())
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    input: QuickReplyInput,
) -> ServiceResult<QuickReplyView> {
    let row = editable(ctx, actor, id).await?;
    if input.shared != row.owner_user_id.is_none() {
        return Err(ServiceError::invalid(
            "shared",
            "a quick reply cannot change between shared and personal",
        ));
    }
    let (title, body) = check(&input)?;
    let mut active: desk_quick_replies::ActiveModel = row.into();
    active.title = Set(title);
    active.body = Set(body);
    active.updated_at = Set(ctx.clock.now_db());
    desk_quick_replies::Entity::update(active)
        .exec(&ctx.db)
        .await?;
    Ok(visible(ctx, actor, id).await?.into())
}

pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    editable(ctx, actor, id).await?;
    desk_quick_replies::Entity::delete_by_id(id)
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// The quick reply's text for this conversation's visitor and the replying agent.
pub async fn render_for(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    conversation: &desk_conversations::Model,
) -> ServiceResult<String> {
    let row = visible(ctx, actor, id)
        .await
        .map_err(|_| ServiceError::invalid("quick_reply_id", "no such quick reply"))?;
    let visitor = desk_visitors::Entity::find_by_id(conversation.visitor_id)
        .one(&ctx.db)
        .await?;
    let agent = super::my_agent(&ctx.db, actor).await.ok();
    let context = serde_json::json!({
        "nickname": visitor.and_then(|v| v.nickname).unwrap_or_default(),
        "agent_no": agent.map(|a| a.agent_no).unwrap_or_default(),
        "agent_name": actor.username.clone().unwrap_or_default(),
    });
    render::render(&row.body, &context)
        .map_err(|e| ServiceError::invalid("quick_reply_id", e.to_string()))
}
