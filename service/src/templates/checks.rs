//! The checks a template passes before it is stored: declared variables (names, types,
//! defaults), the source compiling with only declared and contact variables, and the payload a
//! message type needs.

use super::*;

/// Checks a variable value against its declared type.
pub fn check_value(spec: &VariableSpec, value: &Value) -> Result<(), String> {
    let ok = match spec.var_type {
        VariableType::Number => value.is_number(),
        VariableType::Boolean => value.is_boolean(),
        VariableType::Date => value
            .as_str()
            .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
        VariableType::String => value.is_string(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("must be a {}", spec.var_type))
    }
}

pub(super) fn check_variables(v: &mut Violations, variables: &[VariableSpec]) {
    let mut seen = BTreeSet::new();
    for (i, spec) in variables.iter().enumerate() {
        let valid_name = !spec.name.is_empty()
            && spec.name.len() <= 50
            && spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !spec.name.starts_with(|c: char| c.is_ascii_digit());
        if !valid_name {
            v.add(
                format!("variables[{i}].name"),
                "must be 1 to 50 of letters, digits and '_', not starting with a digit",
            );
        } else if render::CONTACT_FIELDS.contains(&spec.name.as_str()) {
            v.add(
                format!("variables[{i}].name"),
                "is a contact field every receiver provides",
            );
        } else if !seen.insert(spec.name.clone()) {
            v.add(format!("variables[{i}].name"), "is declared twice");
        }
        if let Some(default) = &spec.default
            && let Err(why) = check_value(spec, default)
        {
            v.add(format!("variables[{i}].default"), why);
        }
    }
}

/// The template's text and payload compile and read only declared variables or contact fields.
pub(super) fn check_source(
    v: &mut Violations,
    content: &str,
    payload: Option<&Value>,
    variables: &[VariableSpec],
) {
    let declared: BTreeSet<&str> = variables
        .iter()
        .map(|s| s.name.as_str())
        .chain(render::CONTACT_FIELDS.iter().copied())
        .collect();
    let mut check = |field: &str, source: &str| match render::variables_of(source) {
        Err(e) => v.add(
            field,
            format!(
                "does not compile{}: {}",
                e.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
                e.message
            ),
        ),
        Ok(used) => {
            for name in used.iter().filter(|n| !declared.contains(n.as_str())) {
                v.add(field, format!("uses `{name}`, which is neither declared in `variables` nor a contact field"));
            }
        }
    };
    check("content", content);
    if let Some(payload) = payload {
        let mut strings = Vec::new();
        collect_strings(payload, &mut strings);
        for s in strings {
            check("payload", &s);
        }
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

pub(super) fn check_payload(
    v: &mut Violations,
    message_type: MessageType,
    payload: Option<&Value>,
) {
    let required: &[&str] = match message_type {
        MessageType::Image | MessageType::File => &["media_id"],
        MessageType::Link => &["title", "url"],
        MessageType::Miniprogram => &["appid", "page", "title"],
        MessageType::Text => &[],
    };
    match payload {
        Some(Value::Object(map)) => {
            for key in required.iter().filter(|k| !map.contains_key(**k)) {
                v.add(
                    format!("payload.{key}"),
                    format!("is required for {message_type} messages"),
                );
            }
            if Value::Object(map.clone()).to_string().len() > 16_384 {
                v.add("payload", "must be at most 16 KiB");
            }
        }
        Some(_) => v.add("payload", "must be a JSON object"),
        None if !required.is_empty() => v.add(
            "payload",
            format!("is required for {message_type} messages"),
        ),
        None => {}
    }
}
