//! CSV lines for downloads (contact export, task reports), safe to open in a spreadsheet.
//!
//! Cells hold text other people control — any WeChat user picks their own nickname — and a
//! spreadsheet runs a cell starting with `=`, `+`, `-` or `@` (or a tab or carriage return
//! before one) as a formula (CSV injection). Such cells get a leading `'` so they show as text,
//! as OWASP advises; plain numbers (`-3`, `+8613800000000`) are left alone, as they cannot be
//! formulas.

/// One CSV record (with its line end), every cell neutralised.
pub fn csv_line(fields: &[String]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    let _ = writer.write_record(fields.iter().map(|f| neutralise(f).into_owned()));
    writer.into_inner().unwrap_or_default()
}

/// `cell`, prefixed with `'` when a spreadsheet would read it as a formula.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

fn is_plain_number(cell: &str) -> bool {
    let digits = cell.strip_prefix(['+', '-']).unwrap_or(cell);
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_shown_as_text_and_numbers_kept() {
        for risky in [
            "=HYPERLINK(\"http://x\",\"点我\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A2)",
            "\t=1+1",
            "\r=1+1",
        ] {
            assert_eq!(neutralise(risky), format!("'{risky}"), "{risky:?}");
        }
        for safe in ["张三", "-3", "+8613800000000", "12.5", "a=b", ""] {
            assert_eq!(neutralise(safe), safe, "{safe:?}");
        }
        assert_eq!(
            csv_line(&["=1+1".into(), "ok".into()]),
            b"'=1+1,ok\n".to_vec()
        );
    }
}
