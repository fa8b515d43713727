//! Whether the chunk's task still runs, asked by sends that waited for their rate slot: a chunk
//! of a slow task (a few messages a minute per account) waits up to `dispatch.max_slot_wait_secs`
//! per send, and an operator who pauses or cancels it meanwhile expects nothing more to go out.

use std::time::{Duration, Instant};

use entity::{message_tasks, states::TaskStatus};
use sea_orm::{EntityTrait, QuerySelect};

use super::Outcome;
use crate::Context;

/// An answer this fresh is reused by the chunk's other sends: a rate-limited chunk asks at most
/// a few times a second, however many of its sends wait at once.
const FRESH_FOR: Duration = Duration::from_millis(250);

/// The task's status as last read, shared by the sends of one chunk; concurrent askers wait for
/// one read rather than each making their own.
pub(super) struct TaskStatusCheck {
    task_id: i64,
    last: tokio::sync::Mutex<Option<(Instant, TaskStatus)>>,
}

impl TaskStatusCheck {
    pub(super) fn new(task_id: i64) -> Self {
        Self {
            task_id,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// What a receiver whose slot came gets instead of its send when the task stopped running
    /// meanwhile: back to pending without using a retry, so resuming sends it (recording skips it
    /// instead when the task was cancelled). None while the task runs, and when its status cannot
    /// be read: the send goes on as it would have.
    pub(super) async fn stopped(&self, ctx: &Context) -> Option<Outcome> {
        let status = self.status(ctx).await?;
        (status != TaskStatus::Running).then(|| Outcome::Retry {
            at: ctx.clock.now_db(),
            code: "task_stopped".into(),
            message: format!("not sent: the task is {status}"),
            counts: false,
            rate_limited: false,
        })
    }

    async fn status(&self, ctx: &Context) -> Option<TaskStatus> {
        let mut last = self.last.lock().await;
        if let Some((at, status)) = *last
            && at.elapsed() < FRESH_FOR
        {
            return Some(status);
        }
        let read = message_tasks::Entity::find_by_id(self.task_id)
            .select_only()
            .column(message_tasks::Column::Status)
            .into_tuple::<TaskStatus>()
            .one(&ctx.db)
            .await;
        match read {
            Ok(Some(status)) => {
                *last = Some((Instant::now(), status));
                Some(status)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(task.id = self.task_id, error = %e, "task status unread; the send goes on");
                None
            }
        }
    }
}
