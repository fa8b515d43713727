//! Serde helpers for PATCH bodies, where "absent" and "null" mean different things.

use serde::{Deserialize, Deserializer};

/// `Option<Option<T>>`: absent → `None` (leave alone), `null` → `Some(None)` (clear),
/// a value → `Some(Some(v))` (set). Use with `#[serde(default, deserialize_with = "…")]`.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
