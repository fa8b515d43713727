//! Message templates: text (Jinja syntax) plus an optional payload for non-text types, declared
//! variables with types and defaults, previews, use counts.

mod checks;
pub mod render;

pub use checks::check_value;
use checks::{check_payload, check_source, check_variables};

use crate::rbac::perm;
use entity::states::{MessageType, TemplateStatus, VariableType};
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use entity::message_templates;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Context, FieldError, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    validate::{self, Violations},
};

/// A variable the template expects, with its type and optional default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    pub name: String,
    #[serde(rename = "type", default)]
    pub var_type: VariableType,
    pub default: Option<Value>,
    #[serde(default)]
    pub required: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateView {
    pub id: i64,
    pub uuid: uuid::Uuid,
    pub name: String,
    pub category: Option<String>,
    /// text, image, link, file or miniprogram.
    pub message_type: MessageType,
    /// Jinja text, e.g. `{{ nickname }}您好`. Contact fields available: nickname, remark, name,
    /// wxid, phone, region, corp_name, tags, custom, account.
    pub content: String,
    /// Type-specific payload (link: title, description, url, picurl; image/file: media_id …);
    /// its strings may use template syntax too.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    pub variables: Vec<VariableSpec>,
    pub preview_content: Option<String>,
    pub use_count: i32,
    pub last_used_at: Option<DateTime<Utc>>,
    pub is_public: bool,
    /// `active` or `disabled`.
    pub status: TemplateStatus,
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Option<Value>,
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<message_templates::Model> for TemplateView {
    fn from(m: message_templates::Model) -> Self {
        Self {
            id: m.id,
            uuid: m.template_uuid,
            name: m.name,
            category: m.category,
            message_type: m.message_type,
            content: m.content,
            payload: m.payload,
            variables: crate::serde_util::stored(m.variables.as_ref(), "variables")
                .unwrap_or_else(|e| {
                    tracing::error!(template.id = m.id, error = %e, "template variables unreadable");
                    None
                })
                .unwrap_or_default(),
            preview_content: m.preview_content,
            use_count: m.use_count,
            last_used_at: m.last_used_at.map(to_utc),
            is_public: m.is_public,
            status: m.status,
            tags: m.tags,
            created_by: m.created_by,
            created_at: to_utc(m.created_at),
            updated_at: to_utc(m.updated_at),
        }
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub name: String,
    pub category: Option<String>,
    pub message_type: MessageType,
    pub content: String,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    #[serde(default)]
    pub variables: Vec<VariableSpec>,
    #[serde(default)]
    pub is_public: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplatePatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    pub content: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Option<Value>>,
    pub variables: Option<Vec<VariableSpec>>,
    pub is_public: Option<bool>,
    pub status: Option<TemplateStatus>,
    pub tags: Option<Vec<String>>,
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    id: i64,
) -> ServiceResult<message_templates::Model> {
    message_templates::Entity::find_by_id(id)
        .filter(message_templates::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("template"))
}

/// A live template the actor may see: under a limited scope, their own and public ones.
pub async fn find_visible<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: i64,
) -> ServiceResult<message_templates::Model> {
    let template = find(conn, id).await?;
    actor
        .reach
        .check_template(template.created_by, template.is_public)?;
    Ok(template)
}

/// A template the actor may change: under a limited scope, only their own (a public template
/// of someone else's is visible, so refusing it is a 403, not a 404).
async fn find_changeable<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: i64,
) -> ServiceResult<message_templates::Model> {
    let template = find_visible(conn, actor, id).await?;
    if !actor.reach.is_all() && Some(template.created_by) != actor.user_id {
        return Err(ServiceError::Forbidden(
            "your data scope lets you change only the templates you created".to_owned(),
        ));
    }
    Ok(template)
}

#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub q: Option<String>,
    pub category: Option<String>,
    pub message_type: Option<MessageType>,
    pub status: Option<TemplateStatus>,
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: TemplateFilter,
    page: PageRequest,
) -> ServiceResult<Page<TemplateView>> {
    actor.require(perm::TemplatesRead)?;
    let mut query =
        message_templates::Entity::find().filter(message_templates::Column::DeletedAt.is_null());
    query = query.filter(actor.reach.on_templates(
        message_templates::Column::CreatedBy,
        message_templates::Column::IsPublic,
    ));
    if let Some(m) = crate::search::contains_any(
        &[
            message_templates::Column::Name,
            message_templates::Column::Content,
        ],
        filter.q.as_deref(),
    ) {
        query = query.filter(m);
    }
    if let Some(c) = filter.category {
        query = query.filter(message_templates::Column::Category.eq(c));
    }
    if let Some(t) = filter.message_type {
        query = query.filter(message_templates::Column::MessageType.eq(t));
    }
    if let Some(s) = filter.status {
        query = query.filter(message_templates::Column::Status.eq(s));
    }
    if let Some(before) = page.before {
        query = query.filter(message_templates::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(message_templates::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, TemplateView::from))
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<TemplateView> {
    actor.require(perm::TemplatesRead)?;
    Ok(find_visible(&ctx.db, actor, id).await?.into())
}

fn check_tags(v: &mut Violations, tags: &[String]) {
    for (i, tag) in tags.iter().enumerate() {
        v.take(validate::text(&format!("tags[{i}]"), tag, 1, 50));
    }
}

pub async fn create(
    ctx: &Context,
    actor: &Actor,
    input: TemplateInput,
) -> ServiceResult<TemplateView> {
    let entry = AuditEntry::new("template.create", OperationType::Create, "template");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TemplatesCreate)?;
        let mut v = Violations::new();
        let name = v.take(validate::text("name", &input.name, 1, 200));
        let category = v
            .take(validate::optional_text(
                "category",
                input.category.as_deref(),
                50,
            ))
            .flatten();
        if input.content.len() > 16_384 {
            v.add("content", "must be at most 16 KiB");
        }
        if input.message_type == MessageType::Text && input.content.trim().is_empty() {
            v.add("content", "must not be empty for text messages");
        }
        check_variables(&mut v, &input.variables);
        check_payload(&mut v, input.message_type, input.payload.as_ref());
        check_source(
            &mut v,
            &input.content,
            input.payload.as_ref(),
            &input.variables,
        );
        check_tags(&mut v, &input.tags);
        v.finish()?;
        let Some(name) = name else {
            return Err(ServiceError::invalid("name", "is invalid"));
        };
        let preview = preview_text(&input.content, &input.variables).ok();
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let row = message_templates::ActiveModel {
            template_uuid: Set(uuid::Uuid::new_v4()),
            name: Set(name),
            category: Set(category),
            message_type: Set(input.message_type),
            content: Set(input.content),
            payload: Set(input.payload),
            variables: Set(Some(
                serde_json::to_value(&input.variables).unwrap_or(Value::Null),
            )),
            preview_content: Set(preview),
            use_count: Set(0),
            is_system: Set(false),
            is_public: Set(input.is_public),
            status: Set(TemplateStatus::Active),
            sort_order: Set(0),
            tags: Set(Some(serde_json::json!(input.tags))),
            created_by: Set(actor.user_id()?),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let id = message_templates::Entity::insert(row)
            .exec(&txn)
            .await?
            .last_insert_id;
        let created: TemplateView = find(&txn, id).await?.into();
        audit::commit_created(txn, actor, &entry, id, created.name.clone(), created, now).await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: TemplatePatch,
) -> ServiceResult<TemplateView> {
    let entry = AuditEntry::new("template.update", OperationType::Update, "template").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TemplatesUpdate)?;
        let current = find_changeable(&ctx.db, actor, id).await?;
        let before: TemplateView = current.clone().into();
        let content = patch.content.clone().unwrap_or(current.content.clone());
        let payload = patch.payload.clone().unwrap_or(current.payload.clone());
        let variables = patch.variables.clone().unwrap_or(before.variables.clone());
        let mut v = Violations::new();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| v.take(validate::text("name", n, 1, 200)));
        let category = patch.category.as_ref().map(|c| {
            v.take(validate::optional_text("category", c.as_deref(), 50))
                .flatten()
        });
        if content.len() > 16_384 {
            v.add("content", "must be at most 16 KiB");
        }
        check_variables(&mut v, &variables);
        check_payload(&mut v, current.message_type, payload.as_ref());
        check_source(&mut v, &content, payload.as_ref(), &variables);
        if let Some(tags) = &patch.tags {
            check_tags(&mut v, tags);
        }
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let mut changes = message_templates::ActiveModel {
            id: Set(id),
            content: Set(content.clone()),
            payload: Set(payload),
            variables: Set(Some(
                serde_json::to_value(&variables).unwrap_or(Value::Null),
            )),
            preview_content: Set(preview_text(&content, &variables).ok()),
            updated_at: Set(now),
            ..Default::default()
        };
        if let Some(name) = name {
            changes.name = Set(name);
        }
        if let Some(category) = category {
            changes.category = Set(category);
        }
        if let Some(is_public) = patch.is_public {
            changes.is_public = Set(is_public);
        }
        if let Some(status) = patch.status {
            changes.status = Set(status);
        }
        if let Some(tags) = patch.tags {
            changes.tags = Set(Some(serde_json::json!(tags)));
        }
        message_templates::Entity::update(changes)
            .exec(&txn)
            .await?;
        let after: TemplateView = find(&txn, id).await?.into();
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            after.name.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}

pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("template.delete", OperationType::Delete, "template").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TemplatesDelete)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before: TemplateView = find_changeable(&txn, actor, id).await?.into();
        message_templates::Entity::update(message_templates::ActiveModel {
            id: Set(id),
            deleted_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        audit::commit_deleted(txn, actor, &entry, id, before.name.clone(), &before, now).await
    })
    .await
}

/// Sample values for a preview: declared defaults, else a placeholder of the right type.
fn sample_context(variables: &[VariableSpec], overrides: &Map<String, Value>) -> Value {
    let mut context = Map::new();
    context.insert("nickname".into(), Value::String("王伟".into()));
    context.insert("name".into(), Value::String("王伟".into()));
    context.insert("remark".into(), Value::String("王总".into()));
    context.insert("wxid".into(), Value::String("wm_sample".into()));
    context.insert("phone".into(), Value::String("13800000000".into()));
    context.insert("region".into(), Value::String("上海".into()));
    context.insert("corp_name".into(), Value::String("示例公司".into()));
    context.insert("tags".into(), serde_json::json!(["VIP"]));
    context.insert("custom".into(), serde_json::json!({}));
    context.insert(
        "account".into(),
        serde_json::json!({ "wxid": "sim_user_0", "nickname": "客服1号" }),
    );
    for spec in variables {
        let value = spec.default.clone().unwrap_or_else(|| match spec.var_type {
            VariableType::Number => serde_json::json!(100),
            VariableType::Boolean => Value::Bool(true),
            VariableType::Date => Value::String("2026-12-12".into()),
            VariableType::String => Value::String(format!("<{}>", spec.name)),
        });
        context.insert(spec.name.clone(), value);
    }
    for (k, v) in overrides {
        context.insert(k.clone(), v.clone());
    }
    Value::Object(context)
}

fn preview_text(content: &str, variables: &[VariableSpec]) -> Result<String, render::RenderError> {
    render::render(content, &sample_context(variables, &Map::new()))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preview {
    pub content: String,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
}

/// Renders a stored template with sample data, or for a real contact, overridden by `sample`;
/// rendering errors name the field.
pub async fn preview(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    contact_id: Option<i64>,
    sample: Map<String, Value>,
) -> ServiceResult<Preview> {
    actor.require(perm::TemplatesRead)?;
    let template: TemplateView = find_visible(&ctx.db, actor, id).await?.into();
    let context = preview_context(ctx, actor, &template.variables, contact_id, sample).await?;
    render_preview(&template.content, template.payload.as_ref(), &context)
}

/// A template as the editor holds it, saved or not, to preview while it is written.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftPreview {
    pub message_type: MessageType,
    pub content: String,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    #[serde(default)]
    pub variables: Vec<VariableSpec>,
    /// Render for this contact (its real fields); otherwise for sample data.
    pub contact_id: Option<i64>,
    /// Values overriding the sample data or the contact's fields.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub sample: Map<String, Value>,
}

/// Checks a draft as saving it would, then renders it like [`preview`]: the editor shows the
/// server's answer, never a second opinion computed elsewhere.
pub async fn preview_draft(
    ctx: &Context,
    actor: &Actor,
    draft: DraftPreview,
) -> ServiceResult<Preview> {
    actor.require(perm::TemplatesRead)?;
    let mut v = Violations::new();
    if draft.content.len() > 16_384 {
        v.add("content", "must be at most 16 KiB");
    }
    check_variables(&mut v, &draft.variables);
    check_payload(&mut v, draft.message_type, draft.payload.as_ref());
    check_source(
        &mut v,
        &draft.content,
        draft.payload.as_ref(),
        &draft.variables,
    );
    v.finish()?;
    let context =
        preview_context(ctx, actor, &draft.variables, draft.contact_id, draft.sample).await?;
    render_preview(&draft.content, draft.payload.as_ref(), &context)
}

/// Sample data, the contact's real fields over it when one is named, then `sample` on top.
async fn preview_context(
    ctx: &Context,
    actor: &Actor,
    variables: &[VariableSpec],
    contact_id: Option<i64>,
    sample: Map<String, Value>,
) -> ServiceResult<Value> {
    let mut overrides = Map::new();
    if let Some(contact_id) = contact_id {
        actor.require(perm::ContactsRead)?;
        let contact = crate::contacts::find_visible(&ctx.db, actor, contact_id).await?;
        if let Value::Object(fields) =
            crate::tasks::expand::variables_of_contact(&ctx.db, &contact).await?
        {
            overrides = fields;
        }
    }
    overrides.extend(sample);
    Ok(sample_context(variables, &overrides))
}

fn render_preview(
    content: &str,
    payload: Option<&Value>,
    context: &Value,
) -> ServiceResult<Preview> {
    let content = render::render(content, context)
        .map_err(|e| ServiceError::Validation(vec![FieldError::new("content", e.message)]))?;
    let payload =
        match payload {
            Some(p) => Some(render::render_payload(p, context).map_err(|e| {
                ServiceError::Validation(vec![FieldError::new("payload", e.message)])
            })?),
            None => None,
        };
    Ok(Preview { content, payload })
}

/// Counts a use when a task run starts.
pub async fn record_use<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    now: chrono::NaiveDateTime,
) -> ServiceResult<()> {
    message_templates::Entity::update_many()
        .col_expr(
            message_templates::Column::UseCount,
            Expr::col(message_templates::Column::UseCount).add(1),
        )
        .col_expr(message_templates::Column::LastUsedAt, Expr::value(now))
        .filter(message_templates::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}
