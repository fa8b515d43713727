//! `/_sim`: what tests and operators use to steer the simulator and read its counts.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::{faults::Faults, signing, state::SimState};

type State = web::Data<SimState>;

async fn stats(state: State) -> HttpResponse {
    let tokens = state.token_requests.lock().map(|n| *n).unwrap_or(0);
    let mass = state.mass_tasks.lock().map(|m| m.len()).unwrap_or(0);
    HttpResponse::Ok()
        .json(json!({ "deliveries": state.stats(), "token_requests": tokens, "mass_tasks": mass }))
}

#[derive(Deserialize)]
struct DeliveryQuery {
    to: Option<String>,
    key: Option<String>,
}

async fn deliveries(state: State, q: web::Query<DeliveryQuery>) -> HttpResponse {
    let list: Vec<_> = state
        .deliveries
        .lock()
        .map(|d| {
            d.values()
                .filter(|d| q.to.as_deref().is_none_or(|to| d.to == to))
                .filter(|d| q.key.as_deref().is_none_or(|key| d.key == key))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    HttpResponse::Ok().json(list)
}

async fn get_faults(state: State) -> HttpResponse {
    HttpResponse::Ok().json(state.faults())
}

async fn put_faults(state: State, body: web::Json<Faults>) -> HttpResponse {
    if let Ok(mut faults) = state.faults.write() {
        *faults = body.into_inner();
    }
    HttpResponse::Ok().json(state.faults())
}

#[derive(Deserialize)]
struct Wxids {
    wxids: Vec<String>,
}

async fn remove_contacts(state: State, body: web::Json<Wxids>) -> HttpResponse {
    if let Ok(mut removed) = state.removed_contacts.lock() {
        removed.extend(body.into_inner().wxids);
    }
    HttpResponse::NoContent().finish()
}

async fn restore_contacts(state: State, body: web::Json<Wxids>) -> HttpResponse {
    if let Ok(mut removed) = state.removed_contacts.lock() {
        for wxid in body.into_inner().wxids {
            removed.remove(&wxid);
        }
    }
    HttpResponse::NoContent().finish()
}

/// Every customer mass message received, oldest first.
async fn list_mass(state: State) -> HttpResponse {
    let mut tasks: Vec<_> = state
        .mass_tasks
        .lock()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    tasks.sort_by_key(|t: &crate::state::MassTask| (t.msgid.len(), t.msgid.clone()));
    HttpResponse::Ok().json(tasks)
}

/// The member confirms a customer mass message in the WeCom client: it is delivered.
async fn confirm_mass(state: State, path: web::Path<String>) -> HttpResponse {
    let task = state.mass_tasks.lock().ok().and_then(|mut tasks| {
        let task = tasks.get_mut(path.as_str())?;
        if task.status != "waiting" {
            return None;
        }
        task.status = "sent".into();
        Some(task.clone())
    });
    let Some(task) = task else {
        return HttpResponse::Conflict()
            .json(json!({ "error": "no waiting task with this msgid" }));
    };
    for target in task.targets.iter().filter(|t| !state.is_removed(t)) {
        state.deliver(
            format!("mass:{}:{target}", task.msgid),
            &task.sender,
            target,
            &task.content,
        );
    }
    HttpResponse::Ok().json(task)
}

async fn expire_tokens(state: State) -> HttpResponse {
    if let Ok(mut tokens) = state.tokens.lock() {
        for expiry in tokens.values_mut() {
            *expiry = 0;
        }
    }
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct EventIn {
    /// e.g. `message.received`, `account.offline`, `contact.deleted`.
    r#type: String,
    account_wxid: String,
    #[serde(default)]
    data: serde_json::Value,
    /// Overrides the configured push URL.
    url: Option<String>,
    /// Reuse an event id to test de-duplication.
    id: Option<String>,
}

/// Signs an agent event and delivers it to the platform, answering with the platform's status.
async fn push_event(state: State, body: web::Json<EventIn>) -> HttpResponse {
    let event = body.into_inner();
    let Some(url) = event.url.clone().or_else(|| state.push_url.clone()) else {
        return HttpResponse::BadRequest().json(json!({ "error": "no push url configured" }));
    };
    let id = event
        .id
        .clone()
        .unwrap_or_else(|| format!("evt_{}_{}", signing::now(), rand::random::<u32>()));
    let payload = json!({ "id": id, "type": event.r#type, "occurred_at": signing::now(), "account_wxid": event.account_wxid, "data": event.data });
    let bytes = payload.to_string().into_bytes();
    let timestamp = signing::now();
    let signature = signing::sign(&state.agent_secret, &id, timestamp, &bytes);
    let sent = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(bytes)
        .send()
        .await;
    match sent {
        Ok(response) => {
            HttpResponse::Ok().json(json!({ "id": id, "status": response.status().as_u16() }))
        }
        Err(e) => HttpResponse::BadGateway().json(json!({ "id": id, "error": e.to_string() })),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats", web::get().to(stats))
        .route("/deliveries", web::get().to(deliveries))
        .route("/faults", web::get().to(get_faults))
        .route("/faults", web::put().to(put_faults))
        .route("/contacts/remove", web::post().to(remove_contacts))
        .route("/contacts/restore", web::post().to(restore_contacts))
        .route("/mass", web::get().to(list_mass))
        .route("/mass/{msgid}/confirm", web::post().to(confirm_mass))
        .route("/tokens/expire", web::post().to(expire_tokens))
        .route("/events", web::post().to(push_event))
        .configure(crate::kf::configure_control);
}
