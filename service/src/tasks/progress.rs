//! A task's live progress as a stream of views: the current one at once, then one a second
//! while the task moves, ending after the view that shows it settled, after an hour, or as soon
//! as the viewer may no longer read it (signed out, disabled, permission or reach withdrawn).
//! The transport (server-sent events in the API) only frames what this yields.

use crate::rbac::perm;
use std::time::Duration;

use futures_util::Stream;

use super::TaskView;
use crate::{Context, auth::actor::Actor, stream_slots::StreamSlot};

/// The longest a stream runs, in ticks of one second.
const MAX_TICKS: u32 = 3600;
/// The slot's lease is renewed every this many ticks (well within its 30 s lifetime).
const RENEW_EVERY: u32 = 10;

/// `first` (the view the caller read, so a missing task is its 404 before any slot is taken),
/// then the task's views as it moves. `slot` counts against the viewer's stream cap for as long
/// as the stream lives.
pub fn follow(
    ctx: &Context,
    actor: &Actor,
    first: TaskView,
    slot: StreamSlot,
) -> impl Stream<Item = TaskView> + use<> {
    let (ctx, actor, id) = (ctx.clone(), actor.clone(), first.id);
    futures_util::stream::unfold((Some(first), 0u32, slot), move |(pending, ticks, slot)| {
        let (ctx, actor) = (ctx.clone(), actor.clone());
        async move {
            let view = match pending {
                Some(view) => view,
                None => {
                    if ticks >= MAX_TICKS {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if ticks % RENEW_EVERY == 0 {
                        slot.renew().await;
                    }
                    if !crate::auth::still_allowed(&ctx, &actor, perm::TasksRead)
                        .await
                        .ok()?
                    {
                        return None;
                    }
                    super::get(&ctx, &actor, id).await.ok()?
                }
            };
            // After the first view, a settled task ends the stream with this last view.
            let next_ticks = if ticks > 0 && !view.status.is_in_progress() {
                MAX_TICKS
            } else {
                ticks + 1
            };
            Some((view, (None, next_ticks, slot)))
        }
    })
}
