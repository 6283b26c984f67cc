//! End-to-end import tests of the real binary: a GBK spreadsheet export from a registrar, with
//! bad rows; re-import, dry run, update and undo.

mod common;

use common::*;
use std::path::Path;

/// Writes `text` to `path` encoded as GBK, as Excel on a Chinese Windows saves "CSV".
fn write_gbk(path: &Path, text: &str) {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable);
    std::fs::write(path, bytes).unwrap();
}

fn import_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let o = lector(dir, args);
    assert!(o.status.success(), "{:?} failed: {}{}", args, stderr(&o), stdout(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

const HEADER: &str = "读者证号,姓名,性别,读者类型,院系,手机,电子邮件,出生日期\r\n";
const GOOD: &str = "２０２６０００１,张 伟,男,本科生,计算机学院,13800138000,ZHANGWEI@Example.edu.cn,2005年3月5日\r\n\
20260002,李娜,女,研究生,文学院,13900139000,lina@example.edu.cn,2001/9/1\r\n\
20260003,欧阳明月,女,教师,历史学院,,oymy@example.edu.cn,19800101\r\n";
const BAD: &str = "20260004,王芳,女,本科生,文学院,12345,wf@example.edu.cn,2004-02-30\r\n\
20260005,赵强,男,火星人,物理学院,13700137000,zq@example.edu.cn,2003-01-01\r\n";

#[test]
fn a_gbk_registrar_export_imports_reimports_updates_and_undoes() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("学生名单.csv");
    write_gbk(&csv, &format!("{HEADER}{GOOD}{BAD}"));
    let report = dir.path().join("errors.csv");
    let path = csv.to_str().unwrap();

    let first =
        import_json(dir.path(), &["import", "readers", path, "--source", "registrar", "--json", "--rejections", report.to_str().unwrap()]);
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["counts"]["created"], 3, "{first}");
    assert_eq!(first["counts"]["rejected"], 2, "rows 5 (two problems) and 6 (one): {first}");
    let errors = std::fs::read_to_string(&report).unwrap();
    assert!(errors.lines().any(|l| l.starts_with("5,手机,12345,")), "{errors}");
    assert!(errors.lines().any(|l| l.starts_with("5,出生日期,2004-02-30,")), "{errors}");
    assert!(errors.lines().any(|l| l.starts_with("6,读者类型,火星人,")), "{errors}");

    let again = import_json(dir.path(), &["import", "readers", path, "--source", "registrar", "--json"]);
    assert_eq!(again["counts"]["unchanged"], 3, "{again}");
    assert_eq!(again["counts"]["created"], 0, "{again}");

    // Li Na changed her mobile: a dry run says so and writes nothing; the real run updates.
    write_gbk(&csv, &format!("{HEADER}{}", GOOD.replace("13900139000", "13911112222")));
    for _ in 0..2 {
        let dry = import_json(dir.path(), &["import", "readers", path, "--source", "registrar", "--dry-run", "--json"]);
        assert_eq!(dry["dry_run"], true);
        assert_eq!((dry["counts"]["updated"].clone(), dry["counts"]["unchanged"].clone()), (1.into(), 2.into()), "{dry}");
    }
    let update = import_json(dir.path(), &["import", "readers", path, "--source", "registrar", "--json"]);
    assert_eq!(update["counts"]["updated"], 1, "{update}");
    let after = import_json(dir.path(), &["import", "readers", path, "--source", "registrar", "--dry-run", "--json"]);
    assert_eq!(after["counts"]["unchanged"], 3, "the update was written: {after}");

    // Undoing the update brings the old mobile back: the new file is a change again.
    let undone = import_json(dir.path(), &["import", "undo", &update["id"].to_string(), "--json"]);
    assert_eq!(undone["status"], "undone", "{undone}");
    let check = import_json(dir.path(), &["import", "readers", path, "--source", "registrar", "--dry-run", "--json"]);
    assert_eq!(check["counts"]["updated"], 1, "{check}");

    let jobs = import_json(dir.path(), &["import", "jobs", "--json"]);
    assert_eq!(jobs.as_array().unwrap().len(), 7, "{jobs}");
}

#[test]
fn bad_sources_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("readers.csv");
    std::fs::write(&garbage, (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect::<Vec<u8>>()).unwrap();
    let o = lector(dir.path(), &["import", "readers", garbage.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("readers.csv"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    let header_only = dir.path().join("empty.csv");
    std::fs::write(&header_only, HEADER).unwrap();
    let o = lector(dir.path(), &["import", "readers", header_only.to_str().unwrap(), "--json"]);
    assert!(!o.status.success(), "a file without rows is a failed job");
    assert!(stderr(&o).contains("no data rows"), "{}", stderr(&o));

    let o = lector(dir.path(), &["import", "sql", "--url", "mysql://root@127.0.0.1:1/none", "--table", "borrowers", "--source", "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("127.0.0.1"), "names the host: {}", stderr(&o));
}
