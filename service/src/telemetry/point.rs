//! A metric point and its InfluxDB line-protocol form — the one format every metrics target
//! (InfluxDB 2, InfluxDB 1.x, VictoriaMetrics) and the spool share.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Float(f64),
    Int(i64),
    Bool(bool),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: &'static str,
    pub tags: Vec<(&'static str, String)>,
    pub fields: Vec<(&'static str, FieldValue)>,
    pub time: DateTime<Utc>,
}

impl Point {
    pub fn new(measurement: &'static str, time: DateTime<Utc>) -> Self {
        Self {
            measurement,
            tags: Vec::new(),
            fields: Vec::new(),
            time,
        }
    }

    pub fn tag(mut self, key: &'static str, value: impl ToString) -> Self {
        self.tags.push((key, value.to_string()));
        self
    }

    pub fn field(mut self, key: &'static str, value: FieldValue) -> Self {
        self.fields.push((key, value));
        self
    }

    pub fn int(self, key: &'static str, value: i64) -> Self {
        self.field(key, FieldValue::Int(value))
    }

    pub fn float(self, key: &'static str, value: f64) -> Self {
        self.field(key, FieldValue::Float(value))
    }

    pub fn bool(self, key: &'static str, value: bool) -> Self {
        self.field(key, FieldValue::Bool(value))
    }

    /// One line of line protocol, without the trailing newline; `None` for a point without any
    /// usable field (InfluxDB rejects those). Tags are sorted, as InfluxDB recommends; empty tag
    /// values and non-finite floats are left out.
    pub fn to_line(&self) -> Option<String> {
        let fields: Vec<String> = self
            .fields
            .iter()
            .filter_map(|(key, value)| {
                let value = match value {
                    FieldValue::Float(v) if v.is_finite() => {
                        let mut text = v.to_string();
                        if !text.contains(['.', 'e', 'E']) {
                            text.push_str(".0");
                        }
                        text
                    }
                    FieldValue::Float(_) => return None,
                    FieldValue::Int(v) => format!("{v}i"),
                    FieldValue::Bool(v) => v.to_string(),
                    FieldValue::Text(v) => {
                        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    }
                };
                Some(format!("{}={value}", escape_key(key)))
            })
            .collect();
        if fields.is_empty() {
            return None;
        }
        let mut line = escape_measurement(self.measurement);
        let mut tags: Vec<&(&str, String)> =
            self.tags.iter().filter(|(_, v)| !v.is_empty()).collect();
        tags.sort_by_key(|(k, _)| *k);
        for (key, value) in tags {
            let _ = write!(line, ",{}={}", escape_key(key), escape_key(value));
        }
        let nanos = self.time.timestamp_nanos_opt().unwrap_or_default();
        let _ = write!(line, " {} {nanos}", fields.join(","));
        Some(line)
    }
}

/// Lines for a batch of points, newline-terminated.
pub fn to_lines(points: &[Point]) -> String {
    let mut body = String::new();
    for line in points.iter().filter_map(Point::to_line) {
        body.push_str(&line);
        body.push('\n');
    }
    body
}

fn escape_measurement(text: &str) -> String {
    escape(text, &[',', ' '])
}

fn escape_key(text: &str) -> String {
    escape(text, &[',', '=', ' '])
}

fn escape(text: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            c if special.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 5)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn fields_are_typed_and_tags_sorted_and_escaped() {
        let line = Point::new("instance_health", at())
            .tag("name", "华东 一号,A=1")
            .tag("instance", 7)
            .tag("empty", "")
            .int("latency_ms", 42)
            .float("ratio", 1.0)
            .bool("online", true)
            .field("note", FieldValue::Text("say \"hi\" \\".into()))
            .to_line();
        assert_eq!(
            line.as_deref(),
            Some(
                "instance_health,instance=7,name=华东\\ 一号\\,A\\=1 latency_ms=42i,ratio=1.0,online=true,note=\"say \\\"hi\\\" \\\\\" 1700000000000000005"
            )
        );
    }

    #[test]
    fn points_without_usable_fields_are_left_out() {
        let empty = Point::new("m", at()).float("nan", f64::NAN);
        assert_eq!(empty.to_line(), None);
        let body = to_lines(&[empty, Point::new("m", at()).int("n", 1)]);
        assert_eq!(body, "m n=1i 1700000000000000005\n");
    }
}
