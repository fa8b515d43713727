//! The `wework` binary's library: start-up shared by the CLI and the integration tests.

pub mod cli;
pub mod telemetry;

use migration::{Migrator, MigratorTrait};
use service::{
    Context,
    bootstrap::{self, Bootstrap},
    config::Settings,
};

/// Connects, migrates (when `database.auto_migrate`), checks the permission catalogue and makes
/// sure an administrator exists. Everything `serve`, `api` and `worker` need before they start.
pub async fn prepare(
    settings: Settings,
    admin_password: Option<String>,
) -> anyhow::Result<(Context, Bootstrap)> {
    let db = service::db::connect(&settings.database).await?;
    if settings.database.auto_migrate {
        migration::up_locked::<Migrator>(&db, None)
            .await
            .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))?;
    } else {
        let pending = Migrator::get_pending_migrations(&db).await?;
        if !pending.is_empty() {
            anyhow::bail!(
                "{} migration(s) pending and `database.auto_migrate` is off: run `wework migrate up`",
                pending.len()
            );
        }
    }
    let ctx = Context::with_db(
        settings,
        db,
        std::sync::Arc::new(service::clock::SystemClock),
    )
    .await?;
    service::rbac::verify_catalogue(&ctx).await?;
    let bootstrap = bootstrap::ensure_admin(&ctx, admin_password).await?;
    Ok((ctx, bootstrap))
}

/// Tells the operator, once, how to sign in for the first time.
pub fn announce(bootstrap: &Bootstrap) {
    match bootstrap {
        Bootstrap::Existing => {}
        Bootstrap::CreatedWithGivenPassword => {
            println!(
                "First start: created user `admin` with the password from WEWORK_ADMIN_PASSWORD."
            );
        }
        Bootstrap::CreatedWithGeneratedPassword(password) => {
            println!("================================================================");
            println!(" First start: created user `admin` with password: {password}");
            println!(" It is shown only now. Change it after signing in.");
            println!("================================================================");
        }
    }
}
