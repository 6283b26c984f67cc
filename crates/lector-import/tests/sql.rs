//! Reading readers from other databases: this machine's MariaDB and PostgreSQL.
//!
//! `LECTOR_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`) and `LECTOR_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`). Tables get random names and are dropped
//! afterwards. An unreachable database skips its test with a notice, or fails it when `CI` is set.

use chrono::NaiveDate;
use lector_import::mapping::Profile;
use lector_import::sql::{open, SqlSelect, SqlSpec};
use lector_import::{Format, Record, SourceError};
use rand::Rng;
use sqlx::{Connection, Executor, MySqlConnection, PgConnection};
use std::future::Future;
use std::time::Duration;

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| default.to_string())
}

fn mysql_url() -> String {
    env_or("LECTOR_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
}

fn pg_url() -> String {
    env_or("LECTOR_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
}

/// A connection for setting up, or `None` (with a notice) when the server is not there.
async fn admin<C: Connection>(what: &str, url: &str) -> Option<C> {
    let why = match tokio::time::timeout(Duration::from_secs(10), C::connect(url)).await {
        Ok(Ok(conn)) => return Some(conn),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 10 s".to_string(),
    };
    if std::env::var_os("CI").is_some() {
        panic!("{what} at {url} is unreachable and CI is set: {why}");
    }
    eprintln!("NOTICE: skipping the {what} test: {url} is unreachable ({why}); set CI to make this a failure");
    None
}

fn suffix() -> String {
    format!("{:08x}", rand::thread_rng().gen::<u32>())
}

/// Runs `body` as its own task so that cleanup happens even when an assertion in it fails.
async fn guarded<F: Future<Output = ()> + Send + 'static>(body: F) -> Result<(), Box<dyn std::any::Any + Send>> {
    tokio::spawn(body).await.map_err(|e| e.into_panic())
}

fn spec(url: &str, select: SqlSelect) -> SqlSpec {
    SqlSpec { url: url.to_string(), select }
}

/// Opens the source and reads every record off the async threads, as the runner does.
async fn read(spec: &SqlSpec) -> Result<(Format, Vec<String>, Vec<Result<Record, SourceError>>), SourceError> {
    let mut opened = open(spec).await?;
    let format = opened.format;
    let headers = opened.records.headers().to_vec();
    let records = tokio::task::spawn_blocking(move || std::iter::from_fn(|| opened.records.next_record()).collect()).await.unwrap();
    Ok((format, headers, records))
}

async fn read_ok(spec: &SqlSpec) -> (Format, Vec<String>, Vec<Record>) {
    let (format, headers, records) = read(spec).await.unwrap_or_else(|e| panic!("{}: {e}", spec.redacted_url()));
    let records = records.into_iter().map(|r| r.unwrap_or_else(|e| panic!("{e}"))).collect();
    (format, headers, records)
}

fn refused(select: SqlSelect) -> impl Fn(&str) -> SqlSpec {
    move |url| spec(url, select.clone())
}

#[tokio::test]
async fn mariadb_table_and_query() {
    let url = mysql_url();
    let Some(mut conn) = admin::<MySqlConnection>("MariaDB", &url).await else { return };
    let table = format!("lector_src_{}", suffix());
    conn.execute(
        format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, card VARCHAR(32), name VARCHAR(64), fee DECIMAL(8,2), born DATE, \
             seen DATETIME, active BOOLEAN, score DOUBLE, note TEXT NULL, photo BLOB NULL) DEFAULT CHARSET = utf8mb4"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let rows: Vec<String> = (1..=600)
        .map(|i| {
            let extra = if i == 1 { "NULL, x'FF00'" } else { "'备注', NULL" };
            format!("({i}, 'C{i:04}', '读者{i}', {i}.50, '2004-03-05', '2024-03-05 10:20:30', {}, 1.5, {extra})", i % 2 == 1)
        })
        .collect();
    conn.execute(format!("INSERT INTO {table} VALUES {}", rows.join(",")).as_str()).await.unwrap();

    let body = {
        let (url, table) = (url.clone(), table.clone());
        async move {
            let (format, headers, records) = read_ok(&spec(&url, SqlSelect::Table(table.clone()))).await;
            assert_eq!(format, Format::Sql);
            assert_eq!(headers, ["id", "card", "name", "fee", "born", "seen", "active", "score", "note", "photo"]);
            assert_eq!(records.len(), 600, "all rows, across several batches");
            assert_eq!(records[0].row, 1);
            assert_eq!(records[0].cells, ["1", "C0001", "读者1", "1.50", "2004-03-05", "2024-03-05 10:20:30", "true", "1.5", "", ""]);
            assert_eq!(records[1].cells[6], "false");
            assert_eq!(records[1].cells[8], "备注");
            assert_eq!(records[599].row, 600);

            let (_, _, records) = read_ok(&spec(&url, SqlSelect::Table(format!("test.{table}")))).await;
            assert_eq!(records.len(), 600, "schema.table");

            let q = format!("SELECT card AS 读者证号, name AS 姓名 FROM {table} WHERE id <= 3 AND name <> ';' ORDER BY id;");
            let (_, headers, records) = read_ok(&spec(&url, SqlSelect::Query(q))).await;
            assert_eq!(headers, ["读者证号", "姓名"]);
            assert_eq!(records.iter().map(|r| r.cells[0].as_str()).collect::<Vec<_>>(), ["C0001", "C0002", "C0003"]);

            let (_, headers, records) =
                read_ok(&spec(&url, SqlSelect::Query(format!("SELECT card, name FROM {table} WHERE id < 0")))).await;
            assert_eq!(headers, ["card", "name"], "an empty result still has headers");
            assert!(records.is_empty());

            // Stopping early releases the reader without waiting for the rest.
            let mut opened = open(&spec(&url, SqlSelect::Table(table.clone()))).await.unwrap();
            let first = tokio::task::spawn_blocking(move || opened.records.next_record()).await.unwrap();
            assert_eq!(first.unwrap().unwrap().cells[1], "C0001");

            let e = read(&spec(&url, SqlSelect::Query("SELECT * FROM lector_no_such_table".into()))).await.expect_err("missing table");
            assert!(e.message.en.contains("127.0.0.1:3306") && e.message.en.contains("lector_no_such_table"), "{e:?}");
            assert!(e.message.zh.contains("127.0.0.1:3306"), "{e:?}");

            for q in [
                format!("DELETE FROM {table}"),
                format!("SELECT 1; DELETE FROM {table}"),
                format!("SELECT * FROM {table} INTO OUTFILE '/tmp/{table}.txt'"),
                format!("SELECT 'it\\'s'; DELETE FROM {table}"),
                format!("/* SELECT */ UPDATE {table} SET name = 'x'"),
            ] {
                let e = read(&spec(&url, SqlSelect::Query(q.clone()))).await.err().unwrap_or_else(|| panic!("ran {q}"));
                assert!(e.message.en.contains("read only"), "{q}: {e:?}");
            }
            let e = read(&spec(&url, SqlSelect::Table(format!("{table}; DROP TABLE {table}")))).await.expect_err("bad table name");
            assert!(e.message.en.contains("table name"), "{e:?}");
            let (_, _, records) =
                read_ok(&spec(&url, SqlSelect::Query(format!("SELECT 'a;b' AS s, card FROM {table} -- ; trailing comment")))).await;
            assert_eq!((records.len(), records[0].cells[0].as_str()), (600, "a;b"));
        }
    };
    let outcome = guarded(body).await;
    let left: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&mut conn).await.unwrap();
    conn.execute(format!("DROP TABLE {table}").as_str()).await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(left, 600, "nothing was changed");
}

#[tokio::test]
async fn koha_preset_reads_borrowers_with_attributes() {
    let url = mysql_url();
    let Some(mut conn) = admin::<MySqlConnection>("MariaDB", &url).await else { return };
    let db = format!("koha_{}", suffix());
    for stmt in [
        format!("CREATE DATABASE {db} CHARACTER SET utf8mb4"),
        format!(
            "CREATE TABLE {db}.borrowers (borrowernumber INT AUTO_INCREMENT PRIMARY KEY, cardnumber VARCHAR(32), surname LONGTEXT, \
             firstname MEDIUMTEXT, categorycode VARCHAR(10), branchcode VARCHAR(10), email MEDIUMTEXT, emailpro MEDIUMTEXT, \
             B_email MEDIUMTEXT, phone MEDIUMTEXT, mobile VARCHAR(50), phonepro MEDIUMTEXT, B_phone MEDIUMTEXT, dateenrolled DATE, \
             dateexpiry DATE, sex VARCHAR(1), dateofbirth DATE, sort1 VARCHAR(80), sort2 VARCHAR(80), userid VARCHAR(75), \
             password VARCHAR(60), address MEDIUMTEXT, city MEDIUMTEXT, borrowernotes LONGTEXT)"
        ),
        format!(
            "CREATE TABLE {db}.borrower_attributes (id INT AUTO_INCREMENT PRIMARY KEY, borrowernumber INT NOT NULL, \
             code VARCHAR(64) NOT NULL, attribute VARCHAR(255))"
        ),
        "SET SESSION sql_mode = ''".to_string(),
        format!(
            "INSERT INTO {db}.borrowers (cardnumber, surname, firstname, categorycode, branchcode, email, B_email, mobile, dateenrolled, \
             dateexpiry, sex, dateofbirth, sort1, userid, password) VALUES \
             ('20230001', '张', '三', 'UG', 'MAIN', 'zhangsan@pku.edu.cn', 'ZhangSan@pku.edu.cn', '13800138000', '2023-09-01', '2027-07-01', 'M', '0000-00-00', '历史学系', 'zs', '$2a$08$secret'), \
             ('T0042', 'Smith', 'John', 'FACULTY', 'MAIN', 'john.smith@pku.edu.cn', NULL, NULL, '2010-03-01', '2030-12-31', 'M', '1970-01-02', 'Physics', 'js', 'x'), \
             ('20190007', '李', '雷', 'UG', 'MAIN', NULL, NULL, NULL, '2019-09-01', '2023-07-01', 'F', NULL, NULL, 'll', 'x')"
        ),
        format!(
            "INSERT INTO {db}.borrower_attributes (borrowernumber, code, attribute) VALUES \
             (1, 'SCHOOL', '人文学部'), (1, 'RESEARCH_AREA', '宋史'), (1, 'RESEARCH_AREA', '元史, \"明\"史'), (1, 'SHOE', '42'), \
             (2, 'RESEARCH_AREA', 'Physics')"
        ),
    ] {
        conn.execute(stmt.as_str()).await.unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    let koha_url = match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => panic!("{url} names no database"),
    };

    let body = async move {
        let (format, headers, records) = read_ok(&spec(&koha_url, SqlSelect::Koha)).await;
        assert_eq!(format, Format::Koha);
        for h in ["borrowernumber", "cardnumber", "surname", "firstname", "categorycode", "B_email", "sort1", "patron_attributes"] {
            assert!(headers.iter().any(|x| x == h), "{h} in {headers:?}");
        }
        assert!(!headers.iter().any(|h| h == "password"), "the password hash is not read");
        assert_eq!(records.len(), 3);

        let mut profile = Profile::detect(&headers);
        profile.columns.get_mut("categorycode").unwrap().values.insert("UG".into(), "undergraduate".into());
        let attrs = [attr("school", false), attr("research_area", true)];
        let categories = ["undergraduate".to_string(), "faculty".to_string()];
        let mapper = profile.compile(&headers, &attrs, &categories).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
        let readers: Vec<_> = records.iter().map(|r| mapper.convert(r, today).unwrap_or_else(|e| panic!("{e:#?}"))).collect();

        let zhang = &readers[0];
        assert_eq!((zhang.external_id.as_str(), zhang.input.card_no.as_str(), zhang.input.name.as_str()), ("1", "20230001", "张三"));
        assert_eq!(zhang.input.category, "undergraduate");
        assert_eq!(zhang.input.birth_date, None, "Koha's zero date is no date");
        assert_eq!(zhang.input.contacts.len(), 2, "the same email twice is one contact, plus the mobile");
        assert_eq!(zhang.input.attributes.get("school"), Some(&vec!["人文学部".to_string()]));
        let mut areas = zhang.input.attributes.get("research_area").cloned().unwrap_or_default();
        areas.sort();
        assert_eq!(areas, vec!["元史, \"明\"史".to_string(), "宋史".to_string()]);
        assert!(!zhang.input.attributes.contains_key("shoe"));

        assert_eq!(readers[1].input.name.as_str(), "John Smith");
        assert_eq!(readers[1].input.birth_date, NaiveDate::from_ymd_opt(1970, 1, 2));
        assert_eq!(readers[2].input.name.as_str(), "李雷");
        assert!(readers[2].input.attributes.is_empty());
    };
    let outcome = guarded(body).await;
    conn.execute(format!("DROP DATABASE {db}").as_str()).await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn attr(code: &str, repeatable: bool) -> lector_domain::attribute::AttrDef {
    lector_domain::attribute::AttrDef {
        code: code.into(),
        label_zh: code.into(),
        label_en: code.into(),
        kind: lector_domain::attribute::AttrKind::Text,
        choices: vec![],
        repeatable,
        unique: false,
        searchable: false,
    }
}

#[tokio::test]
async fn postgres_types_become_text() {
    let url = pg_url();
    let Some(mut conn) = admin::<PgConnection>("PostgreSQL", &url).await else { return };
    let table = format!("lector_src_{}", suffix());
    conn.execute(
        format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, fee NUMERIC(8,2), born DATE, seen TIMESTAMP, active BOOL, name TEXT, note TEXT, big BIGINT, ratio REAL); \
             INSERT INTO {table} VALUES (1, 12.50, '2004-03-05', '2024-03-05 10:20:30', true, '张三', NULL, 9007199254740993, 0.25), \
             (2, -3, '1999-12-31', '2000-01-01 00:00:00', false, 'O''Brien', '', 0, 1)"
        )
        .as_str(),
    )
    .await
    .unwrap();

    let body = {
        let (url, table) = (url.clone(), table.clone());
        async move {
            let (format, headers, records) = read_ok(&spec(&url, SqlSelect::Table(format!("public.{table}")))).await;
            assert_eq!(format, Format::Sql);
            assert_eq!(headers, ["id", "fee", "born", "seen", "active", "name", "note", "big", "ratio"]);
            let mut cells: Vec<_> = records.into_iter().map(|r| r.cells).collect();
            cells.sort();
            assert_eq!(cells[0], ["1", "12.50", "2004-03-05", "2024-03-05 10:20:30", "true", "张三", "", "9007199254740993", "0.25"]);
            assert_eq!(cells[1], ["2", "-3.00", "1999-12-31", "2000-01-01 00:00:00", "false", "O'Brien", "", "0", "1"]);

            let (_, headers, records) =
                read_ok(&spec(&url, SqlSelect::Query(format!("WITH t AS (SELECT * FROM {table}) SELECT name FROM t WHERE id > 5")))).await;
            assert_eq!(headers, ["name"]);
            assert!(records.is_empty());

            // The read-only transaction stops what the statement check lets through.
            let q = format!("WITH gone AS (DELETE FROM {table} RETURNING *) SELECT * FROM gone");
            let (_, _, records) = read(&spec(&url, SqlSelect::Query(q))).await.expect("prepared");
            let e = records.into_iter().find_map(Result::err).expect("the delete fails");
            assert!(e.message.en.contains("read-only"), "{e:?}");

            // PostgreSQL reads a backslash literally: the semicolon here ends the statement.
            let q = format!("SELECT 'a\\'; DELETE FROM {table}; --'");
            let e = read(&spec(&url, SqlSelect::Query(q))).await.expect_err("two statements");
            assert!(e.message.en.contains("read only"), "{e:?}");

            let e = read(&spec(&url, SqlSelect::Query("SELECT nope FROM lector_no_such_table".into()))).await.expect_err("missing table");
            assert!(e.message.en.contains("127.0.0.1:5432") && e.message.en.contains("lector_no_such_table"), "{e:?}");

            let e = read(&spec(&url, SqlSelect::Koha)).await.expect_err("Koha is MySQL");
            assert!(e.message.en.contains("MySQL"), "{e:?}");
        }
    };
    let outcome = guarded(body).await;
    let left: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&mut conn).await.unwrap();
    conn.execute(format!("DROP TABLE {table}").as_str()).await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(left, 2, "nothing was deleted");
}

#[tokio::test]
async fn a_refused_connection_names_the_host_and_not_the_password() {
    for make in [refused(SqlSelect::Table("readers".into())), refused(SqlSelect::Koha)] {
        for url in [
            "postgres://lector:secret123@127.0.0.1:1/lib",
            "mysql://lector:secret123@127.0.0.1:1/lib",
            "mariadb://lector:secret123@127.0.0.1:1/lib",
        ] {
            let s = make(url);
            let e = match open(&s).await {
                Ok(_) => panic!("connected to {url}"),
                Err(e) => e,
            };
            assert_eq!(e.row, None);
            let text = format!("{e}");
            assert!(!text.contains("secret123"), "{text}");
            if url.starts_with("postgres") && s.select == SqlSelect::Koha {
                assert!(e.message.en.contains("MySQL"), "{text}");
            } else {
                assert!(e.message.en.contains("cannot connect") && e.message.en.contains("127.0.0.1:1"), "{text}");
                assert!(e.message.zh.contains("无法连接") && e.message.zh.contains("127.0.0.1:1"), "{text}");
            }
        }
    }
    let e = open(&spec("oracle://x@host/db", SqlSelect::Table("t".into()))).await.err().expect("unknown scheme");
    assert!(e.message.en.contains("postgres://"), "{e:?}");
}

#[test]
fn redacted_urls_hide_the_password() {
    let s = |url: &str| spec(url, SqlSelect::Koha).redacted_url();
    assert_eq!(s("mysql://koha:p%40ss@db.example.edu:3306/koha"), "mysql://koha:***@db.example.edu:3306/koha");
    assert_eq!(s("postgres://reader@127.0.0.1/lib"), "postgres://reader@127.0.0.1/lib");
    assert!(!s("mysql://u:pw!@#$@host/db").contains("pw!"));
}
