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
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > 3 {
                    attempt.error("too many redirects")
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
