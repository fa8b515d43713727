//! `wework secrets rotate-key` and `wework secrets reseal`.

use clap::Subcommand;
use service::{config::Settings, crypto::sealer::Sealer, secrets::Rotated};

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Offline rotation: re-seals every secret under a new master key (from
    /// WEWORK_NEW_MASTER_KEY, base64 of 32 bytes, or generated and printed). Stop every other
    /// wework process first; afterwards set `secrets.master_key` to the new key.
    RotateKey,
    /// Rolling rotation's last step: re-seals every secret not yet under the configured
    /// `secrets.master_key`, opening older values with `secrets.previous_keys`. Safe while the
    /// API and workers run; rerun it until it reports nothing left, then drop the previous keys.
    Reseal,
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
                .map_err(|e| anyhow::anyhow!("WEWORK_NEW_MASTER_KEY: {e}"))?
                .opening_also(&ctx.sealer);
            let rotated = service::secrets::rotate(&ctx, &new).await?;
            report(&rotated, new.key_id());
            if generated {
                println!(
                    "new master key (set it as secrets.master_key now; it is shown only once): {key}"
                );
            }
            println!(
                "restart every wework process with the new key: values sealed under the old key are gone"
            );
        }
        Action::Reseal => {
            let rotated = service::secrets::rotate(&ctx, &ctx.sealer).await?;
            report(&rotated, ctx.sealer.key_id());
        }
    }
    Ok(())
}

fn report(rotated: &Rotated, key_id: &str) {
    println!(
        "re-sealed {} instance secrets, {} proxy passwords, {} TOTP seeds and {} alert channels under key {key_id}",
        rotated.instance_configs,
        rotated.proxy_passwords,
        rotated.totp_seeds,
        rotated.alert_channels,
    );
}
