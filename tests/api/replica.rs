//! A read replica (`database.read_url`): lists and reports read it, writes and the reads that
//! must see them (the record just created, the caller's session) go to `database.url`.

use migration::{Migrator, MigratorTrait};
use reqwest::StatusCode;
use serde_json::json;
use service::{pagination::Page, tasks::TaskView};

use crate::helpers::{Backend, TestApp, fresh_database};

#[tokio::test]
async fn lists_read_the_replica_and_writes_and_their_reads_go_to_the_primary() {
    // A replica that has the schema but not yet the rows, as one lagging behind would.
    let replica = fresh_database(Backend::from_env()).await;
    let conn = sea_orm::Database::connect(&replica).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    conn.close().await.unwrap();
    let app = TestApp::spawn_with(&format!("[database]\nread_url = \"{replica}\"\n")).await;
    let admin = app.admin_token().await;
    let task: TaskView = app
        .post_as(
            "/api/v1/tasks",
            &admin,
            json!({ "name": "副本", "task_type": "broadcast", "content": "x",
                    "audience": { "filter": { "q": "无人" } }, "scheduled_time": "2099-01-01T00:00:00Z" }),
        )
        .await;
    let read_back: TaskView = app
        .get_as(&format!("/api/v1/tasks/{}", task.id), &admin)
        .await;
    assert_eq!(read_back.id, task.id, "a single read sees the write");
    let listed: Page<TaskView> = app.get_as("/api/v1/tasks", &admin).await;
    assert!(
        listed.items.is_empty(),
        "the list is the replica's, which has not caught up: {:?}",
        listed.items
    );
    let outcomes = app
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/tasks/{}/outcomes", task.id),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        outcomes.status(),
        StatusCode::OK,
        "the report reads the replica's counts"
    );
}
