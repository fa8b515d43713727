//! Reading an uploaded CSV or XLSX file into rows of cells, within bounds checked before anything
//! is allocated for them. A crafted file must cost a 4xx, never the process: an XLSX is a zip
//! whose parts may unpack to gigabytes (a zip bomb) and whose cells may sit anywhere on a
//! 16,384 × 1,048,576 grid (a reader that allocates the bounding box of two far-apart cells asks
//! for hundreds of gigabytes). So the zip's parts are unpacked once into a counting sink, under
//! a cap, before the workbook is opened; cells are streamed and placed only when they fall
//! inside the row and column limits; and CSV records are held to the same limits.

use std::io::{Cursor, Read};

use crate::FieldError;

/// Data rows a file may hold (the header row comes on top).
pub const MAX_ROWS: usize = 100_000;
/// Columns a file may use: the known contact columns and custom fields fit many times over.
pub const MAX_COLUMNS: usize = 64;
/// Characters one cell may hold.
pub const MAX_CELL_CHARS: usize = 4_096;
/// What all of an XLSX's parts may unpack to together.
pub const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

fn file_error(message: impl Into<String>) -> FieldError {
    FieldError::new("file", message)
}

fn too_many_rows() -> FieldError {
    file_error(format!("has more than {MAX_ROWS} rows; split it"))
}

fn too_many_columns(column: usize) -> FieldError {
    file_error(format!(
        "uses column {column}; at most {MAX_COLUMNS} columns are read"
    ))
}

fn cell_too_long(row: usize, column: usize) -> FieldError {
    FieldError::new(
        format!("rows[{row}]"),
        format!("column {column} holds more than {MAX_CELL_CHARS} characters"),
    )
}

/// Reads a file into rows of cells (the first row is the header). CPU-bound: call it off the
/// async executor.
pub fn read(format: Format, bytes: &[u8]) -> Result<Vec<Vec<String>>, FieldError> {
    match format {
        Format::Csv => read_csv(bytes),
        Format::Xlsx => read_xlsx(bytes),
    }
}

fn read_csv(bytes: &[u8]) -> Result<Vec<Vec<String>>, FieldError> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let row = rows.len() + 1;
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(rows),
            Err(e) => {
                return Err(FieldError::new(
                    format!("rows[{row}]"),
                    format!("is not valid CSV: {e}"),
                ));
            }
        }
        if rows.len() > MAX_ROWS {
            return Err(too_many_rows());
        }
        if record.len() > MAX_COLUMNS {
            return Err(too_many_columns(record.len()));
        }
        let mut cells = Vec::with_capacity(record.len());
        for (column, field) in record.iter().enumerate() {
            if field.chars().count() > MAX_CELL_CHARS {
                return Err(cell_too_long(row, column + 1));
            }
            cells.push(field.to_owned());
        }
        rows.push(cells);
    }
}

/// Unpacks every part of the zip into a counting sink: refuses the file once the parts together
/// unpack to more than `limit` bytes, whatever their headers declare.
fn check_unpacked_size(bytes: &[u8], limit: u64) -> Result<(), FieldError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| file_error(format!("is not an XLSX workbook: {e}")))?;
    let mut left = limit;
    for index in 0..zip.len() {
        let part = zip
            .by_index(index)
            .map_err(|e| file_error(format!("cannot be read: {e}")))?;
        // One byte more than is left tells "too large" from "exactly at the limit".
        let unpacked = std::io::copy(&mut part.take(left + 1), &mut std::io::sink())
            .map_err(|e| file_error(format!("cannot be unpacked: {e}")))?;
        if unpacked > left {
            return Err(file_error(format!(
                "unpacks to more than {} MiB; a workbook of contacts is far smaller",
                limit / 1024 / 1024
            )));
        }
        left -= unpacked;
    }
    Ok(())
}

fn read_xlsx(bytes: &[u8]) -> Result<Vec<Vec<String>>, FieldError> {
    use calamine::{Reader, Xlsx};
    check_unpacked_size(bytes, MAX_UNPACKED_BYTES)?;
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes))
        .map_err(|e| file_error(format!("is not an XLSX workbook: {e}")))?;
    let sheet = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| file_error("has no worksheet"))?;
    let mut cells = book
        .worksheet_cells_reader(&sheet)
        .map_err(|e| file_error(format!("cannot be read: {e}")))?;
    let declared = cells.dimensions();
    if declared.end.0 as usize > MAX_ROWS {
        return Err(too_many_rows());
    }
    if declared.end.1 as usize >= MAX_COLUMNS {
        return Err(too_many_columns(declared.end.1 as usize + 1));
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    while let Some(cell) = cells
        .next_cell()
        .map_err(|e| file_error(format!("cannot be read: {e}")))?
    {
        let (row, column) = cell.get_position();
        let (row, column) = (row as usize, column as usize);
        if row > MAX_ROWS {
            return Err(too_many_rows());
        }
        if column >= MAX_COLUMNS {
            return Err(too_many_columns(column + 1));
        }
        let text = cell_text(cell.get_value().clone().into());
        if text.chars().count() > MAX_CELL_CHARS {
            return Err(cell_too_long(row + 1, column + 1));
        }
        if rows.len() <= row {
            rows.resize_with(row + 1, Vec::new);
        }
        let cells_of_row = &mut rows[row];
        if cells_of_row.len() <= column {
            cells_of_row.resize(column + 1, String::new());
        }
        cells_of_row[column] = text;
    }
    Ok(rows)
}

fn cell_text(cell: calamine::Data) -> String {
    match cell {
        calamine::Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// An XLSX made of the given parts (path, content), deflated.
    fn workbook(sheet: &str, shared_strings: &str) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let parts = [
            ("[Content_Types].xml", CONTENT_TYPES),
            ("_rels/.rels", ROOT_RELS),
            ("xl/workbook.xml", WORKBOOK),
            ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
            ("xl/worksheets/sheet1.xml", sheet),
            ("xl/sharedStrings.xml", shared_strings),
        ];
        for (path, content) in parts {
            zip.start_file(path, options).unwrap();
            zip.write_all(content.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#;
    const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
    const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="contacts" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
    const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#;
    const NO_STRINGS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="0" uniqueCount="0"></sst>"#;

    fn sheet(dimension: &str, cells: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="{dimension}"/><sheetData>{cells}</sheetData></worksheet>"#
        )
    }

    fn inline(reference: &str, text: &str) -> String {
        format!(r#"<c r="{reference}" t="inlineStr"><is><t>{text}</t></is></c>"#)
    }

    #[test]
    fn a_plain_workbook_reads_as_rows() {
        let cells = format!(
            r#"<row r="1">{}{}</row><row r="2">{}<c r="B2"><v>13800000000</v></c></row>"#,
            inline("A1", "wxid"),
            inline("B1", "phone"),
            inline("A2", "wm_1")
        );
        let rows = read(Format::Xlsx, &workbook(&sheet("A1:B2", &cells), NO_STRINGS)).unwrap();
        assert_eq!(
            rows,
            vec![vec!["wxid", "phone"], vec!["wm_1", "13800000000"]]
        );
    }

    #[test]
    fn cells_at_the_far_corner_are_refused_without_allocating_the_grid() {
        // Two cells, A1 and XFD1048576, a bounding box of 17 billion cells.
        let cells = format!(
            r#"<row r="1">{}</row><row r="1048576">{}</row>"#,
            inline("A1", "wxid"),
            inline("XFD1048576", "x")
        );
        for dimension in ["A1:XFD1048576", "A1"] {
            let file = workbook(&sheet(dimension, &cells), NO_STRINGS);
            assert!(file.len() < 5_000, "{} bytes", file.len());
            let error = read(Format::Xlsx, &file).unwrap_err();
            assert_eq!(error.field, "file", "{dimension}: {}", error.message);
        }
        let far_column = format!(r#"<row r="2">{}</row>"#, inline("ZZ2", "x"));
        let error = read(
            Format::Xlsx,
            &workbook(&sheet("A1", &far_column), NO_STRINGS),
        )
        .unwrap_err();
        assert!(error.message.contains("column 702"), "{}", error.message);
    }

    #[test]
    fn a_zip_bomb_is_refused_before_the_workbook_is_opened() {
        // 8 MiB of one repeated shared string packs into a few KiB; checked against a 4 MiB
        // limit here (the real one is 256 MiB), by what it unpacks to, not what it declares.
        let bomb = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>{}</t></si></sst>"#,
            "a".repeat(8 * 1024 * 1024)
        );
        let file = workbook(&sheet("A1", ""), &bomb);
        assert!(file.len() < 64 * 1024, "{} bytes", file.len());
        let error = check_unpacked_size(&file, 4 * 1024 * 1024).unwrap_err();
        assert!(
            error.message.contains("unpacks to more than 4 MiB"),
            "{}",
            error.message
        );
        assert!(check_unpacked_size(&file, 16 * 1024 * 1024).is_ok());
    }

    #[test]
    fn csv_rows_columns_and_cells_are_bounded() {
        let wide = format!("{}\n", vec!["x"; MAX_COLUMNS + 1].join(","));
        assert!(
            read(Format::Csv, wide.as_bytes())
                .unwrap_err()
                .message
                .contains("column 65")
        );
        let long = format!("wxid\n{}\n", "x".repeat(MAX_CELL_CHARS + 1));
        let error = read(Format::Csv, long.as_bytes()).unwrap_err();
        assert_eq!(error.field, "rows[2]");
        let many = "wxid\n".to_owned() + &"w\n".repeat(MAX_ROWS + 1);
        assert!(
            read(Format::Csv, many.as_bytes())
                .unwrap_err()
                .message
                .contains("rows")
        );
        let fine = "wxid\n".to_owned() + &"w\n".repeat(MAX_ROWS);
        assert_eq!(
            read(Format::Csv, fine.as_bytes()).unwrap().len(),
            MAX_ROWS + 1
        );
    }
}
