//! Serde helpers: PATCH bodies, where "absent" and "null" mean different things, and JSON
//! columns read back into their types.

use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::Value;

/// `Option<Option<T>>`: absent → `None` (leave alone), `null` → `Some(None)` (clear),
/// a value → `Some(Some(v))` (set). Use with `#[serde(default, deserialize_with = "…")]`.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A JSON column read into its type. A stored value that does not fit is an error naming the
/// column, never `None`: a corrupt quiet-hours or frequency-cap setting must stop the sends it
/// governs, not quietly switch itself off.
pub fn stored<T: DeserializeOwned>(
    value: Option<&Value>,
    column: &str,
) -> Result<Option<T>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("the stored `{column}` cannot be read ({e})")),
    }
}
