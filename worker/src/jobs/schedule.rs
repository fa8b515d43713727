//! Starts due tasks and cron firings, then sleeps until the next one is due: the scheduler wakes
//! at the due time itself, or sooner when a task is created or resumed (the schedule signal).

use std::time::Duration;

/// The longest the scheduler sleeps without looking: a change no signal announced (another
/// process without Redis, a cron task back from its run) is seen within this bound.
pub const LOOK_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// One pass; returns how long to sleep before the next.
pub async fn run(ctx: &service::Context) -> anyhow::Result<Duration> {
    let looked_at = ctx.clock.now_db();
    let runs = service::tasks::schedule::tick(ctx).await?;
    if !runs.is_empty() {
        ctx.expand_signal.raise_here();
    }
    let Some(due) = service::tasks::schedule::next_due(ctx).await? else {
        return Ok(LOOK_AT_LEAST_EVERY);
    };
    if runs.is_empty() && due <= looked_at {
        // Due when this pass looked, yet it started nothing: another scheduler took it, or the
        // task cannot start (a stored cron expression that no longer parses). The regular beat
        // looks again; a spin would not help.
        return Ok(LOOK_AT_LEAST_EVERY);
    }
    // Against the precise clock (stored times are whole seconds), a millisecond past the due
    // time, so the pass that wakes finds the task due.
    let until = (due.and_utc() - ctx.clock.now())
        .to_std()
        .unwrap_or_default()
        + Duration::from_millis(1);
    Ok(until.min(LOOK_AT_LEAST_EVERY))
}
