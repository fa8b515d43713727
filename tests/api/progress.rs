//! A task's live progress over server-sent events: the stream follows the task to its end,
//! ends with the session, and is capped per user — across API processes when Redis is shared.

use std::time::Duration;

use entity::states::TaskStatus;
use reqwest::StatusCode;
use serde_json::json;
use service::tasks::TaskView;

use crate::{
    helpers::{TestApp, TestSim, problem},
    tasks::{create, ready, slow_task},
};

#[tokio::test]
async fn progress_streams_as_server_sent_events() {
    let (_sim, app, agent) = ready("").await;
    let admin = app.admin_token().await;
    let task = create(&app, json!({ "name": "进度", "task_type": "broadcast", "content": "x", "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": 6000 })).await;
    let id = task.id;
    let response = app
        .get(&format!("/api/v1/tasks/{id}/progress"), &admin)
        .await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(90), response.text())
        .await
        .unwrap()
        .unwrap();
    let last = text.lines().rfind(|l| l.starts_with("data: ")).unwrap();
    let view: TaskView = serde_json::from_str(&last["data: ".len()..]).unwrap();
    assert_eq!(
        view.status,
        TaskStatus::Completed,
        "the stream ends with the finished task"
    );
    assert!(text.matches("event: progress").count() >= 2);
}

/// Whether `response`'s body ends within `secs` seconds (frames keep arriving meanwhile).
async fn ends_within(response: &mut reqwest::Response, secs: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => {}
            Ok(_) => return true,
        }
    }
}

/// A task that keeps running (one send a minute) and a `tasks:read` user holding the maximum
/// of progress streams on it: `(sim, app, progress path, token, streams)`.
async fn streams_at_the_cap() -> (TestSim, TestApp, String, String, Vec<reqwest::Response>) {
    let (sim, app, agent) = ready("").await;
    let task = slow_task(&app, agent, 1).await;
    let id = task.id;
    app.wait_for_as(&format!("/api/v1/tasks/{id}"), 30, |t: &TaskView| {
        t.status == TaskStatus::Running
    })
    .await;
    let (_, token) = app.user_with(&["tasks:read"]).await;
    let path = format!("/api/v1/tasks/{id}/progress");
    let mut streams = Vec::new();
    for _ in 0..8 {
        let stream = app.get(&path, &token).await;
        assert_eq!(stream.status(), StatusCode::OK);
        streams.push(stream);
    }
    (sim, app, path, token, streams)
}

#[tokio::test]
async fn progress_streams_end_with_the_session_and_are_capped_per_user() {
    let (_sim, app, path, token, mut streams) = streams_at_the_cap().await;
    let admin = app.admin_token().await;
    problem(app.get(&path, &token).await, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        app.get(&path, &admin).await.status(),
        StatusCode::OK,
        "another user has slots of their own"
    );
    assert!(
        !ends_within(&mut streams[0], 3).await,
        "the task is still running"
    );

    let out = app.post("/api/v1/auth/logout", &token, json!({})).await;
    assert!(out.status().is_success());
    for stream in &mut streams {
        assert!(
            ends_within(stream, 10).await,
            "a signed-out session stops streaming"
        );
    }
}

/// With Redis the stream cap holds across `wework api` processes (a slot freed on one is
/// usable on another at once); without it each process applies the cap on its own.
#[tokio::test]
async fn the_stream_cap_spans_api_processes_when_redis_is_configured() {
    let (_sim, app, path, token, mut streams) = streams_at_the_cap().await;
    let config = crate::helpers::processes::ConfigFile::of(&app);
    let (mut other, base) = crate::helpers::processes::spawn_api(&config).await;
    let from_other = || {
        app.client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
    };
    let ninth = from_other().await.unwrap();
    if std::env::var("WEWORK_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty()) {
        assert_eq!(
            ninth.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "the cap spans processes"
        );
        drop(streams.pop());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let again = from_other().await.unwrap();
            if again.status() == StatusCode::OK {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a closed stream gives its slot back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        assert_eq!(
            ninth.status(),
            StatusCode::OK,
            "without Redis each process has its own cap"
        );
    }
    crate::helpers::processes::kill(&mut other).await;
}
