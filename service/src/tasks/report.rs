//! What a task did: its runs, its receivers with filters, and a CSV report.

use crate::rbac::perm;
use chrono::{DateTime, Utc};
use entity::states::{ReceiverStatus, ReceiverType, RunStatus};
use entity::{message_receivers, message_task_runs};
use futures_util::Stream;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use super::{Counts, find_visible};
use crate::{
    Context, ServiceError, ServiceResult,
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: i64,
    pub run_number: i32,
    pub scheduled_for: DateTime<Utc>,
    /// expanding, running, awaiting_confirmation, completed, cancelled, failed.
    pub status: RunStatus,
    pub counts: Counts,
    pub progress: f64,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<message_task_runs::Model> for RunView {
    fn from(r: message_task_runs::Model) -> Self {
        let counts = Counts::new(
            r.target_count,
            r.success_count,
            r.fail_count,
            r.skipped_count,
            r.awaiting_count,
        );
        Self {
            id: r.id,
            run_number: r.run_number,
            scheduled_for: to_utc(r.scheduled_for),
            status: r.status,
            progress: counts.progress(),
            counts,
            started_at: r.started_at.map(to_utc),
            completed_at: r.completed_at.map(to_utc),
        }
    }
}

pub async fn runs(
    ctx: &Context,
    actor: &Actor,
    task_id: i64,
    page: PageRequest,
) -> ServiceResult<Page<RunView>> {
    actor.require(perm::TasksRead)?;
    find_visible(&ctx.db, actor, task_id).await?;
    let mut query =
        message_task_runs::Entity::find().filter(message_task_runs::Column::TaskId.eq(task_id));
    if let Some(before) = page.before {
        query = query.filter(message_task_runs::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(message_task_runs::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, RunView::from))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiverView {
    pub id: i64,
    pub run_id: i64,
    pub receiver_type: ReceiverType,
    pub contact_id: Option<i64>,
    pub group_id: Option<i64>,
    pub account_id: Option<i64>,
    pub receiver_wxid: String,
    pub receiver_name: Option<String>,
    /// The idempotency key sent to the instance.
    pub message_uuid: uuid::Uuid,
    pub send_status: ReceiverStatus,
    pub skip_reason: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub retry_count: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub send_time: Option<DateTime<Utc>>,
    pub remote_msg_id: Option<String>,
    /// The receiver's first reply within the attribution window (see outcomes).
    pub replied_at: Option<DateTime<Utc>>,
    pub reply_count: i32,
    /// The receiver opted out (退订) in a reply to this send.
    pub opted_out_at: Option<DateTime<Utc>>,
    /// The A/B variant (`A`…`E`); `?` while held for the test's winner.
    pub variant: Option<String>,
}

impl From<message_receivers::Model> for ReceiverView {
    fn from(r: message_receivers::Model) -> Self {
        Self {
            id: r.id,
            run_id: r.run_id,
            receiver_type: r.receiver_type,
            contact_id: r.contact_id,
            group_id: r.group_id,
            account_id: r.account_id,
            receiver_wxid: r.receiver_wxid,
            receiver_name: r.receiver_name,
            message_uuid: r.message_uuid,
            send_status: r.send_status,
            skip_reason: r.skip_reason,
            error_code: r.error_code,
            error_message: r.error_message,
            retry_count: r.retry_count,
            next_attempt_at: r.next_attempt_at.map(to_utc),
            send_time: r.send_time.map(to_utc),
            remote_msg_id: r.remote_msg_id,
            replied_at: r.replied_at.map(to_utc),
            reply_count: r.reply_count,
            opted_out_at: r.opted_out_at.map(to_utc),
            variant: r.variant,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReceiverFilter {
    /// Only this run (default: every run of the task).
    pub run_id: Option<i64>,
    pub status: Option<ReceiverStatus>,
    pub error_code: Option<String>,
    /// Substring of the receiver's wxid or name.
    pub q: Option<String>,
    /// Only receivers of this A/B variant (`A`…`E`, or `?` for those held for a test's winner).
    #[param(pattern = r"^[A-E?]$")]
    pub variant: Option<String>,
}

fn filtered(
    task_id: i64,
    filter: &ReceiverFilter,
) -> ServiceResult<sea_orm::Select<message_receivers::Entity>> {
    let mut query =
        message_receivers::Entity::find().filter(message_receivers::Column::TaskId.eq(task_id));
    if let Some(run) = filter.run_id {
        query = query.filter(message_receivers::Column::RunId.eq(run));
    }
    if let Some(v) = &filter.variant {
        if !(v == super::variants::HOLD || super::variants::KEYS.contains(&v.as_str())) {
            return Err(crate::ServiceError::invalid(
                "variant",
                "must be A to E, or ?",
            ));
        }
        query = query.filter(message_receivers::Column::Variant.eq(v.clone()));
    }
    if let Some(s) = filter.status {
        query = query.filter(message_receivers::Column::SendStatus.eq(s));
    }
    if let Some(code) = &filter.error_code {
        query = query.filter(message_receivers::Column::ErrorCode.eq(code.as_str()));
    }
    if let Some(m) = crate::search::contains_any(
        &[
            message_receivers::Column::ReceiverWxid,
            message_receivers::Column::ReceiverName,
        ],
        filter.q.as_deref(),
    ) {
        query = query.filter(m);
    }
    Ok(query)
}

pub async fn receivers(
    ctx: &Context,
    actor: &Actor,
    task_id: i64,
    filter: &ReceiverFilter,
    page: PageRequest,
) -> ServiceResult<Page<ReceiverView>> {
    actor.require(perm::TasksRead)?;
    find_visible(&ctx.db, actor, task_id).await?;
    let mut query = filtered(task_id, filter)?;
    if let Some(before) = page.before {
        query = query.filter(message_receivers::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(message_receivers::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, ReceiverView::from))
}

const HEADER: &[&str] = &[
    "receiver_id",
    "run_id",
    "type",
    "wxid",
    "name",
    "account_id",
    "status",
    "skip_reason",
    "error_code",
    "error_message",
    "retries",
    "send_time",
    "message_uuid",
    "replied_at",
    "replies",
    "opted_out_at",
    "variant",
];

/// The report as CSV, streamed in keyset batches (validated before the first byte).
pub async fn report_csv(
    ctx: &Context,
    actor: &Actor,
    task_id: i64,
    filter: ReceiverFilter,
) -> ServiceResult<impl Stream<Item = Result<Vec<u8>, ServiceError>> + use<>> {
    actor.require(perm::TasksExport)?;
    find_visible(&ctx.db, actor, task_id).await?;
    filtered(task_id, &filter)?;
    let state = (ctx.clone(), filter, 0i64, false, false);
    Ok(futures_util::stream::unfold(
        state,
        move |(ctx, filter, after, header_sent, done)| async move {
            if done {
                return None;
            }
            if !header_sent {
                let mut bytes = b"\xEF\xBB\xBF".to_vec();
                bytes.extend(crate::csv_out::csv_line(
                    &HEADER.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
                ));
                return Some((Ok(bytes), (ctx, filter, after, true, false)));
            }
            let rows = match filtered(task_id, &filter) {
                Ok(q) => q
                    .filter(message_receivers::Column::Id.gt(after))
                    .order_by_asc(message_receivers::Column::Id)
                    .limit(1000)
                    .all(&ctx.db)
                    .await
                    .map_err(ServiceError::from),
                Err(e) => Err(e),
            };
            match rows {
                Err(e) => Some((Err(e), (ctx, filter, after, true, true))),
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map_or(after, |r| r.id);
                    let finished = rows.len() < 1000;
                    let mut out = Vec::new();
                    for r in rows {
                        out.extend(crate::csv_out::csv_line(&[
                            r.id.to_string(),
                            r.run_id.to_string(),
                            r.receiver_type.to_string(),
                            r.receiver_wxid,
                            r.receiver_name.unwrap_or_default(),
                            r.account_id.map(|a| a.to_string()).unwrap_or_default(),
                            r.send_status.to_string(),
                            r.skip_reason.unwrap_or_default(),
                            r.error_code.unwrap_or_default(),
                            r.error_message.unwrap_or_default(),
                            r.retry_count.to_string(),
                            r.send_time
                                .map(|t| to_utc(t).to_rfc3339())
                                .unwrap_or_default(),
                            r.message_uuid.to_string(),
                            r.replied_at
                                .map(|t| to_utc(t).to_rfc3339())
                                .unwrap_or_default(),
                            r.reply_count.to_string(),
                            r.opted_out_at
                                .map(|t| to_utc(t).to_rfc3339())
                                .unwrap_or_default(),
                            r.variant.unwrap_or_default(),
                        ]));
                    }
                    Some((Ok(out), (ctx, filter, last, true, finished)))
                }
            }
        },
    ))
}
