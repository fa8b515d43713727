//! The parts of a task definition that are checked and stored as JSON: audience, quiet hours,
//! frequency cap, auto-pause, schedule.

use entity::states::ContactType;
use std::str::FromStr;

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::Violations;

pub use crate::serde_util::stored;

/// The settings dispatch obeys, read together from a task row.
#[derive(Debug, Clone, Default)]
pub struct TaskSettings {
    pub quiet_hours: Option<QuietHours>,
    pub frequency_cap: Option<FrequencyCap>,
    pub auto_pause: Option<AutoPause>,
}

impl TaskSettings {
    /// The settings, each also held to the checks its input passed when the task was created.
    pub fn of(task: &entity::message_tasks::Model) -> Result<Self, String> {
        let quiet_hours: Option<QuietHours> = stored(task.quiet_hours.as_ref(), "quiet_hours")?;
        let frequency_cap: Option<FrequencyCap> =
            stored(task.frequency_cap.as_ref(), "frequency_cap")?;
        let auto_pause: Option<AutoPause> = stored(task.auto_pause.as_ref(), "auto_pause")?;
        let mut v = Violations::new();
        if let Some(q) = &quiet_hours {
            q.check(&mut v);
        }
        if let Some(c) = &frequency_cap {
            c.check(&mut v);
        }
        if let Some(a) = &auto_pause {
            a.check(&mut v);
        }
        match v.finish() {
            Ok(()) => Ok(Self {
                quiet_hours,
                frequency_cap,
                auto_pause,
            }),
            Err(crate::ServiceError::Validation(errors)) => Err(format!(
                "the stored settings are invalid: {}",
                errors
                    .iter()
                    .map(|e| format!("{} {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            Err(other) => Err(other.to_string()),
        }
    }
}

/// Who receives a task: explicit contacts and groups, and/or every contact matching a filter,
/// and/or every group of some accounts or instances. Resolved into receivers when a run starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default)]
    pub contact_ids: Vec<i64>,
    #[serde(default)]
    pub group_ids: Vec<i64>,
    pub filter: Option<AudienceFilter>,
    /// Every contact a saved segment selects when the run starts (the segment is read live).
    pub segment_id: Option<i64>,
    pub group_filter: Option<GroupAudience>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceFilter {
    /// Substring of nickname, remark, wxid or phone.
    pub q: Option<String>,
    #[serde(default)]
    pub tags_any: Vec<i64>,
    #[serde(default)]
    pub tags_all: Vec<i64>,
    pub contact_type: Option<ContactType>,
    #[serde(default)]
    pub account_ids: Vec<i64>,
    #[serde(default)]
    pub instance_ids: Vec<i64>,
    /// Contacts still in at least one of these groups (matched by their WeChat id).
    #[serde(default)]
    pub group_ids: Vec<i64>,
    /// `true`: only contacts who opted out (broadcasts still skip them, with the reason);
    /// `false`: only the others.
    pub unsubscribed: Option<bool>,
    /// Contacts a task reached and who replied to it (or, with `replied: false`, did not).
    pub replied: Option<ReplyCondition>,
    /// Last chat with the contact at or after this time.
    pub last_chat_after: Option<DateTime<Utc>>,
    /// Last chat with the contact before this time (contacts never chatted with match too).
    pub last_chat_before: Option<DateTime<Utc>>,
}

/// Receivers of task `task_id` whom it reached (`sent`), and who replied to it within the
/// attribution window — or, with `replied: false`, who did not.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyCondition {
    pub task_id: i64,
    pub replied: bool,
}

/// Most ids one list of a filter may name.
pub const MAX_FILTER_IDS: usize = 50;

impl AudienceFilter {
    /// The checks that need no database, with fields under `prefix` (`audience.filter`, `filter`).
    pub fn check(&self, prefix: &str, v: &mut Violations) {
        for (name, ids) in [
            ("tags_any", &self.tags_any),
            ("tags_all", &self.tags_all),
            ("account_ids", &self.account_ids),
            ("instance_ids", &self.instance_ids),
            ("group_ids", &self.group_ids),
        ] {
            if ids.len() > MAX_FILTER_IDS {
                v.add(
                    format!("{prefix}.{name}"),
                    format!("at most {MAX_FILTER_IDS} ids"),
                );
            }
        }
        if self.q.as_ref().is_some_and(|q| q.chars().count() > 100) {
            v.add(format!("{prefix}.q"), "must be at most 100 characters");
        }
        if let (Some(after), Some(before)) = (self.last_chat_after, self.last_chat_before)
            && after >= before
        {
            v.add(
                format!("{prefix}.last_chat_before"),
                "must be later than last_chat_after",
            );
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupAudience {
    #[serde(default)]
    pub account_ids: Vec<i64>,
    #[serde(default)]
    pub instance_ids: Vec<i64>,
}

pub const MAX_EXPLICIT: usize = 10_000;

impl Audience {
    pub fn check(&self, v: &mut Violations) {
        if self.contact_ids.is_empty()
            && self.group_ids.is_empty()
            && self.filter.is_none()
            && self.segment_id.is_none()
            && self.group_filter.is_none()
        {
            v.add(
                "audience",
                "name contacts, groups, a contact filter, a segment or a group filter",
            );
        }
        if self.contact_ids.len() > MAX_EXPLICIT {
            v.add(
                "audience.contact_ids",
                format!("at most {MAX_EXPLICIT}; use a filter for more"),
            );
        }
        if self.group_ids.len() > MAX_EXPLICIT {
            v.add("audience.group_ids", format!("at most {MAX_EXPLICIT}"));
        }
        if let Some(f) = &self.filter {
            f.check("audience.filter", v);
        }
        if let Some(g) = &self.group_filter
            && g.account_ids.is_empty()
            && g.instance_ids.is_empty()
        {
            v.add("audience.group_filter", "name account_ids or instance_ids");
        }
    }

    /// Whether contacts are chosen by a rule (a filter or a segment) rather than listed.
    pub fn has_contact_rule(&self) -> bool {
        self.filter.is_some() || self.segment_id.is_some()
    }

    /// How many receivers the explicit lists name (filters unknown until a run starts).
    pub fn explicit_count(&self) -> usize {
        self.contact_ids.len() + self.group_ids.len()
    }
}

/// No sends between `start` and `end` (local time of `timezone`); a window may cross midnight.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, e.g. `22:00`.
    pub start: String,
    /// `HH:MM`, e.g. `08:00`.
    pub end: String,
    /// IANA name, e.g. `Asia/Shanghai`.
    pub timezone: String,
}

fn hhmm(value: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(value, "%H:%M").ok()
}

impl QuietHours {
    pub fn check(&self, v: &mut Violations) {
        if hhmm(&self.start).is_none() {
            v.add("quiet_hours.start", "must be HH:MM");
        }
        if hhmm(&self.end).is_none() {
            v.add("quiet_hours.end", "must be HH:MM");
        }
        if chrono_tz::Tz::from_str(&self.timezone).is_err() {
            v.add(
                "quiet_hours.timezone",
                format!("`{}` is not an IANA time zone", self.timezone),
            );
        }
    }

    /// When the window containing `now` ends, or `None` outside the window.
    pub fn ends_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (start, end, tz) = (
            hhmm(&self.start)?,
            hhmm(&self.end)?,
            chrono_tz::Tz::from_str(&self.timezone).ok()?,
        );
        let local = now.with_timezone(&tz);
        let time = local.time().with_nanosecond(0)?;
        let inside = if start <= end {
            time >= start && time < end
        } else {
            time >= start || time < end
        };
        if !inside || start == end {
            return None;
        }
        let mut day = local.date_naive();
        if start > end && time >= start {
            day = day.succ_opt()?;
        }
        let end_local = day.and_time(end).and_local_timezone(tz).earliest()?;
        Some(end_local.with_timezone(&Utc))
    }
}

/// At most `max` messages per contact within `window_hours`, across all tasks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub max: u32,
    pub window_hours: u32,
}

impl FrequencyCap {
    pub fn check(&self, v: &mut Violations) {
        if !(1..=1000).contains(&self.max) {
            v.add("frequency_cap.max", "must be between 1 and 1000");
        }
        if !(1..=24 * 31).contains(&self.window_hours) {
            v.add("frequency_cap.window_hours", "must be between 1 and 744");
        }
    }
}

/// Pause the task when, among its last `window` finished sends, the failed share exceeds
/// `failure_rate`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoPause {
    pub window: u32,
    /// 0 to 1, e.g. 0.5.
    pub failure_rate: f64,
}

impl AutoPause {
    pub fn check(&self, v: &mut Violations) {
        if !(10..=10_000).contains(&self.window) {
            v.add("auto_pause.window", "must be between 10 and 10000");
        }
        if !(0.0..=1.0).contains(&self.failure_rate) || self.failure_rate.is_nan() {
            v.add("auto_pause.failure_rate", "must be between 0 and 1");
        }
    }
}

/// A cron schedule in a time zone. Five fields (minute hour day month weekday) or six/seven with
/// seconds (and year).
#[derive(Debug, Clone)]
pub struct CronSchedule {
    schedule: cron::Schedule,
    tz: chrono_tz::Tz,
}

impl CronSchedule {
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, (&'static str, String)> {
        let fields = expression.split_whitespace().count();
        let normalized = if fields == 5 {
            format!("0 {expression}")
        } else {
            expression.to_owned()
        };
        let schedule = cron::Schedule::from_str(&normalized)
            .map_err(|e| ("cron", format!("is not a cron expression: {e}")))?;
        let tz = chrono_tz::Tz::from_str(timezone)
            .map_err(|_| ("timezone", format!("`{timezone}` is not an IANA time zone")))?;
        Ok(Self { schedule, tz })
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&self.tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::Value;

    use super::*;

    #[test]
    fn stored_settings_that_do_not_fit_name_their_column() {
        let good = serde_json::json!({ "max": 2, "window_hours": 24 });
        let cap: Option<FrequencyCap> = stored(Some(&good), "frequency_cap").unwrap();
        assert_eq!(
            cap,
            Some(FrequencyCap {
                max: 2,
                window_hours: 24
            })
        );
        assert_eq!(
            stored::<FrequencyCap>(Some(&Value::Null), "frequency_cap"),
            Ok(None)
        );
        let corrupt = serde_json::json!({ "start": "25:99" });
        let why = stored::<QuietHours>(Some(&corrupt), "quiet_hours").unwrap_err();
        assert!(why.contains("`quiet_hours`"), "{why}");
    }

    #[test]
    fn quiet_hours_across_midnight() {
        let q = QuietHours {
            start: "22:00".into(),
            end: "08:00".into(),
            timezone: "Asia/Shanghai".into(),
        };
        // 23:30 in Shanghai is 15:30 UTC.
        let late = Utc.with_ymd_and_hms(2026, 11, 26, 15, 30, 0).unwrap();
        assert_eq!(
            q.ends_after(late),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap())
        );
        let early = Utc.with_ymd_and_hms(2026, 11, 26, 23, 0, 0).unwrap(); // 07:00 local
        assert_eq!(
            q.ends_after(early),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap())
        );
        let noon = Utc.with_ymd_and_hms(2026, 11, 26, 4, 0, 0).unwrap();
        assert_eq!(q.ends_after(noon), None);
    }

    #[test]
    fn cron_in_a_time_zone() {
        let c = CronSchedule::parse("0 9 * * *", "Asia/Shanghai").unwrap();
        let after = Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap(); // 10:00 local
        assert_eq!(
            c.next_after(after),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap())
        );
        assert!(CronSchedule::parse("every day", "UTC").is_err());
        assert!(CronSchedule::parse("0 9 * * *", "Mars/Base").is_err());
    }
}
