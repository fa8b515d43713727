//! A workbench's live stream: the events after the id the client last saw (its
//! `Last-Event-ID`), then every new one the viewer may see as the hub reads it, each once, in
//! the order the hub reads them. It ends when the viewer's session ends or loses the desk
//! permission; the client reconnects with its last id and misses nothing.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures_util::Stream;
use tokio::sync::{broadcast::error::RecvError, mpsc};

use super::events::{self, DeskEvent, Hub};
use crate::{Context, ServiceResult, auth::actor::Actor, rbac::perm, stream_slots::StreamSlot};

/// Most events replayed on resume; a client further behind is told to reload (`reset`).
pub const MAX_REPLAY: u64 = 5000;
/// How often the viewer's rights and groups are checked again and a keep-alive goes out.
const RECHECK: Duration = Duration::from_secs(15);

/// What the stream sends.
#[derive(Debug, Clone)]
pub enum Frame {
    Event(Arc<DeskEvent>),
    /// The client missed more than can be replayed: reload the lists, then carry on.
    Reset,
    /// Nothing happened: keeps proxies from closing the connection.
    KeepAlive,
}

/// Starts following: subscribes first (so nothing falls between the replay and the live
/// part), replays what came after `after`, then passes on live events.
pub async fn follow(
    ctx: &Context,
    actor: &Actor,
    after: Option<i64>,
    slot: StreamSlot,
) -> ServiceResult<impl Stream<Item = Frame> + use<>> {
    let audience = super::audience_of(ctx, actor).await?;
    let mut live = Hub::subscribe(ctx).await?;
    let (tx, rx) = mpsc::channel::<Frame>(256);
    let (ctx, actor) = (ctx.clone(), actor.clone());
    tokio::spawn(async move {
        let _slot = slot;
        let mut audience = audience;
        let mut sent: HashSet<i64> = HashSet::new();
        if let Some(after) = after {
            match events::since(&ctx, &audience, after, MAX_REPLAY + 1).await {
                Ok(backlog) if backlog.len() as u64 > MAX_REPLAY => {
                    if tx.send(Frame::Reset).await.is_err() {
                        return;
                    }
                }
                Ok(backlog) => {
                    for event in backlog {
                        sent.insert(event.id);
                        if tx.send(Frame::Event(Arc::new(event))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(_) => return,
            }
        }
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) => {
                        let visible = audience.sees(&event);
                        audience.track(&event);
                        if !sent.remove(&event.id) && visible
                            && tx.send(Frame::Event(event)).await.is_err()
                        {
                            return;
                        }
                    }
                    // This stream fell behind the hub: the client reloads and resumes live.
                    Err(RecvError::Lagged(_)) => {
                        if tx.send(Frame::Reset).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = recheck.tick() => {
                    let supervises = crate::auth::still_allowed(&ctx, &actor, perm::DeskSupervise).await.unwrap_or(false);
                    let works = crate::auth::still_allowed(&ctx, &actor, perm::DeskWork).await.unwrap_or(false);
                    // Lost the desk, or lost `desk:supervise` while seeing everything: the
                    // stream ends and the client reconnects with the rights it has now.
                    if !(supervises || (works && !audience.everything)) {
                        return;
                    }
                    if let Ok(fresh) = super::audience_of(&ctx, &actor).await {
                        audience = fresh;
                    }
                    if tx.send(Frame::KeepAlive).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    }))
}
