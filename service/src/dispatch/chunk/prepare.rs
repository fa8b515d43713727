//! Before sending: what the chunk's sends share, and each receiver's checks and rendering.

use entity::states::{Channel, MessageType, ReceiverType};
use std::{collections::HashMap, sync::Arc};

use chrono::TimeDelta;
use entity::{message_receivers, message_tasks, wework_accounts, wework_instances};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Map, Value};

use super::{Body, Outcome, Shared};
use crate::tasks::variants::KEYS;
use crate::{
    Context, ServiceResult,
    dispatch::limits,
    drivers::{InstanceDriver, OutboundMessage},
    tasks::spec::{FrequencyCap, stored},
    templates::{self, render},
};

/// What every send of the chunk shares, or why the task's template cannot be used.
pub(super) async fn prepare(
    ctx: &Context,
    task: message_tasks::Model,
    frequency_cap: Option<FrequencyCap>,
    claimed: &[message_receivers::Model],
    send_until: tokio::time::Instant,
) -> ServiceResult<Result<Shared, String>> {
    let body = match &task.variants {
        Some(_) => None,
        None => match body_of(
            ctx,
            task.template_id,
            task.message_content.clone(),
            task.message_payload.clone(),
            task.template_variables.clone(),
        )
        .await?
        {
            Ok(body) => Some(body),
            Err(why) => return Ok(Err(why)),
        },
    };
    let mut variant_bodies = HashMap::new();
    let listed = match crate::tasks::variants::stored(&task) {
        Ok(listed) => listed,
        Err(e) => return Ok(Err(e.to_string())),
    };
    for (key, v) in crate::tasks::variants::KEYS
        .iter()
        .zip(listed.map(|(list, _)| list).unwrap_or_default())
    {
        let variables = Some(Value::Object(v.variables));
        match body_of(ctx, v.template_id, v.content, None, variables).await? {
            Ok(b) => variant_bodies.insert((*key).to_owned(), b),
            Err(why) => return Ok(Err(format!("variant {key}: {why}"))),
        };
    }
    let Some(body) = body.or_else(|| variant_bodies.get(KEYS[0]).cloned()) else {
        return Ok(Err("the task has neither content nor variants".into()));
    };
    let account_ids: Vec<i64> = claimed.iter().filter_map(|r| r.account_id).collect();
    let accounts: HashMap<i64, wework_accounts::Model> = wework_accounts::Entity::find()
        .filter(wework_accounts::Column::Id.is_in(account_ids))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let instance_ids: Vec<i64> = accounts.values().map(|a| a.instance_id).collect();
    let mut drivers = HashMap::new();
    for instance in wework_instances::Entity::find()
        .filter(wework_instances::Column::Id.is_in(instance_ids))
        .all(&ctx.db)
        .await?
    {
        match crate::drivers::for_instance(ctx, &instance).await {
            Ok(driver) => {
                drivers.insert(instance.id, Arc::from(driver));
            }
            Err(e) => {
                tracing::warn!(instance.id = instance.id, error = %e, "no driver for the instance; its receivers fail")
            }
        }
    }
    Ok(Ok(Shared {
        body,
        variant_bodies,
        accounts,
        drivers,
        frequency_cap,
        deferred: std::sync::Mutex::default(),
        send_until,
        status: super::still_running::TaskStatusCheck::new(task.id),
        task,
    }))
}

/// A content to send: a template's (with its payload and variable defaults) or inline text,
/// with the values the task (or variant) gives its variables.
async fn body_of(
    ctx: &Context,
    template_id: Option<i64>,
    content: Option<String>,
    payload: Option<Value>,
    variables: Option<Value>,
) -> ServiceResult<Result<Body, String>> {
    let variables = match variables {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    Ok(Ok(match template_id {
        Some(id) => {
            let t = templates::find(&ctx.db, id).await?;
            let spec: Vec<templates::VariableSpec> = match stored(t.variables.as_ref(), "variables")
            {
                Ok(spec) => spec.unwrap_or_default(),
                Err(why) => return Ok(Err(format!("template {id}: {why}"))),
            };
            let defaults = spec
                .into_iter()
                .filter_map(|s| s.default.map(|d| (s.name, d)))
                .collect();
            Body {
                content: t.content,
                payload: t.payload,
                defaults,
                variables,
            }
        }
        None => Body {
            content: content.unwrap_or_default(),
            payload,
            defaults: Map::new(),
            variables,
        },
    }))
}

/// Defaults, then the task's (or variant's) values, then the receiver's snapshot.
pub(super) fn context_for(body: &Body, receiver: &message_receivers::Model) -> Value {
    let mut context = body.defaults.clone();
    context.extend(body.variables.clone());
    if let Some(Value::Object(vars)) = &receiver.variables {
        context.extend(
            vars.iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    Value::Object(context)
}

/// A receiver that passed its checks, with its message rendered.
pub(super) struct Prepared {
    pub(super) account_id: i64,
    pub(super) driver: Arc<dyn InstanceDriver>,
    pub(super) message: OutboundMessage,
    pub(super) content: String,
}

/// A database hiccup while checking caps: try again shortly, without using a retry.
pub(super) fn internal_retry(ctx: &Context, e: &crate::ServiceError) -> Outcome {
    Outcome::Retry {
        at: ctx.clock.now_db() + TimeDelta::seconds(10),
        code: "internal".into(),
        message: e.to_string(),
        counts: false,
        rate_limited: false,
    }
}

/// Checks the receiver (account, caps, quota) and renders its message; `Err` is the final
/// outcome when it must not be sent.
pub(super) async fn prepare_send(
    ctx: &Context,
    shared: &Shared,
    r: &message_receivers::Model,
) -> ServiceResult<Result<Prepared, Outcome>> {
    let task = &shared.task;
    let Some(account) = r.account_id.and_then(|a| shared.accounts.get(&a)) else {
        return Ok(Err(Outcome::Failed {
            code: "no_account".into(),
            message: "the sending account no longer exists".into(),
        }));
    };
    let Some(driver) = shared.drivers.get(&account.instance_id) else {
        return Ok(Err(Outcome::Failed {
            code: "no_instance".into(),
            message: "the account's instance is gone or misconfigured".into(),
        }));
    };
    if let Some(contact) = r.contact_id {
        if let Some(reason) = limits::capped(ctx, shared.frequency_cap, contact).await? {
            return Ok(Err(Outcome::Skipped { reason }));
        }
        if task.channel == Channel::CustomerMass && limits::over_monthly_quota(ctx, contact).await?
        {
            return Ok(Err(Outcome::Skipped {
                reason: "monthly_quota",
            }));
        }
    }
    let body = shared.body_for(r);
    let context = context_for(body, r);
    let render_failed = |e: render::RenderError| Outcome::Failed {
        code: "render_error".into(),
        message: e.message,
    };
    let content = match render::render(&body.content, &context) {
        Ok(text) => text,
        Err(e) => return Ok(Err(render_failed(e))),
    };
    let payload = match &body.payload {
        Some(p) => match render::render_payload(p, &context) {
            Ok(mut rendered) => {
                if task.message_type == MessageType::Text
                    && let Some(map) = rendered.as_object_mut()
                {
                    map.insert("content".into(), Value::String(content.clone()));
                }
                rendered
            }
            Err(e) => return Ok(Err(render_failed(e))),
        },
        None => serde_json::json!({ "content": content }),
    };
    let key = r
        .variables
        .as_ref()
        .and_then(|v| v.get("_idempotency_key"))
        .and_then(Value::as_str)
        .map_or_else(|| r.message_uuid.to_string(), str::to_owned);
    Ok(Ok(Prepared {
        account_id: account.id,
        driver: driver.clone(),
        message: OutboundMessage {
            account_wxid: account.wxid.clone(),
            to: r.receiver_wxid.clone(),
            to_group: r.receiver_type == ReceiverType::Group,
            channel: task.channel,
            msgtype: task.message_type,
            payload,
            idempotency_key: key,
        },
        content,
    }))
}
