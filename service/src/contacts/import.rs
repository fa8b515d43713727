//! Contact import from CSV or XLSX. Every row is checked first; if any row is wrong nothing is
//! imported and the answer lists each bad cell as `rows[N].column` (N is the spreadsheet row,
//! the header being row 1). Otherwise all rows land in one transaction.

use crate::rbac::perm;
use entity::states::{ContactType, FriendStatus};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use entity::{contacts, tags};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::OnConflict};
use serde::{Deserialize, Serialize};

use super::tags::{LOCAL, link};
use crate::{
    Context, FieldError, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
};

pub use super::import_file::{Format, MAX_ROWS, read};

const MAX_REPORTED_ERRORS: usize = 1_000;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub tags_created: usize,
}

/// The columns a file may have (matched case-insensitively, Chinese headers accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Column {
    Wxid,
    Nickname,
    Remark,
    Phone,
    Gender,
    Region,
    CorpName,
    Tags,
    IsStar,
    /// Opted out of marketing (true) or subscribed again (false); empty leaves it as it is.
    Unsubscribed,
}

fn column(header: &str) -> Option<Column> {
    Some(match header.trim().to_lowercase().as_str() {
        "wxid" | "external_userid" | "微信id" | "客户id" => Column::Wxid,
        "nickname" | "name" | "昵称" | "姓名" => Column::Nickname,
        "remark" | "备注" => Column::Remark,
        "phone" | "mobile" | "手机" | "手机号" => Column::Phone,
        "gender" | "性别" => Column::Gender,
        "region" | "地区" => Column::Region,
        "corp_name" | "company" | "公司" | "企业" => Column::CorpName,
        "tags" | "标签" => Column::Tags,
        "is_star" | "star" | "星标" => Column::IsStar,
        "unsubscribed" | "opted_out" | "退订" => Column::Unsubscribed,
        _ => return None,
    })
}

fn column_name(c: Column) -> &'static str {
    match c {
        Column::Wxid => "wxid",
        Column::Nickname => "nickname",
        Column::Remark => "remark",
        Column::Phone => "phone",
        Column::Gender => "gender",
        Column::Region => "region",
        Column::CorpName => "corp_name",
        Column::Tags => "tags",
        Column::IsStar => "is_star",
        Column::Unsubscribed => "unsubscribed",
    }
}

/// One checked row.
#[derive(Debug, Clone, Default)]
struct Row {
    wxid: String,
    fields: BTreeMap<Column, Option<String>>,
    gender: Option<i16>,
    is_star: Option<bool>,
    unsubscribed: Option<bool>,
    tags: Vec<String>,
    custom: serde_json::Map<String, serde_json::Value>,
}

fn is_phone(value: &str) -> bool {
    value.len() <= 20
        && value
            .chars()
            .all(|ch| ch.is_ascii_digit() || "+- ".contains(ch))
}

fn parse_gender(value: &str) -> Option<Option<i16>> {
    Some(match value.trim().to_lowercase().as_str() {
        "" => None,
        "0" | "unknown" | "未知" => Some(0),
        "1" | "m" | "male" | "男" => Some(1),
        "2" | "f" | "female" | "女" => Some(2),
        _ => return None,
    })
}

fn parse_bool(value: &str) -> Option<Option<bool>> {
    Some(match value.trim().to_lowercase().as_str() {
        "" => None,
        "1" | "true" | "yes" | "y" | "是" => Some(true),
        "0" | "false" | "no" | "n" | "否" => Some(false),
        _ => return None,
    })
}

/// Checks every row; returns them all or every error found (up to a cap).
fn check(rows: &[Vec<String>]) -> Result<(Vec<Column>, Vec<Row>), Vec<FieldError>> {
    let Some(header) = rows.first() else {
        return Err(vec![FieldError::new(
            "file",
            "is empty; the first row must name the columns",
        )]);
    };
    let mut errors = Vec::new();
    let mut columns = Vec::new();
    let mut custom = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let trimmed = name.trim();
        if let Some(key) = trimmed
            .strip_prefix("custom.")
            .filter(|k| !k.is_empty() && k.len() <= 50)
        {
            custom.push((i, key.to_owned()));
        } else if let Some(c) = column(trimmed) {
            if columns.iter().any(|(_, existing)| *existing == c) {
                errors.push(FieldError::new(
                    "rows[1]",
                    format!("column `{trimmed}` appears twice"),
                ));
            }
            columns.push((i, c));
        } else if !trimmed.is_empty() {
            errors.push(FieldError::new("rows[1]", format!("unknown column `{trimmed}` (known: wxid, nickname, remark, phone, gender, region, corp_name, tags, is_star, unsubscribed, custom.<name>)")));
        }
    }
    if !columns.iter().any(|(_, c)| *c == Column::Wxid) {
        errors.push(FieldError::new("rows[1]", "a `wxid` column is required"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len().saturating_sub(1));
    for (index, cells) in rows.iter().enumerate().skip(1) {
        let number = index + 1;
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |i: usize| cells.get(i).map(|c| c.trim()).unwrap_or("");
        let mut row = Row::default();
        let mut fail = |column: &str, message: String| {
            if errors.len() < MAX_REPORTED_ERRORS {
                errors.push(FieldError::new(format!("rows[{number}].{column}"), message));
            }
        };
        for (i, c) in &columns {
            let value = cell(*i);
            let bounded = |max: usize| value.chars().count() <= max;
            match c {
                Column::Wxid if value.is_empty() => fail("wxid", "is required".into()),
                Column::Wxid if !bounded(100) => {
                    fail("wxid", "must be at most 100 characters".into())
                }
                Column::Wxid => row.wxid = value.to_owned(),
                Column::Phone if !value.is_empty() && !is_phone(value) => {
                    fail("phone", format!("`{value}` is not a phone number"))
                }
                Column::Gender => match parse_gender(value) {
                    Some(g) => row.gender = g,
                    None => fail(
                        "gender",
                        format!("`{value}` is not male/female/unknown (男/女/未知, 1/2/0)"),
                    ),
                },
                Column::IsStar => match parse_bool(value) {
                    Some(b) => row.is_star = b,
                    None => fail(
                        "is_star",
                        format!("`{value}` is not true/false (是/否, 1/0)"),
                    ),
                },
                Column::Unsubscribed => match parse_bool(value) {
                    Some(b) => row.unsubscribed = b,
                    None => fail(
                        "unsubscribed",
                        format!("`{value}` is not true/false (是/否, 1/0)"),
                    ),
                },
                Column::Tags => {
                    row.tags = value
                        .split([',', '，', ';', '；', '|'])
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if let Some(long) = row.tags.iter().find(|t| t.chars().count() > 100) {
                        fail(
                            "tags",
                            format!("tag `{long}` is longer than 100 characters"),
                        );
                    }
                }
                other => {
                    let max = if *other == Column::Phone { 20 } else { 100 };
                    if !bounded(max) {
                        fail(
                            column_name(*other),
                            format!("must be at most {max} characters"),
                        );
                    }
                    row.fields
                        .insert(*other, (!value.is_empty()).then(|| value.to_owned()));
                }
            }
        }
        for (i, key) in &custom {
            let value = cell(*i);
            if !value.is_empty() {
                row.custom.insert(
                    key.clone(),
                    serde_json::Value::String(value.chars().take(1000).collect()),
                );
            }
        }
        if !row.wxid.is_empty()
            && let Some(first) = seen.insert(row.wxid.clone(), number)
        {
            fail(
                "wxid",
                format!("`{}` already appears on row {first}", row.wxid),
            );
        }
        out.push(row);
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(FieldError::new("file", "has no data rows"));
    }
    if errors.is_empty() {
        Ok((columns.into_iter().map(|(_, c)| c).collect(), out))
    } else {
        Err(errors)
    }
}

pub async fn import(
    ctx: &Context,
    actor: &Actor,
    account_id: i64,
    format: Format,
    bytes: Vec<u8>,
) -> ServiceResult<ImportReport> {
    let entry = AuditEntry::new("contact.import", OperationType::Create, "contact");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::ContactsImport)?;
        let account = crate::instances::accounts::find_visible(&ctx.db, actor, account_id)
            .await
            .map_err(|_| ServiceError::invalid("account_id", "no such account"))?;
        // Unpacking and parsing is CPU work: off the async executor.
        let cells = tokio::task::spawn_blocking(move || read(format, &bytes))
            .await
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("import parser stopped: {e}")))?
            .map_err(|e| ServiceError::Validation(vec![e]))?;
        let (columns, rows) = check(&cells).map_err(ServiceError::Validation)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let wxids: Vec<String> = rows.iter().map(|r| r.wxid.clone()).collect();
        let mut existing: BTreeSet<String> = BTreeSet::new();
        for chunk in wxids.chunks(500) {
            let found = contacts::Entity::find()
                .filter(contacts::Column::AccountId.eq(account.id))
                .filter(contacts::Column::Wxid.is_in(chunk.iter().cloned()))
                .all(&txn)
                .await?;
            existing.extend(found.into_iter().map(|c| c.wxid));
        }
        // The rows' foreign-key checks may use cached plans from here on.
        crate::db::reuse_plans(&txn).await?;
        let mut update_columns = vec![contacts::Column::UpdatedAt];
        for c in &columns {
            update_columns.extend(match c {
                Column::Nickname => Some(contacts::Column::Nickname),
                Column::Remark => Some(contacts::Column::Remark),
                Column::Phone => Some(contacts::Column::Phone),
                Column::Gender => Some(contacts::Column::Gender),
                Column::Region => Some(contacts::Column::Region),
                Column::CorpName => Some(contacts::Column::CorpName),
                Column::IsStar => Some(contacts::Column::IsStar),
                Column::Wxid | Column::Tags | Column::Unsubscribed => None,
            });
        }
        let has_custom = rows.iter().any(|r| !r.custom.is_empty());
        if has_custom {
            update_columns.push(contacts::Column::CustomFields);
        }
        for chunk in rows.chunks(300) {
            let models = chunk.iter().map(|r| {
                let field = |c: Column| r.fields.get(&c).cloned().flatten();
                contacts::ActiveModel {
                    instance_id: Set(account.instance_id),
                    account_id: Set(account.id),
                    wxid: Set(r.wxid.clone()),
                    nickname: Set(field(Column::Nickname)),
                    remark: Set(field(Column::Remark)),
                    phone: Set(field(Column::Phone)),
                    gender: Set(r.gender),
                    region: Set(field(Column::Region)),
                    corp_name: Set(field(Column::CorpName)),
                    contact_type: Set(ContactType::Friend),
                    friend_status: Set(FriendStatus::Normal),
                    is_star: Set(r.is_star.unwrap_or(false)),
                    is_top: Set(false),
                    is_blocked: Set(false),
                    add_source: Set(Some("import".to_owned())),
                    chat_count: Set(0),
                    custom_fields: Set(
                        (!r.custom.is_empty()).then(|| serde_json::Value::Object(r.custom.clone()))
                    ),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
            });
            let on_conflict =
                OnConflict::columns([contacts::Column::AccountId, contacts::Column::Wxid])
                    .update_columns(update_columns.clone())
                    .to_owned();
            contacts::Entity::insert_many(models)
                .on_conflict(on_conflict)
                .exec_without_returning(&txn)
                .await?;
        }
        // The opt-out list: opted out from the file, keeping an earlier opt-out's time.
        let listed = |want: bool| -> Vec<String> {
            rows.iter()
                .filter(|r| r.unsubscribed == Some(want))
                .map(|r| r.wxid.clone())
                .collect()
        };
        super::opt_out::opt_out_wxids(&txn, account.id, &listed(true), now, "import", None).await?;
        super::opt_out::opt_in_wxids(&txn, account.id, &listed(false), now).await?;
        let tags_created = if columns.contains(&Column::Tags) {
            link_tags(&txn, account.id, &rows, now).await?
        } else {
            0
        };
        let created = rows.iter().filter(|r| !existing.contains(&r.wxid)).count();
        let report = ImportReport {
            rows: rows.len(),
            created,
            updated: rows.len() - created,
            tags_created,
        };
        let entry = entry
            .clone()
            .resource(account.id, account.wxid.clone())
            .new_values(&report);
        audit::record(&txn, actor, entry, now).await?;
        txn.commit().await?;
        Ok(report)
    })
    .await
}

/// Finds or creates the named local tags and links them; returns how many tags were created.
async fn link_tags(
    txn: &sea_orm::DatabaseTransaction,
    account_id: i64,
    rows: &[Row],
    now: chrono::NaiveDateTime,
) -> ServiceResult<usize> {
    let names: BTreeSet<String> = rows.iter().flat_map(|r| r.tags.iter().cloned()).collect();
    if names.is_empty() {
        return Ok(0);
    }
    let known: BTreeSet<String> = tags::Entity::find()
        .filter(tags::Column::InstanceId.eq(LOCAL))
        .filter(tags::Column::GroupName.eq(""))
        .filter(tags::Column::Name.is_in(names.iter().cloned()))
        .all(txn)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !known.contains(*n))
        .cloned()
        .collect();
    for chunk in missing.chunks(300) {
        let models = chunk.iter().map(|name| tags::ActiveModel {
            instance_id: Set(LOCAL),
            group_name: Set(String::new()),
            name: Set(name.clone()),
            sort_order: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        tags::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
    }
    let ids: HashMap<String, i64> = tags::Entity::find()
        .filter(tags::Column::InstanceId.eq(LOCAL))
        .filter(tags::Column::GroupName.eq(""))
        .filter(tags::Column::Name.is_in(names.iter().cloned()))
        .all(txn)
        .await?
        .into_iter()
        .map(|t| (t.name, t.id))
        .collect();
    let tagged: Vec<&Row> = rows.iter().filter(|r| !r.tags.is_empty()).collect();
    let mut contact_ids: HashMap<String, i64> = HashMap::new();
    for chunk in tagged.chunks(500) {
        let found = contacts::Entity::find()
            .filter(contacts::Column::AccountId.eq(account_id))
            .filter(contacts::Column::Wxid.is_in(chunk.iter().map(|r| r.wxid.clone())))
            .all(txn)
            .await?;
        contact_ids.extend(found.into_iter().map(|c| (c.wxid, c.id)));
    }
    let ids = &ids;
    let pairs = tagged.iter().flat_map(|r| {
        let contact = contact_ids.get(&r.wxid).copied();
        r.tags
            .iter()
            .filter_map(move |t| Some((contact?, *ids.get(t)?)))
    });
    link(txn, pairs.collect::<Vec<_>>().into_iter(), now).await?;
    Ok(missing.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        read(Format::Csv, text.as_bytes()).unwrap()
    }

    #[test]
    fn reports_every_bad_cell_with_its_row() {
        let input = "wxid,昵称,phone,性别,is_star\nwm_1,王伟,13800000000,男,是\n,李芳,123,女,否\nwm_3,张三,phone!,x,maybe\nwm_1,dup,,,\n";
        let errors = check(&rows(input)).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "rows[3].wxid",
                "rows[4].phone",
                "rows[4].gender",
                "rows[4].is_star",
                "rows[5].wxid"
            ]
        );
    }

    #[test]
    fn accepts_a_clean_file_with_bom_tags_and_custom_fields() {
        let input =
            "\u{feff}wxid,nickname,tags,custom.level\nwm_1,A,\"VIP, 新品\",gold\n\nwm_2,B,,\n";
        let (columns, parsed) = check(&rows(input)).unwrap();
        assert!(columns.contains(&Column::Tags));
        assert_eq!(parsed.len(), 2, "blank rows are skipped");
        assert_eq!(parsed[0].tags, vec!["VIP", "新品"]);
        assert_eq!(parsed[0].custom["level"], "gold");
    }

    #[test]
    fn header_problems_are_reported_on_row_one() {
        let errors = check(&rows("name,colour\nx,y\n")).unwrap_err();
        assert!(errors.iter().all(|e| e.field == "rows[1]"));
        assert_eq!(errors.len(), 2);
    }
}
