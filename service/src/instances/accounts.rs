//! WeCom accounts on an instance: synced from it, with local remark, tags and send rate.

use crate::rbac::perm;
use chrono::{DateTime, Utc};
use entity::states::AccountStatus;
use entity::{wework_accounts, wework_instances};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, OnConflict},
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    drivers::{InstanceDriver, LoginQr, RemoteAccount},
    pagination::{Page, PageRequest},
    validate::{self, Violations},
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    pub id: i64,
    pub instance_id: i64,
    pub wxid: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub status: AccountStatus,
    pub is_logged_in: bool,
    pub last_sync_time: Option<DateTime<Utc>>,
    pub contact_count: i32,
    pub group_count: i32,
    pub total_messages: i64,
    pub today_messages: i32,
    /// Local send limit for this account (messages per minute); `null` uses the defaults.
    pub rate_limit_per_minute: Option<i32>,
    pub remark: Option<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<wework_accounts::Model> for AccountView {
    fn from(m: wework_accounts::Model) -> Self {
        Self {
            id: m.id,
            instance_id: m.instance_id,
            wxid: m.wxid,
            nickname: m.nickname,
            avatar_url: m.avatar_url,
            phone: m.phone,
            email: m.email,
            status: m.status,
            is_logged_in: m.is_logged_in,
            last_sync_time: m.last_sync_time.map(to_utc),
            contact_count: m.contact_count,
            group_count: m.group_count,
            total_messages: m.total_messages,
            today_messages: m.today_messages,
            rate_limit_per_minute: m.rate_limit_per_minute,
            remark: m.remark,
            tags: m.tags,
            created_at: to_utc(m.created_at),
            updated_at: to_utc(m.updated_at),
        }
    }
}

/// Absent fields stay; `null` clears.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, pattern = r"^\s*([^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,1999}\s*)?$")]
    pub remark: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<Vec<crate::validate::Label>>)]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 6000)]
    pub rate_limit_per_minute: Option<Option<i32>>,
}

#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub instance_id: Option<i64>,
    pub status: Option<AccountStatus>,
    pub q: Option<String>,
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<wework_accounts::Model> {
    wework_accounts::Entity::find_by_id(id)
        .filter(wework_accounts::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("account"))
}

/// A live account on an instance the actor may see; otherwise the same 404 as a missing one.
pub async fn find_visible<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: i64,
) -> ServiceResult<wework_accounts::Model> {
    let account = find(conn, id).await?;
    actor.reach.check_instance(account.instance_id, "account")?;
    Ok(account)
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: AccountFilter,
    page: PageRequest,
) -> ServiceResult<Page<AccountView>> {
    actor.require(perm::AccountsRead)?;
    let mut query =
        wework_accounts::Entity::find().filter(wework_accounts::Column::DeletedAt.is_null());
    query = query.filter(
        actor
            .reach
            .on_instances(wework_accounts::Column::InstanceId),
    );
    if let Some(id) = filter.instance_id {
        query = query.filter(wework_accounts::Column::InstanceId.eq(id));
    }
    if let Some(status) = filter.status {
        query = query.filter(wework_accounts::Column::Status.eq(status));
    }
    if let Some(m) = crate::search::contains_any(
        &[
            wework_accounts::Column::Wxid,
            wework_accounts::Column::Nickname,
        ],
        filter.q.as_deref(),
    ) {
        query = query.filter(m);
    }
    if let Some(before) = page.before {
        query = query.filter(wework_accounts::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(wework_accounts::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, AccountView::from))
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<AccountView> {
    actor.require(perm::AccountsRead)?;
    Ok(find_visible(&ctx.db, actor, id).await?.into())
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: AccountPatch,
) -> ServiceResult<AccountView> {
    let entry = AuditEntry::new("account.update", OperationType::Update, "account").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::AccountsUpdate)?;
        let mut v = Violations::new();
        let remark = patch.remark.as_ref().map(|r| {
            v.take(validate::optional_text("remark", r.as_deref(), 2000))
                .flatten()
        });
        if let Some(Some(tags)) = &patch.tags {
            for (i, tag) in tags.iter().enumerate() {
                v.take(validate::text(&format!("tags[{i}]"), tag, 1, 50));
            }
        }
        if let Some(Some(rate)) = patch.rate_limit_per_minute
            && !(1..=6000).contains(&rate)
        {
            v.add("rate_limit_per_minute", "must be between 1 and 6000");
        }
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before: AccountView = find_visible(&txn, actor, id).await?.into();
        let mut changes = wework_accounts::ActiveModel {
            id: Set(id),
            updated_at: Set(now),
            ..Default::default()
        };
        if let Some(remark) = remark {
            changes.remark = Set(remark);
        }
        if let Some(tags) = patch.tags {
            changes.tags = Set(tags.map(|t| serde_json::json!(t)));
        }
        if let Some(rate) = patch.rate_limit_per_minute {
            changes.rate_limit_per_minute = Set(rate);
        }
        wework_accounts::Entity::update(changes).exec(&txn).await?;
        let after: AccountView = find(&txn, id).await?.into();
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            after.wxid.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}

/// Asks the instance for a login QR code (agent instances).
pub async fn login_qr(
    ctx: &Context,
    actor: &Actor,
    instance_id: i64,
    account: Option<String>,
) -> ServiceResult<LoginQr> {
    let entry = AuditEntry::new("account.login_qr", OperationType::Security, "instance")
        .target(instance_id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::AccountsControl)?;
        let instance = super::find_visible(&ctx.db, actor, instance_id).await?;
        let driver = crate::drivers::for_instance(ctx, &instance).await?;
        let qr = driver
            .login_qr(account.as_deref())
            .await
            .map_err(driver_failure)?;
        audit::record(
            &ctx.db,
            actor,
            entry
                .clone()
                .resource(instance_id, instance.name)
                .extra(serde_json::json!({ "account": account })),
            ctx.clock.now_db(),
        )
        .await?;
        Ok(qr)
    })
    .await
}

/// A driver failure as the API reports it: the instance's answer, not our bug.
pub fn driver_failure(error: crate::drivers::DriverError) -> ServiceError {
    match error {
        crate::drivers::DriverError::Unsupported(why) => ServiceError::Conflict {
            field: None,
            message: why,
        },
        other => ServiceError::Unavailable(format!("the instance failed: {other}")),
    }
}

/// Upserts the instance's accounts; accounts it no longer lists go offline. Returns them all.
pub async fn sync_from(
    ctx: &Context,
    instance: &wework_instances::Model,
    driver: &dyn InstanceDriver,
) -> ServiceResult<Vec<wework_accounts::Model>> {
    let remote: Vec<RemoteAccount> = crate::drivers::with_retries(6, || driver.accounts())
        .await
        .map_err(driver_failure)?;
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    for chunk in remote.chunks(200) {
        let rows = chunk.iter().map(|a| wework_accounts::ActiveModel {
            instance_id: Set(instance.id),
            wxid: Set(a.wxid.chars().take(100).collect()),
            nickname: Set(a.nickname.clone()),
            avatar_url: Set(a.avatar_url.clone()),
            phone: Set(a.phone.clone().filter(|p| p.len() <= 20)),
            email: Set(a.email.clone().filter(|e| e.len() <= 100)),
            status: Set(a.status),
            is_logged_in: Set(a.is_logged_in),
            last_sync_time: Set(Some(now)),
            contact_count: Set(0),
            group_count: Set(0),
            total_messages: Set(0),
            today_messages: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        let on_conflict = OnConflict::columns([
            wework_accounts::Column::InstanceId,
            wework_accounts::Column::Wxid,
        ])
        .update_columns([
            wework_accounts::Column::Nickname,
            wework_accounts::Column::AvatarUrl,
            wework_accounts::Column::Phone,
            wework_accounts::Column::Email,
            wework_accounts::Column::Status,
            wework_accounts::Column::IsLoggedIn,
            wework_accounts::Column::LastSyncTime,
            wework_accounts::Column::UpdatedAt,
        ])
        .to_owned();
        wework_accounts::Entity::insert_many(rows)
            .on_conflict(on_conflict)
            .exec_without_returning(&txn)
            .await?;
    }
    wework_accounts::Entity::update_many()
        .col_expr(
            wework_accounts::Column::Status,
            Expr::value(AccountStatus::Offline),
        )
        .col_expr(wework_accounts::Column::IsLoggedIn, Expr::value(false))
        .filter(wework_accounts::Column::InstanceId.eq(instance.id))
        .filter(wework_accounts::Column::LastSyncTime.lt(now))
        .exec(&txn)
        .await?;
    let accounts = wework_accounts::Entity::find()
        .filter(wework_accounts::Column::InstanceId.eq(instance.id))
        .filter(wework_accounts::Column::DeletedAt.is_null())
        .filter(wework_accounts::Column::LastSyncTime.eq(now))
        .all(&txn)
        .await?;
    let online = wework_accounts::Entity::find()
        .filter(wework_accounts::Column::InstanceId.eq(instance.id))
        .filter(wework_accounts::Column::Status.eq(AccountStatus::Online))
        .count(&txn)
        .await?;
    wework_instances::Entity::update_many()
        .col_expr(
            wework_instances::Column::CurrentAccounts,
            Expr::value(i32::try_from(online).unwrap_or(i32::MAX)),
        )
        .filter(wework_instances::Column::Id.eq(instance.id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(accounts)
}
