//! A/B content variants: a broadcast may carry 2–5 contents with split percentages. Each
//! receiver's variant is chosen from a stable hash of the task and its WeChat id, so a contact
//! gets the same variant in every run and on every retry. With a test phase, only a sample of
//! the audience gets the variants first; the rest wait (`variant = "?"`, not due before the
//! decision time) until the sample has settled, then all get the variant with the best reply
//! rate (or the one an operator picks).

use chrono::{NaiveDateTime, TimeDelta};
use entity::{
    message_receivers, message_task_runs, message_tasks,
    states::{ReceiverStatus, TaskType},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Context, ServiceError, ServiceResult, validate::Violations};

/// Variant keys in the order the variants are given.
pub const KEYS: [&str; 5] = ["A", "B", "C", "D", "E"];
/// The variant of a receiver held back for the test's winner.
pub const HOLD: &str = "?";

/// One content of an A/B broadcast: a template (with its variables) or inline content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// What the console calls it (e.g. 短文案); the key (`A`…`E`) follows the order given.
    #[schema(max_length = 50)]
    pub name: Option<String>,
    /// Percent of the audience (or of the test sample) that gets it; the weights add up to 100.
    #[schema(minimum = 1, maximum = 99)]
    pub weight: u8,
    pub template_id: Option<i64>,
    #[schema(max_length = 16384)]
    pub content: Option<String>,
    /// Values of the template's declared variables.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

/// Send the variants to a sample first, then the winner by reply rate to everyone else.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantTest {
    /// Percent of the audience in the test sample (5–50).
    #[schema(minimum = 5, maximum = 50)]
    pub sample_percent: u8,
    /// Minutes after the run starts before the winner is chosen (10 minutes to 7 days); the
    /// choice also waits until every sample receiver is settled.
    #[schema(minimum = 10, maximum = 10080)]
    pub decide_after_minutes: u32,
}

/// Checks that need no database; templates and contents are checked like a task's own.
pub fn check(variants: &[Variant], test: Option<&VariantTest>, v: &mut Violations) {
    if !(2..=KEYS.len()).contains(&variants.len()) {
        v.add("variants", "give 2 to 5 variants");
    }
    let total: u32 = variants.iter().map(|x| u32::from(x.weight)).sum();
    if !variants.is_empty() && total != 100 {
        v.add(
            "variants",
            format!("the weights add up to {total}, not 100"),
        );
    }
    for (i, x) in variants.iter().enumerate() {
        if !(1..=99).contains(&x.weight) {
            v.add(format!("variants[{i}].weight"), "must be 1 to 99");
        }
        if x.name.as_ref().is_some_and(|n| n.chars().count() > 50) {
            v.add(
                format!("variants[{i}].name"),
                "must be at most 50 characters",
            );
        }
    }
    if let Some(t) = test {
        if !(5..=50).contains(&t.sample_percent) {
            v.add("variant_test.sample_percent", "must be 5 to 50");
        }
        if !(10..=10_080).contains(&t.decide_after_minutes) {
            v.add("variant_test.decide_after_minutes", "must be 10 to 10080");
        }
    }
}

/// FNV-1a: stable across builds and platforms (std's hasher is not), cheap, well spread.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A stable position in 0..10000 of a receiver for a task and a purpose.
fn bucket(task_id: i64, purpose: &str, wxid: &str) -> u64 {
    fnv1a(&[&task_id.to_le_bytes(), purpose.as_bytes(), wxid.as_bytes()]) % 10_000
}

/// How a run's receivers are split between the variants.
#[derive(Debug, Clone)]
pub struct Plan {
    task_id: i64,
    weights: Vec<u8>,
    test: Option<VariantTest>,
    /// When held receivers first become due (the decision time).
    hold_until: NaiveDateTime,
}

impl Plan {
    /// The plan of a task's run started at `started`; `None` without variants.
    pub fn of(task: &message_tasks::Model, started: NaiveDateTime) -> ServiceResult<Option<Self>> {
        let Some((variants, test)) = stored(task)? else {
            return Ok(None);
        };
        let minutes = test.map_or(0, |t| i64::from(t.decide_after_minutes));
        Ok(Some(Self {
            task_id: task.id,
            weights: variants.iter().map(|v| v.weight).collect(),
            test,
            hold_until: started + TimeDelta::minutes(minutes),
        }))
    }

    /// The receiver's variant and, when it is held for the test's winner, when it is due.
    pub fn assign(&self, wxid: &str) -> (String, Option<NaiveDateTime>) {
        if let Some(test) = self.test
            && bucket(self.task_id, "sample", wxid) >= u64::from(test.sample_percent) * 100
        {
            return (HOLD.to_owned(), Some(self.hold_until));
        }
        let mut position = bucket(self.task_id, "variant", wxid);
        for (key, weight) in KEYS.iter().zip(&self.weights) {
            let share = u64::from(*weight) * 100;
            if position < share {
                return ((*key).to_owned(), None);
            }
            position -= share;
        }
        (KEYS[0].to_owned(), None)
    }
}

/// A task's variants and test as stored, or `None` when it has none.
pub fn stored(
    task: &message_tasks::Model,
) -> ServiceResult<Option<(Vec<Variant>, Option<VariantTest>)>> {
    let unreadable =
        |why: String| ServiceError::Internal(anyhow::anyhow!("task {}: {why}", task.id));
    let variants: Option<Vec<Variant>> =
        super::spec::stored(task.variants.as_ref(), "variants").map_err(unreadable)?;
    let test: Option<VariantTest> =
        super::spec::stored(task.variant_test.as_ref(), "variant_test").map_err(unreadable)?;
    Ok(variants.filter(|v| !v.is_empty()).map(|v| (v, test)))
}

/// Sent and replied counts of a run's (or task's) receivers per variant.
pub async fn tallies<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    run_id: Option<i64>,
) -> ServiceResult<Vec<(String, i64, i64, i64)>> {
    let mut q = message_receivers::Entity::find()
        .filter(message_receivers::Column::TaskId.eq(task_id))
        .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Sent))
        .filter(message_receivers::Column::Variant.is_not_null());
    if let Some(run) = run_id {
        q = q.filter(message_receivers::Column::RunId.eq(run));
    }
    Ok(q.select_only()
        .column(message_receivers::Column::Variant)
        .column_as(message_receivers::Column::Id.count(), "sent")
        .column_as(message_receivers::Column::RepliedAt.count(), "replied")
        .column_as(message_receivers::Column::OptedOutAt.count(), "opt_outs")
        .group_by(message_receivers::Column::Variant)
        .into_tuple()
        .all(conn)
        .await?)
}

/// The best reply rate wins; equal rates go to the variant sent more, then to the earlier key.
pub fn best(tallies: &[(String, i64, i64, i64)], keys: usize) -> String {
    let rate = |sent: i64, replied: i64| super::outcomes::rate(replied, sent);
    KEYS.iter()
        .take(keys)
        .map(|key| {
            let (sent, replied) = tallies
                .iter()
                .find(|t| t.0 == *key)
                .map_or((0, 0), |t| (t.1, t.2));
            (*key, rate(sent, replied), sent)
        })
        .fold(None::<(&str, f64, i64)>, |best, this| match best {
            Some(b) if b.1 > this.1 || (b.1 == this.1 && b.2 >= this.2) => Some(b),
            _ => Some(this),
        })
        .map_or_else(|| KEYS[0].to_owned(), |b| b.0.to_owned())
}

/// Records `winner` for the run (only if none is recorded) and releases the held receivers to
/// it; returns the run's winner, whoever recorded it.
async fn settle(ctx: &Context, run_id: i64, winner: &str) -> ServiceResult<String> {
    let now = ctx.clock.now_db();
    message_task_runs::Entity::update_many()
        .col_expr(
            message_task_runs::Column::VariantWinner,
            Expr::value(winner),
        )
        .col_expr(
            message_task_runs::Column::VariantDecidedAt,
            Expr::value(now),
        )
        .filter(message_task_runs::Column::Id.eq(run_id))
        .filter(message_task_runs::Column::VariantWinner.is_null())
        .exec(&ctx.db)
        .await?;
    let run = message_task_runs::Entity::find_by_id(run_id)
        .one(&ctx.db)
        .await?
        .ok_or(ServiceError::NotFound("run"))?;
    let winner = run.variant_winner.unwrap_or_else(|| winner.to_owned());
    message_receivers::Entity::update_many()
        .col_expr(
            message_receivers::Column::Variant,
            Expr::value(winner.clone()),
        )
        .col_expr(
            message_receivers::Column::NextAttemptAt,
            Expr::value(Option::<NaiveDateTime>::None),
        )
        .filter(message_receivers::Column::RunId.eq(run_id))
        .filter(message_receivers::Column::Variant.eq(HOLD))
        .exec(&ctx.db)
        .await?;
    Ok(winner)
}

/// The run's winner: the recorded one, or chosen now when the decision time has come and the
/// sample has settled; `None` while the test is still running.
pub async fn decide(
    ctx: &Context,
    run: &message_task_runs::Model,
    task: &message_tasks::Model,
) -> ServiceResult<Option<String>> {
    if let Some(w) = &run.variant_winner {
        return Ok(Some(w.clone()));
    }
    let Some((variants, Some(test))) = stored(task)? else {
        // Held receivers without a test (the task changed under them): the first variant.
        return settle(ctx, run.id, KEYS[0]).await.map(Some);
    };
    let started = run.started_at.unwrap_or(run.created_at);
    if ctx.clock.now_db() < started + TimeDelta::minutes(i64::from(test.decide_after_minutes)) {
        return Ok(None);
    }
    let sample_open = message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::Id)
        .filter(message_receivers::Column::RunId.eq(run.id))
        .filter(message_receivers::Column::Variant.is_in(KEYS))
        .filter(
            message_receivers::Column::SendStatus
                .is_in([ReceiverStatus::Pending, ReceiverStatus::Claimed]),
        )
        .limit(1)
        .into_tuple::<i64>()
        .one(&ctx.db)
        .await?
        .is_some();
    if sample_open {
        return Ok(None);
    }
    let counts = tallies(&ctx.db, task.id, Some(run.id)).await?;
    let winner = best(&counts, variants.len());
    tracing::info!(task.id = task.id, run.id = run.id, %winner, "A/B test decided by reply rate");
    settle(ctx, run.id, &winner).await.map(Some)
}

/// An operator picks the winner of a run's test before (or instead of) the automatic choice.
pub async fn pick(
    ctx: &Context,
    task: &message_tasks::Model,
    run_id: i64,
    winner: &str,
) -> ServiceResult<String> {
    let Some((variants, test)) = stored(task)? else {
        return Err(ServiceError::conflict(
            "variant",
            "this task has no variants",
        ));
    };
    if test.is_none() {
        return Err(ServiceError::conflict(
            "variant",
            "this task splits its whole audience; it has no test to decide",
        ));
    }
    if !KEYS.iter().take(variants.len()).any(|k| *k == winner) {
        return Err(ServiceError::invalid(
            "variant",
            format!("must be one of {}", KEYS[..variants.len()].join(", ")),
        ));
    }
    let run = message_task_runs::Entity::find_by_id(run_id)
        .filter(message_task_runs::Column::TaskId.eq(task.id))
        .one(&ctx.db)
        .await?
        .ok_or_else(|| ServiceError::invalid("run_id", "no such run of this task"))?;
    if let Some(w) = run.variant_winner {
        return Err(ServiceError::conflict(
            "variant",
            format!("this run's winner is already {w}"),
        ));
    }
    // The automatic decision may have committed since the run was read: then it stands, and the
    // operator is told rather than shown a winner they did not pick.
    let settled = settle(ctx, run_id, winner).await?;
    if settled != winner {
        return Err(ServiceError::conflict(
            "variant",
            format!("this run's test chose {settled} meanwhile"),
        ));
    }
    Ok(settled)
}

/// One variant's results in a task's (or run's) outcomes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct VariantOutcome {
    /// `A`…`E`.
    pub key: String,
    pub name: Option<String>,
    pub weight: u8,
    /// Receivers the variant reached.
    pub sent: i64,
    pub replied: i64,
    pub reply_rate: f64,
    pub opt_outs: i64,
    /// The variant a test chose (or an operator picked) for the rest of the run.
    pub winner: bool,
}

/// Whether the leading variant's reply rate differs from the runner-up's by more than chance
/// (a two-sided two-proportion z-test).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Significance {
    pub leader: String,
    pub runner_up: String,
    pub z: f64,
    pub p_value: f64,
    /// `p < 0.05` with at least [`MIN_SENT_TO_COMPARE`] sends on each side.
    pub significant: bool,
    /// In words, for the console.
    pub note: String,
}

/// Fewer sends than this per variant are too few to compare.
pub const MIN_SENT_TO_COMPARE: i64 = 30;

/// The complementary error function (Abramowitz & Stegun 7.1.26, error below 1.5e-7).
fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let value = poly * (-x * x).exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

/// Compares the two best variants of `outcomes` by reply rate; `None` with fewer than two.
pub fn significance(outcomes: &[VariantOutcome]) -> Option<Significance> {
    let mut ranked: Vec<&VariantOutcome> = outcomes.iter().collect();
    ranked.sort_by(|a, b| {
        b.reply_rate
            .total_cmp(&a.reply_rate)
            .then(b.sent.cmp(&a.sent))
    });
    let (lead, next) = (ranked.first()?, ranked.get(1)?);
    let (n1, n2) = (lead.sent as f64, next.sent as f64);
    let pooled = (lead.replied + next.replied) as f64 / (n1 + n2).max(1.0);
    let spread = (pooled * (1.0 - pooled) * (1.0 / n1.max(1.0) + 1.0 / n2.max(1.0))).sqrt();
    let z = if spread > 0.0 {
        (lead.reply_rate - next.reply_rate) / spread
    } else {
        0.0
    };
    let p_value = erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0);
    let enough = lead.sent >= MIN_SENT_TO_COMPARE && next.sent >= MIN_SENT_TO_COMPARE;
    let significant = enough && p_value < 0.05;
    let points = (lead.reply_rate - next.reply_rate) * 100.0;
    let note = if !enough {
        format!(
            "too few sends to compare: at least {MIN_SENT_TO_COMPARE} per variant are needed \
             ({} {}, {} {})",
            lead.key, lead.sent, next.key, next.sent
        )
    } else if significant {
        format!(
            "{} leads {} by {points:.1} points of reply rate (p = {p_value:.3}): significant at 95%",
            lead.key, next.key
        )
    } else {
        format!(
            "{} leads {} by {points:.1} points (p = {p_value:.3}): not significant at 95%, \
             the difference may be chance",
            lead.key, next.key
        )
    };
    Some(Significance {
        leader: lead.key.clone(),
        runner_up: next.key.clone(),
        z,
        p_value,
        significant,
        note,
    })
}

/// Per-variant results of a task (or one run), in key order.
pub async fn outcomes<C: ConnectionTrait>(
    conn: &C,
    task: &message_tasks::Model,
    run_id: Option<i64>,
) -> ServiceResult<Vec<VariantOutcome>> {
    let Some((list, _)) = stored(task)? else {
        return Ok(Vec::new());
    };
    let counts = tallies(conn, task.id, run_id).await?;
    let mut winners = message_task_runs::Entity::find()
        .select_only()
        .column(message_task_runs::Column::VariantWinner)
        .filter(message_task_runs::Column::TaskId.eq(task.id))
        .filter(message_task_runs::Column::VariantWinner.is_not_null());
    if let Some(run) = run_id {
        winners = winners.filter(message_task_runs::Column::Id.eq(run));
    }
    let winners: Vec<Option<String>> = winners.into_tuple().all(conn).await?;
    Ok(KEYS
        .iter()
        .zip(list)
        .map(|(key, v)| {
            let (sent, replied, opt_outs) = counts
                .iter()
                .find(|t| t.0 == *key)
                .map_or((0, 0, 0), |t| (t.1, t.2, t.3));
            VariantOutcome {
                key: (*key).to_owned(),
                name: v.name,
                weight: v.weight,
                sent,
                replied,
                reply_rate: super::outcomes::rate(replied, sent),
                opt_outs,
                winner: winners.iter().flatten().any(|w| w == key),
            }
        })
        .collect())
}

/// Whether variants are allowed for this kind of task.
pub fn allowed(task_type: TaskType, customer_mass: bool) -> Result<(), &'static str> {
    if task_type == TaskType::Single {
        return Err("a single message has one receiver; variants need an audience");
    }
    if customer_mass {
        return Err(
            "a customer mass message is one text per member's confirmation; send variants directly",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(weights: Vec<u8>, test: Option<VariantTest>) -> Plan {
        Plan {
            task_id: 42,
            weights,
            test,
            hold_until: NaiveDateTime::default(),
        }
    }

    #[test]
    fn a_contact_always_gets_the_same_variant_and_the_split_follows_the_weights() {
        let p = plan(vec![70, 30], None);
        let mut a = 0;
        for i in 0..10_000 {
            let wxid = format!("wx{i}");
            let (variant, due) = p.assign(&wxid);
            assert_eq!(p.assign(&wxid).0, variant);
            assert!(due.is_none());
            if variant == "A" {
                a += 1;
            }
        }
        assert!(
            (6_700..7_300).contains(&a),
            "A got {a} of 10000 for a 70% weight"
        );
    }

    #[test]
    fn a_test_holds_back_all_but_the_sample() {
        let test = VariantTest {
            sample_percent: 20,
            decide_after_minutes: 60,
        };
        let p = plan(vec![50, 50], Some(test));
        let held = (0..10_000)
            .filter(|i| p.assign(&format!("wx{i}")).0 == HOLD)
            .count();
        assert!(
            (7_700..8_300).contains(&held),
            "{held} held of 10000 for a 20% sample"
        );
    }

    #[test]
    fn the_best_reply_rate_wins_and_ties_go_to_the_larger_sample() {
        let t = |k: &str, sent, replied| (k.to_owned(), sent, replied, 0);
        assert_eq!(best(&[t("A", 100, 5), t("B", 100, 9)], 2), "B");
        assert_eq!(best(&[t("A", 100, 10), t("B", 200, 20)], 2), "B");
        assert_eq!(best(&[t("A", 100, 10), t("B", 100, 10)], 2), "A");
        assert_eq!(best(&[], 3), "A");
    }

    #[test]
    fn weights_must_add_up_and_tests_stay_in_range() {
        let variant = |weight| Variant {
            name: None,
            weight,
            template_id: None,
            content: Some("hi".into()),
            variables: Map::new(),
        };
        let mut v = Violations::new();
        check(&[variant(50), variant(40)], None, &mut v);
        check(&[variant(100)], None, &mut v);
        check(
            &[variant(50), variant(50)],
            Some(&VariantTest {
                sample_percent: 80,
                decide_after_minutes: 1,
            }),
            &mut v,
        );
        let crate::ServiceError::Validation(errors) = v.finish().unwrap_err() else {
            panic!("a validation error")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"variants"));
        assert!(fields.contains(&"variants[0].weight"));
        assert!(fields.contains(&"variant_test.sample_percent"));
        assert!(fields.contains(&"variant_test.decide_after_minutes"));
    }
    fn outcome(key: &str, sent: i64, replied: i64) -> VariantOutcome {
        VariantOutcome {
            key: key.into(),
            name: None,
            weight: 50,
            sent,
            replied,
            reply_rate: replied as f64 / sent as f64,
            opt_outs: 0,
            winner: false,
        }
    }

    #[test]
    fn a_clear_lead_is_significant_and_a_small_one_is_not() {
        let clear = significance(&[outcome("A", 1000, 50), outcome("B", 1000, 100)]).unwrap();
        assert_eq!(clear.leader, "B");
        assert!(clear.significant, "{clear:?}");
        assert!(clear.p_value < 0.001, "{clear:?}");
        let small = significance(&[outcome("A", 200, 20), outcome("B", 200, 22)]).unwrap();
        assert!(!small.significant, "{small:?}");
        assert!(small.p_value > 0.5, "{small:?}");
        let few = significance(&[outcome("A", 10, 0), outcome("B", 10, 9)]).unwrap();
        assert!(!few.significant && few.note.contains("too few"), "{few:?}");
        assert!(significance(&[outcome("A", 10, 1)]).is_none());
    }

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
    }
}
