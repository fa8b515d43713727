//! The health view: overview counts and metric series from SQL, the same before and after raw
//! heartbeat samples are folded into five-minute rollups.

use chrono::{TimeDelta, Utc};

use entity::instance_monitors;
use reqwest::StatusCode;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use service::monitoring::{Overview, Series};

use crate::helpers::{TestApp, TestSim, fields, problem};

#[tokio::test]
async fn series_are_served_from_raw_samples_and_rollups_alike() {
    let sim = TestSim::small();
    let app = TestApp::spawn().await;
    let (agent, _) = app.register_sim(&sim, 60).await;
    let admin = app.admin_token().await;

    // Three days of samples every minute, latency 10 ms … 59 ms, starting at half past an hour
    // so the answer's shape does not depend on the clock: a half hour, 71 whole hours, a half.
    let hour = Utc::now().timestamp().div_euclid(3600) * 3600;
    let start = chrono::DateTime::from_timestamp(hour, 0).unwrap() - TimeDelta::hours(73)
        + TimeDelta::minutes(30);
    let now = start + TimeDelta::hours(72);
    let rows: Vec<instance_monitors::ActiveModel> = (0..72 * 60)
        .map(|i| instance_monitors::ActiveModel {
            instance_id: Set(agent),
            metric_name: Set("heartbeat_latency_ms".into()),
            metric_value: Set(f64::from(10 + i % 50)),
            metric_unit: Set(Some("ms".into())),
            bucket_seconds: Set(0),
            sample_count: Set(1),
            collected_at: Set((start + TimeDelta::minutes(i64::from(i))).naive_utc()),
            ..Default::default()
        })
        .collect();
    for part in rows.chunks(50) {
        instance_monitors::Entity::insert_many(part.to_vec())
            .exec_without_returning(&app.ctx.db)
            .await
            .unwrap();
    }
    let path = format!(
        "/api/v1/monitoring/series?metric=heartbeat_latency_ms&instance_id={agent}&step=3600&from={}&to={}",
        urlencode(&start.to_rfc3339()),
        urlencode(&now.to_rfc3339())
    );
    let before: Series = app.get_as(&path, &admin).await;
    assert_eq!(before.points.len(), 73, "{before:?}");
    assert_eq!(before.points[0].samples, 30);
    assert_eq!(before.points[72].samples, 30);
    let first = &before.points[1];
    assert_eq!(first.samples, 60);
    assert_eq!(first.min, 10.0);
    assert_eq!(first.max, 59.0);

    // Housekeeping folds samples older than instances.raw_metrics_hours (48) into rollups.
    let mut folded = 0;
    loop {
        let n = service::monitoring::roll_up(&app.ctx, 1000).await.unwrap();
        folded += n;
        if n == 0 {
            break;
        }
    }
    assert!(folded >= 23 * 60, "a day of raw samples folded: {folded}");
    let raw_left = instance_monitors::Entity::find()
        .filter(instance_monitors::Column::InstanceId.eq(agent))
        .filter(instance_monitors::Column::BucketSeconds.eq(0))
        .count(&app.ctx.db)
        .await
        .unwrap();
    assert!(raw_left <= 49 * 60, "{raw_left}");
    let after: Series = app.get_as(&path, &admin).await;
    let points = |v: &Series| -> Vec<(chrono::DateTime<Utc>, f64, i64)> {
        v.points
            .iter()
            .map(|p| (p.time, (p.avg * 1000.0).round() / 1000.0, p.samples))
            .collect()
    };
    assert_eq!(
        points(&after),
        points(&before),
        "rollups keep averages and sample counts"
    );

    let overview: Overview = app.get_as("/api/v1/monitoring/overview", &admin).await;
    assert_eq!(overview.instances_total, 2, "{overview:?}");

    let bad = app
        .get("/api/v1/monitoring/series?metric=cpu&step=5", &admin)
        .await;
    let body = problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fields(&body), vec!["metric", "step"]);
    let per_account = app
        .get(
            "/api/v1/monitoring/series?metric=heartbeat_latency_ms&account_id=1",
            &admin,
        )
        .await;
    let body = problem(per_account, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fields(&body), vec!["account_id"]);
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
