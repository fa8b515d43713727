//! Registering, editing, listing and retiring instances.

use crate::rbac::perm;
use std::collections::BTreeMap;

use entity::wework_instances;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Deserialize;

use super::{
    InstanceKind, InstanceStatus, InstanceView, OFFICIAL_WECOM_API, configs, destination,
    find_live, find_visible, view,
};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    pagination::{Page, PageRequest},
    validate::{self, Violations},
};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceInput {
    pub name: String,
    pub description: Option<String>,
    pub kind: InstanceKind,
    /// Base URL of the agent (required for `agent`), or of the WeCom API (default
    /// `https://qyapi.weixin.qq.com/cgi-bin`; point it at `wework sim` for demos and tests).
    pub api_url: Option<String>,
    pub proxy_host: Option<String>,
    pub proxy_port: Option<i32>,
    pub proxy_username: Option<String>,
    pub proxy_password: Option<String>,
    /// 1 to 10,000 (default 10).
    pub max_accounts: Option<i32>,
    /// Seconds between heartbeats, 1 to 3,600 (default 30).
    pub heartbeat_interval: Option<i32>,
    /// Disabled instances are not polled (default true).
    pub enabled: Option<bool>,
    /// Configuration entries by key: `agent_secret` for agents; `corp_id`, `corp_secret`
    /// (and `agent_id`, `callback_token`, `callback_aes_key`, `robot_key`) for WeCom.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: BTreeMap<String, serde_json::Value>,
}

/// Absent fields stay as they are; `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstancePatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub api_url: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub proxy_host: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<i32>)]
    pub proxy_port: Option<Option<i32>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub proxy_username: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub proxy_password: Option<Option<String>>,
    pub max_accounts: Option<i32>,
    pub heartbeat_interval: Option<i32>,
    pub enabled: Option<bool>,
    /// Configuration entries to set, by key, as in creation. When `api_url`, `proxy_host` or
    /// `proxy_port` changes where the instance connects, every stored secret must be given here
    /// again (and `proxy_password` above), or `forget_secrets` set.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// With a change of destination: drop the stored secrets not given again instead of
    /// refusing the change. Required ones (`corp_secret`) must always be given.
    pub forget_secrets: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub q: Option<String>,
    pub status: Option<InstanceStatus>,
    pub kind: Option<InstanceKind>,
    pub enabled: Option<bool>,
}

async fn check_url(ctx: &Context, v: &mut Violations, field: &str, raw: &str) -> Option<String> {
    match ctx.outbound.policy.check_url(raw).await {
        Ok(url) => Some(url.as_str().trim_end_matches('/').to_owned()),
        Err(refused) => {
            v.add(field, refused.0);
            None
        }
    }
}

async fn check_proxy_host(ctx: &Context, v: &mut Violations, host: &str, port: Option<i32>) {
    let port = port.and_then(|p| u16::try_from(p).ok()).unwrap_or(80);
    if let Err(refused) = ctx.outbound.policy.resolve(host, port).await {
        v.add("proxy_host", refused.0);
    }
}

/// Checks configuration entries given with an instance (as `config.<key>`), keeping the valid ones.
fn checked_config(
    kind: InstanceKind,
    config: &BTreeMap<String, serde_json::Value>,
    v: &mut Violations,
) -> Vec<(String, configs::ConfigValue)> {
    let mut values = Vec::new();
    for (key, value) in config {
        let put = configs::ConfigPut {
            value: value.clone(),
            value_type: None,
            secret: None,
            description: None,
        };
        if let Some(checked) = v.take(configs::check(kind, key, &put, &format!("config.{key}"))) {
            values.push((key.clone(), checked));
        }
    }
    values
}

fn range(v: &mut Violations, field: &str, value: Option<i32>, min: i32, max: i32) {
    if value.is_some_and(|x| !(min..=max).contains(&x)) {
        v.add(field, format!("must be between {min} and {max}"));
    }
}

async fn name_taken<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    except: Option<i64>,
) -> ServiceResult<bool> {
    let mut q = wework_instances::Entity::find()
        .filter(wework_instances::Column::Name.eq(name))
        .filter(wework_instances::Column::DeletionToken.eq(0));
    if let Some(id) = except {
        q = q.filter(wework_instances::Column::Id.ne(id));
    }
    Ok(q.count(conn).await? > 0)
}

pub async fn create(
    ctx: &Context,
    actor: &Actor,
    input: InstanceInput,
) -> ServiceResult<InstanceView> {
    let entry = AuditEntry::new("instance.create", OperationType::Create, "instance");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::InstancesCreate)?;
        let mut v = Violations::new();
        let name = v.take(validate::text("name", &input.name, 1, 100));
        let description = v
            .take(validate::optional_text(
                "description",
                input.description.as_deref(),
                2000,
            ))
            .flatten();
        let api_url = match (
            input.kind,
            input.api_url.as_deref().filter(|u| !u.trim().is_empty()),
        ) {
            (_, Some(raw)) => check_url(ctx, &mut v, "api_url", raw).await,
            (InstanceKind::Wecom, None) => Some(OFFICIAL_WECOM_API.to_owned()),
            (InstanceKind::Agent, None) => {
                v.add("api_url", "is required for agent instances");
                None
            }
        };
        if let Some(host) = input.proxy_host.as_deref().filter(|h| !h.is_empty()) {
            check_proxy_host(ctx, &mut v, host, input.proxy_port).await;
        }
        range(&mut v, "proxy_port", input.proxy_port, 1, 65_535);
        range(&mut v, "max_accounts", input.max_accounts, 1, 10_000);
        range(
            &mut v,
            "heartbeat_interval",
            input.heartbeat_interval,
            1,
            3_600,
        );
        let values = checked_config(input.kind, &input.config, &mut v);
        for missing in
            configs::missing_required(input.kind, input.config.keys().map(String::as_str))
        {
            v.add(missing.field, missing.message);
        }
        v.finish()?;
        let Some(name) = name else {
            return Err(ServiceError::invalid("name", "is invalid"));
        };
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        if name_taken(&txn, &name, None).await? {
            return Err(ServiceError::conflict(
                "name",
                format!("an instance named `{name}` exists"),
            ));
        }
        let row = wework_instances::ActiveModel {
            instance_uuid: Set(uuid::Uuid::new_v4()),
            name: Set(name),
            description: Set(description),
            kind: Set(input.kind),
            status: Set(InstanceStatus::Offline),
            enabled: Set(input.enabled.unwrap_or(true)),
            api_url: Set(api_url),
            proxy_host: Set(input.proxy_host.filter(|h| !h.is_empty())),
            proxy_port: Set(input.proxy_port),
            proxy_username: Set(input.proxy_username.filter(|u| !u.is_empty())),
            proxy_password_encrypted: Set(input
                .proxy_password
                .filter(|p| !p.is_empty())
                .map(|p| ctx.sealer.seal(&p))),
            max_accounts: Set(input.max_accounts.unwrap_or(10)),
            current_accounts: Set(0),
            heartbeat_interval: Set(input.heartbeat_interval.unwrap_or(30)),
            missed_heartbeats: Set(0),
            restart_count: Set(0),
            total_messages: Set(0),
            today_messages: Set(0),
            created_by: Set(actor.user_id()?),
            deletion_token: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let id = wework_instances::Entity::insert(row)
            .exec(&txn)
            .await?
            .last_insert_id;
        for (key, value) in &values {
            configs::upsert(ctx, &txn, id, key, value).await?;
        }
        if !actor.reach.is_all() {
            // A user limited to assigned instances keeps sight of what they create.
            crate::rbac::assignments::assign_created(&txn, actor.user_id()?, id, now).await?;
        }
        let created = view(ctx, &txn, find_live(&txn, id).await?).await?;
        audit::commit_created(txn, actor, &entry, id, created.name.clone(), created, now).await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: InstancePatch,
) -> ServiceResult<InstanceView> {
    let entry = AuditEntry::new("instance.update", OperationType::Update, "instance").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::InstancesUpdate)?;
        let current = find_visible(&ctx.db, actor, id).await?;
        let mut v = Violations::new();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| v.take(validate::text("name", n, 1, 100)));
        let description = patch.description.as_ref().map(|d| {
            v.take(validate::optional_text("description", d.as_deref(), 2000))
                .flatten()
        });
        let api_url = match patch.api_url.as_deref() {
            Some(raw) => check_url(ctx, &mut v, "api_url", raw).await,
            None => None,
        };
        if let Some(Some(host)) = &patch.proxy_host {
            check_proxy_host(
                ctx,
                &mut v,
                host,
                patch.proxy_port.flatten().or(current.proxy_port),
            )
            .await;
        }
        range(&mut v, "proxy_port", patch.proxy_port.flatten(), 1, 65_535);
        range(&mut v, "max_accounts", patch.max_accounts, 1, 10_000);
        range(
            &mut v,
            "heartbeat_interval",
            patch.heartbeat_interval,
            1,
            3_600,
        );
        let values = checked_config(current.kind, &patch.config, &mut v);
        let proxy_password_given = matches!(&patch.proxy_password, Some(Some(p)) if !p.is_empty());
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        // The secrets a move must carry are read under the instance's row lock, so a secret
        // stored meanwhile by someone else is counted rather than carried off unseen.
        let current = super::lock_live(&txn, id).await?;
        let moving = destination::Move {
            new_api_url: patch.api_url.as_deref(),
            new_proxy_host: patch.proxy_host.as_ref().map(Option::as_deref),
            new_proxy_port: patch.proxy_port,
        }
        .changes(&current);
        let forget = patch.forget_secrets.unwrap_or(false);
        let forgotten = if moving {
            let given = patch.config.keys().map(String::as_str).collect();
            destination::secrets_left_behind(
                &txn,
                &current,
                &given,
                proxy_password_given,
                forget,
                &mut v,
            )
            .await?
        } else {
            Vec::new()
        };
        v.finish()?;
        let before = view(ctx, &txn, current.clone()).await?;
        if let Some(name) = &name
            && name_taken(&txn, name, Some(id)).await?
        {
            return Err(ServiceError::conflict(
                "name",
                format!("an instance named `{name}` exists"),
            ));
        }
        let mut changes = wework_instances::ActiveModel {
            id: Set(id),
            updated_at: Set(now),
            ..Default::default()
        };
        if let Some(name) = name {
            changes.name = Set(name);
        }
        if let Some(description) = description {
            changes.description = Set(description);
        }
        if let Some(url) = api_url {
            changes.api_url = Set(Some(url));
        }
        if let Some(host) = patch.proxy_host {
            changes.proxy_host = Set(host.filter(|h| !h.is_empty()));
        }
        if let Some(port) = patch.proxy_port {
            changes.proxy_port = Set(port);
        }
        if let Some(user) = patch.proxy_username {
            changes.proxy_username = Set(user.filter(|u| !u.is_empty()));
        }
        if let Some(password) = patch.proxy_password {
            changes.proxy_password_encrypted = Set(password
                .filter(|p| !p.is_empty())
                .map(|p| ctx.sealer.seal(&p)));
        } else if moving && forget {
            changes.proxy_password_encrypted = Set(None);
        }
        if let Some(max) = patch.max_accounts {
            changes.max_accounts = Set(max);
        }
        if let Some(interval) = patch.heartbeat_interval {
            changes.heartbeat_interval = Set(interval);
            changes.next_heartbeat_at = Set(None);
        }
        if let Some(enabled) = patch.enabled {
            changes.enabled = Set(enabled);
        }
        wework_instances::Entity::update(changes).exec(&txn).await?;
        for (key, value) in &values {
            configs::upsert(ctx, &txn, id, key, value).await?;
        }
        configs::remove(&txn, id, &forgotten).await?;
        let after = view(ctx, &txn, find_live(&txn, id).await?).await?;
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            after.name.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}

/// Soft delete; its accounts, contacts and groups stay readable in the audit trail only.
pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("instance.delete", OperationType::Delete, "instance").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::InstancesDelete)?;
        let current = find_visible(&ctx.db, actor, id).await?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = view(ctx, &txn, current.clone()).await?;
        wework_instances::Entity::update(wework_instances::ActiveModel {
            id: Set(id),
            deleted_at: Set(Some(now)),
            deletion_token: Set(id),
            enabled: Set(false),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        audit::commit_deleted(txn, actor, &entry, id, current.name, &before, now).await
    })
    .await
}

/// Maintenance pauses heartbeats (and, later, dispatch) without disabling the instance.
pub async fn set_maintenance(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    on: bool,
) -> ServiceResult<InstanceView> {
    let entry = AuditEntry::new(
        if on {
            "instance.maintenance.on"
        } else {
            "instance.maintenance.off"
        },
        OperationType::Update,
        "instance",
    )
    .target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::InstancesControl)?;
        let current = find_visible(&ctx.db, actor, id).await?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        wework_instances::Entity::update(wework_instances::ActiveModel {
            id: Set(id),
            status: Set(if on {
                InstanceStatus::Maintenance
            } else {
                InstanceStatus::Offline
            }),
            next_heartbeat_at: Set(None),
            missed_heartbeats: Set(0),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let after = view(ctx, &txn, find_live(&txn, id).await?).await?;
        audit::record(
            &txn,
            actor,
            entry
                .clone()
                .resource(id, current.name)
                .old(&serde_json::json!({ "status": current.status }))
                .new_values(&serde_json::json!({ "status": after.status })),
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(after)
    })
    .await
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<InstanceView> {
    actor.require(perm::InstancesRead)?;
    view(ctx, &ctx.db, find_visible(&ctx.db, actor, id).await?).await
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: InstanceFilter,
    page: PageRequest,
) -> ServiceResult<Page<InstanceView>> {
    actor.require(perm::InstancesRead)?;
    let mut query =
        wework_instances::Entity::find().filter(wework_instances::Column::DeletedAt.is_null());
    query = query.filter(actor.reach.on_instances(wework_instances::Column::Id));
    if let Some(matches) =
        crate::search::contains_any(&[wework_instances::Column::Name], filter.q.as_deref())
    {
        query = query.filter(matches);
    }
    if let Some(status) = filter.status {
        query = query.filter(wework_instances::Column::Status.eq(status));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(wework_instances::Column::Kind.eq(kind));
    }
    if let Some(enabled) = filter.enabled {
        query = query.filter(wework_instances::Column::Enabled.eq(enabled));
    }
    if let Some(before) = page.before {
        query = query.filter(wework_instances::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(wework_instances::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    let models = Page::from_rows(page, rows, |r| r.id, |r| r);
    let mut items = Vec::with_capacity(models.items.len());
    for m in models.items {
        items.push(view(ctx, &ctx.db, m).await?);
    }
    Ok(Page {
        items,
        next_cursor: models.next_cursor,
    })
}

/// Runs a heartbeat now (an operator's "check") and returns it with the updated instance.
pub async fn check(
    ctx: &Context,
    actor: &Actor,
    id: i64,
) -> ServiceResult<(super::heartbeat::Beat, InstanceView)> {
    actor.require(perm::InstancesControl)?;
    let instance = find_visible(&ctx.db, actor, id).await?;
    let beat = super::heartbeat::beat(ctx, &instance).await?;
    Ok((
        beat,
        view(ctx, &ctx.db, find_live(&ctx.db, id).await?).await?,
    ))
}
