//! The HTTP client for user-configured destinations: SSRF-guarded resolver, IP-literal check on
//! every request and every redirect hop, bounded redirects, timeouts.

use std::{sync::Arc, time::Duration};

use super::ssrf::{GuardedResolver, OutboundPolicy, OutboundSettings, Refused};

#[derive(Debug, Clone)]
pub struct OutboundClient {
    pub http: reqwest::Client,
    pub policy: OutboundPolicy,
    timeouts: (Duration, Duration),
}

impl OutboundClient {
    pub fn new(settings: &OutboundSettings) -> Result<Self, String> {
        let policy = OutboundPolicy::new(settings)?;
        let redirect_policy = policy.clone();
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
            // The environment's HTTP(S)_PROXY would carry requests past the guarded resolver.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let cross_origin = attempt
                    .previous()
                    .last()
                    .is_some_and(|from| from.origin() != attempt.url().origin());
                if attempt.previous().len() > 3 {
                    attempt.error("too many redirects")
                } else if cross_origin {
                    // Signature headers and bodies must not reach another host: the 3xx
                    // answer is returned as it is, and callers treat it as a failure.
                    attempt.stop()
                } else if let Err(refused) =
                    redirect_policy.check_url_syntax(attempt.url().as_str())
                {
                    attempt.error(refused)
                } else {
                    attempt.follow()
                }
            }))
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .timeout(Duration::from_secs(settings.request_timeout_secs))
            .user_agent(concat!("wework/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let timeouts = (
            Duration::from_secs(settings.connect_timeout_secs),
            Duration::from_secs(settings.request_timeout_secs),
        );
        Ok(Self {
            http,
            policy,
            timeouts,
        })
    }

    /// A client like this one that connects through `proxy` (an instance's proxy settings).
    pub fn with_proxy(&self, proxy: reqwest::Proxy) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver(self.policy.clone())))
            .proxy(proxy)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.timeouts.0)
            .timeout(self.timeouts.1)
            .build()
            .map_err(|e| format!("building the proxied HTTP client: {e}"))?;
        Ok(Self {
            http,
            policy: self.policy.clone(),
            timeouts: self.timeouts,
        })
    }

    /// Checks `url` (an IP literal never reaches the resolver) and returns a request builder.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, Refused> {
        let url = self.policy.check_url_syntax(url)?;
        Ok(self.http.request(method, url))
    }
}

/// The most read of one answer from an instance, WeCom or a webhook: a page of 500 contacts fits
/// many times over, and a broken or hostile peer cannot make us buffer more.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why an answer's body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit, as declared (`Content-Length`) or as sent.
    TooLarge(usize),
    Http(reqwest::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(f, "the answer is larger than {limit} bytes"),
            Self::Http(e) => f.write_str(&describe(e)),
        }
    }
}

/// Reads `response`'s body up to `limit` bytes, refusing a larger one — by its declared length
/// before reading anything, or as soon as what arrives passes the limit.
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|declared| declared > limit as u64)
    {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Http)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error with its cause chain (reqwest's own message hides why a connection failed,
/// e.g. that the SSRF policy refused the address), with every URL in it redacted: WeCom puts
/// secrets in query strings, and this text is stored and shown.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    super::redact::redact_urls_in(&text)
}
