//! Parse-don't-validate input types and a collector that reports every bad field at once.

use crate::error::{FieldError, ServiceError};

/// Collects field errors, then yields `Validation` with all of them.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records the error of a parse and returns its value when it succeeded.
    pub fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), ServiceError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Validation(self.0))
        }
    }
}

/// Trimmed text of `min..=max` characters.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, FieldError> {
    let trimmed = value.trim();
    let count = trimmed.chars().count();
    if count < min {
        return Err(FieldError::new(
            field,
            if min <= 1 {
                "must not be empty".to_owned()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if count > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Optional text: `None` and blank stay `None`.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => text(field, v, 1, max).map(Some),
    }
}

/// Login names: 3–50 of `A–Z a–z 0–9 . _ -`, starting with a letter or digit.
pub fn username(field: &str, value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    let ok_chars = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let ok_start = v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !(3..=50).contains(&v.len()) || !ok_chars || !ok_start {
        return Err(FieldError::new(
            field,
            "must be 3 to 50 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    Ok(v.to_owned())
}

/// A plausible address (one `@`, a dot in the domain, no spaces), at most 100 characters,
/// stored lowercase so logins by email are case-insensitive.
pub fn email(field: &str, value: &str) -> Result<String, FieldError> {
    let v = value.trim().to_lowercase();
    let valid = v.len() <= 100
        && !v.chars().any(char::is_whitespace)
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(v)
    } else {
        Err(FieldError::new(
            field,
            "must be an email address of at most 100 characters",
        ))
    }
}

pub const PASSWORD_MIN: usize = 12;
pub const PASSWORD_MAX: usize = 128;

/// ASVS 2.1: at least 12 characters, at most 128, any characters, not the login name.
pub fn password(field: &str, value: &str, username: Option<&str>) -> Result<(), FieldError> {
    let count = value.chars().count();
    if count < PASSWORD_MIN {
        return Err(FieldError::new(
            field,
            format!("must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if count > PASSWORD_MAX {
        return Err(FieldError::new(
            field,
            format!("must be at most {PASSWORD_MAX} characters"),
        ));
    }
    if username.is_some_and(|u| u.eq_ignore_ascii_case(value)) {
        return Err(FieldError::new(field, "must not be the login name"));
    }
    Ok(())
}

/// The OpenAPI shape of a tag label (`text(…, 1, 50)`: trimmed, 1 to 50 characters, no control
/// characters), for lists of labels whose items a field attribute cannot describe.
pub struct Label;

/// `Label`'s pattern: surrounding whitespace is trimmed, the rest holds no control character.
pub const LABEL_PATTERN: &str = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,49}\s*$";

impl utoipa::PartialSchema for Label {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(LABEL_PATTERN))
            .into()
    }
}

impl utoipa::ToSchema for Label {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bounds_and_control_chars() {
        assert_eq!(text("n", "  hi ", 1, 5).unwrap(), "hi");
        assert!(text("n", "   ", 1, 5).is_err());
        assert!(text("n", "toolong", 1, 5).is_err());
        assert!(text("n", "a\u{0}b", 1, 5).is_err());
        assert_eq!(text("n", "中文名字", 1, 4).unwrap(), "中文名字");
    }

    #[test]
    fn usernames_emails_passwords() {
        assert!(username("u", "alice.w").is_ok());
        assert!(username("u", "al").is_err());
        assert!(username("u", "_alice").is_err());
        assert!(username("u", "ali ce").is_err());
        assert_eq!(email("e", " A@B.CO ").unwrap(), "a@b.co");
        assert!(email("e", "a@b").is_err());
        assert!(email("e", "a@@b.c").is_err());
        assert!(password("p", "short", None).is_err());
        assert!(password("p", "long enough pass", None).is_ok());
        assert!(password("p", "AdministratorX", Some("administratorx")).is_err());
        assert!(password("p", &"x".repeat(129), None).is_err());
    }
}
