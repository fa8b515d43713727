//! Sends: every run with receivers ready gets a drain task (one per run per worker); chunks claim
//! receivers with leases, so several workers share a run safely.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

#[derive(Clone, Default)]
pub struct Dispatcher {
    in_flight: Arc<Mutex<HashSet<i64>>>,
}

impl Dispatcher {
    pub async fn run(&self, ctx: &service::Context, worker: &str) -> anyhow::Result<()> {
        let busy = self
            .in_flight
            .lock()
            .map(|set| set.clone())
            .unwrap_or_default();
        for run in service::dispatch::ready_runs(ctx, 50, &busy).await? {
            let fresh = self
                .in_flight
                .lock()
                .map(|mut set| set.insert(run))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let (ctx, worker, in_flight) = (ctx.clone(), worker.to_owned(), self.in_flight.clone());
            tokio::spawn(async move {
                if let Err(e) = service::dispatch::drain(&ctx, run, &worker).await {
                    tracing::warn!(run.id = run, error = %e, "dispatch of a run stopped; it resumes on the next pass");
                }
                if let Ok(mut set) = in_flight.lock() {
                    set.remove(&run);
                }
            });
        }
        Ok(())
    }
}
