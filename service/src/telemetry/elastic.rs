//! Logs in Elasticsearch (8.x; OpenSearch speaks the same subset) through the `elasticsearch`
//! crate: daily indices `{prefix}-{kind}-YYYY.MM.DD` under one index template, `_bulk` with the
//! document's own id (a replayed batch replaces itself), searches with bool queries, retention by
//! deleting whole daily indices (works without ILM/ISM).

use std::{sync::atomic::AtomicBool, time::Duration};

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use elasticsearch::{
    Elasticsearch,
    auth::Credentials,
    http::{
        Method,
        headers::{CONTENT_TYPE, HeaderMap, HeaderValue},
        transport::{SingleNodeConnectionPool, TransportBuilder},
    },
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{
    logs::{LogDoc, LogKind},
    shipper::Target,
};
use crate::config::ElasticSettings;

pub struct ElasticStore {
    client: Elasticsearch,
    prefix: String,
    analyzer: String,
    template_ready: AtomicBool,
}

impl std::fmt::Debug for ElasticStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl ElasticStore {
    pub fn new(settings: &ElasticSettings) -> anyhow::Result<Self> {
        let url = elasticsearch::http::Url::parse(&settings.url)
            .context("parsing `elasticsearch.url`")?;
        let mut transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(Duration::from_secs(30))
            .disable_proxy();
        if !settings.api_key.expose_secret().is_empty() {
            transport = transport.auth(Credentials::EncodedApiKey(
                settings.api_key.expose_secret().to_owned(),
            ));
        } else if !settings.username.is_empty() {
            transport = transport.auth(Credentials::Basic(
                settings.username.clone(),
                settings.password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            client: Elasticsearch::new(
                transport
                    .build()
                    .context("building the Elasticsearch client")?,
            ),
            prefix: settings.index_prefix.clone(),
            analyzer: settings.analyzer.clone(),
            template_ready: AtomicBool::new(false),
        })
    }

    pub fn index_for(&self, kind: LogKind, day: NaiveDate) -> String {
        format!(
            "{}-{}-{}",
            self.prefix,
            kind.as_str(),
            day.format("%Y.%m.%d")
        )
    }

    /// Every log index, whatever the kind and day.
    pub fn all_indices(&self) -> String {
        format!("{}-*", self.prefix)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        ndjson: bool,
    ) -> anyhow::Result<Value> {
        let mut headers = HeaderMap::new();
        let content_type = if ndjson {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        let response = self
            .client
            .send(method, path, headers, None::<&()>, body, None)
            .await
            .with_context(|| format!("Elasticsearch {path}"))?;
        let status = response.status_code();
        let text = response
            .text()
            .await
            .context("reading the Elasticsearch answer")?;
        anyhow::ensure!(
            status.is_success(),
            "Elasticsearch {path} answered {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Installs the index template (idempotent): typed fields, `message` as analysed text so
    /// Chinese is searchable (`standard` splits CJK by character; set `elasticsearch.analyzer`
    /// to e.g. `ik_max_word` or `smartcn` where those plugins are installed).
    pub async fn ensure_template(&self) -> anyhow::Result<()> {
        if self
            .template_ready
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        let keyword = json!({ "type": "keyword" });
        let template = json!({
            "index_patterns": [self.all_indices()],
            "priority": 100,
            "template": {
                "settings": { "number_of_shards": 1 },
                "mappings": {
                    "dynamic": false,
                    "properties": {
                        "@timestamp": { "type": "date" },
                        "id": keyword, "kind": keyword, "level": keyword, "service": keyword,
                        "module": keyword, "trace_id": keyword, "ip": keyword, "method": keyword,
                        "user_id": { "type": "long" }, "instance_id": { "type": "long" },
                        "status": { "type": "integer" }, "duration_ms": { "type": "integer" },
                        "audit_id": { "type": "long" },
                        "message": { "type": "text", "analyzer": self.analyzer },
                        "path": { "type": "text", "analyzer": "standard",
                                  "fields": { "raw": { "type": "keyword", "ignore_above": 512 } } },
                        "user_agent": { "type": "keyword", "ignore_above": 512 },
                        "context": { "type": "object", "enabled": false }
                    }
                }
            }
        });
        self.call(
            Method::Put,
            &format!("/_index_template/{}-logs", self.prefix),
            Some(serde_json::to_vec(&template)?),
            false,
        )
        .await?;
        self.template_ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub async fn search(&self, body: Value) -> anyhow::Result<Value> {
        self.call(
            Method::Post,
            &format!(
                "/{}/_search?ignore_unavailable=true&allow_no_indices=true",
                self.all_indices()
            ),
            Some(serde_json::to_vec(&body)?),
            false,
        )
        .await
    }

    /// The highest `audit_id` copied so far (0 when none): where audit shipping resumes.
    pub async fn highest_audit_id(&self) -> anyhow::Result<i64> {
        self.ensure_template().await?;
        let answer = self
            .search(json!({
                "size": 1,
                "query": { "term": { "kind": "audit" } },
                "sort": [{ "audit_id": { "order": "desc" } }],
                "_source": ["audit_id"],
            }))
            .await?;
        Ok(answer["hits"]["hits"][0]["_source"]["audit_id"]
            .as_i64()
            .unwrap_or(0))
    }

    /// Makes what was indexed so far searchable (tests, and right before a search that must
    /// see a just-written line).
    pub async fn refresh(&self) -> anyhow::Result<()> {
        self.call(
            Method::Post,
            &format!(
                "/{}/_refresh?ignore_unavailable=true&allow_no_indices=true",
                self.all_indices()
            ),
            None,
            false,
        )
        .await
        .map(|_| ())
    }

    /// Deletes daily indices older than `days`; returns their names.
    pub async fn delete_older_than(&self, days: i64) -> anyhow::Result<Vec<String>> {
        let listed = self
            .call(
                Method::Get,
                &format!("/_cat/indices/{}?format=json&h=index", self.all_indices()),
                None,
                false,
            )
            .await?;
        let cutoff = Utc::now().date_naive() - chrono::Days::new(u64::try_from(days).unwrap_or(0));
        let mut deleted = Vec::new();
        for name in listed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["index"].as_str())
        {
            let day = name
                .rsplit('-')
                .next()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y.%m.%d").ok());
            if day.is_some_and(|d| d < cutoff) {
                self.call(Method::Delete, &format!("/{name}"), None, false)
                    .await?;
                deleted.push(name.to_owned());
            }
        }
        Ok(deleted)
    }
}

/// The shipper's view of the store: `_bulk` batches.
pub struct ElasticTarget(pub std::sync::Arc<ElasticStore>);

#[async_trait::async_trait]
impl Target for ElasticTarget {
    type Item = LogDoc;

    fn name(&self) -> &'static str {
        "elasticsearch"
    }

    fn encode(&self, items: &[LogDoc]) -> Vec<u8> {
        let mut body = Vec::new();
        for doc in items {
            let action = json!({ "index": {
                "_index": self.0.index_for(doc.kind, doc.timestamp.date_naive()),
                "_id": doc.id.to_string(),
            }});
            if serde_json::to_writer(&mut body, &action).is_ok() {
                body.push(b'\n');
                if serde_json::to_writer(&mut body, doc).is_ok() {
                    body.push(b'\n');
                }
            }
        }
        body
    }

    async fn send(&self, body: Vec<u8>) -> anyhow::Result<()> {
        self.0.ensure_template().await?;
        let answer = self
            .0
            .call(Method::Post, "/_bulk", Some(body), true)
            .await?;
        if answer["errors"] != Value::Bool(true) {
            return Ok(());
        }
        let statuses: Vec<(i64, String)> = answer["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let result = item.as_object()?.values().next()?;
                let status = result["status"].as_i64()?;
                (status >= 300).then(|| (status, result["error"].to_string()))
            })
            .collect();
        // Overload and server trouble heal: send the whole batch again later (ids make that
        // safe). A document the mapping refuses never will; it is reported and left out.
        if let Some((status, error)) = statuses.iter().find(|(s, _)| *s == 429 || *s >= 500) {
            anyhow::bail!("Elasticsearch bulk item answered {status}: {error}");
        }
        for (status, error) in statuses {
            tracing::warn!(status, error = %error, "Elasticsearch refused a log document");
        }
        Ok(())
    }
}
