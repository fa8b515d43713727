//! The official WeCom server API subset the `wecom` driver uses, with its `errcode` conventions:
//! HTTP 200 always, `errcode` 0 on success; 40014 for an unknown token, 42001 for an expired one,
//! 45009 over the per-account frequency limit, -1 "system busy" for injected transient errors.

use actix_web::{HttpResponse, web};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    data::TAG_GROUPS,
    faults::Injected,
    signing,
    state::{MassTask, SimState},
};

type State = web::Data<SimState>;

pub(crate) fn err(code: i64, msg: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "errcode": code, "errmsg": msg }))
}

pub(crate) fn ok(mut body: Value) -> HttpResponse {
    if let Some(map) = body.as_object_mut() {
        map.insert("errcode".into(), json!(0));
        map.insert("errmsg".into(), json!("ok"));
    }
    HttpResponse::Ok().json(body)
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    pub(crate) access_token: Option<String>,
}

/// Token check, then injected faults.
async fn admit(state: &SimState, token: Option<&str>) -> Result<(), HttpResponse> {
    admit_as(state, token, false).await
}

/// Token check for an app call (`kf: false`) or a 微信客服 call: each takes only the token of
/// its own secret, as WeCom does (48002 otherwise).
pub(crate) async fn admit_as(
    state: &SimState,
    token: Option<&str>,
    kf: bool,
) -> Result<(), HttpResponse> {
    let is_kf_token = token.is_some_and(|t| {
        state
            .kf_tokens
            .lock()
            .map(|k| k.contains(t))
            .unwrap_or(false)
    });
    if token.is_some() && is_kf_token != kf {
        return Err(err(48002, "api forbidden: wrong secret for this api"));
    }
    let now = signing::now();
    let valid = token.and_then(|t| {
        state
            .tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(t).copied())
    });
    match valid {
        None => return Err(err(40014, "invalid access_token")),
        Some(expires) if expires <= now => return Err(err(42001, "access_token expired")),
        Some(_) => {}
    }
    match state.faults().apply().await {
        None => Ok(()),
        Some(Injected::Respond(response)) => Err(response),
        Some(Injected::BusinessError) => Err(err(-1, "system busy")),
    }
}

#[derive(Deserialize)]
struct GetToken {
    corpid: Option<String>,
    corpsecret: Option<String>,
}

async fn gettoken(state: State, q: web::Query<GetToken>) -> HttpResponse {
    if let Ok(mut n) = state.token_requests.lock() {
        *n += 1;
    }
    if state.faults().offline {
        return HttpResponse::ServiceUnavailable().finish();
    }
    if q.corpid.as_deref() != Some(state.corp_id.as_str()) {
        return err(40013, "invalid corpid");
    }
    let kf = q.corpsecret.as_deref() == Some(state.kf_secret.as_str());
    if q.corpsecret.as_deref() != Some(state.corp_secret.as_str()) && !kf {
        return err(40001, "invalid credential");
    }
    let token: String = {
        let mut rng = rand::thread_rng();
        (0..32)
            .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
            .collect()
    };
    if let Ok(mut tokens) = state.tokens.lock() {
        tokens.insert(token.clone(), signing::now() + 7200);
    }
    if kf && let Ok(mut kf_tokens) = state.kf_tokens.lock() {
        kf_tokens.insert(token.clone());
    }
    ok(json!({ "access_token": token, "expires_in": 7200 }))
}

async fn follow_users(state: State, q: web::Query<TokenQuery>) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let users: Vec<String> = (0..state.dataset.accounts)
        .filter_map(|a| state.dataset.account(a))
        .map(|a| a.wxid)
        .collect();
    ok(json!({ "follow_user": users }))
}

#[derive(Deserialize)]
struct UserQuery {
    access_token: Option<String>,
    userid: String,
}

async fn user_get(state: State, q: web::Query<UserQuery>) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    match state
        .dataset
        .account_index(&q.userid)
        .and_then(|a| state.dataset.account(a))
    {
        None => err(60111, "userid not found"),
        Some(a) => ok(
            json!({ "userid": a.wxid, "name": a.nickname, "avatar": a.avatar_url, "status": 1, "mobile": "", "email": "" }),
        ),
    }
}

#[derive(Deserialize)]
struct ByUser {
    userid_list: Vec<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn batch_get_by_user(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<ByUser>,
) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    if body.userid_list.is_empty() || body.userid_list.len() > 100 {
        return err(40058, "userid_list must hold 1 to 100 userids");
    }
    let limit = body.limit.unwrap_or(50).clamp(1, 100);
    // The cursor walks all listed members' customers in order: "{member index}:{contact index}".
    let (mut u, mut i) = body
        .cursor
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .and_then(|(u, i)| Some((u.parse::<usize>().ok()?, i.parse::<usize>().ok()?)))
        .unwrap_or((0, 0));
    let mut list = Vec::new();
    while list.len() < limit && u < body.userid_list.len() {
        let Some(a) = state.dataset.account_index(&body.userid_list[u]) else {
            u += 1;
            i = 0;
            continue;
        };
        if i >= state.dataset.contacts_per_account {
            u += 1;
            i = 0;
            continue;
        }
        let c = state.dataset.contact(a, i);
        i += 1;
        if state.is_removed(&c.wxid) {
            continue;
        }
        list.push(json!({
            "external_contact": { "external_userid": c.wxid, "name": c.nickname, "avatar": c.avatar_url, "type": 1, "gender": c.gender, "corp_name": c.corp_name },
            "follow_info": { "userid": body.userid_list[u], "remark": c.remark, "description": "", "createtime": c.add_time, "tag_id": c.tags, "remark_mobiles": c.phone.into_iter().collect::<Vec<_>>(), "add_way": 1, "state": "" }
        }));
    }
    let next = if u < body.userid_list.len() {
        format!("{u}:{i}")
    } else {
        String::new()
    };
    ok(json!({ "external_contact_list": list, "next_cursor": next }))
}

#[derive(Deserialize)]
struct GroupList {
    owner_filter: Option<OwnerFilter>,
    cursor: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct OwnerFilter {
    userid_list: Vec<String>,
}

async fn groupchat_list(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<GroupList>,
) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let owners: Vec<usize> = match &body.owner_filter {
        Some(f) => f
            .userid_list
            .iter()
            .filter_map(|u| state.dataset.account_index(u))
            .collect(),
        None => (0..state.dataset.accounts).collect(),
    };
    let all: Vec<String> = owners
        .iter()
        .flat_map(|a| (0..state.dataset.groups_per_account).map(move |g| (*a, g)))
        .map(|(a, g)| state.dataset.group(a, g).group_wxid)
        .collect();
    let start: usize = body
        .cursor
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
        .min(all.len());
    let limit = body.limit.unwrap_or(100).clamp(1, 1000);
    let end = (start + limit).min(all.len());
    let list: Vec<_> = all[start..end]
        .iter()
        .map(|id| json!({ "chat_id": id, "status": 0 }))
        .collect();
    ok(
        json!({ "group_chat_list": list, "next_cursor": if end < all.len() { end.to_string() } else { String::new() } }),
    )
}

#[derive(Deserialize)]
struct GroupGet {
    chat_id: String,
}

async fn groupchat_get(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<GroupGet>,
) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let Some((a, g)) = state.dataset.group_index(&body.chat_id) else {
        return err(40050, "chatid not exist");
    };
    let group = state.dataset.group(a, g);
    let members: Vec<_> = (0..=state.dataset.members_per_group)
        .map(|m| state.dataset.member(a, g, m))
        .map(|m| json!({ "userid": m.wxid, "type": if m.member_type == "internal" { 1 } else { 2 }, "join_time": m.join_time, "join_scene": 1, "group_nickname": m.group_nickname, "name": m.nickname }))
        .collect();
    let admins = vec![json!({ "userid": state.dataset.member(a, g, 1).wxid })];
    ok(
        json!({ "group_chat": { "chat_id": group.group_wxid, "name": group.name, "owner": group.owner_wxid, "create_time": group.create_time, "notice": group.notice, "member_list": members, "admin_list": admins } }),
    )
}

async fn corp_tags(state: State, q: web::Query<TokenQuery>) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let groups: Vec<_> = TAG_GROUPS
        .iter()
        .enumerate()
        .map(|(order, (id, name, tags))| {
            let tags: Vec<_> = tags.iter().enumerate().map(|(o, (tid, tname))| json!({ "id": tid, "name": tname, "create_time": 1_700_000_000, "order": o })).collect();
            json!({ "group_id": id, "group_name": name, "create_time": 1_700_000_000, "order": order, "tag": tags })
        })
        .collect();
    ok(json!({ "tag_group": groups }))
}

/// `message/send`, `appchat/send` and `webhook/send`: count one delivery per call, keyed by
/// receiver and content, so duplicates show up as extra attempts on the same key.
fn record(
    state: &SimState,
    account: &str,
    to: &str,
    content: &str,
) -> Result<String, Box<HttpResponse>> {
    if !state.take_send_slot(account, signing::now()) {
        return Err(Box::new(err(45009, "api freq out of limit")));
    }
    let key = format!("wecom:{account}:{to}:{content}");
    let (delivery, _) = state.deliver(key, account, to, content);
    Ok(delivery.message_id)
}

fn text_of(body: &Value) -> String {
    body.pointer("/text/content")
        .or_else(|| body.pointer("/markdown/content"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| body["msgtype"].as_str().unwrap_or("").to_owned())
}

async fn message_send(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let content = text_of(&body);
    if content.len() > 2048 {
        return err(45002, "content size out of limit");
    }
    let users: Vec<&str> = body["touser"]
        .as_str()
        .unwrap_or("")
        .split('|')
        .filter(|u| !u.is_empty())
        .collect();
    if users.is_empty() || users.len() > 1000 {
        return err(40003, "invalid userid");
    }
    let mut invalid = Vec::new();
    let mut last = String::new();
    for user in users {
        if state.dataset.account_index(user).is_none()
            && state.dataset.contact_index(user).is_none()
        {
            invalid.push(user);
            continue;
        }
        match record(&state, "app", user, &content) {
            Ok(id) => last = id,
            Err(r) => return *r,
        }
    }
    ok(
        json!({ "invaliduser": invalid.join("|"), "invalidparty": "", "invalidtag": "", "unlicenseduser": "", "msgid": last }),
    )
}

async fn appchat_send(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let chat = body["chatid"].as_str().unwrap_or("").to_owned();
    if state.dataset.group_index(&chat).is_none() {
        return err(86003, "chat not exist");
    }
    match record(&state, "appchat", &chat, &text_of(&body)) {
        Ok(_) => ok(json!({})),
        Err(r) => *r,
    }
}

async fn add_msg_template(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let sender = body["sender"].as_str().unwrap_or("").to_owned();
    let chat_type = body["chat_type"].as_str().unwrap_or("single").to_owned();
    let targets: Vec<String> = if chat_type == "group" {
        body["chat_id_list"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        body["external_userid"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    if targets.is_empty() {
        return err(41048, "no customer to send");
    }
    let limit = if chat_type == "group" { 2000 } else { 10_000 };
    if targets.len() > limit {
        return err(40058, "too many targets");
    }
    let (valid, fail_list): (Vec<String>, Vec<String>) = targets.into_iter().partition(|t| {
        state.dataset.contact_index(t).is_some() || state.dataset.group_index(t).is_some()
    });
    let msgid = format!(
        "msgGROUPSEND_{}",
        state.mass_tasks.lock().map(|m| m.len() + 1).unwrap_or(0)
    );
    let task = MassTask {
        msgid: msgid.clone(),
        sender,
        chat_type,
        targets: valid,
        content: text_of(&body),
        status: "waiting".into(),
        reminders: 0,
        created_at: signing::now(),
    };
    if let Ok(mut tasks) = state.mass_tasks.lock() {
        tasks.insert(msgid.clone(), task);
    }
    ok(json!({ "fail_list": fail_list, "msgid": msgid }))
}

#[derive(Deserialize)]
struct MsgId {
    msgid: String,
}

fn mass_task(state: &SimState, msgid: &str) -> Option<MassTask> {
    state.mass_tasks.lock().ok()?.get(msgid).cloned()
}

async fn groupmsg_task(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<MsgId>,
) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let Some(task) = mass_task(&state, &body.msgid) else {
        return err(41063, "msgid not exist");
    };
    let status = if task.status == "sent" { 2 } else { 0 };
    ok(
        json!({ "next_cursor": "", "task_list": [{ "userid": task.sender, "status": status, "send_time": task.created_at }] }),
    )
}

async fn groupmsg_send_result(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<MsgId>,
) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let Some(task) = mass_task(&state, &body.msgid) else {
        return err(41063, "msgid not exist");
    };
    let list: Vec<_> = task
        .targets
        .iter()
        .map(|t| {
            let status = match task.status.as_str() {
                "sent" if state.is_removed(t) => 2,
                "sent" => 1,
                _ => 0,
            };
            let key = if task.chat_type == "group" {
                "chat_id"
            } else {
                "external_userid"
            };
            json!({ key: t, "userid": task.sender, "status": status, "send_time": task.created_at })
        })
        .collect();
    ok(json!({ "next_cursor": "", "send_list": list }))
}

async fn remind(state: State, q: web::Query<TokenQuery>, body: web::Json<MsgId>) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let Ok(mut tasks) = state.mass_tasks.lock() else {
        return err(-1, "system busy");
    };
    match tasks.get_mut(&body.msgid) {
        None => err(41063, "msgid not exist"),
        Some(task) if task.reminders >= 3 => err(41064, "remind too frequently"),
        Some(task) => {
            task.reminders += 1;
            ok(json!({}))
        }
    }
}

async fn cancel(state: State, q: web::Query<TokenQuery>, body: web::Json<MsgId>) -> HttpResponse {
    if let Err(r) = admit(&state, q.access_token.as_deref()).await {
        return r;
    }
    let Ok(mut tasks) = state.mass_tasks.lock() else {
        return err(-1, "system busy");
    };
    match tasks.get_mut(&body.msgid) {
        None => err(41063, "msgid not exist"),
        Some(task) => {
            task.status = "cancelled".into();
            ok(json!({}))
        }
    }
}

#[derive(Deserialize)]
struct RobotQuery {
    key: Option<String>,
}

async fn robot_send(
    state: State,
    q: web::Query<RobotQuery>,
    body: web::Json<Value>,
) -> HttpResponse {
    let Some(key) = q.key.as_deref().filter(|k| !k.is_empty()) else {
        return err(93000, "invalid webhook url");
    };
    if let Some(Injected::Respond(r)) = state.faults().apply().await {
        return r;
    }
    let minute = signing::now() / 60;
    let over = state
        .windows
        .lock()
        .map(|mut w| {
            let used = w.entry((format!("robot:{key}"), minute)).or_insert(0);
            *used += 1;
            *used > 20
        })
        .unwrap_or(false);
    if over {
        return err(45009, "api freq out of limit");
    }
    let content = text_of(&body);
    let serial = state.stats().attempts;
    state.deliver(
        format!("robot:{key}:{serial}"),
        &format!("robot:{key}"),
        key,
        &content,
    );
    ok(json!({}))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/gettoken", web::get().to(gettoken))
        .route("/user/get", web::get().to(user_get))
        .route(
            "/externalcontact/get_follow_user_list",
            web::get().to(follow_users),
        )
        .route(
            "/externalcontact/batch/get_by_user",
            web::post().to(batch_get_by_user),
        )
        .route(
            "/externalcontact/groupchat/list",
            web::post().to(groupchat_list),
        )
        .route(
            "/externalcontact/groupchat/get",
            web::post().to(groupchat_get),
        )
        .route(
            "/externalcontact/get_corp_tag_list",
            web::post().to(corp_tags),
        )
        .route("/message/send", web::post().to(message_send))
        .route("/appchat/send", web::post().to(appchat_send))
        .route(
            "/externalcontact/add_msg_template",
            web::post().to(add_msg_template),
        )
        .route(
            "/externalcontact/get_groupmsg_task",
            web::post().to(groupmsg_task),
        )
        .route(
            "/externalcontact/get_groupmsg_send_result",
            web::post().to(groupmsg_send_result),
        )
        .route(
            "/externalcontact/remind_groupmsg_send",
            web::post().to(remind),
        )
        .route(
            "/externalcontact/cancel_groupmsg_send",
            web::post().to(cancel),
        )
        .route("/webhook/send", web::post().to(robot_send))
        .configure(crate::kf::configure);
}
