//! Message tasks: single, batch and broadcast sends, one-shot or recurring (cron), with a
//! template or inline content, an audience snapshotted into receivers when each run starts,
//! rate, retry, quiet-hour, frequency-cap and auto-pause settings.

pub mod control;
pub mod estimate;
pub mod expand;
pub mod outcomes;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod spec;
pub mod summary;
pub mod variants;

use crate::rbac::perm;
use chrono::{DateTime, Utc};
use entity::states::{
    Channel, InstanceKind, MessageType, RunStatus, TaskStatus, TaskType, TemplateStatus,
};
use entity::{message_task_runs, message_tasks};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use self::spec::{Audience, AutoPause, CronSchedule, FrequencyCap, QuietHours};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    templates,
    validate::{self, Violations},
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counts {
    pub target: i32,
    pub success: i32,
    pub failed: i32,
    pub skipped: i32,
    /// Customer mass messages waiting for the member to confirm in the WeCom client.
    pub awaiting: i32,
    /// Not finished yet: target − success − failed − skipped − awaiting.
    pub pending: i32,
}

impl Counts {
    pub fn new(target: i32, success: i32, failed: i32, skipped: i32, awaiting: i32) -> Self {
        Self {
            target,
            success,
            failed,
            skipped,
            awaiting,
            pending: (target - success - failed - skipped - awaiting).max(0),
        }
    }

    pub fn progress(&self) -> f64 {
        if self.target == 0 {
            0.0
        } else {
            f64::from(self.target - self.pending) * 100.0 / f64::from(self.target)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskView {
    pub id: i64,
    pub uuid: uuid::Uuid,
    pub name: Option<String>,
    pub task_type: TaskType,
    pub channel: Channel,
    pub status: TaskStatus,
    /// Why the task is paused (an operator, or the auto-pause rule).
    pub pause_reason: Option<String>,
    /// The sending account; `null` sends each receiver from the account that has the contact.
    pub account_id: Option<i64>,
    pub template_id: Option<i64>,
    pub message_type: MessageType,
    pub content: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
    pub audience: Audience,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub scheduled_time: Option<DateTime<Utc>>,
    pub priority: i16,
    /// Minimum seconds between two sends of one account.
    pub send_interval: i32,
    pub rate_per_minute: Option<i32>,
    pub max_retry: i32,
    pub quiet_hours: Option<QuietHours>,
    pub frequency_cap: Option<FrequencyCap>,
    pub auto_pause: Option<AutoPause>,
    pub variants: Option<Vec<variants::Variant>>,
    pub variant_test: Option<variants::VariantTest>,
    /// The variant the current run's test chose (or an operator picked) for the rest.
    pub variant_winner: Option<String>,
    /// Sums over every run of the task.
    pub counts: Counts,
    /// Percent of the current run's receivers that are finished.
    pub progress: f64,
    pub current_run_id: Option<i64>,
    /// Seconds until the current run should finish at its rate so far.
    pub eta_seconds: Option<i64>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored setting for display. One that cannot be read shows as absent and is logged; the
/// dispatcher pauses such a task naming the column (`spec::TaskSettings::of`).
fn parse_json<T: serde::de::DeserializeOwned>(value: Option<Value>, column: &str) -> Option<T> {
    spec::stored(value.as_ref(), column).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a task setting is unreadable");
        None
    })
}

pub async fn view<C: ConnectionTrait>(
    ctx: &Context,
    conn: &C,
    m: message_tasks::Model,
) -> ServiceResult<TaskView> {
    let run = match m.current_run_id {
        Some(id) => message_task_runs::Entity::find_by_id(id).one(conn).await?,
        None => None,
    };
    let (progress, eta_seconds) = match &run {
        Some(r) => {
            let counts = Counts::new(
                r.target_count,
                r.success_count,
                r.fail_count,
                r.skipped_count,
                r.awaiting_count,
            );
            let eta = r
                .started_at
                .filter(|_| r.status == RunStatus::Running && counts.pending > 0)
                .and_then(|started| {
                    let elapsed = (ctx.clock.now_db() - started).num_seconds().max(1);
                    let done = i64::from(counts.target - counts.pending);
                    (done > 0).then(|| i64::from(counts.pending) * elapsed / done)
                });
            (counts.progress(), eta)
        }
        None => (0.0, None),
    };
    Ok(TaskView {
        id: m.id,
        uuid: m.task_uuid,
        name: m.task_name,
        task_type: m.task_type,
        channel: m.channel,
        status: m.status,
        pause_reason: m.pause_reason,
        account_id: m.account_id,
        template_id: m.template_id,
        message_type: m.message_type,
        content: m.message_content,
        payload: m.message_payload,
        variables: m.template_variables,
        audience: parse_json(Some(m.audience), "audience").unwrap_or_default(),
        cron: m.cron_expression,
        timezone: m.timezone,
        next_fire_at: m.next_fire_at.map(to_utc),
        scheduled_time: m.scheduled_time.map(to_utc),
        priority: m.priority,
        send_interval: m.send_interval,
        rate_per_minute: m.rate_per_minute,
        max_retry: m.max_retry,
        quiet_hours: parse_json(m.quiet_hours, "quiet_hours"),
        frequency_cap: parse_json(m.frequency_cap, "frequency_cap"),
        auto_pause: parse_json(m.auto_pause, "auto_pause"),
        variants: parse_json(m.variants, "variants"),
        variant_test: parse_json(m.variant_test, "variant_test"),
        variant_winner: run.as_ref().and_then(|r| r.variant_winner.clone()),
        counts: Counts::new(
            m.target_count,
            m.success_count,
            m.fail_count,
            m.skipped_count,
            m.awaiting_count,
        ),
        progress,
        current_run_id: m.current_run_id,
        eta_seconds,
        started_at: m.started_at.map(to_utc),
        completed_at: m.completed_at.map(to_utc),
        error_message: m.error_message,
        created_by: m.created_by,
        created_at: to_utc(m.created_at),
        updated_at: to_utc(m.updated_at),
    })
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    pub name: String,
    /// `single` (one receiver), `batch` (an explicit list) or `broadcast` (filters).
    pub task_type: TaskType,
    /// `direct` (agents), or for WeCom apps `app_message`, `app_chat`, `customer_mass`, `robot`.
    #[serde(default)]
    pub channel: Channel,
    pub account_id: Option<i64>,
    /// Use a template, or give `message_type` and `content` inline.
    pub template_id: Option<i64>,
    pub message_type: Option<MessageType>,
    pub content: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// Values of the template's declared variables.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
    pub audience: Audience,
    /// Start at this time (default: now).
    pub scheduled_time: Option<DateTime<Utc>>,
    /// Recurring: a cron expression (5 fields, or 6-7 with seconds); each firing is a run.
    pub cron: Option<String>,
    /// Time zone of `cron` (default UTC).
    pub timezone: Option<String>,
    /// 1 high, 2 normal (default), 3 low.
    pub priority: Option<i16>,
    /// Minimum seconds between two sends of one account (default 0).
    pub send_interval: Option<i32>,
    /// Sends per minute per account (default: the account's own limit, else 20).
    pub rate_per_minute: Option<i32>,
    /// Retries of a retryable failure before the receiver fails (0–10, default 3).
    pub max_retry: Option<i32>,
    pub quiet_hours: Option<QuietHours>,
    pub frequency_cap: Option<FrequencyCap>,
    pub auto_pause: Option<AutoPause>,
    /// A/B variants (2–5), each with its own template or content and a share of the audience;
    /// the task then gives no `template_id`, `content` or `variables` of its own.
    pub variants: Option<Vec<variants::Variant>>,
    /// Send the variants to a sample first, then the best by reply rate to the rest.
    pub variant_test: Option<variants::VariantTest>,
}

fn range(v: &mut Violations, field: &str, value: Option<i32>, min: i32, max: i32) {
    if value.is_some_and(|x| !(min..=max).contains(&x)) {
        v.add(field, format!("must be between {min} and {max}"));
    }
}

/// Checks everything that can be checked before a run: returns the message type, and the
/// template's variables spec for later checks.
async fn check_input(
    ctx: &Context,
    actor: &Actor,
    input: &TaskInput,
    v: &mut Violations,
) -> ServiceResult<MessageType> {
    v.take(validate::text("name", &input.name, 1, 200));
    input.audience.check(v);
    match input.task_type {
        TaskType::Single
            if input.audience.explicit_count() != 1
                || input.audience.has_contact_rule()
                || input.audience.group_filter.is_some() =>
        {
            v.add(
                "audience",
                "a single task names exactly one contact or group",
            );
        }
        TaskType::Batch
            if input.audience.has_contact_rule() || input.audience.group_filter.is_some() =>
        {
            v.add(
                "audience",
                "a batch task lists contacts or groups; use a broadcast for filters",
            )
        }
        _ => {}
    }
    let message_type = match &input.variants {
        Some(variants) => check_variants(ctx, actor, input, variants, v).await?,
        None => {
            if input.variant_test.is_some() {
                v.add("variant_test", "a test needs variants");
            }
            let content = Content {
                prefix: "",
                template_id: input.template_id,
                message_type: input.message_type,
                content: input.content.as_deref(),
                variables: &input.variables,
            };
            check_content(ctx, actor, input.channel, content, v).await?
        }
    };
    if let Some(id) = input.audience.segment_id {
        actor.require(perm::SegmentsRead)?;
        if crate::segments::find(&ctx.db, id).await.is_err() {
            v.add("audience.segment_id", "no such segment");
        }
    }
    if let Some(f) = &input.audience.filter {
        crate::segments::check_reply_task(ctx, actor, "audience.filter", f, v).await;
    }
    match (&input.cron, &input.scheduled_time) {
        (Some(cron), None) => {
            if let Err((field, why)) =
                CronSchedule::parse(cron, input.timezone.as_deref().unwrap_or("UTC"))
            {
                v.add(field, why);
            }
        }
        (Some(_), Some(_)) => v.add(
            "scheduled_time",
            "a recurring task has no scheduled_time; its cron decides",
        ),
        (None, _) if input.timezone.is_some() => {
            v.add("timezone", "only recurring tasks have a time zone")
        }
        _ => {}
    }
    if let Some(q) = &input.quiet_hours {
        q.check(v);
    }
    if let Some(c) = &input.frequency_cap {
        c.check(v);
    }
    if let Some(a) = &input.auto_pause {
        a.check(v);
    }
    range(v, "priority", input.priority.map(i32::from), 1, 3);
    range(v, "send_interval", input.send_interval, 0, 3600);
    range(v, "rate_per_minute", input.rate_per_minute, 1, 6000);
    range(v, "max_retry", input.max_retry, 0, 10);
    if let Some(account) = input.account_id {
        match crate::instances::accounts::find_visible(&ctx.db, actor, account).await {
            Err(_) => v.add("account_id", "no such account"),
            Ok(a) => {
                let instance = crate::instances::find_live(&ctx.db, a.instance_id).await?;
                let agent = instance.kind == InstanceKind::Agent;
                let kf = crate::drivers::wecom::kf::open_kfid(&a.wxid).is_some();
                if kf != (input.channel == Channel::WecomKf) {
                    v.add(
                        "channel",
                        if kf {
                            "a 微信客服 account sends through `wecom_kf`"
                        } else {
                            "`wecom_kf` sends through a 微信客服 account"
                        },
                    );
                } else if kf {
                    if !actor.permissions.contains(crate::desk::SENDER_MARK) {
                        v.add(
                            "channel",
                            "微信客服 messages are the service desk's replies (POST /desk/conversations/{id}/reply), which keep WeCom's 48-hour / 5-message window",
                        );
                    }
                } else if agent != (input.channel == Channel::Direct) {
                    v.add(
                        "channel",
                        if agent {
                            "agent instances send through `direct`"
                        } else {
                            "WeCom apps send through app_message, app_chat, customer_mass or robot"
                        },
                    );
                }
            }
        }
    }
    Ok(message_type)
}

/// One content of a task (its own, or one A/B variant's), with its fields under `prefix`.
struct Content<'a> {
    prefix: &'a str,
    template_id: Option<i64>,
    message_type: Option<MessageType>,
    content: Option<&'a str>,
    variables: &'a Map<String, Value>,
}

/// Checks a content against its template (or compiles the inline text); returns its message
/// type.
async fn check_content(
    ctx: &Context,
    actor: &Actor,
    channel: Channel,
    c: Content<'_>,
    v: &mut Violations,
) -> ServiceResult<MessageType> {
    let field = |name: &str| format!("{}{name}", c.prefix);
    let message_type = match c.template_id {
        Some(id) => match templates::find_visible(&ctx.db, actor, id).await {
            Ok(t) if t.status != TemplateStatus::Active => {
                v.add(field("template_id"), "the template is disabled");
                t.message_type
            }
            Ok(t) => {
                let spec: Vec<templates::VariableSpec> =
                    match spec::stored(t.variables.as_ref(), "variables") {
                        Ok(spec) => spec.unwrap_or_default(),
                        Err(e) => {
                            v.add(
                                field("template_id"),
                                format!("the template is damaged: {e}"),
                            );
                            Vec::new()
                        }
                    };
                for s in &spec {
                    match c.variables.get(&s.name) {
                        Some(value) => {
                            if let Err(why) = templates::check_value(s, value) {
                                v.add(field(&format!("variables.{}", s.name)), why);
                            }
                        }
                        None if s.required && s.default.is_none() => v.add(
                            field(&format!("variables.{}", s.name)),
                            "is required by the template",
                        ),
                        None => {}
                    }
                }
                for name in c
                    .variables
                    .keys()
                    .filter(|k| !spec.iter().any(|s| &s.name == *k))
                {
                    v.add(
                        field(&format!("variables.{name}")),
                        "is not declared by the template",
                    );
                }
                check_not_personal(channel, &field("template_id"), &t.content, v);
                t.message_type
            }
            Err(_) => {
                v.add(field("template_id"), "no such template");
                MessageType::Text
            }
        },
        None => {
            let message_type = c.message_type.unwrap_or(MessageType::Text);
            match c.content {
                None | Some("") if message_type == MessageType::Text => {
                    v.add(field("content"), "is required without a template_id")
                }
                Some(text) if text.len() > 16_384 => {
                    v.add(field("content"), "must be at most 16 KiB")
                }
                Some(text) => {
                    if let Err(e) = templates::render::variables_of(text) {
                        v.add(field("content"), format!("does not compile: {}", e.message));
                    }
                    check_not_personal(channel, &field("content"), text, v);
                }
                None => {}
            }
            message_type
        }
    };
    if c.template_id.is_some() && (c.content.is_some() || c.message_type.is_some()) {
        v.add(
            field("content"),
            "give a template_id or inline content, not both",
        );
    }
    Ok(message_type)
}

/// Checks a task's A/B variants, each content like a task's own; returns their message type.
async fn check_variants(
    ctx: &Context,
    actor: &Actor,
    input: &TaskInput,
    list: &[variants::Variant],
    v: &mut Violations,
) -> ServiceResult<MessageType> {
    if let Err(why) = variants::allowed(input.task_type, input.channel == Channel::CustomerMass) {
        v.add("variants", why);
    }
    if input.template_id.is_some() || input.content.is_some() || !input.variables.is_empty() {
        v.add(
            "variants",
            "the variants carry the content: give no template_id, content or variables besides",
        );
    }
    variants::check(list, input.variant_test.as_ref(), v);
    let mut types = Vec::with_capacity(list.len());
    for (i, x) in list.iter().enumerate() {
        let prefix = format!("variants[{i}].");
        let content = Content {
            prefix: &prefix,
            template_id: x.template_id,
            message_type: input.message_type.filter(|_| x.template_id.is_none()),
            content: x.content.as_deref(),
            variables: &x.variables,
        };
        types.push(check_content(ctx, actor, input.channel, content, v).await?);
    }
    if types.windows(2).any(|w| w[0] != w[1]) {
        v.add("variants", "every variant must send the same message type");
    }
    Ok(types.first().copied().unwrap_or(MessageType::Text))
}

/// A customer mass message goes out once per member to many customers and is confirmed once, so
/// its text cannot differ per receiver.
fn check_not_personal(channel: Channel, field: &str, source: &str, v: &mut Violations) {
    if channel != Channel::CustomerMass {
        return;
    }
    let Ok(used) = templates::render::variables_of(source) else {
        return;
    };
    let personal: Vec<&str> = templates::render::CONTACT_FIELDS
        .iter()
        .copied()
        .filter(|f| used.contains(*f))
        .collect();
    if !personal.is_empty() {
        v.add(
            field,
            format!(
                "customer mass messages are one text for many customers and cannot use contact \
                 variables ({}); use task variables",
                personal.join(", ")
            ),
        );
    }
}

pub async fn create(ctx: &Context, actor: &Actor, input: TaskInput) -> ServiceResult<TaskView> {
    let entry = AuditEntry::new("task.create", OperationType::Create, "task");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TasksCreate)?;
        let mut v = Violations::new();
        let message_type = check_input(ctx, actor, &input, &mut v).await?;
        v.finish()?;
        let instance_id = match input.account_id {
            Some(account) => Some(
                crate::instances::accounts::find(&ctx.db, account)
                    .await?
                    .instance_id,
            ),
            None => None,
        };
        let now = ctx.clock.now();
        let next_fire_at = match &input.cron {
            Some(cron) => CronSchedule::parse(cron, input.timezone.as_deref().unwrap_or("UTC"))
                .ok()
                .and_then(|c| c.next_after(now))
                .map(|t| t.naive_utc()),
            None => None,
        };
        let row = message_tasks::ActiveModel {
            task_uuid: Set(uuid::Uuid::new_v4()),
            task_name: Set(Some(input.name.trim().to_owned())),
            task_type: Set(input.task_type),
            channel: Set(input.channel),
            account_id: Set(input.account_id),
            instance_id: Set(instance_id),
            message_type: Set(message_type),
            message_content: Set(input.content.clone()),
            message_payload: Set(input.payload.clone()),
            template_id: Set(input.template_id),
            template_variables: Set(Some(Value::Object(input.variables.clone()))),
            audience: Set(serde_json::to_value(&input.audience).unwrap_or(Value::Null)),
            segment_id: Set(input.audience.segment_id),
            variants: Set(input
                .variants
                .as_ref()
                .and_then(|v| serde_json::to_value(v).ok())),
            variant_test: Set(input
                .variant_test
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok())),
            cron_expression: Set(input.cron.clone()),
            timezone: Set(input
                .cron
                .as_ref()
                .map(|_| input.timezone.clone().unwrap_or_else(|| "UTC".into()))),
            next_fire_at: Set(next_fire_at),
            target_count: Set(0),
            success_count: Set(0),
            fail_count: Set(0),
            skipped_count: Set(0),
            awaiting_count: Set(0),
            progress: Set(0.0),
            status: Set(TaskStatus::Scheduled),
            priority: Set(input.priority.unwrap_or(2)),
            send_interval: Set(input.send_interval.unwrap_or(0)),
            rate_per_minute: Set(input.rate_per_minute),
            max_retry: Set(input.max_retry.unwrap_or(3)),
            scheduled_time: Set(input.scheduled_time.map(|t| t.naive_utc())),
            quiet_hours: Set(input
                .quiet_hours
                .as_ref()
                .and_then(|q| serde_json::to_value(q).ok())),
            frequency_cap: Set(input
                .frequency_cap
                .as_ref()
                .and_then(|q| serde_json::to_value(q).ok())),
            auto_pause: Set(input
                .auto_pause
                .as_ref()
                .and_then(|q| serde_json::to_value(q).ok())),
            created_by: Set(actor.user_id()?),
            created_at: Set(now.naive_utc()),
            updated_at: Set(now.naive_utc()),
            ..Default::default()
        };
        let txn = crate::db::begin(&ctx.db).await?;
        let id = message_tasks::Entity::insert(row)
            .exec(&txn)
            .await?
            .last_insert_id;
        let created = view(ctx, &txn, find(&txn, id).await?).await?;
        let created = audit::commit_created(
            txn,
            actor,
            &entry,
            id,
            input.name.clone(),
            created,
            ctx.clock.now_db(),
        )
        .await?;
        // A task due now (or sooner than the scheduler's next look) starts without waiting.
        ctx.schedule_signal.raise(ctx).await;
        Ok(created)
    })
    .await
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<message_tasks::Model> {
    message_tasks::Entity::find_by_id(id)
        .filter(message_tasks::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("task"))
}

/// A live task the actor may see (see [`Reach::on_authored`]); otherwise the same 404 as a
/// missing one.
///
/// [`Reach::on_authored`]: crate::rbac::scope::Reach::on_authored
pub async fn find_visible<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: i64,
) -> ServiceResult<message_tasks::Model> {
    let task = find(conn, id).await?;
    actor
        .reach
        .check_authored(Some(task.created_by), task.instance_id, "task")?;
    Ok(task)
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub task_type: Option<TaskType>,
    pub q: Option<String>,
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: TaskFilter,
    page: PageRequest,
) -> ServiceResult<Page<TaskView>> {
    actor.require(perm::TasksRead)?;
    let mut query =
        message_tasks::Entity::find().filter(message_tasks::Column::DeletedAt.is_null());
    query = query.filter(actor.reach.on_authored(
        message_tasks::Column::CreatedBy,
        message_tasks::Column::InstanceId,
    ));
    if let Some(s) = filter.status {
        query = query.filter(message_tasks::Column::Status.eq(s));
    }
    if let Some(t) = filter.task_type {
        query = query.filter(message_tasks::Column::TaskType.eq(t));
    }
    if let Some(m) =
        crate::search::contains_any(&[message_tasks::Column::TaskName], filter.q.as_deref())
    {
        query = query.filter(m);
    }
    if let Some(before) = page.before {
        query = query.filter(message_tasks::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(message_tasks::Column::Id)
        .limit(page.fetch())
        .all(&ctx.read_db)
        .await?;
    let models = Page::from_rows(page, rows, |r| r.id, |r| r);
    let mut items = Vec::with_capacity(models.items.len());
    for m in models.items {
        items.push(view(ctx, &ctx.read_db, m).await?);
    }
    Ok(Page {
        items,
        next_cursor: models.next_cursor,
    })
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<TaskView> {
    actor.require(perm::TasksRead)?;
    view(ctx, &ctx.db, find_visible(&ctx.db, actor, id).await?).await
}
