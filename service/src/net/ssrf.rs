//! SSRF policy. A user-configured URL (instance `api_url`, webhooks) may not reach loopback,
//! private, link-local (cloud metadata at 169.254.169.254), CGNAT, unique-local or otherwise
//! special addresses unless configuration allows them. Checked when the URL is saved and, through
//! [`GuardedResolver`], at every connection, so DNS rebinding cannot slip past the first check.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use serde::Deserialize;

/// `[outbound]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSettings {
    /// Allow every special-purpose address (development only).
    pub allow_private: bool,
    /// Extra networks allowed in CIDR form, e.g. "10.20.0.0/16" for agents on your LAN.
    pub allowed_networks: Vec<String>,
    /// Seconds to wait for a connection and for a whole request.
    pub connect_timeout_secs: u64,
    pub request_timeout_secs: u64,
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let addr: IpAddr = addr.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix.trim().parse().ok()?
        };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    a & mask == b & mask
}

#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    allow_private: bool,
    allowed: Arc<Vec<Network>>,
}

/// Why a URL or address was refused; the message is safe to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl OutboundPolicy {
    pub fn new(settings: &OutboundSettings) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for (i, text) in settings.allowed_networks.iter().enumerate() {
            allowed.push(Network::parse(text).ok_or_else(|| {
                format!(
                    "`outbound.allowed_networks[{i}]`: `{text}` is not an address or CIDR network"
                )
            })?);
        }
        Ok(Self {
            allow_private: settings.allow_private,
            allowed: Arc::new(allowed),
        })
    }

    /// Everything allowed (tests of the policy itself, tools).
    pub fn permissive() -> Self {
        Self {
            allow_private: true,
            allowed: Arc::default(),
        }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow_private || self.allowed.iter().any(|n| n.contains(ip)) || is_public(ip)
    }

    /// Syntax and scheme of a URL, plus the address check when the host is an IP literal.
    pub fn check_url_syntax(&self, raw: &str) -> Result<url::Url, Refused> {
        let url = url::Url::parse(raw.trim())
            .map_err(|e| Refused(format!("is not a valid URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused("must use http or https".to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused(
                "must not contain credentials; use the instance's configuration".to_owned(),
            ));
        }
        match url.host() {
            None => Err(Refused("must name a host".to_owned())),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)).map(|()| url),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)).map(|()| url),
            Some(url::Host::Domain(_)) => Ok(url),
        }
    }

    /// The full save-time check: syntax, then every address the host name resolves to now.
    pub async fn check_url(&self, raw: &str) -> Result<url::Url, Refused> {
        let url = self.check_url_syntax(raw)?;
        if let Some(url::Host::Domain(host)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(80);
            self.resolve(host, port).await?;
        }
        Ok(url)
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allows(ip) {
            Ok(())
        } else {
            Err(Refused(format!(
                "points at {ip}, a private or special-purpose address, which the outbound policy refuses"
            )))
        }
    }

    /// Resolves `host` and keeps only allowed addresses; none left (or no answer) is a refusal.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Refused(format!("host `{host}` does not resolve ({e})")))?
            .collect();
        if addrs.is_empty() {
            return Err(Refused(format!("host `{host}` does not resolve")));
        }
        let allowed: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| self.allows(a.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(Refused(format!(
                "host `{host}` resolves to {}, a private or special-purpose address, which the outbound policy refuses",
                addrs[0].ip()
            )));
        }
        Ok(allowed)
    }
}

/// IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let special = [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ];
    !special
        .iter()
        .filter_map(|n| Network::parse(n))
        .any(|n| n.contains(IpAddr::V4(ip)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let special = [
        "::/96",
        "::1/128",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "2001::/32",
        "2002::/16",
        "fec0::/10",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "::ffff:0:0/96",
    ];
    !special
        .iter()
        .filter_map(|n| Network::parse(n))
        .any(|n| n.contains(IpAddr::V6(ip)))
}

/// reqwest DNS resolver that applies the policy to every connection attempt.
#[derive(Debug, Clone)]
pub struct GuardedResolver(pub OutboundPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs = policy
                .resolve(name.as_str(), 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> OutboundPolicy {
        OutboundPolicy::new(&OutboundSettings {
            allow_private: false,
            allowed_networks: vec![],
            connect_timeout_secs: 5,
            request_timeout_secs: 10,
        })
        .unwrap()
    }

    #[test]
    fn refuses_special_addresses_and_allows_public_ones() {
        let policy = strict();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            // IPv4-compatible, 6to4 and Teredo of loopback, site-local, NAT64 (both prefixes):
            // each can reach an inside address.
            "::127.0.0.1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "fec0::1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(!policy.allows(refused.parse().unwrap()), "{refused}");
        }
        for allowed in ["8.8.8.8", "101.91.0.1", "2400:3200::1"] {
            assert!(policy.allows(allowed.parse().unwrap()), "{allowed}");
        }
    }

    #[test]
    fn allowed_networks_open_holes() {
        let policy = OutboundPolicy::new(&OutboundSettings {
            allow_private: false,
            allowed_networks: vec!["10.20.0.0/16".into(), "127.0.0.1".into()],
            connect_timeout_secs: 5,
            request_timeout_secs: 10,
        })
        .unwrap();
        assert!(policy.allows("10.20.3.4".parse().unwrap()));
        assert!(!policy.allows("10.21.0.1".parse().unwrap()));
        assert!(policy.allows("127.0.0.1".parse().unwrap()));
        assert!(!policy.allows("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn url_syntax_checks() {
        let policy = strict();
        assert!(policy.check_url_syntax("ftp://example.com").is_err());
        assert!(
            policy
                .check_url_syntax("http://user:pw@example.com")
                .is_err()
        );
        assert!(
            policy
                .check_url_syntax("http://169.254.169.254/latest")
                .is_err()
        );
        assert!(
            policy
                .check_url_syntax("http://[::ffff:127.0.0.1]:80/")
                .is_err()
        );
        assert!(
            policy
                .check_url_syntax("https://qyapi.weixin.qq.com/cgi-bin")
                .is_ok()
        );
    }

    #[tokio::test]
    async fn names_are_judged_by_what_they_resolve_to() {
        let policy = strict();
        let refused = policy.check_url("http://localhost:9/").await.unwrap_err();
        assert!(
            refused.0.contains("127.0.0.1") || refused.0.contains("::1"),
            "{refused}"
        );
        assert!(
            policy
                .check_url("http://no-such-host.invalid/")
                .await
                .is_err(),
            "unresolvable names are refused"
        );
        assert!(
            OutboundPolicy::permissive()
                .check_url("http://localhost:9/")
                .await
                .is_ok()
        );
    }
}
