//! Open server-sent-event streams per user, capped: each stream holds a connection and polls the
//! database every second, so one user — or one stolen token — must not be able to open
//! thousands. Counted per process (each `wework api` process applies the cap on its own).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

/// Streams one user may hold open at once in one process.
pub const MAX_STREAMS_PER_USER: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct StreamSlots(Arc<Mutex<HashMap<i64, usize>>>);

/// One open stream; the slot is given back when the stream is dropped (finished or the client
/// went away).
#[derive(Debug)]
pub struct StreamSlot {
    slots: StreamSlots,
    user_id: i64,
}

impl StreamSlots {
    /// A slot for `user_id`, or `None` when they already hold the maximum.
    pub fn take(&self, user_id: i64) -> Option<StreamSlot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user_id).or_default();
        if *count >= MAX_STREAMS_PER_USER {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: self.clone(),
            user_id,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_the_cap_and_slots_come_back() {
        let slots = StreamSlots::default();
        let held: Vec<StreamSlot> = (0..MAX_STREAMS_PER_USER)
            .map(|_| slots.take(1).expect("under the cap"))
            .collect();
        assert!(slots.take(1).is_none());
        assert!(slots.take(2).is_some(), "another user is not affected");
        drop(held);
        assert!(slots.take(1).is_some());
    }
}
