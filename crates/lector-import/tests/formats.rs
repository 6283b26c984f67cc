//! File readers against real files written at test time: encodings, delimiters, ragged rows,
//! Excel (xlsx by rust_xlsxwriter, xls by Python's xlwt), JSON and NDJSON.

use lector_import::formats::{open, sheets};
use lector_import::{Format, OpenOptions, Opened, Record, SourceError};
use rust_xlsxwriter::{ExcelDateTime, Format as CellFormat, Formula, Workbook};
use std::io::Write;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

/// Everything a source yields, in order.
fn drain(opened: &mut Opened) -> Vec<Result<Record, SourceError>> {
    std::iter::from_fn(|| opened.records.next_record()).collect()
}

fn read(path: &Path, opts: &OpenOptions) -> (Opened, Vec<Result<Record, SourceError>>) {
    let mut opened = open(path, opts).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let items = drain(&mut opened);
    (opened, items)
}

fn headers(opened: &Opened) -> Vec<&str> {
    opened.records.headers().iter().map(String::as_str).collect()
}

fn rows(items: &[Result<Record, SourceError>]) -> Vec<(u64, Vec<&str>)> {
    items
        .iter()
        .map(|r| {
            let r = r.as_ref().unwrap_or_else(|e| panic!("unexpected row error: {e}"));
            (r.row, r.cells.iter().map(String::as_str).collect())
        })
        .collect()
}

fn whole_error(path: &Path, opts: &OpenOptions) -> SourceError {
    match open(path, opts) {
        Ok(_) => panic!("{} opened, expected an error", path.display()),
        Err(e) => e,
    }
}

const READERS: &str = "姓名,读者证号,院系\n张三,20230001,计算机学院\n李四,20230002,外国语学院\n";

#[test]
fn utf8_with_and_without_bom() {
    let dir = TempDir::new().unwrap();
    let plain = write(&dir, "plain.csv", READERS.as_bytes());
    let bom = write(&dir, "bom.csv", &[b"\xEF\xBB\xBF".as_slice(), READERS.as_bytes()].concat());
    for path in [plain, bom] {
        let (opened, items) = read(&path, &OpenOptions::default());
        assert_eq!(opened.format, Format::Csv);
        assert_eq!(opened.encoding, Some("UTF-8"));
        assert_eq!(headers(&opened), ["姓名", "读者证号", "院系"]);
        assert_eq!(rows(&items), [(2, vec!["张三", "20230001", "计算机学院"]), (3, vec!["李四", "20230002", "外国语学院"])]);
    }
}

/// A GBK export from a Chinese library system, with enough text for detection to go on.
fn gbk_readers() -> String {
    let mut text = String::from("姓名,读者证号,读者类型,院系,备注\n");
    let people = [("张伟", "本科生", "计算机科学与技术学院"), ("王芳", "研究生", "外国语学院"), ("李娜", "教师", "历史文化学院")];
    for i in 0..30 {
        let (name, kind, school) = people[i % people.len()];
        text.push_str(&format!("{name},2023{i:04},{kind},{school},图书馆借阅证已办理\n"));
    }
    text
}

#[test]
fn gbk_csv_is_detected_and_read_as_gb18030() {
    let dir = TempDir::new().unwrap();
    let text = gbk_readers();
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    let path = write(&dir, "gbk.csv", &bytes);
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.encoding, Some("GB18030"));
    assert_eq!(headers(&opened), ["姓名", "读者证号", "读者类型", "院系", "备注"]);
    assert_eq!(items.len(), 30);
    assert_eq!(rows(&items)[1], (3, vec!["王芳", "20230001", "研究生", "外国语学院", "图书馆借阅证已办理"]));

    // A character only GB18030 has (beyond GBK) reads back through the same path.
    let (bytes, _, _) = encoding_rs::GB18030.encode("姓名,备注\n𠀀先生,GB18030 四字节字符\n");
    let path = write(&dir, "gb18030.csv", &bytes);
    let (_, items) = read(&path, &OpenOptions { encoding: Some("gbk".into()), ..OpenOptions::default() });
    assert_eq!(rows(&items), [(2, vec!["𠀀先生", "GB18030 四字节字符"])]);
}

#[test]
fn an_unknown_encoding_label_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "r.csv", READERS.as_bytes());
    let e = whole_error(&path, &OpenOptions { encoding: Some("klingon".into()), ..OpenOptions::default() });
    assert_eq!(e.row, None);
    assert!(e.message.zh.contains("klingon") && e.message.en.contains("unknown text encoding"), "{e}");
}

fn utf16(text: &str, little: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(if little { &[0xFF, 0xFE] } else { &[0xFE, 0xFF] });
    }
    for unit in text.encode_utf16() {
        out.extend_from_slice(&if little { unit.to_le_bytes() } else { unit.to_be_bytes() });
    }
    out
}

#[test]
fn utf16_with_bom_and_without() {
    let dir = TempDir::new().unwrap();
    let cases = [("le-bom.csv", true, true, "UTF-16LE"), ("be-bom.csv", false, true, "UTF-16BE"), ("le.csv", true, false, "UTF-16LE")];
    for (name, little, bom, expected) in cases {
        let path = write(&dir, name, &utf16(READERS, little, bom));
        let (opened, items) = read(&path, &OpenOptions::default());
        assert_eq!(opened.encoding, Some(expected), "{name}");
        assert_eq!(headers(&opened), ["姓名", "读者证号", "院系"], "{name}");
        assert_eq!(rows(&items)[1], (3, vec!["李四", "20230002", "外国语学院"]), "{name}");
    }
}

#[test]
fn tab_semicolon_and_bar_delimiters() {
    let dir = TempDir::new().unwrap();
    let tsv = write(&dir, "r.tsv", READERS.replace(',', "\t").as_bytes());
    let (opened, items) = read(&tsv, &OpenOptions::default());
    assert_eq!(opened.format, Format::Tsv);
    assert_eq!(rows(&items)[0], (2, vec!["张三", "20230001", "计算机学院"]));

    let txt = write(&dir, "r.txt", READERS.replace(',', "\t").as_bytes());
    assert_eq!(read(&txt, &OpenOptions::default()).0.format, Format::Tsv);

    // Commas inside the cells do not fool the detection.
    let semi = write(&dir, "semi.csv", "姓名;备注;院系\n张三;a,b;计算机学院\n李四;c,d,e;外国语学院\n".as_bytes());
    let (opened, items) = read(&semi, &OpenOptions::default());
    assert_eq!(opened.format, Format::Csv);
    assert_eq!(rows(&items), [(2, vec!["张三", "a,b", "计算机学院"]), (3, vec!["李四", "c,d,e", "外国语学院"])]);

    let bar = write(&dir, "bar.csv", READERS.replace(',', "|").as_bytes());
    assert_eq!(rows(&read(&bar, &OpenOptions::default()).1)[0], (2, vec!["张三", "20230001", "计算机学院"]));

    // `|` in GBK is read through the decoder (0x7C can be a GBK trailing byte).
    let text = gbk_readers().replace(',', "|");
    let (gbk, _, _) = encoding_rs::GBK.encode(&text);
    let path = write(&dir, "gbk-bar.csv", &gbk);
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.encoding, Some("GB18030"));
    assert_eq!(rows(&items)[2].1, ["李娜", "20230002", "教师", "历史文化学院", "图书馆借阅证已办理"]);

    let forced = write(&dir, "forced.csv", "a:b\n1:2\n".as_bytes());
    let (_, items) = read(&forced, &OpenOptions { delimiter: Some(':'), ..OpenOptions::default() });
    assert_eq!(rows(&items), [(2, vec!["1", "2"])]);
}

#[test]
fn quoted_fields_with_newlines_and_doubled_quotes() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "q.csv", "姓名,备注\n张三,\"第一行\n第二行\"\n李四,\"他说\"\"好\"\"，逗号,也在\"\n".as_bytes());
    let (_, items) = read(&path, &OpenOptions::default());
    assert_eq!(rows(&items), [(2, vec!["张三", "第一行\n第二行"]), (4, vec!["李四", "他说\"好\"，逗号,也在"])]);
}

#[test]
fn ragged_rows_are_padded_or_refused_by_row() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "ragged.csv", b"a,b,c\n1,2\n1,2,3,,\n1,2,3,4\n,,\n5,6,7\n");
    let (_, items) = read(&path, &OpenOptions::default());
    assert_eq!(items.len(), 4, "the row of empty cells is skipped");
    assert_eq!(items[0].as_ref().unwrap().cells, ["1", "2", ""]);
    assert_eq!(items[1].as_ref().unwrap().cells, ["1", "2", "3"]);
    let e = items[2].as_ref().unwrap_err();
    assert_eq!(e.row, Some(4));
    assert!(e.message.zh.contains("4 个单元格") && e.message.zh.contains("3 列"), "{e}");
    assert!(e.message.en.contains("4 cells") && e.message.en.contains("3 columns"), "{e}");
    assert_eq!(items[3].as_ref().unwrap().row, 6);
}

#[test]
fn header_only_is_an_empty_stream_and_empty_files_have_no_data() {
    let dir = TempDir::new().unwrap();
    let (opened, items) = read(&write(&dir, "h.csv", "姓名,读者证号\n".as_bytes()), &OpenOptions::default());
    assert_eq!(headers(&opened), ["姓名", "读者证号"]);
    assert!(items.is_empty());

    for (name, bytes) in [("empty.csv", &b""[..]), ("blank.csv", b"\n\r\n  \n"), ("commas.csv", b",,,\n,,\n")] {
        let e = whole_error(&write(&dir, name, bytes), &OpenOptions::default());
        assert_eq!(e.row, None, "{name}");
        assert!(e.message.zh.contains("文件没有数据") && e.message.en.contains("the file has no data"), "{name}: {e}");
    }
}

#[test]
fn binary_garbage_renamed_csv_is_not_text() {
    let dir = TempDir::new().unwrap();
    let mut state = 0x2545F491u32;
    let garbage: Vec<u8> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    for (name, bytes) in
        [("garbage.csv", &garbage[..]), ("small.csv", &garbage[..40]), ("png.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01")]
    {
        let e = whole_error(&write(&dir, name, bytes), &OpenOptions::default());
        assert_eq!(e.row, None, "{name}");
        assert!(e.message.zh.contains("这不是文本文件") && e.message.en.contains("not a text file"), "{name}: {e}");
    }
}

#[test]
fn a_row_in_another_encoding_is_an_error_for_that_row() {
    let dir = TempDir::new().unwrap();
    let mut bytes = Vec::from("姓名,读者证号,院系\n".as_bytes());
    for i in 0..3000 {
        bytes.extend_from_slice(format!("张三{i},2023{i:04},计算机学院\n").as_bytes());
    }
    let (gbk, _, _) = encoding_rs::GBK.encode("王芳,20239999,外国语学院\n");
    bytes.extend_from_slice(&gbk);
    bytes.extend_from_slice("李四,20230002,外国语学院\n".as_bytes());
    let path = write(&dir, "mixed.csv", &bytes);
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.encoding, Some("UTF-8"));
    assert_eq!(items.len(), 3002);
    let e = items[3000].as_ref().unwrap_err();
    assert_eq!(e.row, Some(3002));
    assert!(e.message.zh.contains("第 1 列「姓名」") && e.message.en.contains("not valid UTF-8"), "{e}");
    assert_eq!(items[3001].as_ref().unwrap().cells, ["李四", "20230002", "外国语学院"]);
}

#[test]
fn a_100_mb_field_is_a_row_error_naming_the_column() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("huge.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    file.write_all("姓名,备注\n张三,\"".as_bytes()).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        file.write_all(&chunk).unwrap();
    }
    file.write_all("\"\n李四,正常\n".as_bytes()).unwrap();
    file.into_inner().unwrap().sync_all().unwrap();

    let (_, items) = read(&path, &OpenOptions::default());
    assert_eq!(items.len(), 2);
    let e = items[0].as_ref().unwrap_err();
    assert_eq!(e.row, Some(2));
    assert!(e.message.zh.contains("第 2 列「备注」") && e.message.zh.contains("超过 1 MiB"), "{e}");
    assert!(e.message.en.contains("column 2 “备注”"), "{e}");
    assert_eq!(items[1].as_ref().unwrap().cells, ["李四", "正常"]);
}

#[test]
fn header_row_detection_blank_and_repeated_headers() {
    let dir = TempDir::new().unwrap();
    let text = "2024 级新生名单,,,\n,,,\n制表：图书馆,,,\n姓名,,类型,姓名\n张三,x,本科生,Zhang San\n";
    let path = write(&dir, "title.csv", text.as_bytes());
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(headers(&opened), ["姓名", "列2", "类型", "姓名 (2)"]);
    assert_eq!(rows(&items), [(5, vec!["张三", "x", "本科生", "Zhang San"])]);

    // A header row given by number wins; rows before it are skipped.
    let (opened, items) = read(&path, &OpenOptions { header_row: Some(3), ..OpenOptions::default() });
    assert_eq!(headers(&opened), ["制表：图书馆", "列2", "列3", "列4"]);
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().row, 4);

    let e = whole_error(&path, &OpenOptions { header_row: Some(99), ..OpenOptions::default() });
    assert!(e.message.zh.contains("99") && e.message.en.contains("header row 99"), "{e}");
}

#[test]
fn koha_patron_csv_is_told_by_its_columns() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "patrons.csv", b"cardnumber,surname,firstname,categorycode\n20230001,Zhang,San,ST\n");
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.format, Format::Koha);
    assert_eq!(rows(&items), [(2, vec!["20230001", "Zhang", "San", "ST"])]);
}

#[test]
fn a_million_rows_stream_through() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("million.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    file.write_all("读者证号,姓名,院系,手机\n".as_bytes()).unwrap();
    for i in 0..1_000_000u32 {
        writeln!(file, "{},读者{},计算机学院,138{:08}", 20_000_000 + i, i, i).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    let mut opened = open(&path, &OpenOptions::default()).unwrap();
    let (mut count, mut last) = (0u64, None);
    while let Some(record) = opened.records.next_record() {
        count += 1;
        last = Some(record.unwrap());
    }
    assert_eq!(count, 1_000_000);
    let last = last.unwrap();
    assert_eq!(last.row, 1_000_001);
    assert_eq!(last.cells, ["20999999", "读者999999", "计算机学院", "13800999999"]);
}

/// A workbook like a registrar's export: an empty first sheet; a title merged over the columns,
/// a header, dates, card numbers as numbers, formulas (one #N/A), a department merged down two rows and a
/// blank row; a second sheet of staff.
fn registrar_workbook(path: &Path) {
    let mut book = Workbook::new();
    book.add_worksheet().set_name("说明").unwrap();
    let students = book.add_worksheet().set_name("学生").unwrap();
    let date = CellFormat::new().set_num_format("yyyy-mm-dd");
    let stamp = CellFormat::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    students.merge_range(0, 0, 0, 5, "2024 级新生名单", &CellFormat::new()).unwrap();
    for (col, header) in ["姓名", "读者证号", "院系", "办证日期", "积分", "最后到馆"].into_iter().enumerate() {
        students.write_string(2, col as u16, header).unwrap();
    }
    students.write_string(3, 0, "张三").unwrap();
    students.write_number(3, 1, 20230001).unwrap();
    students.merge_range(3, 2, 4, 2, "计算机学院", &CellFormat::new()).unwrap();
    students.write_datetime_with_format(3, 3, ExcelDateTime::from_ymd(2024, 3, 5).unwrap(), &date).unwrap();
    students.write_formula(3, 4, Formula::new("=1+2").set_result("3")).unwrap();
    students.write_number(3, 5, 1.5).unwrap();
    students.write_string(4, 0, "李四").unwrap();
    students.write_number(4, 1, 20230002).unwrap();
    students.write_formula(4, 4, Formula::new("=NA()").set_result("#N/A")).unwrap();
    let seen = ExcelDateTime::from_ymd(2024, 9, 1).unwrap().and_hms(8, 30, 0).unwrap();
    students.write_datetime_with_format(4, 5, seen, &stamp).unwrap();
    students.write_string(6, 0, "王五").unwrap();
    students.write_string(6, 1, "20230003").unwrap();
    students.write_string(6, 2, "外国语学院").unwrap();
    let staff = book.add_worksheet().set_name("教师").unwrap();
    staff.write_string(0, 0, "工号").unwrap();
    staff.write_string(0, 1, "姓名").unwrap();
    staff.write_number(1, 0, 1001).unwrap();
    staff.write_string(1, 1, "赵老师").unwrap();
    book.save(path).unwrap();
}

#[test]
fn xlsx_sheets_dates_numbers_formulas_merges_and_title_rows() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("readers.xlsx");
    registrar_workbook(&path);
    assert_eq!(sheets(&path).unwrap(), ["说明", "学生", "教师"]);

    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.format, Format::Xlsx);
    assert_eq!(opened.encoding, None);
    assert_eq!(headers(&opened), ["姓名", "读者证号", "院系", "办证日期", "积分", "最后到馆"]);
    assert_eq!(
        rows(&items),
        [
            (4, vec!["张三", "20230001", "计算机学院", "2024-03-05", "3", "1.5"]),
            (5, vec!["李四", "20230002", "计算机学院", "", "", "2024-09-01 08:30:00"]),
            (7, vec!["王五", "20230003", "外国语学院", "", "", ""]),
        ]
    );

    let (opened, items) = read(&path, &OpenOptions { sheet: Some("教师".into()), ..OpenOptions::default() });
    assert_eq!(headers(&opened), ["工号", "姓名"]);
    assert_eq!(rows(&items), [(2, vec!["1001", "赵老师"])]);

    let e = whole_error(&path, &OpenOptions { sheet: Some("职工".into()), ..OpenOptions::default() });
    assert!(e.message.zh.contains("职工") && e.message.zh.contains("说明、学生、教师"), "{e}");
    let e = whole_error(&path, &OpenOptions { sheet: Some("说明".into()), ..OpenOptions::default() });
    assert!(e.message.zh.contains("没有数据") && e.message.en.contains("has no data"), "{e}");
}

#[test]
fn a_stray_cell_in_excels_last_cell_costs_one_row_not_a_dense_grid() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("stray.xlsx");
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "姓名").unwrap();
    sheet.write_string(0, 1, "院系").unwrap();
    sheet.write_string(1, 0, "张三").unwrap();
    sheet.write_string(1_048_575, 16_383, "stray").unwrap();
    book.save(&path).unwrap();
    let (_, items) = read(&path, &OpenOptions::default());
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().cells, ["张三", ""]);
    let e = items[1].as_ref().unwrap_err();
    assert_eq!(e.row, Some(1_048_576));
    assert!(e.message.en.contains("16384 cells but the header has 2 columns"), "{e}");
}

#[test]
fn an_xlsx_with_only_empty_sheets_has_no_data() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("empty.xlsx");
    let mut book = Workbook::new();
    book.add_worksheet();
    book.save(&path).unwrap();
    let e = whole_error(&path, &OpenOptions::default());
    assert!(e.message.zh.contains("文件没有数据"), "{e}");
    let e = sheets(&write(&dir, "r.csv", READERS.as_bytes())).unwrap_err();
    assert!(e.message.en.contains("not an Excel workbook"), "{e}");
}

const XLWT_SCRIPT: &str = r#"
import sys, datetime, xlwt
book = xlwt.Workbook(encoding="utf-8")
book.add_sheet("说明")
sheet = book.add_sheet("学生")
date = xlwt.easyxf(num_format_str="YYYY-MM-DD")
sheet.write_merge(0, 0, 0, 3, "2024 级新生名单")
for col, header in enumerate(["姓名", "读者证号", "院系", "办证日期"]):
    sheet.write(2, col, header)
sheet.write(3, 0, "张三")
sheet.write(3, 1, 20230001)
sheet.write_merge(3, 4, 2, 2, "计算机学院")
sheet.write(3, 3, datetime.date(2024, 3, 5), date)
sheet.write(4, 0, "李四")
sheet.write(4, 1, 20230002.0)
book.save(sys.argv[1])
"#;

#[test]
fn xls_written_by_xlwt() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("readers.xls");
    let made = std::process::Command::new("python3").arg("-c").arg(XLWT_SCRIPT).arg(&path).output();
    match made {
        Ok(out) if out.status.success() => {}
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(std::env::var_os("CI").is_none(), "python3 with xlwt is needed for the .xls test (pip install xlwt): {why}");
            eprintln!("skipping the .xls test: python3 with xlwt is missing (pip install xlwt): {why}");
            return;
        }
    }
    assert_eq!(sheets(&path).unwrap(), ["说明", "学生"]);
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.format, Format::Xls);
    assert_eq!(headers(&opened), ["姓名", "读者证号", "院系", "办证日期"]);
    assert_eq!(rows(&items), [(4, vec!["张三", "20230001", "计算机学院", "2024-03-05"]), (5, vec!["李四", "20230002", "计算机学院", ""])]);

    // A sheet dimension claiming four billion rows is refused before anything is sized by it.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(4).position(|w| w == b"\x00\x02\x0e\x00").expect("a DIMENSIONS record");
    bytes[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let damaged = write(&dir, "damaged.xls", &bytes);
    let e = whole_error(&damaged, &OpenOptions::default());
    assert!(e.message.en.contains("65,536 × 256"), "{e}");
}

#[test]
fn an_xls_that_is_really_tab_separated_text_is_read_as_text() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "export.xls", READERS.replace(',', "\t").as_bytes());
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.format, Format::Tsv);
    assert_eq!(items.len(), 2);
}

#[test]
fn json_arrays_flatten_nested_objects() {
    let dir = TempDir::new().unwrap();
    let doc = r#"[
      {"card": "20230001", "name": "张三", "personal": {"email": "z@example.cn", "phones": ["138", "139"]},
       "addresses": [{"city": "北京"}, {"city": "上海"}]},
      {"card": 20230002, "name": "李四", "active": true, "score": 1.5, "extra": null},
      {},
      "not an object"
    ]"#;
    let path = write(&dir, "readers.json", doc.as_bytes());
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.format, Format::Json);
    assert_eq!(
        headers(&opened),
        ["card", "name", "personal.email", "personal.phones", "addresses.0.city", "addresses.1.city", "active", "score", "extra"]
    );
    assert_eq!(items.len(), 3, "the empty object is skipped");
    assert_eq!(items[0].as_ref().unwrap().cells, ["20230001", "张三", "z@example.cn", "138,139", "北京", "上海", "", "", ""]);
    assert_eq!(items[1].as_ref().unwrap().row, 2);
    assert_eq!(items[1].as_ref().unwrap().cells, ["20230002", "李四", "", "", "", "", "true", "1.5", ""]);
    let e = items[2].as_ref().unwrap_err();
    assert_eq!(e.row, Some(4));
    assert!(e.message.en.contains("not a JSON object"), "{e}");

    let wrapped = write(&dir, "wrapped.json", r#"{"total": 1, "readers": [{"card": "1", "name": "王五"}]}"#.as_bytes());
    let (opened, items) = read(&wrapped, &OpenOptions::default());
    assert_eq!(headers(&opened), ["card", "name"]);
    assert_eq!(rows(&items), [(1, vec!["1", "王五"])]);

    let broken = write(&dir, "broken.json", b"[{\"card\": 1},\n {\"card\": }]");
    let e = whole_error(&broken, &OpenOptions::default());
    assert!(e.message.en.contains("line 2"), "{e}");
    let e = whole_error(&write(&dir, "none.json", b"[]"), &OpenOptions::default());
    assert!(e.message.zh.contains("文件没有数据"), "{e}");
}

#[test]
fn a_folio_user_import_goes_to_the_folio_reader_unless_plain_json_is_asked() {
    let dir = TempDir::new().unwrap();
    let doc = r#"{"users": [{"username": "zhangsan", "barcode": "20230001", "personal": {"lastName": "张"}}],
                  "totalRecords": 1, "sourceType": "registrar"}"#;
    let path = write(&dir, "users.json", doc.as_bytes());
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.format, Format::Folio);
    assert_eq!(opened.hints.source.as_deref(), Some("registrar"));
    assert_eq!(items.len(), 1);

    let (opened, items) = read(&path, &OpenOptions { format: Some(Format::Json), ..OpenOptions::default() });
    assert_eq!(opened.format, Format::Json);
    assert_eq!(headers(&opened), ["username", "barcode", "personal.lastName"]);
    assert_eq!(rows(&items), [(1, vec!["zhangsan", "20230001", "张"])]);
}

#[test]
fn ndjson_streams_and_a_bad_line_is_an_error_for_that_line() {
    let dir = TempDir::new().unwrap();
    let text = "{\"card\": \"1\", \"name\": \"张三\", \"personal\": {\"email\": \"z@example.cn\"}}\n\
                {\"card\": \"2\", oops}\n\
                \n\
                {\"card\": \"3\", \"name\": \"李四\", \"tags\": [\"研究生\", \"志愿者\"]}\n\
                [1, 2]\n";
    let path = write(&dir, "readers.json", text.as_bytes());
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(opened.format, Format::Ndjson);
    assert_eq!(headers(&opened), ["card", "name", "personal.email", "tags"]);
    assert_eq!(items.len(), 4);
    assert_eq!(items[0].as_ref().unwrap().cells, ["1", "张三", "z@example.cn", ""]);
    let e = items[1].as_ref().unwrap_err();
    assert_eq!(e.row, Some(2));
    assert!(e.message.en.contains("not valid JSON"), "{e}");
    assert_eq!(items[2].as_ref().unwrap().row, 4);
    assert_eq!(items[2].as_ref().unwrap().cells, ["3", "李四", "", "研究生,志愿者"]);
    assert_eq!(items[3].as_ref().unwrap_err().row, Some(5));
}

#[test]
fn ndjson_headers_come_from_the_first_thousand_lines() {
    let dir = TempDir::new().unwrap();
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("{{\"card\": \"{i}\"}}\n"));
    }
    text.push_str("{\"card\": \"late\", \"nickname\": \"小李\"}\n{\"card\": \"last\"}\n");
    let path = write(&dir, "readers.ndjson", text.as_bytes());
    let (opened, items) = read(&path, &OpenOptions::default());
    assert_eq!(headers(&opened), ["card"]);
    assert_eq!(items.len(), 1002);
    let e = items[1000].as_ref().unwrap_err();
    assert_eq!(e.row, Some(1001));
    assert!(e.message.zh.contains("nickname") && e.message.en.contains("first 1000 lines"), "{e}");
    assert_eq!(items[1001].as_ref().unwrap().cells, ["last"]);
}

#[test]
fn windows_line_ends_keep_spreadsheet_row_numbers() {
    let dir = TempDir::new().unwrap();
    let text = "卡号,姓名\r\n1,张三\r\n\r\n\"2\",\"李\r\n四\"\r\n3,王五\r\n";
    let (_, items) = read(&write(&dir, "crlf.csv", text.as_bytes()), &OpenOptions::default());
    assert_eq!(rows(&items), vec![(2, vec!["1", "张三"]), (4, vec!["2", "李\r\n四"]), (6, vec!["3", "王五"])]);
    let old_mac = "卡号,姓名\r1,张三\r2,李四\r";
    let (opened, items) = read(&write(&dir, "mac.csv", old_mac.as_bytes()), &OpenOptions::default());
    assert_eq!(headers(&opened), vec!["卡号", "姓名"]);
    assert_eq!(rows(&items).iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(), vec![vec!["1", "张三"], vec!["2", "李四"]]);
}
