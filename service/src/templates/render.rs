//! The sandboxed template engine: Jinja syntax through minijinja, with no file or network access,
//! a fuel budget (so a template cannot loop forever) and strict undefined variables (so a missing
//! value is an error on that receiver, never an empty greeting).

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior, value::Serde};
use serde_json::Value;

/// Instructions a single render may execute.
const FUEL: u64 = 50_000;
/// Longest rendered text, in bytes (WeCom's own limits are lower; drivers enforce those).
pub const MAX_OUTPUT: usize = 16_384;

/// Fields every receiver provides to templates.
pub const CONTACT_FIELDS: &[&str] = &[
    "nickname",
    "remark",
    "name",
    "wxid",
    "phone",
    "region",
    "corp_name",
    "tags",
    "custom",
    "account",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RenderError {
    pub message: String,
    pub line: Option<usize>,
}

impl From<minijinja::Error> for RenderError {
    fn from(e: minijinja::Error) -> Self {
        let message = match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        };
        Self {
            message,
            line: e.line(),
        }
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // A field the contact lacks (no remark, no phone) prints nothing: Jinja's `none` would
    // reach the customer as the word "none".
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
}

/// Checks the syntax and returns the top-level variables the template reads.
pub fn variables_of(source: &str) -> Result<BTreeSet<String>, RenderError> {
    let env = environment();
    let template = env.template_from_str(source)?;
    Ok(template.undeclared_variables(false).into_iter().collect())
}

/// Renders `source` with `context` (a JSON object).
pub fn render(source: &str, context: &Value) -> Result<String, RenderError> {
    let env = environment();
    let out = env.render_str(source, Serde(context))?;
    if out.len() > MAX_OUTPUT {
        return Err(RenderError {
            message: format!(
                "the rendered text is {} bytes, more than {MAX_OUTPUT}",
                out.len()
            ),
            line: None,
        });
    }
    Ok(out)
}

/// Renders every string inside a JSON payload (link titles, descriptions …).
pub fn render_payload(payload: &Value, context: &Value) -> Result<Value, RenderError> {
    Ok(match payload {
        Value::String(s) if s.contains("{{") || s.contains("{%") => {
            Value::String(render(s, context)?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_payload(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_payload(v, context)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_personalised_text() {
        let out = render(
            "{{ nickname }}您好，{% if tags %}您的标签：{{ tags | join('、') }}{% endif %}",
            &json!({ "nickname": "王伟", "tags": ["VIP", "新品"] }),
        )
        .unwrap();
        assert_eq!(out, "王伟您好，您的标签：VIP、新品");
    }

    #[test]
    fn a_field_the_contact_lacks_prints_nothing() {
        let out = render(
            "{{ remark }}您好{{ phone }}！{{ remark or nickname }}",
            &json!({ "remark": null, "phone": null, "nickname": "王伟" }),
        )
        .unwrap();
        assert_eq!(out, "您好！王伟");
    }

    #[test]
    fn missing_variables_and_syntax_errors_are_errors() {
        assert!(
            render("Hi {{ coupon }}", &json!({}))
                .unwrap_err()
                .message
                .contains("undefined")
        );
        let syntax = variables_of("Hi {{ name ").unwrap_err();
        assert_eq!(syntax.line, Some(1));
        assert_eq!(
            variables_of("{{ a }} {{ b.c }} {% for x in items %}{{ x }}{% endfor %}").unwrap(),
            ["a", "b", "items"].iter().map(|s| s.to_string()).collect()
        );
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let err = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &json!({}),
        )
        .unwrap_err();
        assert!(
            err.message.to_lowercase().contains("fuel") || err.message.contains("range"),
            "{}",
            err.message
        );
    }

    #[test]
    fn payload_strings_are_rendered() {
        let out = render_payload(
            &json!({ "title": "{{ nickname }}专享", "url": "https://x.cn/a", "n": 1 }),
            &json!({ "nickname": "李芳" }),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({ "title": "李芳专享", "url": "https://x.cn/a", "n": 1 })
        );
    }
}
