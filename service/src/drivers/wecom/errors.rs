//! WeCom `errcode` classification: what to retry, what to slow down for, what is final.

use std::time::Duration;

use super::super::DriverError;

/// Token problems: refresh the access token and retry the call once.
pub fn is_token_error(errcode: i64) -> bool {
    matches!(errcode, 40014 | 42001 | 41001)
}

pub fn classify(errcode: i64, errmsg: &str) -> DriverError {
    let code = errcode.to_string();
    let message = errmsg.chars().take(500).collect::<String>();
    match errcode {
        // System busy; token trouble that survived one refresh; broadcast still being dispatched.
        -1 | 40014 | 42001 | 41001 | 41063 => DriverError::Transient {
            code,
            message,
            retry_after: None,
        },
        // Frequency limit: WeCom blocks for a minute (or longer for hourly/daily limits).
        45009 => DriverError::RateLimited {
            code,
            message,
            retry_after: Some(Duration::from_secs(60)),
        },
        // Too many concurrent calls.
        45033 => DriverError::RateLimited {
            code,
            message,
            retry_after: Some(Duration::from_secs(1)),
        },
        // Everything else — invalid user (40003/81013), invalid external user (40096), no customer
        // (41048), content too long (45002), IP not allowed (60020), API forbidden (48002) and
        // codes we do not know — fails the same way next time.
        _ => DriverError::Permanent { code, message },
    }
}

/// Codes an operator must act on (configuration, not the message).
pub fn needs_attention(errcode: i64) -> bool {
    matches!(errcode, 60020 | 48002 | 40013 | 40001 | 40091)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_documentation() {
        assert!(classify(-1, "system busy").is_retryable());
        assert!(matches!(
            classify(45009, ""),
            DriverError::RateLimited { .. }
        ));
        assert!(matches!(
            classify(45033, ""),
            DriverError::RateLimited { .. }
        ));
        for permanent in [40003, 81013, 60020, 48002, 40096, 41048, 45002, 123_456] {
            assert!(
                matches!(classify(permanent, ""), DriverError::Permanent { .. }),
                "{permanent}"
            );
        }
        assert!(is_token_error(42001) && is_token_error(40014) && !is_token_error(45009));
        assert!(needs_attention(60020));
    }
}
