//! Arbitrary bytes through every file reader: opening and draining must return records or
//! errors, never panic. Workbook readers also get bytes behind a real signature and real
//! workbooks with bytes overwritten, so the zip and OLE parsers themselves are exercised.

use lector_import::formats::{open, sheets};
use lector_import::OpenOptions;
use proptest::prelude::*;
use proptest::test_runner::Config;
use rust_xlsxwriter::Workbook;
use std::path::Path;
use std::sync::OnceLock;
use tempfile::TempDir;

/// Opens `bytes` saved as `file` and reads every record; true when it got this far.
fn read_everything(file: &str, bytes: &[u8]) -> bool {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join(file);
    std::fs::write(&path, bytes).expect("write");
    drain(&path);
    let _ = sheets(&path);
    true
}

fn drain(path: &Path) {
    if let Ok(mut opened) = open(path, &OpenOptions::default()) {
        let _ = opened.records.headers().len();
        let mut steps = 0;
        while opened.records.next_record().is_some() {
            steps += 1;
            assert!(steps < 1_000_000, "a small input yields a bounded number of records");
        }
    }
}

/// A small valid workbook (with a merged range, numbers and a date).
fn xlsx_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "姓名").unwrap();
        sheet.write_string(0, 1, "院系").unwrap();
        sheet.write_string(1, 0, "张三").unwrap();
        sheet.write_number(2, 0, 20230001).unwrap();
        sheet.merge_range(1, 1, 2, 1, "计算机学院", &rust_xlsxwriter::Format::new()).unwrap();
        book.save_to_buffer().unwrap()
    })
}

/// A small real .xls written by Python's xlwt, when it is installed (required when `CI` is set).
fn xls_bytes() -> Option<&'static [u8]> {
    static BYTES: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let dir = TempDir::new().expect("temp dir");
            let path = dir.path().join("small.xls");
            let script = "import sys, xlwt\nb = xlwt.Workbook(encoding='utf-8')\ns = b.add_sheet('s')\n\
                          s.write(0, 0, '姓名'); s.write(0, 1, '院系'); s.write(1, 0, 20230001)\n\
                          s.write_merge(1, 2, 1, 1, '计算机学院')\nb.save(sys.argv[1])\n";
            let made = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).status();
            if matches!(made, Ok(status) if status.success()) {
                return Some(std::fs::read(&path).expect("read the .xls"));
            }
            assert!(std::env::var_os("CI").is_none(), "python3 with xlwt is needed for the .xls property test (pip install xlwt)");
            eprintln!("python3 with xlwt is missing (pip install xlwt): damaged .xls files are not tried");
            None
        })
        .as_deref()
}

const OLE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

fn text_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        proptest::collection::vec(
            prop_oneof![Just(b','), Just(b'"'), Just(b'\n'), Just(b'\t'), Just(b'{'), Just(b'}'), Just(b'['), any::<u8>()],
            0..512
        ),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 96, failure_persistence: None, ..Config::default() })]

    #[test]
    fn csv_never_panics(bytes in text_like()) {
        prop_assert!(read_everything("x.csv", &bytes));
    }

    #[test]
    fn tsv_never_panics(bytes in text_like()) {
        prop_assert!(read_everything("x.tsv", &bytes));
    }

    #[test]
    fn json_never_panics(bytes in text_like(), head in prop_oneof![Just(&b"["[..]), Just(&b"{"[..]), Just(&b""[..])]) {
        prop_assert!(read_everything("x.json", &[head, &bytes].concat()));
    }

    #[test]
    fn ndjson_never_panics(bytes in text_like()) {
        let with_lines = [b"{\"a\": 1}\n".as_slice(), &bytes, b"\n{\"b\": [1, {\"c\": null}]}\n"].concat();
        prop_assert!(read_everything("x.ndjson", &bytes));
        prop_assert!(read_everything("y.ndjson", &with_lines));
    }

    #[test]
    fn xlsx_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(read_everything("x.xlsx", &bytes));
        prop_assert!(read_everything("zip.xlsx", &[b"PK\x03\x04".as_slice(), &bytes].concat()));
    }

    #[test]
    fn damaged_xlsx_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
        let mut bytes = xlsx_bytes().to_vec();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        prop_assert!(read_everything("damaged.xlsx", &bytes));
    }

    #[test]
    fn xls_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert!(read_everything("x.xls", &bytes));
        prop_assert!(read_everything("ole.xls", &[OLE.as_slice(), &bytes].concat()));
    }

    #[test]
    fn damaged_xls_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
        if let Some(original) = xls_bytes() {
            let mut bytes = original.to_vec();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            prop_assert!(read_everything("damaged.xls", &bytes));
        }
    }
}
