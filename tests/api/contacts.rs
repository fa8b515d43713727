//! Sync from the simulator (both kinds), search and filters, local edits surviving a resync,
//! removed contacts, groups and members, import with row-level errors, streamed export.

use std::collections::BTreeMap;

use entity::states::{FriendStatus, SyncStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    contacts::{
        ContactView,
        groups::{GroupView, MemberView},
        import::ImportReport,
        tags::TagView,
    },
    instances::accounts::AccountView,
    pagination::Page,
};

use crate::{
    helpers::{TestApp, TestSim, answer, fields, problem},
    tasks::first_contacts,
};

async fn synced() -> (TestSim, TestApp, i64, i64) {
    let sim = TestSim::small();
    let mut app = TestApp::spawn().await;
    let (agent, wecom) = app.register_sim(&sim, 60).await;
    app.start_worker();
    for id in [agent, wecom] {
        let run = app.sync(id).await;
        assert_eq!(run.status, SyncStatus::Succeeded, "{run:?}");
        assert_eq!(run.accounts, 2);
        assert_eq!(run.contacts, 240);
        assert_eq!(run.groups, 4);
    }
    (sim, app, agent, wecom)
}

/// The instance's two newest contacts, as the list gives them.
async fn two_newest(app: &TestApp, instance: i64) -> [ContactView; 2] {
    first_contacts(app, instance, 2)
        .await
        .try_into()
        .unwrap_or_else(|items: Vec<_>| panic!("two contacts, not {}", items.len()))
}

async fn count(app: &TestApp, query: &str) -> usize {
    ids_of(app, query, 200).await.len()
}

#[tokio::test]
async fn sync_then_search_by_tags_keyword_and_instance() {
    let (_sim, app, agent, wecom) = synced().await;
    assert_eq!(count(&app, &format!("instance_id={agent}")).await, 240);
    assert_eq!(count(&app, &format!("instance_id={wecom}")).await, 240);
    let admin = app.admin_token().await;
    let tags: Page<TagView> = app
        .get_as(
            &format!("/api/v1/tags?instance_id={agent}&limit=200"),
            &admin,
        )
        .await;
    let tag = |name: &str| tags.items.iter().find(|t| t.name == name).unwrap();
    let (vip, sale) = (tag("VIP"), tag("促销"));
    assert_eq!(vip.group_name, "客户等级");
    let (vip_id, sale_id) = (vip.id, sale.id);
    let any = count(&app, &format!("tags_any={vip_id},{sale_id}")).await;
    let all = count(&app, &format!("tags_all={vip_id},{sale_id}")).await;
    let only_vip = count(&app, &format!("tags_any={vip_id}")).await;
    assert_eq!(only_vip as u64, vip.contact_count);
    assert!(
        all <= only_vip && only_vip <= any && all > 0,
        "all {all} ≤ vip {only_vip} ≤ any {any}"
    );
    let page: Page<ContactView> = app
        .get_as(
            &format!("/api/v1/contacts?tags_all={vip_id},{sale_id}&limit=200"),
            &admin,
        )
        .await;
    for c in &page.items {
        let names: Vec<&str> = c.tags.iter().map(|t| t.name.as_str()).collect();
        assert!(
            names.contains(&"VIP") && names.contains(&"促销"),
            "{names:?}"
        );
    }
    // A list reads each contact's tags in its own query (one JSON array a row): the same tags,
    // in the same order, as a contact read alone.
    for c in page.items.iter().take(5) {
        let alone: ContactView = app
            .get_as(&format!("/api/v1/contacts/{}", c.id), &admin)
            .await;
        assert_eq!(
            serde_json::to_value(&c.tags).unwrap(),
            serde_json::to_value(&alone.tags).unwrap()
        );
    }
    let wang = count(&app, "q=%E7%8E%8B").await;
    assert!(wang > 0, "keyword search finds Chinese names");
    let bad = app.get("/api/v1/contacts?tags_any=abc", &admin).await;
    assert_eq!(
        fields(&problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["tags_any"]
    );
    // A crafted list of thousands of tags is refused (and not counted tag by tag first).
    let many: Vec<String> = (1..=3000).map(|i| i.to_string()).collect();
    let bad = app
        .get(
            &format!("/api/v1/contacts?tags_all={}", many.join(",")),
            &admin,
        )
        .await;
    assert_eq!(
        fields(&problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["tags_all"]
    );
    let groups: Page<GroupView> = app
        .get_as(&format!("/api/v1/groups?instance_id={agent}"), &admin)
        .await;
    assert_eq!(groups.items.len(), 4);
    let group = groups.items[0].id;
    let members: Page<MemberView> = app
        .get_as(&format!("/api/v1/groups/{group}/members"), &admin)
        .await;
    assert_eq!(members.items.len(), 5, "owner + 4 customers");
    // From a member who is a contact of the group's account, back to the group.
    let of_account: Page<ContactView> = app
        .get_as(
            &format!(
                "/api/v1/contacts?account_id={}&limit=200",
                groups.items[0].account_id
            ),
            &admin,
        )
        .await;
    let member = of_account
        .items
        .iter()
        .find(|c| members.items.iter().any(|m| m.member_wxid == c.wxid))
        .expect("the sim's members are contacts of the account");
    let member_of: Page<GroupView> = app
        .get_as(&format!("/api/v1/groups?contact_id={}", member.id), &admin)
        .await;
    assert!(member_of.items.iter().any(|g| g.id == group));
    assert!(
        member_of
            .items
            .iter()
            .all(|g| g.account_id == member.account_id)
    );
    let missing = app.get("/api/v1/groups?contact_id=999999999", &admin).await;
    problem(missing, StatusCode::NOT_FOUND).await;
    let accounts: Page<AccountView> = app
        .get_as(&format!("/api/v1/accounts?instance_id={wecom}"), &admin)
        .await;
    assert_eq!(accounts.items[0].contact_count, 120);
}

#[tokio::test]
async fn removed_contacts_become_deleted_and_local_edits_survive_a_resync() {
    let (sim, app, agent, wecom) = synced().await;
    let admin = app.admin_token().await;
    let [keep, gone] = &two_newest(&app, agent).await;
    let local: TagView = app
        .post_as(
            "/api/v1/tags",
            &admin,
            json!({ "name": "重点客户", "color": "#ff8800" }),
        )
        .await;
    let edited = app
        .send_json(Method::PATCH, &format!("/api/v1/contacts/{}", keep.id), &admin, json!({ "remark": "本地备注", "is_blocked": true, "tag_ids": [local.id], "custom_fields": { "level": 3 } }))
        .await;
    let _: ContactView = answer(edited, StatusCode::OK).await;
    sim.control(
        Method::POST,
        "/contacts/remove",
        json!({ "wxids": [gone.wxid] }),
    )
    .await;
    let run = app.sync(agent).await;
    assert_eq!(run.removed, 1);
    let after_keep: ContactView = app
        .get_as(&format!("/api/v1/contacts/{}", keep.id), &admin)
        .await;
    assert_eq!(after_keep.remark.as_deref(), Some("本地备注"));
    assert!(after_keep.is_blocked);
    assert!(
        after_keep.tags.iter().any(|t| t.name == "重点客户"),
        "local tags survive"
    );
    let after_gone: ContactView = app
        .get_as(&format!("/api/v1/contacts/{}", gone.id), &admin)
        .await;
    assert_eq!(after_gone.friend_status, FriendStatus::Deleted);
    assert_eq!(
        count(&app, &format!("instance_id={agent}&friend_status=deleted")).await,
        1
    );
    // WeCom does not report removals: the contact is simply no longer listed.
    let wecom_run = app.sync(wecom).await;
    assert_eq!(wecom_run.removed, 1);
    assert_eq!(
        count(&app, &format!("instance_id={wecom}&friend_status=deleted")).await,
        1
    );
}

#[tokio::test]
async fn an_expired_wecom_token_is_refreshed_once_and_the_call_retried() {
    let (sim, app, _, wecom) = synced().await;
    let before = sim
        .control(Method::GET, "/stats", json!({}))
        .await
        .json::<Value>()
        .await
        .unwrap()["token_requests"]
        .as_u64()
        .unwrap();
    sim.control(Method::POST, "/tokens/expire", json!({})).await;
    let run = app.sync(wecom).await;
    assert_eq!(run.status, SyncStatus::Succeeded);
    let after = sim
        .control(Method::GET, "/stats", json!({}))
        .await
        .json::<Value>()
        .await
        .unwrap()["token_requests"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before + 1, "one refresh for the whole sync");
}

#[tokio::test]
async fn import_reports_every_bad_cell_and_imports_nothing_until_all_rows_are_good() {
    let (_sim, app, agent, _) = synced().await;
    let admin = app.admin_token().await;
    let account = app.account_ids(agent).await[0];
    let before = count(&app, &format!("account_id={account}")).await;
    let bad = "wxid,昵称,手机号,性别,标签\nimp_1,王小明,13800000000,男,\"导入,VIP客户\"\n,缺少ID,,,\nimp_3,张三,not-a-phone,外星,\n";
    let response = app
        .request(
            Method::POST,
            &format!("/api/v1/contacts/import?account_id={account}"),
            Some(&admin),
        )
        .header("content-type", "text/csv")
        .body(bad)
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        fields(&body),
        vec!["rows[3].wxid", "rows[4].phone", "rows[4].gender"]
    );
    assert_eq!(
        count(&app, &format!("account_id={account}")).await,
        before,
        "nothing half-imported"
    );

    let good = "wxid,昵称,手机号,性别,标签,custom.city\nimp_1,王小明,13800000000,男,\"导入,VIP客户\",杭州\nimp_2,李四,,女,导入,\n";
    let report = app
        .request(
            Method::POST,
            &format!("/api/v1/contacts/import?account_id={account}&format=csv"),
            Some(&admin),
        )
        .body(good)
        .send()
        .await
        .unwrap();
    let report: ImportReport = answer(report, StatusCode::OK).await;
    assert_eq!(report.rows, 2);
    assert_eq!(report.created, 2);
    assert_eq!(report.tags_created, 2);
    let imported: Page<ContactView> = app.get_as("/api/v1/contacts?q=imp_1", &admin).await;
    // Custom fields are free-form JSON.
    let custom = imported.items[0].custom_fields.as_ref().unwrap();
    assert_eq!(custom["city"], "杭州");
    assert_eq!(imported.items[0].gender, Some(1));

    let xlsx = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/contacts.xlsx"
    ))
    .unwrap();
    let report = app
        .request(
            Method::POST,
            &format!("/api/v1/contacts/import?account_id={account}"),
            Some(&admin),
        )
        .header(
            "content-type",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        .body(xlsx)
        .send()
        .await
        .unwrap();
    let report: ImportReport = answer(report, StatusCode::OK).await;
    assert_eq!(report.rows, 2, "{report:?}");
    let xlsx_1: Page<ContactView> = app.get_as("/api/v1/contacts?q=xlsx_1", &admin).await;
    assert_eq!(xlsx_1.items[0].nickname.as_deref(), Some("表格客户"));
    let no_type = app
        .request(
            Method::POST,
            &format!("/api/v1/contacts/import?account_id={account}"),
            Some(&admin),
        )
        .body("wxid\nx\n")
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn export_streams_the_filtered_contacts_as_csv() {
    let (_sim, app, agent, _) = synced().await;
    let admin = app.admin_token().await;
    let response = app
        .get(
            &format!("/api/v1/contacts/export?instance_id={agent}"),
            &admin,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let bytes = response.bytes().await.unwrap();
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF"),
        "BOM for spreadsheet programs"
    );
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("id,instance_id,account_id,wxid")
    );
    assert_eq!(lines.count(), 240);
    let bad = app
        .get("/api/v1/contacts/export?friend_status=gone", &admin)
        .await;
    assert_eq!(
        fields(&problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["friend_status"]
    );
}

/// Any WeChat user picks their own nickname; a spreadsheet opening the export must show a
/// formula-looking one as text (OWASP CSV injection), while phone numbers stay numbers.
#[tokio::test]
async fn formula_nicknames_are_exported_as_text() {
    let (_sim, app, agent, _) = synced().await;
    let admin = app.admin_token().await;
    let account = app.account_ids(agent).await[0];
    let rows = "wxid,昵称,手机号\nformula_1,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"领奖\"\")\",\nformula_2,@SUM(1+1),\nformula_3,-2+3,+8613800000000\n";
    let imported = app
        .request(
            Method::POST,
            &format!("/api/v1/contacts/import?account_id={account}&format=csv"),
            Some(&admin),
        )
        .body(rows)
        .send()
        .await
        .unwrap();
    let _: ImportReport = answer(imported, StatusCode::OK).await;
    let export = app
        .get("/api/v1/contacts/export?q=formula_", &admin)
        .await
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(export.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (nickname, phone) = (column("nickname"), column("phone"));
    let mut cells: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[nickname].to_owned(), r[phone].to_owned())
        })
        .collect();
    cells.sort();
    assert_eq!(
        cells,
        vec![
            ("'-2+3".to_owned(), "+8613800000000".to_owned()),
            (
                "'=HYPERLINK(\"http://evil.example\",\"领奖\")".to_owned(),
                String::new()
            ),
            ("'@SUM(1+1)".to_owned(), String::new()),
        ]
    );
}

/// Crafted spreadsheets sent at once: cells at A1 and XFD1048576 (a 17-billion-cell bounding
/// box in 2 KB), a zip bomb (260 MiB of shared strings in 260 KB), a CSV 65 columns wide and
/// one with a 5,000-character cell. Each is refused with a 422 naming the problem, and the
/// process goes on answering.
#[tokio::test]
async fn crafted_files_are_refused_and_the_process_survives() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn().await;
    let agent = app.with_synced_agent(&sim).await;
    let admin = app.admin_token().await;
    let account = app.account_ids(agent).await[0];
    let fixture = |name: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        (XLSX, fixture("far-corner.xlsx"), "rows"),
        (XLSX, fixture("zip-bomb.xlsx"), "unpacks to more than"),
        (
            "text/csv",
            format!("{}\n", vec!["x"; 65].join(",")).into_bytes(),
            "column 65",
        ),
        (
            "text/csv",
            format!("wxid\n{}\n", "长".repeat(5_000)).into_bytes(),
            "characters",
        ),
    ];
    let path = format!("/api/v1/contacts/import?account_id={account}");
    let sends = files.iter().map(|(content_type, body, _)| {
        app.request(Method::POST, &path, Some(&admin))
            .header("content-type", *content_type)
            .body(body.clone())
            .send()
    });
    let answers = futures_util::future::join_all(sends).await;
    for ((_, _, expected), answer) in files.iter().zip(answers) {
        let answer = answer.expect("the server answered instead of dying");
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.to_string().contains(expected), "{expected}: {body}");
    }
    assert_eq!(
        app.get("/api/v1/auth/me", &admin).await.status(),
        StatusCode::OK,
        "still serving"
    );
}

/// Every id the list gives for `query`, walking pages of `limit`; asserts newest first.
async fn ids_of(app: &TestApp, query: &str, limit: u32) -> Vec<i64> {
    let admin = app.admin_token().await;
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/contacts?{query}&limit={limit}&cursor={c}"),
            None => format!("/api/v1/contacts?{query}&limit={limit}"),
        };
        let page: Page<ContactView> = app.get_as(&path, &admin).await;
        ids.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{query}: {ids:?}");
    ids
}

/// `text` for a query string: every byte but letters and digits percent-encoded.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reverts the database's migrations down to the one before `name`.
async fn migrate_down_to_before(app: &TestApp, name: &str) {
    use migration::{Migrator, MigratorTrait};
    let position = Migrator::migrations()
        .iter()
        .position(|m| m.name() == name)
        .unwrap();
    let after = u32::try_from(Migrator::migrations().len() - position).unwrap();
    Migrator::down(&app.ctx.db, Some(after)).await.unwrap();
}

/// Sets a contact's remark through the API.
async fn set_remark(app: &TestApp, id: i64, remark: &str) {
    let admin = app.admin_token().await;
    let path = format!("/api/v1/contacts/{id}");
    let edited = app
        .send_json(Method::PATCH, &path, &admin, json!({ "remark": remark }))
        .await;
    assert_eq!(edited.status(), StatusCode::OK, "{path}");
}

/// The contacts whose name, remark, wxid or phone contains `q`, case aside: what the search
/// means, computed here from every contact.
fn expected(all: &[ContactView], q: &str) -> Vec<i64> {
    let q = q.to_lowercase();
    let mut ids: Vec<i64> = all
        .iter()
        .filter(|c| {
            [&c.nickname, &c.remark, &Some(c.wxid.clone()), &c.phone]
                .into_iter()
                .flatten()
                .any(|v| v.to_lowercase().contains(&q))
        })
        .map(|c| c.id)
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

#[tokio::test]
async fn keyword_search_finds_exactly_the_substring_matches_through_the_index_or_not() {
    let (_sim, app, _agent, _wecom) = synced().await;
    let admin = app.admin_token().await;
    let mut all = Vec::new();
    for id in ids_of(&app, "q=", 200).await {
        all.push(
            app.get_as::<ContactView>(&format!("/api/v1/contacts/{id}"), &admin)
                .await,
        );
    }
    assert_eq!(all.len(), 480);
    let sample = &all[17];
    let wxid: Vec<char> = sample.wxid.chars().collect();
    let name: String = sample.nickname.clone().unwrap_or_default();
    let mut keywords: Vec<String> = vec![
        // Short keywords scan; three characters and more go through the index on SQLite.
        wxid[..1].iter().collect(),
        wxid[1..3].iter().collect(),
        wxid[2..5].iter().collect(),
        wxid[1..].iter().collect(),
        sample.wxid.to_uppercase(),
        name.chars().take(1).collect(),
        name.chars().take(3).collect(),
        name.clone(),
        "%".into(),
        "_".into(),
        "wm\"x".into(),
        "没有这个人".into(),
    ];
    // The end of a contact's last columns: on MySQL one or two characters are looked up as
    // the beginning of a piece, and the text is padded so that these begin one too.
    keywords.push(wxid[wxid.len() - 2..].iter().collect());
    keywords.push(wxid[wxid.len() - 1..].iter().collect());
    if let Some(phone) = &sample.phone {
        keywords.push(phone.chars().skip(3).take(5).collect());
        let phone: Vec<char> = phone.chars().collect();
        keywords.push(phone[phone.len() - 2..].iter().collect());
    }
    for q in &keywords {
        let found = ids_of(&app, &format!("q={}", encode(q)), 7).await;
        assert_eq!(found, expected(&all, q), "keyword {q:?}");
        // Counts (segments, estimates, expansions) take the keyword as one condition.
        let counted: service::segments::SegmentCount = app
            .post_as("/api/v1/segments/count", &admin, json!({ "q": q }))
            .await;
        assert_eq!(counted.contacts, found.len() as u64, "count of {q:?}");
    }
    assert!(!expected(&all, &keywords[2]).is_empty());

    // A changed remark is found by its new text and no longer by its old one; a deleted
    // contact is not found.
    let target = &all[3];
    set_remark(&app, target.id, "索引里的新备注XYZ").await;
    assert_eq!(
        ids_of(&app, "q=%E6%96%B0%E5%A4%87%E6%B3%A8xyz", 7).await,
        [target.id]
    );
    assert_eq!(
        ids_of(&app, "q=%E7%B4%A2%E5%BC%95%E9%87%8C", 50).await,
        [target.id],
        "索引里"
    );
    // The last two characters of a contact's text (on MySQL, the beginning of a piece only
    // because the text is padded).
    assert!(ids_of(&app, "q=yz", 50).await.contains(&target.id), "yz");
    // A text of two characters, all of it or its last one: no piece of three characters holds
    // them but for the padding.
    set_remark(&app, target.id, "张伟").await;
    for q in ["张伟", "伟"] {
        let found = ids_of(&app, &format!("q={}", encode(q)), 50).await;
        assert!(found.contains(&target.id), "{q}: {found:?}");
    }
    if app.ctx.db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        sqlite_short_keywords_survive_a_migration_down_and_up(&app, target.id).await;
    }
    set_remark(&app, target.id, "换掉了").await;
    assert!(
        ids_of(&app, "q=%E6%96%B0%E5%A4%87%E6%B3%A8xyz", 7)
            .await
            .is_empty()
    );
    let gone = app
        .delete(&format!("/api/v1/contacts/{}", all[5].id), &admin)
        .await;
    assert!(gone.status().is_success(), "{}", gone.status());
    let by_wxid = format!("q={}", encode(&all[5].wxid));
    assert!(!ids_of(&app, &by_wxid, 7).await.contains(&all[5].id));

    if app.ctx.db.get_database_backend() != sea_orm::DbBackend::MySql {
        return;
    }
    // MySQL: the triggers kept the trigram table as the contact changed (the `LIKE` on every
    // path would hide a missing removal from the searches above).
    assert!(service::contacts::keyword::mysql_index_present());
    use sea_orm::ConnectionTrait;
    let pieces_of = |id: i64, gram: &'static str| {
        let db = app.ctx.db.clone();
        async move {
            let row = db
                .query_one_raw(sea_orm::Statement::from_sql_and_values(
                    sea_orm::DbBackend::MySql,
                    "SELECT COUNT(*) AS n FROM contacts_search_grams \
                     WHERE contact_id = ? AND gram = ?",
                    [id.into(), gram.into()],
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap()
        }
    };
    assert_eq!(
        pieces_of(target.id, "备注x").await,
        0,
        "the old remark's pieces went"
    );
    assert_eq!(pieces_of(target.id, "换掉了").await, 1);

    // A database migrated while contacts exist indexes them: without the table, a remark
    // changes; migrated again, the new remark is found through the table.
    use migration::{Migrator, MigratorTrait};
    migrate_down_to_before(&app, "m20261206_000026_mysql_contact_grams").await;
    set_remark(&app, target.id, "迁移之前的备注").await;
    Migrator::up(&app.ctx.db, None).await.unwrap();
    assert_eq!(pieces_of(target.id, "之前的").await, 1);
    assert_eq!(pieces_of(target.id, "换掉了").await, 0);
    assert_eq!(
        ids_of(&app, "q=%E4%B9%8B%E5%89%8D%E7%9A%84", 7).await,
        [target.id],
        "之前的"
    );
}

/// SQLite: the trigger indexed the remark 张伟 with its padding, so a piece begins with 张伟.
/// A database migrated while contacts exist indexes them padded: without the padded index,
/// the remark changes; migrated again, the new remark's piece is there and it is found.
async fn sqlite_short_keywords_survive_a_migration_down_and_up(app: &TestApp, id: i64) {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;
    let pieces = |term: &'static str| async move {
        let row = app
            .ctx
            .db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM contacts_search_pieces WHERE term = ? AND doc = ?",
                [term.into(), id.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    assert_eq!(pieces("张伟 ").await, 1, "the padded remark's piece");
    migrate_down_to_before(app, "m20261206_000028_sqlite_short_keywords").await;
    set_remark(app, id, "王芳").await;
    Migrator::up(&app.ctx.db, None).await.unwrap();
    assert_eq!(pieces("王芳 ").await, 1, "rebuilt from the contacts");
    assert_eq!(pieces("张伟 ").await, 0);
    let found = ids_of(app, &format!("q={}", encode("王芳")), 50).await;
    assert!(found.contains(&id), "{found:?}");
}

#[tokio::test]
async fn tag_filters_give_the_same_pages_whether_they_probe_or_collect() {
    let app = TestApp::spawn().await;
    let count: i64 = 22_000;
    let (_, tags) = wework::cli::seed_tagged_contacts(&app.ctx, count as usize)
        .await
        .unwrap();
    // Tag k is on every (k+2)-th contact: tags 0 to 2 (11,000 to 5,500 contacts) are over the
    // probing threshold, tags 3 to 9 (4,400 to 2,000) are collected. PostgreSQL's planner
    // chooses by itself: nothing is probed there.
    let density = service::contacts::tag_filter::Density::measure(
        &app.ctx.db,
        &[tags[0]],
        &[tags[1], tags[9]],
    )
    .await
    .unwrap();
    let probed = (density.any, density.all.iter().copied().collect::<Vec<_>>());
    if app.ctx.db.get_database_backend() == sea_orm::DbBackend::Postgres {
        assert_eq!(probed, (false, vec![]));
    } else {
        assert_eq!(probed, (true, vec![tags[1]]));
    }
    let carries = |id: i64, k: usize| (id - 1) % (k as i64 + 2) == 0;
    let admin = app.admin_token().await;
    let cases: [(&str, &[usize]); 6] = [
        ("tags_all", &[0, 1]),
        ("tags_all", &[1, 9]),
        ("tags_all", &[8, 9]),
        ("tags_all", &[0, 1, 9]),
        ("tags_any", &[0, 9]),
        ("tags_any", &[8, 9]),
    ];
    for (kind, ks) in cases {
        let list: Vec<String> = ks.iter().map(|k| tags[*k].to_string()).collect();
        let query = format!("{kind}={}", list.join(","));
        let expected: Vec<i64> = (1..=count)
            .rev()
            .filter(|id| match kind {
                "tags_any" => ks.iter().any(|k| carries(*id, *k)),
                _ => ks.iter().all(|k| carries(*id, *k)),
            })
            .take(100)
            .collect();
        let first: Page<ContactView> = app
            .get_as(&format!("/api/v1/contacts?{query}&limit=50"), &admin)
            .await;
        let cursor = first.next_cursor.clone().expect("a second page");
        let second: Page<ContactView> = app
            .get_as(
                &format!("/api/v1/contacts?{query}&limit=50&cursor={cursor}"),
                &admin,
            )
            .await;
        let found: Vec<i64> = first
            .items
            .iter()
            .chain(&second.items)
            .map(|c| c.id)
            .collect();
        assert_eq!(found, expected, "{query}");
    }
}

/// An agent that serves a sync from pages the test sets (a `null` page answers 404): one
/// account, no groups.
struct ScriptedAgent {
    url: String,
    pages: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl ScriptedAgent {
    fn start() -> Self {
        use actix_web::{App, HttpResponse, HttpServer, web};
        let pages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
        let served = pages.clone();
        let server = HttpServer::new(move || {
            let served = served.clone();
            App::new()
                .route(
                    "/v1/accounts",
                    web::get().to(|| async {
                        HttpResponse::Ok().json(json!({ "accounts": [
                            { "wxid": "scripted_account", "status": "online", "is_logged_in": true }
                        ] }))
                    }),
                )
                .route(
                    "/v1/accounts/{wxid}/contacts",
                    web::get().to(
                        move |query: web::Query<std::collections::HashMap<String, String>>| {
                            let at: usize = query.get("cursor").map_or(0, |c| c.parse().unwrap());
                            let pages = served.lock().unwrap().clone();
                            let next = (at + 1 < pages.len()).then(|| (at + 1).to_string());
                            async move {
                                if pages[at].is_null() {
                                    return HttpResponse::NotFound().json(
                                        json!({ "code": "not_found", "message": "page lost" }),
                                    );
                                }
                                HttpResponse::Ok()
                                    .json(json!({ "items": pages[at], "next_cursor": next }))
                            }
                        },
                    ),
                )
                .route(
                    "/v1/accounts/{wxid}/groups",
                    web::get().to(|| async { HttpResponse::Ok().json(json!({ "items": [] })) }),
                )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let url = format!("http://127.0.0.1:{}", server.addrs()[0].port());
        tokio::spawn(server.run());
        Self { url, pages }
    }

    fn serve(&self, pages: Vec<Value>) {
        *self.pages.lock().unwrap() = pages;
    }
}

/// The instance's contacts by wxid: nickname, tag names (sorted) and id.
async fn synced_tags(app: &TestApp, instance: i64) -> BTreeMap<String, (String, Vec<String>, i64)> {
    first_contacts(app, instance, 50)
        .await
        .into_iter()
        .map(|c| {
            let mut tags: Vec<String> = c.tags.into_iter().map(|t| t.name).collect();
            tags.sort();
            (c.wxid, (c.nickname.unwrap_or_default(), tags, c.id))
        })
        .collect()
}

fn remote(wxid: &str, nickname: &str, tags: &[&str]) -> Value {
    let tags: Vec<Value> = tags
        .iter()
        .map(|t| json!({ "id": format!("et_{t}"), "group": "等级", "name": t }))
        .collect();
    json!({ "wxid": wxid, "nickname": nickname, "contact_type": "external", "tags": tags })
}

/// What an instance may send and the sync must take as meant, on every database: a wxid listed
/// twice on a page (its last entry counts), a NUL inside a name (dropped: PostgreSQL text
/// cannot hold one), on a resync synced tags that moved between contacts, with a local tag
/// left alone, and a page it cannot give. PostgreSQL writes a page in one statement and skips the stale-link look for
/// contacts it just created; the others write in batches; the outcome must be the same.
#[tokio::test]
async fn a_sync_takes_repeated_contacts_nul_characters_and_moved_tags_as_meant() {
    let agent = ScriptedAgent::start();
    let mut app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let instance: service::instances::InstanceView = app
        .post_as(
            "/api/v1/instances",
            &admin,
            json!({ "name": "scripted", "kind": "agent", "api_url": agent.url, "config": { "agent_secret": "agent-secret-for-tests" } }),
        )
        .await;
    app.start_worker();
    agent.serve(vec![
        json!([
            remote("c1", "甲", &["VIP", "来源A"]),
            remote("c2", "王\u{0}芳", &["VIP"]),
            remote("c1", "甲", &["老客户"]),
        ]),
        json!([remote("c3", "丙", &["VIP"])]),
    ]);
    let run = app.sync(instance.id).await;
    assert_eq!(run.contacts, 3, "c1 counts once: {run:?}");
    let first = synced_tags(&app, instance.id).await;
    let names = |m: &BTreeMap<String, (String, Vec<String>, i64)>| {
        m.iter()
            .map(|(w, (n, t, _))| (w.clone(), n.clone(), t.join(",")))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&first),
        [
            ("c1".into(), "甲".into(), "老客户".into()),
            ("c2".into(), "王芳".into(), "VIP".into()),
            ("c3".into(), "丙".into(), "VIP".into()),
        ]
    );
    let local: TagView = app
        .post_as("/api/v1/tags", &admin, json!({ "name": "本地" }))
        .await;
    let c1 = first["c1"].2;
    let edited = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/contacts/{c1}"),
            &admin,
            json!({ "tag_ids": [local.id] }),
        )
        .await;
    let _: ContactView = answer(edited, StatusCode::OK).await;
    agent.serve(vec![
        json!([remote("c1", "甲", &["VIP"]), remote("c2", "王芳", &[])]),
        json!([remote("c3", "丙", &["VIP", "老客户"])]),
    ]);
    let run = app.sync(instance.id).await;
    assert_eq!(run.contacts, 3, "{run:?}");
    assert_eq!(
        names(&synced_tags(&app, instance.id).await),
        [
            ("c1".into(), "甲".into(), "VIP,本地".into()),
            ("c2".into(), "王芳".into(), String::new()),
            ("c3".into(), "丙".into(), "VIP,老客户".into()),
        ]
    );
    // A page the agent cannot give ends the run failed, after the page before it (written while
    // the failing one was fetched) is stored and counted; nobody is marked removed.
    agent.serve(vec![json!([remote("c4", "丁", &["VIP"])]), Value::Null]);
    let failed = app.sync_to_end(instance.id).await;
    assert_eq!(failed.status, SyncStatus::Failed, "{failed:?}");
    assert!(
        failed
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("page lost")),
        "{failed:?}"
    );
    assert_eq!((failed.contacts, failed.removed), (1, 0), "{failed:?}");
    let after = synced_tags(&app, instance.id).await;
    assert_eq!(after.len(), 4);
    assert_eq!(after["c4"].1, ["VIP"]);
}

/// MariaDB stops `JSON_ARRAYAGG` at `group_concat_max_len` (1 MiB unless a server lowers it):
/// a page whose inline tags came back cut short reads those contacts' tags apart, and shows
/// the same tags as a page read without the cut.
#[tokio::test]
async fn tags_the_server_cut_short_are_read_apart() {
    let (_sim, app, agent, _) = synced().await;
    if app.ctx.db.get_database_backend() != sea_orm::DbBackend::MySql {
        return;
    }
    use sea_orm::ConnectionTrait;
    let whole = first_contacts(&app, agent, 50).await;
    assert!(whole.iter().any(|c| c.tags.len() > 1));

    use secrecy::ExposeSecret;
    let url = app.ctx.settings.database.url.expose_secret().to_owned();
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1).min_connections(1);
    let cut = sea_orm::Database::connect(options).await.unwrap();
    cut.execute_unprepared("SET SESSION group_concat_max_len = 4")
        .await
        .unwrap();
    let (version, aggregated): (String, String) = cut
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::MySql,
            "SELECT VERSION() AS v, CAST(JSON_ARRAYAGG(JSON_ARRAY(1, 'abcdef')) AS CHAR) AS j",
        ))
        .await
        .unwrap()
        .map(|row| (row.try_get("", "v").unwrap(), row.try_get("", "j").unwrap()))
        .unwrap();
    if !version.to_ascii_lowercase().contains("mariadb") {
        // MySQL 8 does not hold `JSON_ARRAYAGG` to `group_concat_max_len`: nothing is cut there.
        return;
    }
    assert!(
        !aggregated.contains("abcdef"),
        "MariaDB cuts at the session's limit: {aggregated}"
    );

    let filter = service::contacts::ContactFilter {
        instance_id: Some(agent),
        ..Default::default()
    };
    let system = service::auth::actor::Actor::system(Default::default());
    let resolved = filter.resolve(&app.ctx, &system).await.unwrap();
    let page = resolved
        .views_page(&cut, &system.reach, None, 50)
        .await
        .unwrap();
    let tags = |items: &[ContactView]| {
        items
            .iter()
            .map(|c| (c.id, serde_json::to_value(&c.tags).unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(tags(&page), tags(&whole));

    // A limit where MariaDB closes the cut array as valid JSON with fewer tags: only the count
    // the same aggregate gives beside it tells that array from a whole one.
    let many = whole.iter().find(|c| c.tags.len() > 1).unwrap();
    let mut short_but_valid = None;
    for limit in 4..4096 {
        cut.execute_unprepared(&format!("SET SESSION group_concat_max_len = {limit}"))
            .await
            .unwrap();
        let aggregated: String = cut
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::MySql,
                format!(
                    "SELECT CAST(JSON_ARRAYAGG(JSON_ARRAY(t.id, t.group_name, t.name, \
                     t.sort_order)) AS CHAR) AS j FROM contact_tags ct \
                     JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = {}",
                    many.id
                ),
            ))
            .await
            .unwrap()
            .map(|row| row.try_get("", "j").unwrap())
            .unwrap();
        match serde_json::from_str::<Vec<serde_json::Value>>(&aggregated) {
            Ok(read) if read.len() < many.tags.len() => {
                short_but_valid = Some(limit);
                break;
            }
            Ok(_) => break,
            Err(_) => {}
        }
    }
    let limit = short_but_valid.expect("some limit leaves a valid array with fewer tags");
    cut.execute_unprepared(&format!("SET SESSION group_concat_max_len = {limit}"))
        .await
        .unwrap();
    let page = resolved
        .views_page(&cut, &system.reach, None, 50)
        .await
        .unwrap();
    assert_eq!(tags(&page), tags(&whole), "cut at {limit} bytes");
}

/// A list reads each contact as one JSON array the database builds: every field of a listed
/// contact, at the edges of its type (quotes, control characters, emoji, empty text, nested
/// and large JSON numbers, microseconds, the largest count), is what the contact read alone
/// shows, and so is a contact whose optional fields are all empty.
#[tokio::test]
async fn a_listed_contact_is_the_contact_read_alone_field_for_field() {
    use chrono::NaiveDate;
    use entity::{contacts, states::ContactType};
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let (_sim, app, agent, _) = synced().await;
    let admin = app.admin_token().await;
    let [full, empty] = two_newest(&app, agent).await.map(|c| c.id);
    let at = |y, mo, d, h, mi, s, micro| {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_micro_opt(h, mi, s, micro)
            .unwrap()
    };
    let mut edge: contacts::ActiveModel = contacts::Entity::find_by_id(full)
        .one(&app.ctx.db)
        .await
        .unwrap()
        .unwrap()
        .into();
    edge.nickname = Set(Some("张三 \"引号\" \\ 反斜杠\n换行\t😀 \u{1}".into()));
    edge.remark = Set(Some(String::new()));
    edge.avatar_url = Set(Some("https://example.com/a?b=1&c=%20".into()));
    edge.phone = Set(Some("+86 138-0000-0000".into()));
    edge.gender = Set(Some(2));
    edge.region = Set(Some("广东 深圳".into()));
    edge.corp_name = Set(Some("<b>Corp</b>'s".into()));
    edge.signature = Set(Some("签名".into()));
    edge.contact_type = Set(ContactType::Official);
    edge.friend_status = Set(FriendStatus::Deleted);
    edge.is_star = Set(true);
    edge.is_top = Set(true);
    edge.is_blocked = Set(true);
    edge.add_source = Set(Some("search".into()));
    edge.add_time = Set(Some(at(2001, 2, 3, 4, 5, 6, 789_012)));
    edge.last_chat_time = Set(Some(at(2099, 12, 31, 23, 59, 59, 0)));
    edge.chat_count = Set(i32::MAX);
    edge.custom_fields = Set(Some(json!({
        "级别": "金", "n": 1.5, "tenth": 0.1, "huge": 1e100, "big": 9_007_199_254_740_993_u64,
        "negative": -42, "nested": {"a": [true, null, "x", []], "empty": {}}, "quote": "\"\\"
    })));
    edge.last_sync_time = Set(Some(at(2026, 12, 6, 10, 0, 0, 1)));
    edge.unsubscribed_at = Set(Some(at(2026, 12, 7, 8, 9, 10, 500_000)));
    edge.unsubscribe_source = Set(Some("manual".into()));
    edge.unsubscribe_message = Set(Some("不要再发了 'STOP'".into()));
    edge.update(&app.ctx.db).await.unwrap();
    let mut bare: contacts::ActiveModel = contacts::Entity::find_by_id(empty)
        .one(&app.ctx.db)
        .await
        .unwrap()
        .unwrap()
        .into();
    for field in [
        &mut bare.nickname,
        &mut bare.remark,
        &mut bare.avatar_url,
        &mut bare.phone,
        &mut bare.region,
        &mut bare.corp_name,
        &mut bare.signature,
        &mut bare.add_source,
        &mut bare.unsubscribe_source,
        &mut bare.unsubscribe_message,
    ] {
        *field = Set(None);
    }
    for field in [
        &mut bare.add_time,
        &mut bare.last_chat_time,
        &mut bare.last_sync_time,
        &mut bare.unsubscribed_at,
    ] {
        *field = Set(None);
    }
    bare.gender = Set(None);
    bare.custom_fields = Set(None);
    bare.chat_count = Set(0);
    bare.update(&app.ctx.db).await.unwrap();

    let listed: Value = answer(
        app.get(
            &format!("/api/v1/contacts?instance_id={agent}&limit=2"),
            &admin,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for (item, id) in items.iter().zip([full, empty]) {
        let alone: Value = answer(
            app.get(&format!("/api/v1/contacts/{id}"), &admin).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(item, &alone, "contact {id} listed, then read alone");
    }
    let edge = &items[0];
    assert_eq!(edge["nickname"], "张三 \"引号\" \\ 反斜杠\n换行\t😀 \u{1}");
    assert_eq!(edge["remark"], "");
    assert_eq!(edge["chat_count"], i32::MAX);
    assert_eq!(edge["is_blocked"], true);
    assert_eq!(edge["custom_fields"]["big"], 9_007_199_254_740_993_u64);
    assert_eq!(
        edge["custom_fields"]["nested"]["a"],
        json!([true, null, "x", []])
    );
    assert!(items[1]["custom_fields"].is_null());
}
