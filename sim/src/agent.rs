//! The agent protocol, server side (docs/agent-protocol.md). Every request must carry a valid
//! Standard Webhooks signature made with the shared agent secret.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::{faults::Injected, signing, state::SimState};

type State = web::Data<SimState>;

fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn problem(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": { "code": code, "message": message } }))
}

/// Signature check, then injected faults. `Err` is the response to send instead.
async fn admit(state: &SimState, req: &HttpRequest, body: &[u8]) -> Result<(), HttpResponse> {
    let verified = signing::verify(
        &state.agent_secret,
        header(req, "webhook-id"),
        header(req, "webhook-timestamp"),
        header(req, "webhook-signature"),
        body,
        signing::now(),
    );
    if let Err(why) = verified {
        return Err(problem(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "bad_signature",
            why,
        ));
    }
    match state.faults().apply().await {
        None => Ok(()),
        Some(Injected::Respond(response)) => Err(response),
        Some(Injected::BusinessError) => Err(problem(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "injected transient error",
        )),
    }
}

async fn health(state: State, req: HttpRequest) -> HttpResponse {
    if let Err(response) = admit(&state, &req, b"").await {
        return response;
    }
    let total = state.dataset.accounts;
    HttpResponse::Ok().json(json!({ "status": "ok", "version": "sim-1.0", "accounts_total": total, "accounts_online": total }))
}

async fn accounts(state: State, req: HttpRequest) -> HttpResponse {
    if let Err(response) = admit(&state, &req, b"").await {
        return response;
    }
    let accounts: Vec<_> = (0..state.dataset.accounts)
        .filter_map(|a| state.dataset.account(a))
        .map(|a| json!({ "wxid": a.wxid, "nickname": a.nickname, "avatar_url": a.avatar_url, "status": "online", "is_logged_in": true }))
        .collect();
    HttpResponse::Ok().json(json!({ "accounts": accounts }))
}

#[derive(Deserialize)]
struct QrIn {
    account_wxid: Option<String>,
}

async fn login_qr(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(response) = admit(&state, &req, &body).await {
        return response;
    }
    let input: QrIn = serde_json::from_slice(&body).unwrap_or(QrIn { account_wxid: None });
    let login_id = format!("login_{}", signing::now());
    HttpResponse::Ok().json(json!({
        "login_id": login_id,
        "account_wxid": input.account_wxid,
        "qr_code_url": format!("https://qr.sim/{login_id}.png"),
        "expires_at": signing::now() + 120,
    }))
}

#[derive(Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

fn page_bounds(q: &PageQuery, total: usize) -> (usize, usize, Option<String>) {
    let start = q
        .cursor
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
        .min(total);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let end = (start + limit).min(total);
    (start, end, (end < total).then(|| end.to_string()))
}

async fn contacts(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> HttpResponse {
    if let Err(response) = admit(&state, &req, b"").await {
        return response;
    }
    let Some(a) = state.dataset.account_index(&path) else {
        return problem(
            actix_web::http::StatusCode::NOT_FOUND,
            "no_account",
            "unknown account",
        );
    };
    let (start, end, next) = page_bounds(&q, state.dataset.contacts_per_account);
    let items: Vec<_> = (start..end)
        .map(|i| {
            let c = state.dataset.contact(a, i);
            let deleted = state.is_removed(&c.wxid);
            json!({
                "wxid": c.wxid, "nickname": c.nickname, "remark": c.remark, "avatar_url": c.avatar_url,
                "gender": c.gender, "region": c.region, "corp_name": c.corp_name, "phone": c.phone,
                "contact_type": "external", "tags": c.tags.iter().filter_map(|t| crate::data::Dataset::tag_name(t).map(|(g, n)| json!({"id": t, "group": g, "name": n}))).collect::<Vec<_>>(),
                "add_time": c.add_time, "deleted": deleted,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "items": items, "next_cursor": next }))
}

async fn groups(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> HttpResponse {
    if let Err(response) = admit(&state, &req, b"").await {
        return response;
    }
    let Some(a) = state.dataset.account_index(&path) else {
        return problem(
            actix_web::http::StatusCode::NOT_FOUND,
            "no_account",
            "unknown account",
        );
    };
    let (start, end, next) = page_bounds(&q, state.dataset.groups_per_account);
    let items: Vec<_> = (start..end).map(|g| state.dataset.group(a, g)).collect();
    HttpResponse::Ok().json(json!({ "items": items, "next_cursor": next }))
}

async fn members(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<PageQuery>,
) -> HttpResponse {
    if let Err(response) = admit(&state, &req, b"").await {
        return response;
    }
    let (account, group) = path.into_inner();
    let (Some(a), Some((ga, g))) = (
        state.dataset.account_index(&account),
        state.dataset.group_index(&group),
    ) else {
        return problem(
            actix_web::http::StatusCode::NOT_FOUND,
            "no_group",
            "unknown group",
        );
    };
    if ga != a {
        return problem(
            actix_web::http::StatusCode::NOT_FOUND,
            "no_group",
            "group of another account",
        );
    }
    let (start, end, next) = page_bounds(&q, state.dataset.members_per_group + 1);
    let items: Vec<_> = (start..end)
        .map(|m| state.dataset.member(a, g, m))
        .collect();
    HttpResponse::Ok().json(json!({ "items": items, "next_cursor": next }))
}

#[derive(Deserialize)]
struct SendIn {
    /// When present (it is signed), it must equal the header.
    #[serde(default)]
    idempotency_key: Option<String>,
    to: String,
    #[serde(default)]
    chat_type: Option<String>,
    msgtype: String,
    #[serde(default)]
    text: Option<serde_json::Value>,
    #[serde(flatten)]
    _rest: serde_json::Map<String, serde_json::Value>,
}

async fn send(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(response) = admit(&state, &req, &body).await {
        return response;
    }
    let key = header(&req, "idempotency-key").to_owned();
    if key.is_empty() || key.len() > 255 {
        return problem(
            actix_web::http::StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "send an Idempotency-Key header (1-255 characters)",
        );
    }
    let Ok(input) = serde_json::from_slice::<SendIn>(&body) else {
        return problem(
            actix_web::http::StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be a message",
        );
    };
    if input.idempotency_key.as_deref().is_some_and(|k| k != key) {
        return problem(
            actix_web::http::StatusCode::BAD_REQUEST,
            "idempotency_key_mismatch",
            "the signed body carries another idempotency key",
        );
    }
    let account = path.into_inner();
    // A repeat answers with the first result before anything else is checked: the message was
    // delivered, whatever has changed since.
    let first = state
        .deliveries
        .lock()
        .ok()
        .and_then(|d| d.get(&key).cloned());
    if first.is_some() {
        let (delivery, _) = state.deliver(key, &account, &input.to, "");
        return HttpResponse::Ok()
            .insert_header(("Idempotent-Replayed", "true"))
            .json(json!({ "message_id": delivery.message_id, "status": "sent" }));
    }
    let Some(a) = state.dataset.account_index(&account) else {
        return problem(
            actix_web::http::StatusCode::NOT_FOUND,
            "no_account",
            "unknown account",
        );
    };
    let own_contact = state
        .dataset
        .contact_index(&input.to)
        .is_some_and(|(ca, ci)| ca == a && ci < state.dataset.contacts_per_account);
    let own_group = state
        .dataset
        .group_index(&input.to)
        .is_some_and(|(ga, gi)| ga == a && gi < state.dataset.groups_per_account);
    if !own_contact && !own_group {
        return problem(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_receiver",
            "no such contact or group of this account",
        );
    }
    if state.is_removed(&input.to) {
        return problem(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "not_friend",
            "the contact removed this account",
        );
    }
    if !state.take_send_slot(&account, signing::now()) {
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "60"))
            .json(json!({ "error": { "code": "rate_limited", "message": "too many messages from this account this minute" } }));
    }
    let content = input
        .text
        .as_ref()
        .and_then(|t| t.get("content"))
        .and_then(|c| c.as_str())
        .unwrap_or(&input.msgtype)
        .to_owned();
    let _ = input.chat_type;
    let (delivery, replayed) = state.deliver(key, &account, &input.to, &content);
    HttpResponse::Ok()
        .insert_header((
            "Idempotent-Replayed",
            if replayed { "true" } else { "false" },
        ))
        .json(json!({ "message_id": delivery.message_id, "status": "sent" }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/accounts", web::get().to(accounts))
        .route("/accounts/login-qr", web::post().to(login_qr))
        .route("/accounts/{wxid}/contacts", web::get().to(contacts))
        .route("/accounts/{wxid}/groups", web::get().to(groups))
        .route(
            "/accounts/{wxid}/groups/{group}/members",
            web::get().to(members),
        )
        .route("/accounts/{wxid}/messages", web::post().to(send));
}
