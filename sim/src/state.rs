//! Shared simulator state: faults, issued tokens, deliveries per idempotency key, per-account
//! send windows, removed contacts, customer mass-message tasks.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, RwLock},
};

use serde::Serialize;

use crate::{SimConfig, data::Dataset, faults::Faults};

/// One accepted send.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub key: String,
    pub account: String,
    pub to: String,
    pub content: String,
    /// How many requests carried this key (1 = delivered once, replays included above 1).
    pub attempts: u32,
    pub message_id: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Distinct messages delivered (one per idempotency key, or per WeCom call).
    pub delivered: usize,
    /// Send requests received, replays included.
    pub attempts: u64,
    /// Keys that arrived more than once (replays answered from the first result).
    pub replayed_keys: usize,
    /// Distinct (account, recipient) pairs reached: fewer than `delivered` means somebody got
    /// the message twice under two keys.
    pub recipients: usize,
}

/// A customer mass message (`add_msg_template`) waiting for the member to confirm.
#[derive(Debug, Clone, Serialize)]
pub struct MassTask {
    pub msgid: String,
    pub sender: String,
    pub chat_type: String,
    pub targets: Vec<String>,
    pub content: String,
    /// `waiting` until confirmed, then `sent`; `cancelled` when withdrawn.
    pub status: String,
    pub reminders: u32,
    pub created_at: i64,
}

pub struct SimState {
    pub dataset: Dataset,
    pub agent_secret: String,
    pub corp_id: String,
    pub corp_secret: String,
    pub push_url: Option<String>,
    pub faults: RwLock<Faults>,
    pub tokens: Mutex<HashMap<String, i64>>,
    pub deliveries: Mutex<HashMap<String, Delivery>>,
    pub attempts: Mutex<u64>,
    pub windows: Mutex<HashMap<(String, i64), u32>>,
    pub removed_contacts: Mutex<HashSet<String>>,
    pub mass_tasks: Mutex<HashMap<String, MassTask>>,
    pub token_requests: Mutex<u64>,
    pub kf_secret: String,
    pub kf_accounts: usize,
    /// Tokens issued for the 微信客服 secret.
    pub kf_tokens: Mutex<HashSet<String>>,
    pub kf: Mutex<crate::kf::KfState>,
}

impl SimState {
    pub fn new(config: SimConfig) -> Self {
        Self {
            dataset: Dataset {
                seed: config.seed,
                accounts: config.accounts,
                contacts_per_account: config.contacts_per_account,
                groups_per_account: config.groups_per_account,
                members_per_group: config.members_per_group,
            },
            agent_secret: config.agent_secret,
            corp_id: config.corp_id,
            corp_secret: config.corp_secret,
            push_url: config.push_url,
            faults: RwLock::new(config.faults),
            tokens: Mutex::default(),
            deliveries: Mutex::default(),
            attempts: Mutex::default(),
            windows: Mutex::default(),
            removed_contacts: Mutex::default(),
            mass_tasks: Mutex::default(),
            token_requests: Mutex::default(),
            kf_secret: config.kf_secret,
            kf_accounts: config.kf_accounts,
            kf_tokens: Mutex::default(),
            kf: Mutex::default(),
        }
    }

    pub fn faults(&self) -> Faults {
        self.faults.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// Counts a send against the account's one-minute window; `false` when over the limit.
    pub fn take_send_slot(&self, account: &str, now: i64) -> bool {
        let Some(limit) = self.faults().rate_limit_per_minute else {
            return true;
        };
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        let minute = now / 60;
        windows.retain(|(_, m), _| *m >= minute - 1);
        let used = windows.entry((account.to_owned(), minute)).or_insert(0);
        if *used >= limit {
            return false;
        }
        *used += 1;
        true
    }

    /// Records a send under `key`. Returns the first delivery when the key was seen before.
    pub fn deliver(&self, key: String, account: &str, to: &str, content: &str) -> (Delivery, bool) {
        if let Ok(mut attempts) = self.attempts.lock() {
            *attempts += 1;
        }
        let Ok(mut deliveries) = self.deliveries.lock() else {
            return (
                Delivery {
                    key,
                    account: account.into(),
                    to: to.into(),
                    content: content.into(),
                    attempts: 1,
                    message_id: String::new(),
                },
                false,
            );
        };
        if let Some(existing) = deliveries.get_mut(&key) {
            existing.attempts += 1;
            return (existing.clone(), true);
        }
        let message_id = format!("msg_{}", deliveries.len() + 1);
        let delivery = Delivery {
            key: key.clone(),
            account: account.into(),
            to: to.into(),
            content: content.into(),
            attempts: 1,
            message_id,
        };
        deliveries.insert(key, delivery.clone());
        (delivery, false)
    }

    pub fn stats(&self) -> DeliveryStats {
        let deliveries = self
            .deliveries
            .lock()
            .map(|d| d.values().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        DeliveryStats {
            delivered: deliveries.len(),
            attempts: self.attempts.lock().map(|a| *a).unwrap_or(0),
            replayed_keys: deliveries.iter().filter(|d| d.attempts > 1).count(),
            recipients: deliveries
                .iter()
                .map(|d| (d.account.as_str(), d.to.as_str()))
                .collect::<std::collections::HashSet<_>>()
                .len(),
        }
    }

    pub fn is_removed(&self, wxid: &str) -> bool {
        self.removed_contacts
            .lock()
            .map(|r| r.contains(wxid))
            .unwrap_or(false)
    }
}
