//! `ValidJson<T>`: a JSON body within the size limit, deserialized with the path of the first
//! offending field (`roles[0].expires_at`) so clients learn exactly what to fix.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;
use service::FieldError;

use crate::{error::ApiError, state::AppState};

pub struct ValidJson<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses `bytes`, telling malformed JSON (400) from well-formed JSON of the wrong shape (422).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| classify(".".to_owned(), e))?;
    // Every body is an object; serde would otherwise fill a struct from an array by position.
    if !document.is_object() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )]));
    }
    integral_floats_as_integers(&mut document);
    serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        classify(path, e.into_inner())
    })
}

/// JSON has one number type: `3.0` is the integer 3 (JSON Schema agrees), so an integer field
/// takes it. Only whole values that an `i64` holds exactly are rewritten.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // 2^63 is exactly representable; every whole f64 below it in magnitude fits an i64.
            if f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Malformed JSON is a 400; well-formed JSON of the wrong shape is a 422 naming the field.
fn classify(path: String, error: serde_json::Error) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Data => {
            let field = match missing_field(&error) {
                Some(missing) if path == "." => missing,
                Some(missing) => format!("{path}.{missing}"),
                None if path == "." => "body".to_owned(),
                None => path,
            };
            ApiError::Validation(vec![FieldError::new(field, clean_message(&error))])
        }
        _ => ApiError::MalformedJson(error.to_string()),
    }
}

/// serde reports a missing field at its parent's path; name the field itself.
fn missing_field(error: &serde_json::Error) -> Option<String> {
    let text = error.to_string();
    let rest = text.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// serde's messages end with " at line 1 column 9", which means nothing once the field is named.
fn clean_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(1 << 20, |s| s.ctx.settings.server.max_body_bytes);
        let json = is_json(req);
        let declared = super::body::declared_length(req);
        let payload = payload.take();
        let keyed = req.headers().contains_key(super::idempotency::HEADER);
        let req = req.clone();
        Box::pin(async move {
            if declared.is_some_and(|len| len > limit) {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            if !json {
                return Err(ApiError::UnsupportedMediaType);
            }
            let body = super::body::read_bounded(payload, declared, limit).await?;
            if keyed {
                req.extensions_mut().insert(super::idempotency::BodyHash(
                    service::idempotency::hash(&body),
                ));
            }
            parse(&body).map(ValidJson)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        n: u8,
    }

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::Validation(errors) => errors[0].field.clone(),
            other => panic!("expected validation, got {other:?}"),
        }
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        let input: Input = parse(br#"{"name": "a", "items": [{"n": 3.0}, {"n": 2e1}]}"#).unwrap();
        assert_eq!(input.items[1].n, 20);
        assert_eq!(
            field_of(parse::<Input>(br#"{"name": "a", "items": [{"n": 3.5}]}"#).unwrap_err()),
            "items[0].n"
        );
        assert!(matches!(
            parse::<Input>(br#"{"name": "a", "items": []} trailing"#),
            Err(ApiError::MalformedJson(_))
        ));
    }

    #[test]
    fn a_body_is_an_object_never_an_array_filled_by_position() {
        let err = parse::<Input>(br#"["a", []]"#).unwrap_err();
        assert_eq!(field_of(err), "body");
    }

    #[test]
    fn names_the_field_at_fault() {
        assert_eq!(
            field_of(parse::<Input>(br#"{"name": 1, "items": []}"#).unwrap_err()),
            "name"
        );
        assert_eq!(
            field_of(parse::<Input>(br#"{"name": "a", "items": [{"n": 300}]}"#).unwrap_err()),
            "items[0].n"
        );
        assert!(matches!(
            parse::<Input>(br#"{"name": "a""#),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<Input>(br#"{"name": "a", "items": []} x"#),
            Err(ApiError::MalformedJson(_))
        ));
        let unknown = parse::<Input>(br#"{"name": "a", "items": [], "extra": 1}"#).unwrap_err();
        assert!(matches!(unknown, ApiError::Validation(_)));
    }
}
