//! `wework migrate up|down|status`.

use clap::Subcommand;
use migration::{Migrator, MigratorTrait};
use service::config::Settings;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Apply pending migrations (all, or `--steps N`).
    Up {
        #[arg(long)]
        steps: Option<u32>,
    },
    /// Roll back the last migration (or `--steps N`).
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

pub async fn run(settings: Settings, action: Action) -> anyhow::Result<()> {
    let db = service::db::connect(&settings.database).await?;
    match action {
        Action::Up { steps } => {
            migration::up_locked::<Migrator>(&db, steps).await?;
            println!("migrations applied");
        }
        Action::Down { steps } => {
            Migrator::down(&db, Some(steps)).await?;
            println!("rolled back {steps} migration(s)");
        }
        Action::Status => {
            for m in Migrator::get_migration_with_status(&db).await? {
                println!("{:<40} {:?}", m.name(), m.status());
            }
        }
    }
    Ok(())
}
