//! Small builders shared by the migrations so each table reads as a list of its columns.

use sea_orm_migration::{prelude::*, schema as col};

/// `CREATE TABLE IF NOT EXISTS name (id BIGINT AUTO_INCREMENT PRIMARY KEY, …)`.
pub fn table(name: &'static str) -> TableCreateStatement {
    Table::create()
        .table(name)
        .if_not_exists()
        .col(col::big_pk_auto("id"))
        .to_owned()
}

/// Appends `created_at` and `updated_at`; the application always writes UTC values itself.
pub fn with_timestamps(mut t: TableCreateStatement) -> TableCreateStatement {
    t.col(col::date_time("created_at"))
        .col(col::date_time("updated_at"));
    t
}

/// A foreign key from `table.column` to `target.id`.
pub fn fk(
    table: &'static str,
    column: &'static str,
    target: &'static str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(target, "id")
        .on_delete(on_delete)
        .to_owned()
}

/// Creates a table followed by its indexes: `(name suffix, columns, unique)`.
pub async fn create(
    manager: &SchemaManager<'_>,
    table: TableCreateStatement,
    name: &'static str,
    indexes: &[(&str, &[&'static str], bool)],
) -> Result<(), DbErr> {
    let mut table = table;
    if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::MySql {
        // Chinese names and messages need utf8mb4 whatever the database's default charset is.
        table.character_set("utf8mb4").collate("utf8mb4_unicode_ci");
    }
    manager.create_table(table).await?;
    for (suffix, columns, unique) in indexes {
        let mut index = Index::create();
        index
            .name(format!(
                "{}_{name}_{suffix}",
                if *unique { "uk" } else { "idx" }
            ))
            .table(name)
            .if_not_exists();
        for column in *columns {
            index.col(*column);
        }
        if *unique {
            index.unique();
        }
        manager.create_index(index.to_owned()).await?;
    }
    Ok(())
}

/// Drops the given tables in order (children first).
pub async fn drop_all(manager: &SchemaManager<'_>, tables: &[&'static str]) -> Result<(), DbErr> {
    for name in tables {
        manager
            .drop_table(Table::drop().table(*name).if_exists().to_owned())
            .await?;
    }
    Ok(())
}
