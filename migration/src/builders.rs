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

/// Adds permissions `(name, display name)` of `module`, sorted from `first_sort_order`.
pub async fn add_permissions(
    manager: &SchemaManager<'_>,
    module: &str,
    first_sort_order: i32,
    permissions: &[(&str, &str)],
) -> Result<(), DbErr> {
    let now = chrono::Utc::now().naive_utc();
    let mut insert = Query::insert();
    insert.into_table("permissions").columns([
        "name",
        "display_name",
        "module",
        "resource",
        "action",
        "sort_order",
        "created_at",
    ]);
    for (order, (name, display)) in (first_sort_order..).zip(permissions) {
        let (resource, action) = name.split_once(':').unwrap_or((name, ""));
        insert
            .values([
                (*name).into(),
                (*display).into(),
                module.into(),
                resource.into(),
                action.into(),
                order.into(),
                now.into(),
            ])
            .map_err(|e| DbErr::Custom(e.to_string()))?;
    }
    manager.exec_stmt(insert).await.map(|_| ())
}

/// Grants each role its permissions (`INSERT … SELECT`: a database whose operators deleted a
/// built-in role just skips it).
pub async fn grant_to_roles(
    manager: &SchemaManager<'_>,
    grants: &[(&str, &[&str])],
) -> Result<(), DbErr> {
    let now = chrono::Utc::now().naive_utc();
    for (role, names) in grants {
        let select = Query::select()
            .expr(Expr::col(("r", "id")))
            .expr(Expr::col(("p", "id")))
            .expr(Expr::val(now))
            .from_as("roles", "r")
            .from_as("permissions", "p")
            .and_where(Expr::col(("r", "name")).eq(*role))
            .and_where(Expr::col(("p", "name")).is_in(names.iter().copied()))
            .to_owned();
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("role_permissions")
                    .columns(["role_id", "permission_id", "created_at"])
                    .select_from(select)
                    .map_err(|e| DbErr::Custom(e.to_string()))?
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Removes permissions by name, and every grant of them.
pub async fn remove_permissions(
    manager: &SchemaManager<'_>,
    permissions: &[(&str, &str)],
) -> Result<(), DbErr> {
    let names: Vec<&str> = permissions.iter().map(|(n, _)| *n).collect();
    let ids = Query::select()
        .column("id")
        .from("permissions")
        .and_where(Expr::col("name").is_in(names.clone()))
        .to_owned();
    manager
        .exec_stmt(
            Query::delete()
                .from_table("role_permissions")
                .and_where(Expr::col("permission_id").in_subquery(ids))
                .to_owned(),
        )
        .await?;
    manager
        .exec_stmt(
            Query::delete()
                .from_table("permissions")
                .and_where(Expr::col("name").is_in(names))
                .to_owned(),
        )
        .await
        .map(|_| ())
}

/// Adds columns to a table, one statement each: SQLite alters a table one change at a time.
pub async fn add_columns(
    manager: &SchemaManager<'_>,
    table: &'static str,
    columns: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    for mut column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Drops columns from a table, one statement each.
pub async fn drop_columns(
    manager: &SchemaManager<'_>,
    table: &'static str,
    columns: &[&'static str],
) -> Result<(), DbErr> {
    for column in columns {
        manager
            .alter_table(Table::alter().table(table).drop_column(*column).to_owned())
            .await?;
    }
    Ok(())
}
