//! `wework secrets rotate-key`.

use clap::Subcommand;
use service::{config::Settings, crypto::sealer::Sealer};

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Re-seals every secret under a new master key (from WEWORK_NEW_MASTER_KEY, base64 of 32
    /// bytes, or generated and printed). Afterwards set `secrets.master_key` to the new key.
    RotateKey,
}

pub async fn run(settings: Settings, action: Action) -> anyhow::Result<()> {
    let (ctx, _) = crate::prepare(settings, None).await?;
    match action {
        Action::RotateKey => {
            let (key, generated) = match std::env::var("WEWORK_NEW_MASTER_KEY")
                .ok()
                .filter(|k| !k.is_empty())
            {
                Some(key) => (key, false),
                None => (Sealer::generate_key(), true),
            };
            let new = Sealer::from_base64(&key)
                .map_err(|e| anyhow::anyhow!("WEWORK_NEW_MASTER_KEY: {e}"))?;
            let rotated = service::secrets::rotate(&ctx, &new).await?;
            println!(
                "re-sealed {} instance secrets, {} proxy passwords, {} TOTP seeds and {} alert channels under key {}",
                rotated.instance_configs,
                rotated.proxy_passwords,
                rotated.totp_seeds,
                rotated.alert_channels,
                new.key_id()
            );
            if generated {
                println!(
                    "new master key (set it as secrets.master_key now; it is shown only once): {key}"
                );
            }
            println!(
                "restart every wework process with the new key: values sealed under the old key are gone"
            );
        }
    }
    Ok(())
}
