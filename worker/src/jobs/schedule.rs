//! Starts due tasks and cron firings, then sleeps until the next one is due: the scheduler wakes
//! at the due time itself, or sooner when a task is created or resumed (the schedule signal).

use std::time::Duration;

/// The longest the scheduler sleeps without looking: a change no signal announced (another
/// process without Redis, a cron task back from its run) is seen within this bound.
const LOOK_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// One pass; returns how long to sleep before the next.
pub async fn run(ctx: &service::Context) -> anyhow::Result<Duration> {
    let runs = service::tasks::schedule::tick(ctx).await?;
    if !runs.is_empty() {
        ctx.expand_signal.raise_here();
    }
    let Some(due) = service::tasks::schedule::next_due(ctx).await? else {
        return Ok(LOOK_AT_LEAST_EVERY);
    };
    // Against the precise clock (stored times are whole seconds), a millisecond past the due
    // time, so the pass that wakes finds the task due.
    let until = (due.and_utc() - ctx.clock.now())
        .to_std()
        .unwrap_or_default()
        + Duration::from_millis(1);
    Ok(until.min(LOOK_AT_LEAST_EVERY))
}
