//! Migrations roll back and re-apply on every backend; housekeeping removes what has expired.

use chrono::{Duration, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::{ADMIN_PASSWORD, Backend, TestApp, fresh_database};

#[tokio::test]
async fn migrations_roll_back_and_reapply() {
    let url = fresh_database(Backend::from_env()).await;
    let db = sea_orm::Database::connect(&url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let all = Migrator::get_applied_migrations(&db).await.unwrap().len();
    assert_eq!(all, Migrator::migrations().len());
    assert_eq!(
        entity::permissions::Entity::find()
            .count(&db)
            .await
            .unwrap() as usize,
        service::rbac::perm::ALL.len(),
        "the migrations seed every permission the code names"
    );
    Migrator::down(&db, None).await.unwrap();
    assert_eq!(
        Migrator::get_pending_migrations(&db).await.unwrap().len(),
        all
    );
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(entity::roles::Entity::find().count(&db).await.unwrap(), 6);
}

#[tokio::test]
async fn housekeeping_removes_expired_sessions_only() {
    let app = TestApp::spawn().await;
    app.admin_token().await;
    let keep = app.admin_token().await;
    let sessions = entity::user_sessions::Entity::find()
        .all(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    let long_ago = (Utc::now() - Duration::days(3)).naive_utc();
    entity::user_sessions::Entity::update(entity::user_sessions::ActiveModel {
        id: Set(sessions[0].id),
        absolute_expires_at: Set(long_ago),
        ..Default::default()
    })
    .exec(&app.ctx.db)
    .await
    .unwrap();
    let swept = service::housekeeping::sweep(&app.ctx).await.unwrap();
    assert_eq!(swept.sessions, 1);
    let left = entity::user_sessions::Entity::find()
        .filter(entity::user_sessions::Column::Id.eq(sessions[1].id))
        .count(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(left, 1);
    assert_eq!(
        app.get("/api/v1/auth/me", &keep).await.status(),
        reqwest::StatusCode::OK
    );
    let _ = ADMIN_PASSWORD;
}
