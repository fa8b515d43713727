//! Readiness of the dependencies this process needs to serve requests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Context;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    pub component: String,
    pub ok: bool,
    pub detail: Option<String>,
}

const TIMEOUT: Duration = Duration::from_secs(2);

/// Pings the database and, when configured, Redis; each with a short timeout.
pub async fn readiness(ctx: &Context) -> Vec<Check> {
    let mut checks = Vec::with_capacity(2);
    let db = tokio::time::timeout(TIMEOUT, ctx.db.ping()).await;
    checks.push(match db {
        Ok(Ok(())) => Check {
            component: "database".to_owned(),
            ok: true,
            detail: None,
        },
        Ok(Err(e)) => Check {
            component: "database".to_owned(),
            ok: false,
            detail: Some(e.to_string()),
        },
        Err(_) => Check {
            component: "database".to_owned(),
            ok: false,
            detail: Some("timed out".to_owned()),
        },
    });
    if let Some(redis) = ctx.redis.clone() {
        let mut redis = redis;
        let ping = tokio::time::timeout(
            TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut redis),
        )
        .await;
        checks.push(match ping {
            Ok(Ok(_)) => Check {
                component: "redis".to_owned(),
                ok: true,
                detail: None,
            },
            Ok(Err(e)) => Check {
                component: "redis".to_owned(),
                ok: false,
                detail: Some(e.to_string()),
            },
            Err(_) => Check {
                component: "redis".to_owned(),
                ok: false,
                detail: Some("timed out".to_owned()),
            },
        });
    }
    checks
}
