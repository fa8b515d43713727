//! Secrets follow the destination they were given for. Whoever may edit an instance must not be
//! able to point it at a host of their own (`api_url`, or a proxy) and have the stored corp
//! secret, agent secret, robot key or proxy password delivered there. So a change of where an
//! instance connects — another origin (scheme, host, port) or another proxy — needs every stored
//! secret again in the same request, or `forget_secrets: true` to drop those not given.

use std::collections::BTreeSet;

use entity::{instance_configs, wework_instances};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::configs;
use crate::{ServiceResult, validate::Violations};

/// The part of a URL that decides who receives a request: scheme, host and port.
pub fn origin(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    Some(format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?
    ))
}

/// What the patch changes about where requests go.
pub struct Move<'a> {
    pub new_api_url: Option<&'a str>,
    pub new_proxy_host: Option<Option<&'a str>>,
    pub new_proxy_port: Option<Option<i32>>,
}

impl Move<'_> {
    /// Whether requests would go somewhere else than `current` sends them.
    pub fn changes(&self, current: &wework_instances::Model) -> bool {
        let api = self
            .new_api_url
            .is_some_and(|url| origin(url) != current.api_url.as_deref().and_then(origin));
        let host = self.new_proxy_host.is_some_and(|host| {
            host.filter(|h| !h.is_empty()).map(str::to_ascii_lowercase)
                != current.proxy_host.as_deref().map(str::to_ascii_lowercase)
        });
        let port = self
            .new_proxy_port
            .is_some_and(|port| port != current.proxy_port);
        api || host || port
    }
}

/// The stored secrets of an instance that this change of destination would carry along
/// without being given again: config keys (as `config.<key>`) and `proxy_password`. Records a
/// violation for each unless `forget` allows dropping it (required keys can never be dropped).
/// Returns the config keys to delete.
pub async fn secrets_left_behind<C: ConnectionTrait>(
    conn: &C,
    current: &wework_instances::Model,
    given_config: &BTreeSet<&str>,
    proxy_password_given: bool,
    forget: bool,
    v: &mut Violations,
) -> ServiceResult<Vec<String>> {
    const WHY: &str = "changing where the instance connects (api_url, proxy_host, proxy_port) \
                       needs this secret again in the same request, or forget_secrets: true";
    let stored: Vec<String> = instance_configs::Entity::find()
        .filter(instance_configs::Column::InstanceId.eq(current.id))
        .filter(instance_configs::Column::IsEncrypted.eq(true))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| row.config_key)
        .filter(|key| !given_config.contains(key.as_str()))
        .collect();
    let mut forgotten = Vec::new();
    for key in stored {
        let required = configs::known(&key).is_some_and(|k| k.required);
        if required {
            v.add(format!("config.{key}"), format!("is required; {WHY}"));
        } else if forget {
            forgotten.push(key);
        } else {
            v.add(format!("config.{key}"), WHY);
        }
    }
    if current.proxy_password_encrypted.is_some() && !proxy_password_given && !forget {
        v.add("proxy_password", WHY);
    }
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_scheme_host_and_port() {
        assert_eq!(
            origin("https://QYAPI.weixin.qq.com/cgi-bin"),
            Some("https://qyapi.weixin.qq.com:443".into())
        );
        assert_eq!(
            origin("https://qyapi.weixin.qq.com:443/other/path"),
            origin("https://qyapi.weixin.qq.com")
        );
        assert_ne!(origin("http://agent:8080"), origin("http://agent:8081"));
        assert_ne!(origin("http://agent"), origin("https://agent"));
    }
}
