//! Metrics targets: InfluxDB 2 through the `influxdb2` crate (org, bucket, token — also what
//! VictoriaMetrics and InfluxDB 3 accept), and InfluxDB 1.x through its `/write` endpoint.

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

use super::{
    point::{Point, to_lines},
    shipper::Target,
};
use crate::config::InfluxSettings;

pub enum InfluxTarget {
    V2 {
        client: influxdb2::Client,
        org: String,
        bucket: String,
    },
    V1 {
        http: reqwest::Client,
        write_url: String,
        credentials: Option<(String, SecretString)>,
    },
}

impl InfluxTarget {
    pub fn new(settings: &InfluxSettings) -> anyhow::Result<Self> {
        let url = settings.url.trim_end_matches('/');
        match settings.api.as_str() {
            "v2" => Ok(Self::V2 {
                client: influxdb2::ClientBuilder::new(
                    url,
                    &settings.org,
                    settings.token.expose_secret(),
                )
                .build()
                .context("building the InfluxDB client")?,
                org: settings.org.clone(),
                bucket: settings.bucket.clone(),
            }),
            _ => {
                let mut write_url = reqwest::Url::parse(&format!("{url}/write"))
                    .context("parsing `influxdb.url`")?;
                write_url
                    .query_pairs_mut()
                    .append_pair("db", &settings.database)
                    .append_pair("precision", "ns");
                Ok(Self::V1 {
                    http: reqwest::Client::builder()
                        .build()
                        .context("building the InfluxDB client")?,
                    write_url: write_url.to_string(),
                    credentials: (!settings.username.is_empty())
                        .then(|| (settings.username.clone(), settings.password.clone())),
                })
            }
        }
    }
}

#[async_trait::async_trait]
impl Target for InfluxTarget {
    type Item = Point;

    fn name(&self) -> &'static str {
        match self {
            Self::V2 { .. } => "influxdb2",
            Self::V1 { .. } => "influxdb1",
        }
    }

    fn encode(&self, items: &[Point]) -> Vec<u8> {
        to_lines(items).into_bytes()
    }

    async fn send(&self, body: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Self::V2 {
                client,
                org,
                bucket,
            } => client
                .write_line_protocol(org, bucket, body)
                .await
                .map_err(|e| anyhow::anyhow!("InfluxDB write: {e}")),
            Self::V1 {
                http,
                write_url,
                credentials,
            } => {
                let mut request = http.post(write_url).body(body);
                if let Some((user, password)) = credentials {
                    request = request.basic_auth(user, Some(password.expose_secret()));
                }
                let response = request.send().await.context("InfluxDB write")?;
                let status = response.status();
                anyhow::ensure!(
                    status.is_success(),
                    "InfluxDB write answered {status}: {}",
                    response.text().await.unwrap_or_default()
                );
                Ok(())
            }
        }
    }
}
