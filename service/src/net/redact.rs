//! Takes secrets out of URLs before they are shown anywhere. WeCom carries `corpsecret`,
//! `access_token` and a robot's `key` in query strings, and transport errors quote the URL they
//! failed on; those texts end up in stored rows readable by viewers, CSV reports, alert texts
//! sent outside and logs. So every URL in such a text keeps its scheme, host and path, and loses
//! its credentials and every query value.

const HIDDEN: &str = "***";

/// `url` with its password and every query value replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return strip_query(url);
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(HIDDEN));
    }
    if parsed.query().is_some() {
        let names: Vec<String> = parsed
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        let query = names
            .iter()
            .map(|name| format!("{name}={HIDDEN}"))
            .collect::<Vec<_>>()
            .join("&");
        parsed.set_query(Some(&query));
    }
    parsed.set_fragment(None);
    parsed.to_string()
}

/// Everything after `?` dropped, for what does not parse as a URL.
fn strip_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?{HIDDEN}"),
        None => url.to_owned(),
    }
}

/// `text` with every `http://` or `https://` URL in it redacted.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url_start(rest) {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(candidate.len());
        out.push_str(&redact_url(&candidate[..end]));
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

fn find_url_start(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    [lower.find("http://"), lower.find("https://")]
        .into_iter()
        .flatten()
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_and_passwords_are_hidden_and_the_rest_kept() {
        assert_eq!(
            redact_url("https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1&corpsecret=S3cr3t"),
            "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=***&corpsecret=***"
        );
        assert_eq!(
            redact_url("http://user:pa55@es.internal:9200/_bulk"),
            "http://user:***@es.internal:9200/_bulk"
        );
        assert_eq!(
            redact_url("http://agent:8080/v1/health"),
            "http://agent:8080/v1/health"
        );
    }

    #[test]
    fn every_url_in_an_error_text_is_redacted() {
        let text = "error sending request for url (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=ROBOT-KEY-1): \
                    client error (Connect): tcp connect error; redirected to HTTPS://Evil.example/x?access_token=T0KEN";
        let redacted = redact_urls_in(text);
        assert!(!redacted.contains("ROBOT-KEY-1"), "{redacted}");
        assert!(!redacted.contains("T0KEN"), "{redacted}");
        assert!(
            redacted.contains("/cgi-bin/webhook/send?key=***): client error (Connect)"),
            "{redacted}"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
    }
}
