//! The 微信客服 (WeChat customer service) subset: accounts, receptionists, the message log
//! (`kf/sync_msg` with an opaque cursor), sending (`kf/send_msg`, `kf/send_msg_on_event`),
//! session states with WeCom's allowed moves, and visitor profiles. Every call takes only a
//! token of the 微信客服 secret and goes through the same fault injection as the rest.
//!
//! WeCom's rules it enforces, so the platform's own checks are tested against them: a message
//! goes out only within 48 hours of the visitor's last one and at most 5 times until they write
//! again (95001), only while the session is new or answered through the API (95018); an event
//! code answers once, within 20 seconds (95007); a state moves only along WeCom's table (95016).
//! A repeated `msgid` is answered with the first result and counted as a replay.
//!
//! Control (`/_sim/kf/…`): where callbacks go, a visitor's message, entering a session, a
//! receptionist ending one, and what the platform sent.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    signing,
    state::SimState,
    wecom::{TokenQuery, admit_as, err, ok},
};

type State = web::Data<SimState>;

const WINDOW_SECS: i64 = 48 * 3600;
const WINDOW_MESSAGES: u32 = 5;
const CODE_TTL_SECS: i64 = 20;

/// Where the sim delivers `kf_msg_or_event` callbacks, encrypted like WeCom's.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct KfCallback {
    pub url: String,
    pub token: String,
    pub aes_key: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Session {
    /// 0 new, 1 API, 2 queued, 3 a receptionist, 4 ended.
    pub state: i64,
    pub servicer: Option<String>,
    pub last_visitor_message: i64,
    pub sent_since_visitor: u32,
}

/// A message the platform sent to a visitor.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub open_kfid: String,
    pub to: String,
    pub msgid: String,
    pub content: String,
    /// `send_msg`, or `on_event` (an event code's answer).
    pub via: &'static str,
    pub attempts: u32,
}

#[derive(Debug, Default)]
pub struct KfState {
    /// Each account's log, oldest first.
    logs: HashMap<String, Vec<Value>>,
    sessions: HashMap<(String, String), Session>,
    /// Event codes: issued at, (account, visitor), used.
    codes: HashMap<String, (i64, (String, String), bool)>,
    sent: Vec<Sent>,
    callback: Option<KfCallback>,
    next_id: u64,
}

impl KfState {
    fn next(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:08}", self.next_id)
    }

    fn issue_code(&mut self, account: &str, visitor: &str) -> String {
        let code = self.next("code");
        self.codes.insert(
            code.clone(),
            (
                signing::now(),
                (account.to_owned(), visitor.to_owned()),
                false,
            ),
        );
        code
    }

    fn append(&mut self, account: &str, mut entry: Value) -> String {
        let msgid = self.next("kfmsg");
        entry["msgid"] = json!(msgid);
        entry["open_kfid"] = json!(account);
        entry["send_time"] = json!(signing::now());
        self.logs.entry(account.to_owned()).or_default().push(entry);
        msgid
    }
}

fn account_ids(state: &SimState) -> Vec<String> {
    (0..state.kf_accounts)
        .map(|i| format!("wksim{i}"))
        .collect()
}

fn known_account(state: &SimState, id: &str) -> bool {
    account_ids(state).iter().any(|a| a == id)
}

fn visitor_number(id: &str) -> u64 {
    id.bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 10_000
}

async fn admit(state: &SimState, q: &TokenQuery) -> Result<(), HttpResponse> {
    admit_as(state, q.access_token.as_deref(), true).await
}

#[derive(Deserialize)]
struct Paging {
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn account_list(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<Paging>,
) -> HttpResponse {
    if let Err(r) = admit(&state, &q).await {
        return r;
    }
    let limit = body.limit.unwrap_or(100).clamp(1, 100);
    let accounts: Vec<Value> = account_ids(&state)
        .into_iter()
        .enumerate()
        .skip(body.offset.unwrap_or(0))
        .take(limit)
        .map(|(i, id)| json!({ "open_kfid": id, "name": format!("在线客服{}", i + 1), "avatar": format!("https://avatar.sim/kf/{i}.png"), "manage_privilege": true }))
        .collect();
    ok(json!({ "account_list": accounts }))
}

#[derive(Deserialize)]
struct KfidQuery {
    access_token: Option<String>,
    open_kfid: String,
}

async fn servicer_list(state: State, q: web::Query<KfidQuery>) -> HttpResponse {
    if let Err(r) = admit_as(&state, q.access_token.as_deref(), true).await {
        return r;
    }
    if !known_account(&state, &q.open_kfid) {
        return err(95004, "open_kfid not exist");
    }
    let servicers: Vec<Value> = (0..state.dataset.accounts)
        .filter_map(|a| state.dataset.account(a))
        .map(|a| json!({ "userid": a.wxid, "status": 0 }))
        .collect();
    ok(json!({ "servicer_list": servicers }))
}

#[derive(Deserialize)]
struct SyncBody {
    cursor: Option<String>,
    #[allow(dead_code)]
    token: Option<String>,
    limit: Option<usize>,
    open_kfid: String,
}

async fn sync_msg(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<SyncBody>,
) -> HttpResponse {
    if let Err(r) = admit(&state, &q).await {
        return r;
    }
    if !known_account(&state, &body.open_kfid) {
        return err(95004, "open_kfid not exist");
    }
    let limit = body.limit.unwrap_or(1000);
    if limit == 0 || limit > 1000 {
        return err(44004, "limit must be 1-1000");
    }
    let start = match body.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => match c.strip_prefix("cur").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return err(95007, "invalid cursor"),
        },
    };
    let repeat = state.faults().kf_repeat;
    let Ok(kf) = state.kf.lock() else {
        return err(-1, "system busy");
    };
    let log = kf
        .logs
        .get(&body.open_kfid)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let start = if repeat {
        start.saturating_sub(2)
    } else {
        start
    }
    .min(log.len());
    let end = (start + limit).min(log.len());
    ok(json!({
        "next_cursor": format!("cur{end}"),
        "has_more": i32::from(end < log.len()),
        "msg_list": &log[start..end],
    }))
}

fn text_content(body: &Value) -> String {
    body.pointer("/text/content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

async fn send_msg(state: State, q: web::Query<TokenQuery>, body: web::Json<Value>) -> HttpResponse {
    if let Err(r) = admit(&state, &q).await {
        return r;
    }
    let account = body["open_kfid"].as_str().unwrap_or_default().to_owned();
    let to = body["touser"].as_str().unwrap_or_default().to_owned();
    if !known_account(&state, &account) {
        return err(95004, "open_kfid not exist");
    }
    let content = text_content(&body);
    if body["msgtype"].as_str() != Some("text") || content.is_empty() {
        return err(40008, "invalid message type");
    }
    if content.len() > 2048 {
        return err(45002, "content size out of limit");
    }
    let msgid = body["msgid"].as_str().map(str::to_owned);
    if let Some(id) = &msgid
        && (id.len() > 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        return err(40097, "invalid msgid");
    }
    let Ok(mut kf) = state.kf.lock() else {
        return err(-1, "system busy");
    };
    if let Some(id) = &msgid
        && let Some(first) = kf
            .sent
            .iter_mut()
            .find(|s| &s.msgid == id && s.via == "send_msg")
    {
        first.attempts += 1;
        return ok(json!({ "msgid": id }));
    }
    let now = signing::now();
    let Some(session) = kf.sessions.get_mut(&(account.clone(), to.clone())) else {
        return err(95001, "the user has not written to this account");
    };
    if now - session.last_visitor_message > WINDOW_SECS
        || session.sent_since_visitor >= WINDOW_MESSAGES
    {
        return err(
            95001,
            "send msg out of limit: 48 hours / 5 messages after the user's last message",
        );
    }
    if session.state > 1 {
        return err(95018, "invalid session state for sending through the api");
    }
    session.sent_since_visitor += 1;
    let msgid = msgid.unwrap_or_else(|| kf.next("sent"));
    kf.sent.push(Sent {
        open_kfid: account.clone(),
        to: to.clone(),
        msgid: msgid.clone(),
        content: content.clone(),
        via: "send_msg",
        attempts: 1,
    });
    drop(kf);
    state.deliver(format!("kf:{msgid}"), &account, &to, &content);
    ok(json!({ "msgid": msgid }))
}

async fn send_msg_on_event(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Err(r) = admit(&state, &q).await {
        return r;
    }
    let code = body["code"].as_str().unwrap_or_default().to_owned();
    let content = text_content(&body);
    if content.is_empty() {
        return err(40008, "invalid message type");
    }
    let now = signing::now();
    let Ok(mut kf) = state.kf.lock() else {
        return err(-1, "system busy");
    };
    let Some((issued, (account, to), used)) = kf.codes.get_mut(&code) else {
        return err(95007, "invalid msg code");
    };
    if *used || now - *issued > CODE_TTL_SECS {
        return err(95007, "msg code used or expired");
    }
    *used = true;
    let (account, to) = (account.clone(), to.clone());
    let msgid = kf.next("evt");
    kf.sent.push(Sent {
        open_kfid: account.clone(),
        to: to.clone(),
        msgid: msgid.clone(),
        content: content.clone(),
        via: "on_event",
        attempts: 1,
    });
    drop(kf);
    state.deliver(format!("kf:{msgid}"), &account, &to, &content);
    ok(json!({ "msgid": msgid }))
}

#[derive(Deserialize)]
struct StateBody {
    open_kfid: String,
    external_userid: String,
    service_state: Option<i64>,
    servicer_userid: Option<String>,
}

fn allowed(from: i64, to: i64) -> bool {
    match from {
        0 | 1 => (1..=4).contains(&to),
        2 => (2..=4).contains(&to),
        3 => to == 3 || to == 4,
        _ => false,
    }
}

async fn state_get(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<StateBody>,
) -> HttpResponse {
    if let Err(r) = admit(&state, &q).await {
        return r;
    }
    let Ok(kf) = state.kf.lock() else {
        return err(-1, "system busy");
    };
    let session = kf
        .sessions
        .get(&(body.open_kfid.clone(), body.external_userid.clone()))
        .cloned()
        .unwrap_or(Session {
            state: 4,
            ..Session::default()
        });
    ok(
        json!({ "service_state": session.state, "servicer_userid": session.servicer.unwrap_or_default() }),
    )
}

async fn state_trans(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<StateBody>,
) -> HttpResponse {
    if let Err(r) = admit(&state, &q).await {
        return r;
    }
    let Some(to) = body.service_state else {
        return err(40058, "service_state is required");
    };
    if to == 3 && body.servicer_userid.as_deref().is_none_or(str::is_empty) {
        return err(40058, "servicer_userid is required for state 3");
    }
    let Ok(mut kf) = state.kf.lock() else {
        return err(-1, "system busy");
    };
    let key = (body.open_kfid.clone(), body.external_userid.clone());
    let Some(session) = kf.sessions.get_mut(&key) else {
        return err(95016, "the session has not started");
    };
    if !allowed(session.state, to) {
        return err(95016, "service state transition not allowed");
    }
    let first_time = session.state != to;
    session.state = to;
    session.servicer = body.servicer_userid.clone().filter(|_| to == 3);
    let code = (first_time && to >= 2).then(|| kf.issue_code(&key.0, &key.1));
    ok(json!({ "msg_code": code.unwrap_or_default() }))
}

#[derive(Deserialize)]
struct BatchGet {
    external_userid_list: Vec<String>,
}

async fn customer_batchget(
    state: State,
    q: web::Query<TokenQuery>,
    body: web::Json<BatchGet>,
) -> HttpResponse {
    if let Err(r) = admit(&state, &q).await {
        return r;
    }
    if body.external_userid_list.is_empty() || body.external_userid_list.len() > 100 {
        return err(40058, "external_userid_list takes 1-100 ids");
    }
    let Ok(kf) = state.kf.lock() else {
        return err(-1, "system busy");
    };
    let (known, invalid): (Vec<&String>, Vec<&String>) = body
        .external_userid_list
        .iter()
        .partition(|id| kf.sessions.keys().any(|(_, v)| v == *id));
    let customers: Vec<Value> = known
        .into_iter()
        .map(|id| {
            let n = visitor_number(id);
            json!({ "external_userid": id, "nickname": format!("微信访客{n}"), "avatar": format!("https://avatar.sim/wx/{n}.png"), "gender": n % 3, "unionid": format!("union_{id}") })
        })
        .collect();
    ok(json!({ "customer_list": customers, "invalid_external_userid": invalid }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/kf/account/list", web::post().to(account_list))
        .route("/kf/servicer/list", web::get().to(servicer_list))
        .route("/kf/sync_msg", web::post().to(sync_msg))
        .route("/kf/send_msg", web::post().to(send_msg))
        .route("/kf/send_msg_on_event", web::post().to(send_msg_on_event))
        .route("/kf/service_state/get", web::post().to(state_get))
        .route("/kf/service_state/trans", web::post().to(state_trans))
        .route("/kf/customer/batchget", web::post().to(customer_batchget));
}

// ---- control -------------------------------------------------------------------------------

async fn set_callback(state: State, body: web::Json<KfCallback>) -> HttpResponse {
    if let Ok(mut kf) = state.kf.lock() {
        kf.callback = Some(body.into_inner());
    }
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct VisitorIn {
    open_kfid: String,
    external_userid: String,
    /// The visitor's text (`messages`).
    content: Option<String>,
    /// Where they came from (`enter`): comes back as `scene_param`.
    scene_param: Option<String>,
    /// The receptionist (a member's userid) who writes or recalls (`servicer_messages`,
    /// `recall`).
    servicer_userid: Option<String>,
    /// The message recalled (`recall`).
    msgid: Option<String>,
}

/// Appends an entry to the account's log, then tells the platform (callback) if configured.
async fn announce(state: &SimState, account: &str, msgid: String) -> HttpResponse {
    let callback = state.kf.lock().ok().and_then(|kf| kf.callback.clone());
    let Some(callback) = callback else {
        return HttpResponse::Ok().json(json!({ "msgid": msgid, "callback": null }));
    };
    let token = format!("tok{}", rand::random::<u32>());
    let plain = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{account}]]></OpenKfId></xml>",
        state.corp_id,
        signing::now()
    );
    match crate::wecom_push::post(&callback, &state.corp_id, &plain).await {
        Ok(status) => HttpResponse::Ok().json(json!({ "msgid": msgid, "callback": status })),
        Err(e) => HttpResponse::BadGateway().json(json!({ "msgid": msgid, "error": e })),
    }
}

/// A change the user (or a receptionist) makes: `change` updates the state and appends the
/// entry to the account's log (its msgid; `None` when there is no such session); then the
/// callback.
async fn user_side(
    state: &SimState,
    body: &VisitorIn,
    change: impl FnOnce(&mut KfState, (String, String)) -> Option<String>,
) -> HttpResponse {
    if !known_account(state, &body.open_kfid) {
        return HttpResponse::NotFound().json(json!({ "error": "no such open_kfid" }));
    }
    let changed = match state.kf.lock() {
        Ok(mut kf) => change(
            &mut kf,
            (body.open_kfid.clone(), body.external_userid.clone()),
        ),
        Err(_) => return HttpResponse::InternalServerError().finish(),
    };
    match changed {
        Some(msgid) => announce(state, &body.open_kfid, msgid).await,
        None => HttpResponse::NotFound().json(json!({ "error": "no such session" })),
    }
}

async fn visitor_message(state: State, body: web::Json<VisitorIn>) -> HttpResponse {
    let content = body.content.clone().unwrap_or_default();
    user_side(&state, &body, |kf, key| {
        let session = kf.sessions.entry(key.clone()).or_default();
        if session.state == 4 {
            session.state = 0;
        }
        session.last_visitor_message = signing::now();
        session.sent_since_visitor = 0;
        Some(kf.append(
            &key.0,
            json!({ "external_userid": key.1, "origin": 3, "msgtype": "text", "text": { "content": content } }),
        ))
    })
    .await
}

async fn enter_session(state: State, body: web::Json<VisitorIn>) -> HttpResponse {
    let scene = body.scene_param.clone();
    user_side(&state, &body, |kf, key| {
        let session = kf.sessions.entry(key.clone()).or_insert(Session {
            state: 4,
            ..Session::default()
        });
        let fresh = session.state == 4;
        if fresh {
            session.state = 0;
        }
        let code = fresh.then(|| kf.issue_code(&key.0, &key.1));
        Some(kf.append(
            &key.0,
            json!({ "origin": 4, "msgtype": "event", "event": { "event_type": "enter_session", "open_kfid": key.0, "external_userid": key.1, "scene": "sim", "scene_param": scene, "welcome_code": code } }),
        ))
    })
    .await
}

/// A receptionist ended the session in the WeCom client.
async fn end_session(state: State, body: web::Json<VisitorIn>) -> HttpResponse {
    user_side(&state, &body, |kf, key| {
        kf.sessions.get_mut(&key)?.state = 4;
        Some(kf.append(
            &key.0,
            json!({ "origin": 4, "msgtype": "event", "event": { "event_type": "session_status_change", "open_kfid": key.0, "external_userid": key.1, "change_type": 3 } }),
        ))
    })
    .await
}

/// A receptionist writes to the visitor in the WeCom client (an entry of `origin` 5); the
/// session is theirs from then on.
async fn servicer_message(state: State, body: web::Json<VisitorIn>) -> HttpResponse {
    let (Some(servicer), Some(content)) = (body.servicer_userid.clone(), body.content.clone())
    else {
        return HttpResponse::BadRequest()
            .json(json!({ "error": "servicer_userid and content are required" }));
    };
    user_side(&state, &body, |kf, key| {
        let session = kf.sessions.entry(key.clone()).or_default();
        session.state = 3;
        session.servicer = Some(servicer.clone());
        Some(kf.append(
            &key.0,
            json!({ "external_userid": key.1, "servicer_userid": servicer, "origin": 5, "msgtype": "text", "text": { "content": content } }),
        ))
    })
    .await
}

/// The visitor (or, with `servicer_userid`, a receptionist) recalls message `msgid`.
async fn recall(state: State, body: web::Json<VisitorIn>) -> HttpResponse {
    let Some(recalled) = body.msgid.clone() else {
        return HttpResponse::BadRequest().json(json!({ "error": "msgid is required" }));
    };
    let servicer = body.servicer_userid.clone();
    user_side(&state, &body, |kf, key| {
        let mut event =
            json!({ "open_kfid": key.0, "external_userid": key.1, "recall_msgid": recalled });
        match servicer {
            Some(servicer) => {
                event["event_type"] = json!("servicer_recall_msg");
                event["servicer_userid"] = json!(servicer);
            }
            None => event["event_type"] = json!("user_recall_msg"),
        }
        Some(kf.append(
            &key.0,
            json!({ "origin": 4, "msgtype": "event", "event": event }),
        ))
    })
    .await
}

async fn sessions(state: State) -> HttpResponse {
    let Ok(kf) = state.kf.lock() else {
        return HttpResponse::InternalServerError().finish();
    };
    let list: Vec<Value> = kf
        .sessions
        .iter()
        .map(|((account, visitor), s)| json!({ "open_kfid": account, "external_userid": visitor, "service_state": s.state, "sent_since_visitor": s.sent_since_visitor }))
        .collect();
    HttpResponse::Ok().json(list)
}

async fn sent(state: State) -> HttpResponse {
    let Ok(kf) = state.kf.lock() else {
        return HttpResponse::InternalServerError().finish();
    };
    HttpResponse::Ok().json(&kf.sent)
}

pub fn configure_control(cfg: &mut web::ServiceConfig) {
    cfg.route("/kf/callback", web::put().to(set_callback))
        .route("/kf/messages", web::post().to(visitor_message))
        .route("/kf/enter", web::post().to(enter_session))
        .route("/kf/end", web::post().to(end_session))
        .route("/kf/servicer_messages", web::post().to(servicer_message))
        .route("/kf/recall", web::post().to(recall))
        .route("/kf/sessions", web::get().to(sessions))
        .route("/kf/sent", web::get().to(sent));
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn state_moves_follow_wecoms_table() {
        assert!(allowed(0, 1) && allowed(0, 4) && allowed(1, 2) && allowed(2, 3));
        assert!(allowed(3, 4) && allowed(3, 3));
        assert!(!allowed(2, 1) && !allowed(3, 1) && !allowed(3, 2));
        assert!(!allowed(4, 0) && !allowed(4, 1));
    }
}
