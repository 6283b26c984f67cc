//! Mapping profiles: recognising headers, value maps, defaults, transforms, and rejections that
//! name row, column and value.

use chrono::NaiveDate;
use lector_domain::attribute::{AttrDef, AttrKind};
use lector_domain::contact::ContactKind;
use lector_domain::import::{IncomingReader, ReaderField, Rejection, Target};
use lector_domain::reader::{Gender, ReaderStatus};
use lector_import::mapping::{MapTarget, Mapper, Profile};
use lector_import::Record;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 15).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn record(row: u64, cells: &[&str]) -> Record {
    Record { row, cells: strings(cells) }
}

fn categories() -> Vec<String> {
    strings(&["undergraduate", "graduate", "doctoral", "faculty", "staff", "external"])
}

fn attr(code: &str, kind: AttrKind, repeatable: bool) -> AttrDef {
    AttrDef {
        code: code.into(),
        label_zh: format!("属性{code}"),
        label_en: format!("attribute {code}"),
        kind,
        choices: vec![],
        repeatable,
        unique: false,
        searchable: true,
    }
}

fn attributes() -> Vec<AttrDef> {
    vec![
        attr("school", AttrKind::Text, false),
        attr("research_area", AttrKind::Text, true),
        attr("enroll_year", AttrKind::Number, false),
        attr("graduation", AttrKind::Date, false),
    ]
}

fn field(profile: &Profile, header: &str) -> String {
    profile.columns.get(header).unwrap_or_else(|| panic!("no column {header} in {profile:?}")).field.code()
}

fn ok(mapper: &Mapper, rec: &Record) -> IncomingReader {
    mapper.convert(rec, today()).unwrap_or_else(|r| panic!("row {} rejected: {r:#?}", rec.row))
}

fn rejected(mapper: &Mapper, rec: &Record) -> Vec<Rejection> {
    match mapper.convert(rec, today()) {
        Ok(r) => panic!("row {} accepted: {r:#?}", rec.row),
        Err(r) => r,
    }
}

fn contact(r: &IncomingReader, kind: ContactKind) -> Vec<String> {
    r.input.contacts.iter().filter(|c| c.kind == kind).map(|c| c.value.clone()).collect()
}

#[test]
fn chinese_headers_are_recognised_without_a_profile() {
    let headers = strings(&[
        "学号",
        "姓名",
        "读者类型",
        "性别",
        "院系",
        "手机号码",
        "联系电话",
        "电子邮件",
        "出生日期",
        "有效期至",
        "办证日期",
        "状态",
        "QQ",
        "微信",
        "标签",
        "备注",
        "身份证号",
    ]);
    let profile = Profile::detect(&headers);
    for (h, f) in [
        ("学号", "card_no"),
        ("姓名", "name"),
        ("读者类型", "category"),
        ("性别", "gender"),
        ("院系", "affiliation"),
        ("手机号码", "mobile"),
        ("联系电话", "phone"),
        ("电子邮件", "email"),
        ("出生日期", "birth_date"),
        ("有效期至", "expires_on"),
        ("办证日期", "enrolled_on"),
        ("状态", "status"),
        ("QQ", "qq"),
        ("微信", "wechat"),
        ("标签", "tags"),
        ("备注", "notes"),
        ("身份证号", "ignore"),
    ] {
        assert_eq!(field(&profile, h), f, "header {h}");
    }
    // Other spellings of the same meanings.
    let other = Profile::detect(&strings(&["读者证号", "邮箱", "手机", "单位", "生日", "到期日期", "注册日期", "读者类别"]));
    for (h, f) in [
        ("读者证号", "card_no"),
        ("邮箱", "email"),
        ("手机", "mobile"),
        ("单位", "affiliation"),
        ("生日", "birth_date"),
        ("到期日期", "expires_on"),
        ("注册日期", "enrolled_on"),
        ("读者类别", "category"),
    ] {
        assert_eq!(field(&other, h), f, "header {h}");
    }

    let mapper = profile.compile(&headers, &attributes(), &categories()).unwrap();
    let r = ok(
        &mapper,
        &record(
            2,
            &[
                "２０２３０００１",
                " 张晓明 ",
                "本科生",
                "男",
                "历史学系",
                "138 0013 8000",
                "010-62751234",
                "ZXM@PKU.edu.cn",
                "2004年3月5日",
                "2027/7/1",
                "20230901",
                "正常",
                "12345678",
                "wxid_zxm2023",
                "新生；读书会、新生",
                "转专业",
                "110101200403050011",
            ],
        ),
    );
    let i = &r.input;
    assert_eq!(i.card_no.as_str(), "20230001");
    assert_eq!(i.name.as_str(), "张晓明");
    assert_eq!(i.category, "undergraduate");
    assert_eq!(i.gender, Gender::Male);
    assert_eq!(i.affiliation.as_deref(), Some("历史学系"));
    assert_eq!(i.birth_date, Some(date(2004, 3, 5)));
    assert_eq!(i.expires_on, Some(date(2027, 7, 1)));
    assert_eq!(i.enrolled_on, Some(date(2023, 9, 1)));
    assert_eq!(i.status, ReaderStatus::Active);
    assert_eq!(contact(&r, ContactKind::Mobile), vec!["13800138000"]);
    assert_eq!(contact(&r, ContactKind::Phone), vec!["010-62751234"]);
    assert_eq!(contact(&r, ContactKind::Email), vec!["zxm@pku.edu.cn"]);
    assert_eq!(contact(&r, ContactKind::Qq), vec!["12345678"]);
    assert_eq!(contact(&r, ContactKind::Wechat), vec!["wxid_zxm2023"]);
    assert_eq!(i.tags, vec!["新生", "读书会"]);
    assert_eq!(i.notes.as_deref(), Some("转专业"));
    assert_eq!(r.external_id, "20230001", "the card number stands in for a missing id column");
    assert_eq!(r.row, 2);
    assert!(r.mapped.contains(&ReaderField::Wechat) && !r.mapped.contains(&ReaderField::Owner));

    // A blank cell is mapped but not present.
    let mut cells = vec![""; headers.len()];
    cells[..3].copy_from_slice(&["20230002", "李雷", "graduate"]);
    let r = ok(&mapper, &record(3, &cells));
    assert!(r.mapped.contains(&ReaderField::Email));
    assert!(!r.present.contains(&ReaderField::Email));
    assert!(r.present.contains(&ReaderField::Name));
    assert!(r.input.contacts.is_empty());
}

#[test]
fn english_headers_are_recognised() {
    let headers = strings(&["Card Number", "Name", "E-mail", "Mobile", "Category", "Department", "Date of birth", "Expiry date", "Notes"]);
    let profile = Profile::detect(&headers);
    for (h, f) in [
        ("Card Number", "card_no"),
        ("Name", "name"),
        ("E-mail", "email"),
        ("Mobile", "mobile"),
        ("Category", "category"),
        ("Department", "affiliation"),
        ("Date of birth", "birth_date"),
        ("Expiry date", "expires_on"),
        ("Notes", "notes"),
    ] {
        assert_eq!(field(&profile, h), f, "header {h}");
    }
    let mapper = profile.compile(&headers, &[], &categories()).unwrap();
    let r = ok(&mapper, &record(2, &["s-1001", "Ada Lovelace", "ada@example.org", "", "Faculty", "Mathematics", "1990-12-10", "", ""]));
    assert_eq!(r.input.card_no.as_str(), "S-1001");
    assert_eq!(r.input.category, "faculty", "a code in any case is accepted");
}

/// Koha's patron import CSV, read with the csv crate as a file reader would.
const KOHA_CSV: &str = "\
cardnumber,surname,firstname,categorycode,branchcode,email,phone,mobile,dateenrolled,dateexpiry,sex,dateofbirth,sort1,sort2,borrowernumber,userid,address,city,B_email,patron_attributes
20230001,张,三,UG,MAIN,zhangsan@pku.edu.cn,010-62751234,13800138000,2023-09-01,2027-07-01,M,2004-03-05,历史学系,,101,zhangsan,海淀路5号,北京,ZHANGSAN@pku.edu.cn,\"SCHOOL:人文学部,RESEARCH_AREA:宋史,\"\"RESEARCH_AREA:元史, 明史\"\",SHOE_SIZE:42\"
T0042,Smith,John,FACULTY,MAIN,john.smith@pku.edu.cn,,,2010-03-01,2030-12-31,M,,Physics,,102,jsmith,,,j.smith@example.org,
";

fn koha() -> (Vec<String>, Vec<Record>) {
    let mut reader = csv::Reader::from_reader(KOHA_CSV.as_bytes());
    let headers = reader.headers().unwrap().iter().map(str::to_string).collect();
    let records = reader
        .records()
        .enumerate()
        .map(|(i, r)| Record { row: i as u64 + 2, cells: r.unwrap().iter().map(str::to_string).collect() })
        .collect();
    (headers, records)
}

#[test]
fn koha_headers_and_patron_attributes() {
    let (headers, records) = koha();
    let mut profile = Profile::detect(&headers);
    for (h, f) in [
        ("cardnumber", "card_no"),
        ("surname", "family_name"),
        ("firstname", "given_name"),
        ("categorycode", "category"),
        ("branchcode", "ignore"),
        ("email", "email"),
        ("B_email", "email"),
        ("phone", "phone"),
        ("mobile", "mobile"),
        ("dateenrolled", "enrolled_on"),
        ("dateexpiry", "expires_on"),
        ("sex", "gender"),
        ("dateofbirth", "birth_date"),
        ("sort1", "affiliation"),
        ("sort2", "ignore"),
        ("borrowernumber", "external_id"),
        ("userid", "ignore"),
        ("patron_attributes", "patron_attributes"),
    ] {
        assert_eq!(field(&profile, h), f, "header {h}");
    }
    // Koha category codes are the library's own: a value map turns them into Lector's.
    profile.columns.get_mut("categorycode").unwrap().values.insert("UG".into(), "undergraduate".into());
    let mapper = profile.compile(&headers, &attributes(), &categories()).unwrap();

    let zhang = ok(&mapper, &records[0]);
    assert_eq!(zhang.input.name.as_str(), "张三", "a Chinese name joins family and given name without a space");
    assert_eq!(zhang.external_id, "101");
    assert_eq!(zhang.input.category, "undergraduate");
    assert_eq!(zhang.input.affiliation.as_deref(), Some("历史学系"));
    assert_eq!(contact(&zhang, ContactKind::Email), vec!["zhangsan@pku.edu.cn"], "the same address twice is one contact");
    assert_eq!(zhang.input.attributes.get("school"), Some(&vec!["人文学部".to_string()]));
    assert_eq!(zhang.input.attributes.get("research_area"), Some(&vec!["宋史".to_string(), "元史, 明史".to_string()]));
    assert!(!zhang.input.attributes.contains_key("shoe_size"), "a code Lector lacks is skipped, not rejected");
    assert!(zhang.mapped_attributes.contains(&"research_area".to_string()));

    let smith = ok(&mapper, &records[1]);
    assert_eq!(smith.input.name.as_str(), "John Smith", "a Latin name is given name first");
    assert_eq!(smith.input.category, "faculty");
    assert_eq!(contact(&smith, ContactKind::Email), vec!["john.smith@pku.edu.cn", "j.smith@example.org"]);
    assert!(smith.input.attributes.is_empty());
}

#[test]
fn sort1_is_the_affiliation_only_when_nothing_better_is_there() {
    let profile = Profile::detect(&strings(&["sort1", "cardnumber", "院系"]));
    assert_eq!(field(&profile, "院系"), "affiliation");
    assert_eq!(field(&profile, "sort1"), "ignore");
    let profile = Profile::detect(&strings(&["学号", "卡号"]));
    assert_eq!(field(&profile, "学号"), "card_no");
    assert_eq!(field(&profile, "卡号"), "ignore", "a second card number column does not compete");
}

const REGISTRAR: &str = r#"
name = "教务处学生名单"
source = "registrar"

[columns."学号"]
field = "card_no"
transforms = ["halfwidth", "upper"]

[columns."姓名"]
field = "name"

[columns."类型"]
field = "category"
values = { "本科" = "undergraduate", "研究生" = "graduate", "ＰＨＤ" = "doctoral" }

[columns."入学日期"]
field = "enrolled_on"
transforms = ["trim", "date"]

[columns."毕业日期"]
field = "attr.graduation"

[columns."兴趣"]
field = "tags"
split = "|"

[columns."研究方向"]
field = "attr.research_area"
split = "/"

[columns."邮箱"]
field = "email"
transforms = ["lower"]

[columns."学院代码"]
field = "affiliation"
values = { "H" = "历史学系", "P" = "物理学院" }

[columns."导师"]
field = "attr.advisor"
optional = true

[defaults]
status = "active"
affiliation = "未分配"
"attr.school" = "本部"

[options]
update_only_present = true
never_overwrite = ["notes"]
"#;

fn registrar_headers() -> Vec<String> {
    strings(&["学号", "姓名", "类型", "入学日期", "毕业日期", "兴趣", "研究方向", "邮箱", "学院代码"])
}

#[test]
fn value_maps_defaults_and_transforms() {
    let profile = Profile::from_toml(REGISTRAR).unwrap();
    assert_eq!(profile.source.as_deref(), Some("registrar"));
    assert!(profile.options.update_only_present);
    assert_eq!(profile.options.never_overwrite, vec![ReaderField::Notes]);
    let mapper = profile.compile(&registrar_headers(), &attributes(), &categories()).unwrap();

    let r = ok(
        &mapper,
        &record(2, &["ｓ２０２３０００１", "王芳", "本科", " 45356 ", "2027年7月1日", "篮球|书法", "宋史/元史", "WF@PKU.EDU.CN", "H"]),
    );
    assert_eq!(r.input.card_no.as_str(), "S20230001");
    assert_eq!(r.input.category, "undergraduate");
    assert_eq!(r.input.enrolled_on, Some(date(2024, 3, 5)), "Excel serial 45356 is 2024-03-05");
    assert_eq!(r.input.attributes.get("graduation"), Some(&vec!["2027-07-01".to_string()]));
    assert_eq!(r.input.tags, vec!["篮球", "书法"]);
    assert_eq!(r.input.attributes.get("research_area"), Some(&vec!["宋史".to_string(), "元史".to_string()]));
    assert_eq!(contact(&r, ContactKind::Email), vec!["wf@pku.edu.cn"]);
    assert_eq!(r.input.affiliation.as_deref(), Some("历史学系"));
    assert_eq!(r.input.status, ReaderStatus::Active);
    assert_eq!(r.input.attributes.get("school"), Some(&vec!["本部".to_string()]), "an attribute default");
    assert!(r.present.contains(&ReaderField::Status), "a default is a value");
    assert!(r.mapped.contains(&ReaderField::Status));
    assert_eq!(r.mapped_attributes, vec!["graduation", "research_area", "school"]);

    // Blank cells take the defaults; full-width keys of a value map match their half-width cells.
    let r = ok(&mapper, &record(3, &["S20230002", "赵敏", "phd", "2024/3/5", "", "", "", "", ""]));
    assert_eq!(r.input.category, "doctoral");
    assert_eq!(r.input.enrolled_on, Some(date(2024, 3, 5)));
    assert_eq!(r.input.affiliation.as_deref(), Some("未分配"));
    assert!(r.input.tags.is_empty());

    // Every date form Lector reads.
    for (cell, expected) in [("2024-03-05", date(2024, 3, 5)), ("20240305", date(2024, 3, 5)), ("2024-03-05 08:30:00", date(2024, 3, 5))] {
        let r = ok(&mapper, &record(4, &["S1", "甲", "本科", cell, "", "", "", "", ""]));
        assert_eq!(r.input.enrolled_on, Some(expected), "{cell}");
    }
}

#[test]
fn family_and_given_name_columns_can_be_mapped_by_hand() {
    let profile = Profile::from_toml(
        r#"
[columns."证号"]
field = "card_no"
[columns."姓"]
field = "family_name"
[columns."名"]
field = "given_name"
[defaults]
category = "staff"
"#,
    )
    .unwrap();
    let headers = strings(&["证号", "姓", "名"]);
    let mapper = profile.compile(&headers, &[], &categories()).unwrap();
    assert_eq!(ok(&mapper, &record(2, &["G1", "欧阳", "娜娜"])).input.name.as_str(), "欧阳娜娜");
    assert_eq!(ok(&mapper, &record(3, &["G2", "", "Madonna"])).input.name.as_str(), "Madonna");
    assert_eq!(ok(&mapper, &record(4, &["G3", "Curie", "Marie"])).input.category, "staff");
}

fn find<'a>(rejections: &'a [Rejection], column: &str) -> &'a Rejection {
    rejections.iter().find(|r| r.column == column).unwrap_or_else(|| panic!("no rejection for column {column}: {rejections:#?}"))
}

#[test]
fn every_rejection_names_row_column_and_value() {
    let headers = strings(&[
        "读者证号",
        "姓名",
        "读者类型",
        "性别",
        "手机",
        "电子邮件",
        "出生日期",
        "办证日期",
        "有效期至",
        "标签",
        "入学年份",
        "patron_attributes",
        "状态",
    ]);
    let mut profile = Profile::detect(&headers);
    profile.columns.insert("入学年份".into(), lector_import::mapping::Column::new(MapTarget::parse("attr.enroll_year").unwrap()));
    let mapper = profile.compile(&headers, &attributes(), &categories()).unwrap();
    let bad = record(
        7,
        &[
            "卡号!",
            "",
            "本科生",
            "x",
            "12345",
            "not-an-email",
            "2030-01-01",
            "2024-09-01",
            "2024-01-01",
            &"长".repeat(40),
            "二〇二三",
            "SCHOOL",
            "gone",
        ],
    );
    let rejections = rejected(&mapper, &bad);
    assert!(rejections.iter().all(|r| r.row == 7));
    let cases = [
        ("读者证号", "卡号!", "card number"),
        ("姓名", "", "name"),
        ("性别", "x", "gender"),
        ("手机", "12345", "mobile"),
        ("电子邮件", "not-an-email", "email"),
        ("出生日期", "2030-01-01", "future"),
        ("有效期至", "2024-01-01", "before the enrolment"),
        ("入学年份", "二〇二三", "number"),
        ("patron_attributes", "SCHOOL", "CODE:value"),
        ("状态", "gone", "status"),
    ];
    for (column, value, reason) in cases {
        let r = find(&rejections, column);
        assert_eq!(r.value, value, "value for {column}");
        assert!(r.reason.en.contains(reason), "reason for {column}: {:?}", r.reason);
        assert!(!r.reason.zh.is_empty());
    }
    let tag = find(&rejections, "标签");
    assert_eq!(tag.value, "长".repeat(40));

    // An unparseable date points at its own column, and is the only problem of the row.
    let r = rejected(&mapper, &record(8, &["A1", "甲", "本科", "", "", "a@b.cn", "32/13/2020", "", "", "", "", "", ""]));
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!((r[0].column.as_str(), r[0].value.as_str()), ("出生日期", "32/13/2020"));
    assert!(r[0].reason.en.contains("not a valid date"));
}

#[test]
fn an_unknown_category_names_the_valid_codes() {
    let headers = strings(&["学号", "姓名", "类型"]);
    let mapper = Profile::detect(&headers).compile(&headers, &[], &categories()).unwrap();
    let r = rejected(&mapper, &record(5, &["20230001", "张三", "访问学者"]));
    assert_eq!(r.len(), 1, "reported once: {r:#?}");
    assert_eq!((r[0].row, r[0].column.as_str(), r[0].value.as_str()), (5, "类型", "访问学者"));
    for code in categories() {
        assert!(r[0].reason.en.contains(&code) && r[0].reason.zh.contains(&code), "{code} listed in {:?}", r[0].reason);
    }
    // Common words only count when the library has that code.
    let mapper = Profile::detect(&headers).compile(&headers, &[], &strings(&["student"])).unwrap();
    assert_eq!(rejected(&mapper, &record(6, &["1", "张三", "本科"]))[0].column, "类型");
    // A blank category with no default points at the category column.
    let mapper = Profile::detect(&headers).compile(&headers, &[], &categories()).unwrap();
    let r = rejected(&mapper, &record(9, &["1", "张三", ""]));
    assert_eq!((r[0].column.as_str(), r[0].value.as_str()), ("类型", ""));
}

#[test]
fn a_bad_date_transform_is_rejected_in_its_column() {
    let profile = Profile::from_toml(
        r#"
[columns."学号"]
field = "card_no"
[columns."姓名"]
field = "name"
[columns."备注"]
field = "notes"
transforms = ["date"]
[defaults]
category = "staff"
"#,
    )
    .unwrap();
    let headers = strings(&["学号", "姓名", "备注"]);
    let mapper = profile.compile(&headers, &[], &categories()).unwrap();
    assert_eq!(ok(&mapper, &record(2, &["1", "甲", "45356"])).input.notes.as_deref(), Some("2024-03-05"));
    let r = rejected(&mapper, &record(3, &["1", "甲", "明天"]));
    assert_eq!((r[0].column.as_str(), r[0].value.as_str()), ("备注", "明天"));
}

#[test]
fn profile_round_trip() {
    let profile = Profile::from_toml(REGISTRAR).unwrap();
    let text = profile.to_toml();
    let again = Profile::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, profile);
    assert!(text.contains("教务处学生名单"));
    let detected = Profile::detect(&koha().0);
    assert_eq!(Profile::from_toml(&detected.to_toml()).unwrap(), detected);
    assert_eq!(Profile::from_toml("").unwrap(), Profile::default());
}

#[test]
fn profile_errors_name_the_line() {
    let cases = [
        ("[columns.\"学号\"]\nfield = \"card_no\"\n\n[columns.\"姓名\"]\nfeild = \"name\"\n", 5, "feild"),
        ("name = \"x\"\n[columns.\"学号\"]\nfield = \"cardno\"\n", 3, "cardno"),
        ("[columns.\"学号\"]\nfield = \"card_no\"\ntransforms = [\"trim\", \"reverse\"]\n", 3, "reverse"),
        ("[columns.\"学号\"]\nfield = \"card_no\"\n[defaults]\nstatus = \"active\"\ncard_no = \"1\"\n", 5, "card_no"),
        ("[defaults]\ncolour = \"red\"\n", 2, "colour"),
        ("name = \"unterminated\n", 1, ""),
        ("[columns.\"学号\"]\nfield = \"tags\"\nsplit = \"\"\n", 1, "split"),
    ];
    for (text, line, word) in cases {
        let e = Profile::from_toml(text).expect_err(text);
        assert!(e.en.contains(&format!("line {line}")), "{text}: {e:?}");
        assert!(e.zh.contains(&format!("第 {line} 行")), "{text}: {e:?}");
        assert!(e.en.contains(word), "{text}: {e:?}");
    }
}

#[test]
fn compile_errors_say_what_to_fix() {
    let headers = registrar_headers();
    let compile = |text: &str| Profile::from_toml(text).unwrap().compile(&headers, &attributes(), &categories()).map(|_| ()).unwrap_err();

    let e = compile(&REGISTRAR.replace("[columns.\"兴趣\"]", "[columns.\"爱好\"]"));
    assert!(e.zh.contains("爱好") && e.en.contains("爱好") && e.en.contains("学号"), "names the missing column and those present: {e:?}");

    let e = compile(&REGISTRAR.replace("attr.research_area", "attr.research"));
    assert!(e.en.contains("'research'") && e.en.contains("研究方向") && e.en.contains("research_area"), "{e:?}");

    let e = compile(&REGISTRAR.replace("\"研究生\" = \"graduate\"", "\"研究生\" = \"grad_student\""));
    assert!(e.en.contains("grad_student") && e.en.contains("类型") && e.en.contains("undergraduate"), "{e:?}");

    let e = compile(&REGISTRAR.replace("status = \"active\"", "status = \"sleeping\""));
    assert!(e.en.contains("default status") && e.en.contains("sleeping"), "{e:?}");

    let e = compile(&REGISTRAR.replace("\"attr.school\"", "\"attr.hobby\""));
    assert!(e.en.contains("hobby"), "{e:?}");

    let e = compile(&REGISTRAR.replace("field = \"card_no\"", "field = \"notes\""));
    assert!(e.en.contains("card_no"), "{e:?}");

    let e = compile("[columns.\"学号\"]\nfield = \"card_no\"\n[columns.\"姓名\"]\nfield = \"name\"\n");
    assert!(e.en.contains("category") && e.zh.contains("读者类型"), "{e:?}");

    // An optional column may be missing from the file, and its attribute from Lector.
    let lenient = REGISTRAR.replace("[columns.\"导师\"]", "[columns.\"导师姓名\"]");
    assert!(Profile::from_toml(&lenient).unwrap().compile(&headers, &attributes(), &categories()).is_ok());
}

#[test]
fn folio_and_target_codes_parse() {
    let profile = Profile::detect(&strings(&[
        "externalSystemId",
        "barcode",
        "username",
        "active",
        "patronGroup",
        "personal.lastName",
        "personal.firstName",
        "personal.email",
        "personal.mobilePhone",
        "personal.phone",
        "personal.dateOfBirth",
        "enrollmentDate",
        "expirationDate",
        "departments",
        "customFields.researchArea",
    ]));
    for (h, f) in [
        ("externalSystemId", "external_id"),
        ("barcode", "card_no"),
        ("username", "ignore"),
        ("active", "status"),
        ("patronGroup", "category"),
        ("personal.lastName", "family_name"),
        ("personal.firstName", "given_name"),
        ("personal.email", "email"),
        ("personal.mobilePhone", "mobile"),
        ("personal.phone", "phone"),
        ("personal.dateOfBirth", "birth_date"),
        ("enrollmentDate", "enrolled_on"),
        ("expirationDate", "expires_on"),
        ("departments", "affiliation"),
        ("customFields.researchArea", "attr.research_area"),
    ] {
        assert_eq!(field(&profile, h), f, "header {h}");
    }
    assert!(profile.columns["customFields.researchArea"].optional);
    assert_eq!(profile.columns["active"].values.get("false").map(String::as_str), Some("deactivated"));
    assert_eq!(MapTarget::parse("attribute:School").unwrap(), MapTarget::Target(Target::Attribute("school".into())));
    assert!(MapTarget::parse("shoe").unwrap_err().en.contains("family_name"));
}
