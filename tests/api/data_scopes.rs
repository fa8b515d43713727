//! Data scopes (数据权限): route × permission × scope. A user holding every permission but
//! limited to the instances assigned to them meets each record of another instance as if it
//! did not exist — on every `{id}` route of the OpenAPI document, in every list, export and
//! series, and in the audiences their broadcasts take in.

use std::collections::BTreeSet;

use entity::states::TaskStatus;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use service::{
    contacts::{ContactView, groups::GroupView, tags::TagView},
    instances::{InstanceView, accounts::AccountView},
    messages::MessageView,
    pagination::Page,
    rbac::{PermissionView, roles::RoleView, scope::DataScope, users::UserView},
    tasks::{
        TaskView,
        report::{ReceiverView, RunView},
    },
    templates::TemplateView,
};

use crate::helpers::{TestApp, TestSim, answer};

/// `{id}` routes whose records belong to an instance or an author, and so are scoped.
const SCOPED: &[&str] = &[
    "/api/v1/instances/",
    "/api/v1/accounts/",
    "/api/v1/contacts/",
    "/api/v1/groups/",
    "/api/v1/tags/",
    "/api/v1/tasks/",
    "/api/v1/templates/",
];
/// `{id}` routes of platform-wide records, governed by permissions alone: users and roles (an
/// administrator manages only users holding less than they do), alert rules and alerts (ops).
const UNSCOPED: &[&str] = &[
    "/api/v1/users/",
    "/api/v1/roles/",
    "/api/v1/alert-rules/",
    "/api/v1/alerts/",
    // Segments are shared definitions; what one selects is counted within the caller's reach.
    "/api/v1/segments/",
    // The desk has its own reach: an agent sees their own conversations and their groups'
    // queue, a supervisor all (tests/api/desk.rs); its settings are `desk:manage`'s.
    "/api/v1/desk/",
];

/// One record of each scoped kind.
#[derive(Debug, Clone, Copy)]
struct Records {
    instance: i64,
    account: i64,
    contact: i64,
    group: i64,
    tag: i64,
    task: i64,
    template: i64,
}

impl Records {
    fn id_for(&self, path: &str) -> i64 {
        let kind = SCOPED.iter().find(|p| path.starts_with(**p)).unwrap();
        match *kind {
            "/api/v1/instances/" => self.instance,
            "/api/v1/accounts/" => self.account,
            "/api/v1/contacts/" => self.contact,
            "/api/v1/groups/" => self.group,
            "/api/v1/tags/" => self.tag,
            "/api/v1/tasks/" => self.task,
            _ => self.template,
        }
    }
}

/// A listed record, as the checks here read it: its id and the instance it belongs to.
trait Record: DeserializeOwned {
    fn id(&self) -> i64;
    /// `None` for a record of no instance (a local tag, a task, a template).
    fn instance(&self) -> Option<i64> {
        None
    }
}

macro_rules! records {
    ($($view:ty => $instance:ident),* $(,)?) => {$(
        impl Record for $view {
            fn id(&self) -> i64 {
                self.id
            }
            fn instance(&self) -> Option<i64> {
                self.$instance.into()
            }
        }
    )*};
}

records! {
    InstanceView => id,
    AccountView => instance_id,
    ContactView => instance_id,
    GroupView => instance_id,
    TagView => instance_id,
    MessageView => instance_id,
}

impl Record for TaskView {
    fn id(&self) -> i64 {
        self.id
    }
}

impl Record for TemplateView {
    fn id(&self) -> i64 {
        self.id
    }
}

fn ids<T: Record>(list: &Page<T>) -> Vec<i64> {
    list.items.iter().map(Record::id).collect()
}

fn instance_ids_of<T: Record>(list: &Page<T>) -> BTreeSet<i64> {
    list.items
        .iter()
        .map(|i| i.instance().unwrap_or(0))
        .collect()
}

/// The ids `path` lists to `token`.
async fn listed_ids<T: Record>(app: &TestApp, path: &str, token: &str) -> Vec<i64> {
    ids(&app.get_as::<Page<T>>(path, token).await)
}

/// `path` lists something to `token`, and only records of `instances`.
async fn assert_lists_only<T: Record>(
    app: &TestApp,
    path: &str,
    token: &str,
    instances: &BTreeSet<i64>,
) {
    let listed: Page<T> = app.get_as(path, token).await;
    assert!(!listed.items.is_empty(), "{path}");
    assert_eq!(&instance_ids_of(&listed), instances, "{path}");
}

/// Two agent instances on one simulator, both synced: `(in reach, out of reach)`.
async fn two_synced_instances(app: &TestApp, sim: &TestSim) -> (i64, i64) {
    let admin = app.admin_token().await;
    let (first, _) = app.register_sim(sim, 30).await;
    let second: InstanceView = app
        .post_as(
            "/api/v1/instances",
            &admin,
            json!({ "name": "second agent", "kind": "agent", "api_url": format!("{}/agent", sim.base), "config": { "agent_secret": "sim-agent-secret" } }),
        )
        .await;
    let second = second.id;
    for instance in [first, second] {
        app.sync(instance).await;
    }
    (first, second)
}

/// One record of each kind on `instance`, the task and template written by `token`'s user.
async fn records_on(app: &TestApp, token: &str, instance: i64) -> Records {
    let admin = app.admin_token().await;
    let on = |path: &str| format!("/api/v1/{path}instance_id={instance}");
    let account = listed_ids::<AccountView>(app, &on("accounts?"), &admin).await[0];
    let contact = listed_ids::<ContactView>(app, &on("contacts?limit=1&"), &admin).await[0];
    let group = listed_ids::<GroupView>(app, &on("groups?"), &admin).await[0];
    let tag = listed_ids::<TagView>(app, &on("tags?"), &admin).await[0];
    let later = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let task: TaskView = app
        .post_as(
            "/api/v1/tasks",
            token,
            json!({ "name": format!("on {instance}"), "task_type": "broadcast", "account_id": account, "content": "周末特惠", "scheduled_time": later, "audience": { "filter": {} } }),
        )
        .await;
    let template: TemplateView = app
        .post_as(
            "/api/v1/templates",
            token,
            json!({ "name": format!("private {instance} {}", uuid::Uuid::new_v4().simple()), "message_type": "text", "content": "你好" }),
        )
        .await;
    Records {
        instance,
        account,
        contact,
        group,
        tag,
        task: task.id,
        template: template.id,
    }
}

/// A user holding every permission of the catalogue through one role of `scope`, assigned to
/// `instances`.
async fn scoped_user(app: &TestApp, scope: DataScope, instances: &[i64]) -> (i64, String) {
    let admin = app.admin_token().await;
    let catalogue: Vec<PermissionView> = app.get_as("/api/v1/permissions", &admin).await;
    let every: Vec<&str> = catalogue.iter().map(|p| p.name.as_str()).collect();
    scoped_user_with(app, scope, instances, &every).await
}

async fn scoped_user_with(
    app: &TestApp,
    scope: DataScope,
    instances: &[i64],
    permissions: &[&str],
) -> (i64, String) {
    let admin = app.admin_token().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let role: RoleView = app
        .post_as(
            "/api/v1/roles",
            &admin,
            json!({ "name": format!("s_{}", &suffix[..12]), "display_name": "scoped", "permissions": permissions, "data_scope": scope }),
        )
        .await;
    assert_eq!(role.data_scope, scope);
    let username = format!("s{}", &suffix[..12]);
    let password = "scoped-user-password-1";
    let user: UserView = app
        .post_as(
            "/api/v1/users",
            &admin,
            json!({ "username": username, "password": password, "roles": [{ "role_id": role.id }] }),
        )
        .await;
    let id = user.id;
    let assigned = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{id}/instances"),
            &admin,
            json!({ "instance_ids": instances }),
        )
        .await;
    let assigned: UserView = answer(assigned, StatusCode::OK).await;
    assert_eq!(assigned.instance_ids, instances);
    assert_eq!(assigned.data_scope, scope);
    (id, app.token(&username, password).await)
}

/// Each of `paths` answers `status` to `token`.
async fn assert_each(app: &TestApp, token: &str, paths: &[String], status: StatusCode) {
    for path in paths {
        assert_eq!(app.get(path, token).await.status(), status, "{path}");
    }
}

/// How many contacts a CSV export holds (its lines but the header).
async fn exported(app: &TestApp, path: &str, token: &str) -> usize {
    let text = app.get(path, token).await.text().await.unwrap();
    text.lines().count() - 1
}

/// A body the route accepts, so what answers is the record lookup, not the body's validation.
fn body_for(method: &Method, template: &str) -> Option<Value> {
    match (method.as_str(), template) {
        (_, "/api/v1/instances/{id}/configs/{key}") => Some(json!({ "value": "x" })),
        (_, "/api/v1/instances/{id}/maintenance") => Some(json!({ "on": true })),
        (_, "/api/v1/tasks/{id}/pause") => Some(json!({ "reason": "x" })),
        (_, "/api/v1/tasks/{id}/variants/winner") => Some(json!({ "variant": "A" })),
        ("POST" | "PUT" | "PATCH", _) => Some(json!({})),
        _ => None,
    }
}

async fn call(app: &TestApp, method: &Method, template: &str, id: i64, token: &str) -> StatusCode {
    let path = template
        .replace("{id}", &id.to_string())
        .replace("{key}", "agent_secret");
    let mut request = app.request(method.clone(), &path, Some(token));
    if let Some(body) = body_for(method, template) {
        request = request.json(&body);
    }
    request.send().await.unwrap().status()
}

/// Two synced instances, a user of `scope` assigned to the first, and the administrator's
/// records on each.
struct Scene {
    sim: TestSim,
    app: TestApp,
    admin: String,
    mine: i64,
    theirs: i64,
    scoped: String,
    /// On the instance out of reach.
    hidden: Records,
    /// On the assigned instance, written by the administrator.
    visible: Records,
}

impl Scene {
    async fn new(scope: DataScope) -> Self {
        let sim = TestSim::small();
        let mut app = TestApp::spawn().await;
        app.start_worker();
        let admin = app.admin_token().await;
        let (mine, theirs) = two_synced_instances(&app, &sim).await;
        let (_, scoped) = scoped_user(&app, scope, &[mine]).await;
        let hidden = records_on(&app, &admin, theirs).await;
        let visible = records_on(&app, &admin, mine).await;
        Self {
            sim,
            app,
            admin,
            mine,
            theirs,
            scoped,
            hidden,
            visible,
        }
    }
}

#[tokio::test]
async fn every_id_route_answers_404_for_records_out_of_reach() {
    let Scene {
        sim,
        app,
        admin,
        scoped,
        hidden,
        visible,
        ..
    } = Scene::new(DataScope::Assigned).await;
    // In reach: the records of the assigned instance, even those another user wrote.
    let own_template: TemplateView = app
        .post_as(
            "/api/v1/templates",
            &scoped,
            json!({ "name": "mine", "message_type": "text", "content": "你好" }),
        )
        .await;
    let visible = Records {
        template: own_template.id,
        ..visible
    };

    let doc = app.openapi().await;
    let mut walked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.contains("{id}") {
            continue;
        }
        let scoped_route = SCOPED.iter().any(|p| template.starts_with(p));
        assert!(
            scoped_route || UNSCOPED.iter().any(|p| template.starts_with(p)),
            "{template}: say whether its records are data-scoped"
        );
        if !scoped_route {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let label = format!("{method} {template}");
            let status = call(&app, &method, template, hidden.id_for(template), &scoped).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{label} must hide a record out of reach"
            );
            walked += 1;
            if method == Method::GET {
                let status = call(&app, &method, template, visible.id_for(template), &scoped).await;
                assert!(
                    status.is_success(),
                    "{label} must show a record in reach (got {status})"
                );
            }
        }
    }
    assert!(
        walked >= 30,
        "the walk covered the scoped routes ({walked})"
    );

    // Nothing out of reach was changed or deleted by the attempts.
    let untouched = [
        format!("/api/v1/instances/{}", hidden.instance),
        format!("/api/v1/contacts/{}", hidden.contact),
        format!("/api/v1/groups/{}", hidden.group),
        format!("/api/v1/tasks/{}", hidden.task),
        format!("/api/v1/templates/{}", hidden.template),
    ];
    assert_each(&app, &admin, &untouched, StatusCode::OK).await;
    let task = app.task(hidden.task).await;
    assert_eq!(task.status, TaskStatus::Scheduled, "{task:?}");
    sim.stop().await;
}

#[tokio::test]
async fn lists_exports_series_and_audiences_take_only_what_is_in_reach() {
    let Scene {
        sim,
        app,
        admin,
        mine,
        theirs,
        scoped,
        hidden,
        visible,
    } = Scene::new(DataScope::Assigned).await;
    // A message on each instance, delivered before any broadcast queues behind the accounts'
    // rate limits.
    for records in [&hidden, &visible] {
        let sent: TaskView = app
            .post_as(
                "/api/v1/messages",
                &admin,
                json!({ "account_id": records.account, "contact_id": records.contact, "channel": "direct", "content": "hi" }),
            )
            .await;
        app.wait_sent(sent.id, 1).await;
    }
    let only_mine = BTreeSet::from([mine]);
    // Messages: the one sent out of reach is listed for the administrator only.
    let all_messages: Page<MessageView> = app.get_as("/api/v1/messages?limit=200", &admin).await;
    assert!(instance_ids_of(&all_messages).contains(&theirs));
    assert_lists_only::<MessageView>(&app, "/api/v1/messages?limit=200", &scoped, &only_mine).await;

    let instances = listed_ids::<InstanceView>(&app, "/api/v1/instances", &scoped).await;
    assert_eq!(instances, vec![mine]);
    assert_lists_only::<AccountView>(&app, "/api/v1/accounts?limit=200", &scoped, &only_mine).await;
    assert_lists_only::<ContactView>(&app, "/api/v1/contacts?limit=200", &scoped, &only_mine).await;
    assert_lists_only::<GroupView>(&app, "/api/v1/groups?limit=200", &scoped, &only_mine).await;
    let tags: Page<TagView> = app.get_as("/api/v1/tags?limit=200", &scoped).await;
    assert!(!instance_ids_of(&tags).contains(&theirs));
    assert!(ids(&tags).contains(&visible.tag) && !ids(&tags).contains(&hidden.tag));
    let tasks = listed_ids::<TaskView>(&app, "/api/v1/tasks?limit=200", &scoped).await;
    assert!(tasks.contains(&visible.task) && !tasks.contains(&hidden.task));
    let templates = listed_ids::<TemplateView>(&app, "/api/v1/templates?limit=200", &scoped).await;
    assert!(!templates.contains(&hidden.template) && !templates.contains(&visible.template));
    let public: TemplateView = app
        .post_as(
            "/api/v1/templates",
            &admin,
            json!({ "name": "shared", "message_type": "text", "content": "你好", "is_public": true }),
        )
        .await;
    assert!(
        listed_ids::<TemplateView>(&app, "/api/v1/templates?limit=200", &scoped)
            .await
            .contains(&public.id)
    );
    let series = app
        .get(
            &format!("/api/v1/monitoring/series?metric=heartbeat_latency_ms&instance_id={theirs}"),
            &scoped,
        )
        .await;
    assert_eq!(series.status(), StatusCode::NOT_FOUND);

    // The export holds exactly the contacts in reach.
    let in_reach = exported(
        &app,
        &format!("/api/v1/contacts/export?instance_id={mine}"),
        &admin,
    )
    .await;
    assert_eq!(in_reach, 240, "the small sim has 2 accounts × 120 contacts");
    let scoped_export = exported(&app, "/api/v1/contacts/export", &scoped).await;
    assert_eq!(scoped_export, in_reach, "one line per contact in reach");
    let everything = exported(&app, "/api/v1/contacts/export", &admin).await;
    assert!(
        everything >= 2 * in_reach,
        "the administrator exports every instance's contacts"
    );

    // Audiences: a filter over everything, and a list naming a contact out of reach.
    let broadcast: TaskView = app
        .post_as(
            "/api/v1/tasks",
            &scoped,
            json!({ "name": "everyone I see", "task_type": "broadcast", "content": "周末特惠", "audience": { "filter": {} } }),
        )
        .await;
    let batch: TaskView = app
        .post_as(
            "/api/v1/tasks",
            &scoped,
            json!({ "name": "two named", "task_type": "batch", "content": "你好", "audience": { "contact_ids": [visible.contact, hidden.contact] } }),
        )
        .await;
    for (task, expected) in [(&broadcast, in_reach as i64), (&batch, 1)] {
        let id = task.id;
        let runs = app
            .wait_for_as(
                &format!("/api/v1/tasks/{id}/runs"),
                60,
                |r: &Page<RunView>| r.items.iter().any(|run| run.counts.target > 0),
            )
            .await;
        assert_eq!(i64::from(runs.items[0].counts.target), expected, "{runs:?}");
        let receivers: Page<ReceiverView> = app
            .get_as(&format!("/api/v1/tasks/{id}/receivers?limit=200"), &admin)
            .await;
        assert!(
            receivers
                .items
                .iter()
                .all(|r| r.contact_id != Some(hidden.contact)),
            "no receiver out of reach"
        );
    }
    sim.stop().await;
}

#[tokio::test]
async fn own_scope_sees_only_its_own_tasks_and_templates_on_its_instances() {
    let Scene {
        sim,
        app,
        mine,
        scoped: own,
        visible: theirs,
        ..
    } = Scene::new(DataScope::Own).await;
    let written = records_on(&app, &own, mine).await;
    // Instance-bound records of the assigned instance are in reach…
    let instance_bound = [
        format!("/api/v1/contacts/{}", theirs.contact),
        format!("/api/v1/groups/{}", theirs.group),
        format!("/api/v1/accounts/{}", theirs.account),
    ];
    assert_each(&app, &own, &instance_bound, StatusCode::OK).await;
    // …but what someone else wrote there is not.
    let authored = [
        format!("/api/v1/tasks/{}", theirs.task),
        format!("/api/v1/tasks/{}/receivers", theirs.task),
        format!("/api/v1/templates/{}", theirs.template),
    ];
    assert_each(&app, &own, &authored, StatusCode::NOT_FOUND).await;
    let tasks = listed_ids::<TaskView>(&app, "/api/v1/tasks", &own).await;
    assert_eq!(tasks, vec![written.task]);
    let templates = listed_ids::<TemplateView>(&app, "/api/v1/templates", &own).await;
    assert_eq!(templates, vec![written.template]);
    sim.stop().await;
}

#[tokio::test]
async fn nobody_widens_a_data_scope_beyond_their_own() {
    let sim = TestSim::small();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (mine, theirs) = app.register_sim(&sim, 30).await;
    let (limited_id, limited) = scoped_user_with(
        &app,
        DataScope::Assigned,
        &[mine],
        &[
            "users:read",
            "users:create",
            "users:update",
            "roles:read",
            "roles:create",
            "roles:update",
            "instances:read",
            "instances:create",
        ],
    )
    .await;
    let (other, _) = app.user_with(&[]).await;

    // Roles: none wider than their own scope, created or edited; the default is their own.
    let wide = app
        .post("/api/v1/roles", &limited, json!({ "name": "wide", "display_name": "x", "permissions": ["users:read"], "data_scope": "all" }))
        .await;
    crate::helpers::problem(wide, StatusCode::FORBIDDEN).await;
    let narrow: RoleView = app
        .post_as(
            "/api/v1/roles",
            &limited,
            json!({ "name": "narrow", "display_name": "x", "permissions": ["users:read"] }),
        )
        .await;
    assert_eq!(narrow.data_scope, DataScope::Assigned);
    let widened = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/roles/{}", narrow.id),
            &limited,
            json!({ "data_scope": "all" }),
        )
        .await;
    crate::helpers::problem(widened, StatusCode::FORBIDDEN).await;
    let everything: RoleView = app
        .post_as("/api/v1/roles", &admin, json!({ "name": "reader_all", "display_name": "x", "permissions": ["users:read"], "data_scope": "all" }))
        .await;
    let granted = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{other}/roles"),
            &limited,
            json!({ "roles": [{ "role_id": everything.id }] }),
        )
        .await;
    let problem = crate::helpers::problem(granted, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(crate::helpers::fields(&problem), vec!["roles[0].role_id"]);

    // Assignments: only instances they see, never to themselves; audited.
    let assign = |user: i64, instances: Value| {
        let limited = limited.clone();
        let app = &app;
        async move {
            app.send_json(
                Method::PUT,
                &format!("/api/v1/users/{user}/instances"),
                &limited,
                json!({ "instance_ids": instances }),
            )
            .await
        }
    };
    let problem = crate::helpers::problem(
        assign(other, json!([mine, theirs])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(crate::helpers::fields(&problem), vec!["instance_ids[1]"]);
    let problem = crate::helpers::problem(
        assign(other, json!([mine, mine])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(crate::helpers::fields(&problem), vec!["instance_ids[1]"]);
    crate::helpers::problem(
        assign(limited_id, json!([mine])).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let done: UserView = answer(assign(other, json!([mine])).await, StatusCode::OK).await;
    assert_eq!(done.instance_ids, vec![mine]);
    let audit = app
        .get_json("/api/v1/audit-logs?operation=user.instances.set", &admin)
        .await;
    let entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["result"] == "SUCCESS")
        .expect("the assignment is audited");
    assert_eq!(
        entry["new_values"]["instance_ids"],
        json!([mine]),
        "{entry}"
    );

    // An instance a limited user creates stays in their reach.
    let created: InstanceView = app
        .post_as("/api/v1/instances", &limited, json!({ "name": "made by me", "kind": "agent", "api_url": format!("{}/agent", sim.base), "config": { "agent_secret": "sim-agent-secret" } }))
        .await;
    let id = created.id;
    assert_eq!(
        app.get(&format!("/api/v1/instances/{id}"), &limited)
            .await
            .status(),
        StatusCode::OK
    );
    let me: UserView = app
        .get_as(&format!("/api/v1/users/{limited_id}"), &admin)
        .await;
    assert_eq!(me.instance_ids, vec![mine, id]);
    sim.stop().await;
}
