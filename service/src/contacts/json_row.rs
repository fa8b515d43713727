//! A contact read as one JSON array value built by the database (`json_array` on SQLite,
//! `JSON_ARRAY` on MySQL/MariaDB) instead of 29 columns.
//!
//! A page of 50 contacts read column by column is about 1,500 values, each copied by the
//! driver into an allocation of its own, handed across threads and looked up by name; as one
//! value a row it is 50, decoded in one pass (docs/benchmarks.md, "the contact list read as
//! one value a row").

use chrono::NaiveDateTime;
use entity::contacts;
use sea_orm::DbBackend;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

/// The columns of the array, in `contacts::Model`'s order (a unit test holds them to it);
/// `Decoded` reads them in this order.
const COLUMNS: [&str; 29] = [
    "id",
    "instance_id",
    "account_id",
    "wxid",
    "nickname",
    "remark",
    "avatar_url",
    "phone",
    "gender",
    "region",
    "corp_name",
    "signature",
    "contact_type",
    "friend_status",
    "is_star",
    "is_top",
    "is_blocked",
    "add_source",
    "add_time",
    "last_chat_time",
    "chat_count",
    "custom_fields",
    "last_sync_time",
    "created_at",
    "updated_at",
    "deleted_at",
    "unsubscribed_at",
    "unsubscribe_source",
    "unsubscribe_message",
];

/// The SQL expression giving a `contacts` row as one JSON array, as text; `None` on
/// PostgreSQL, whose server took longer to build the array (0.40 against 0.30 ms a page with
/// `pgbench`) than its client saved: there the page keeps its columns.
pub(super) fn expression(backend: DbBackend) -> Option<String> {
    let columns = COLUMNS.map(|c| match (backend, c) {
        // SQLite stores JSON as text: `json()` embeds it as a value, not as a string.
        (DbBackend::Sqlite, "custom_fields") => "json(contacts.custom_fields)".to_owned(),
        _ => format!("contacts.{c}"),
    });
    let columns = columns.join(", ");
    match backend {
        DbBackend::Sqlite => Some(format!("json_array({columns})")),
        DbBackend::MySql => Some(format!("CAST(JSON_ARRAY({columns}) AS CHAR)")),
        _ => None,
    }
}

/// The contact in `json`, an array `expression` built.
pub(super) fn decode(json: &str) -> serde_json::Result<contacts::Model> {
    serde_json::from_str::<Decoded>(json).map(|d| d.0)
}

/// A contact decoded from its array.
pub(super) struct Decoded(pub contacts::Model);

impl<'de> Deserialize<'de> for Decoded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(RowVisitor)
    }
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = Decoded;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of the {} columns of a contact", COLUMNS.len())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Decoded, A::Error> {
        let mut c = Cells { seq, at: 0 };
        // Fields in `COLUMNS` order; a field out of place fails the list-against-read test.
        let model = contacts::Model {
            id: c.next()?,
            instance_id: c.next()?,
            account_id: c.next()?,
            wxid: c.next()?,
            nickname: c.next()?,
            remark: c.next()?,
            avatar_url: c.next()?,
            phone: c.next()?,
            gender: c.next()?,
            region: c.next()?,
            corp_name: c.next()?,
            signature: c.next()?,
            contact_type: c.next()?,
            friend_status: c.next()?,
            is_star: c.next::<Flag>()?.0,
            is_top: c.next::<Flag>()?.0,
            is_blocked: c.next::<Flag>()?.0,
            add_source: c.next()?,
            add_time: c.next::<Option<Stamp>>()?.map(|s| s.0),
            last_chat_time: c.next::<Option<Stamp>>()?.map(|s| s.0),
            chat_count: c.next()?,
            custom_fields: c.next()?,
            last_sync_time: c.next::<Option<Stamp>>()?.map(|s| s.0),
            created_at: c.next::<Stamp>()?.0,
            updated_at: c.next::<Stamp>()?.0,
            deleted_at: c.next::<Option<Stamp>>()?.map(|s| s.0),
            unsubscribed_at: c.next::<Option<Stamp>>()?.map(|s| s.0),
            unsubscribe_source: c.next()?,
            unsubscribe_message: c.next()?,
        };
        if c.seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(COLUMNS.len() + 1, &self));
        }
        Ok(Decoded(model))
    }
}

/// The array's elements in turn, each named by its column in errors.
struct Cells<A> {
    seq: A,
    at: usize,
}

impl<'de, A: SeqAccess<'de>> Cells<A> {
    fn next<T: Deserialize<'de>>(&mut self) -> Result<T, A::Error> {
        let column = COLUMNS.get(self.at).copied().unwrap_or("?");
        self.at += 1;
        self.seq
            .next_element::<T>()
            .map_err(|e| de::Error::custom(format_args!("column {column}: {e}")))?
            .ok_or_else(|| de::Error::custom(format_args!("column {column} is missing")))
    }
}

/// A boolean as the database's JSON writes it: `true`/`false`, or 1/0 where booleans are
/// integers (SQLite, MySQL).
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean, 0 or 1")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Flag, E> {
                Ok(Flag(b))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Flag, E> {
                Ok(Flag(n != 0))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Flag, E> {
                Ok(Flag(n != 0))
            }
        }
        d.deserialize_any(V)
    }
}

/// A timestamp as the database's JSON writes it: `2026-12-06 10:00:00.123456` (SQLite,
/// MySQL), `2026-12-06T10:00:00.123456` (PostgreSQL), with or without the fraction.
struct Stamp(NaiveDateTime);

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Stamp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a timestamp")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Stamp, E> {
                parse_stamp(s)
                    .map(Stamp)
                    .ok_or_else(|| E::custom(format_args!("`{s}` is not a timestamp")))
            }
        }
        d.deserialize_str(V)
    }
}

/// Read by position: chrono's format-string parser took as long as the rest of the row's
/// decoding, seven timestamps a contact.
fn parse_stamp(s: &str) -> Option<NaiveDateTime> {
    let plain = s.strip_suffix('Z').unwrap_or(s);
    let plain = plain.strip_suffix("+00:00").unwrap_or(plain);
    let b = plain.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(20, b.len())? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 7)?,
        number(8, 10)?,
    )?;
    date.and_hms_nano_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{IdenStatic, Iterable};

    #[test]
    fn the_columns_are_the_models_in_its_order() {
        let model: Vec<&str> = contacts::Column::iter().map(|c| c.as_str()).collect();
        assert_eq!(COLUMNS.to_vec(), model);
    }

    #[test]
    fn each_databases_forms_decode() {
        let sqlite = r#"[7, 1, 2, "wx", "张三", null, null, "138", 1, null, null, null,
            "friend", "normal", 1, 0, 0, null, "2026-12-06 10:00:00", null, 3,
            {"vip": [1, "x"]}, null, "2026-12-06 10:00:00.123456", "2026-12-06 10:00:00.5",
            null, null, null, null]"#;
        let m = decode(sqlite).unwrap();
        assert_eq!(
            (m.id, m.wxid.as_str(), m.nickname.as_deref()),
            (7, "wx", Some("张三"))
        );
        assert!(m.is_star && !m.is_top && !m.is_blocked);
        assert_eq!(m.gender, Some(1));
        assert_eq!(m.chat_count, 3);
        assert_eq!(m.custom_fields, Some(serde_json::json!({"vip": [1, "x"]})));
        assert_eq!(m.created_at.to_string(), "2026-12-06 10:00:00.123456");
        assert_eq!(m.updated_at.to_string(), "2026-12-06 10:00:00.500");
        assert_eq!(m.add_time.unwrap().to_string(), "2026-12-06 10:00:00");

        // `true`/`false` and a `T` between date and time, as other servers write them.
        let other = sqlite
            .replace(" 1, 0, 0,", " true, false, true,")
            .replace("2026-12-06 10", "2026-12-06T10");
        let m = decode(&other).unwrap();
        assert!(m.is_star && !m.is_top && m.is_blocked);
        assert_eq!(m.created_at.to_string(), "2026-12-06 10:00:00.123456");
    }

    #[test]
    fn a_row_out_of_shape_is_an_error_naming_the_column() {
        let err = decode(r#"[7, 1, 2, 3]"#).unwrap_err().to_string();
        assert!(err.contains("wxid"), "{err}");
        let err = decode(r#"[7, 1, 2]"#).unwrap_err().to_string();
        assert!(err.contains("wxid is missing"), "{err}");
        assert!(parse_stamp("06/12/2026").is_none());
        for bad in [
            "2026-12-06 10:00:0",
            "2026-12-06 10:00:00.",
            "2026-12-06 10:00:00.1234567890",
            "2026-13-06 10:00:00",
            "2026-12-06 24:00:00",
            "2026-12-06 10:00:00+08:00",
            "2026-1a-06 10:00:00",
            "二〇二六-12-06 10:00",
        ] {
            assert!(parse_stamp(bad).is_none(), "{bad}");
        }
        for (good, shown) in [
            ("2026-12-06T10:00:00Z", "2026-12-06 10:00:00"),
            ("2026-12-06 10:00:00+00:00", "2026-12-06 10:00:00"),
            ("2026-12-06 10:00:00.1", "2026-12-06 10:00:00.100"),
            (
                "2026-12-06T23:59:59.123456789",
                "2026-12-06 23:59:59.123456789",
            ),
            ("0001-01-01 00:00:00", "0001-01-01 00:00:00"),
        ] {
            assert_eq!(parse_stamp(good).unwrap().to_string(), shown, "{good}");
        }
    }
}
