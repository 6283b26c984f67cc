//! Library system formats: FOLIO user-import documents and Koha's patron attributes.

use chrono::NaiveDate;
use lector_domain::attribute::{AttrDef, AttrKind};
use lector_domain::contact::ContactKind;
use lector_domain::reader::ReaderStatus;
use lector_import::library::{folio, koha_attributes};
use lector_import::mapping::Profile;
use lector_import::{Format, Opened, Record};

const FOLIO: &str = r#"{
  "users": [
    {
      "username": "wangxm",
      "externalSystemId": "S2023001",
      "barcode": "２０２３０００１",
      "active": true,
      "patronGroup": "undergrad",
      "type": "patron",
      "enrollmentDate": "2023-09-01T00:00:00.000+0000",
      "expirationDate": "2027-07-01",
      "personal": {
        "lastName": "王",
        "firstName": "小明",
        "email": "WXM@pku.edu.cn",
        "phone": "010-62751234",
        "mobilePhone": "13800138000",
        "dateOfBirth": "2005-03-05",
        "addresses": [
          {"addressLine1": "颐和园路5号", "city": "北京", "postalCode": "100871", "countryId": "CN", "primaryAddress": true}
        ],
        "preferredContactTypeId": "002"
      },
      "departments": ["历史学系"],
      "customFields": {"researchArea": ["宋史", "元史"], "enrollYear": 2023}
    },
    {
      "username": "jsmith",
      "externalSystemId": "F0042",
      "barcode": "f0042",
      "active": true,
      "patronGroup": "faculty",
      "personal": {"lastName": "Smith", "firstName": "John", "middleName": "Q", "email": "john.smith@example.org"},
      "customFields": {"researchArea": "Physics"}
    },
    {
      "username": "olduser",
      "externalSystemId": "S2019007",
      "barcode": "20190007",
      "active": false,
      "patronGroup": "graduate",
      "personal": {"lastName": "李", "firstName": "雷", "preferredFirstName": "Lei"},
      "departments": ["物理学院", "数学学院"],
      "customFields": {"office": null}
    }
  ],
  "totalRecords": 3,
  "deactivateMissingUsers": true,
  "updateOnlyPresentFields": false,
  "sourceType": "registrar"
}"#;

fn drain(mut opened: Opened) -> (Vec<String>, Vec<Record>) {
    let headers = opened.records.headers().to_vec();
    let mut records = Vec::new();
    while let Some(r) = opened.records.next_record() {
        records.push(r.unwrap());
    }
    (headers, records)
}

fn cell<'a>(headers: &[String], record: &'a Record, header: &str) -> &'a str {
    let i = headers.iter().position(|h| h == header).unwrap_or_else(|| panic!("no header {header} in {headers:?}"));
    &record.cells[i]
}

fn attr(code: &str, kind: AttrKind, repeatable: bool) -> AttrDef {
    AttrDef {
        code: code.into(),
        label_zh: code.into(),
        label_en: code.into(),
        kind,
        choices: vec![],
        repeatable,
        unique: false,
        searchable: false,
    }
}

#[test]
fn folio_document_with_three_users() {
    let opened = folio(FOLIO.as_bytes()).unwrap();
    assert_eq!(opened.format, Format::Folio);
    assert_eq!(opened.hints.source.as_deref(), Some("registrar"));
    assert_eq!(opened.hints.deactivate_missing, Some(true));
    assert_eq!(opened.hints.update_only_present, Some(false));
    let (headers, records) = drain(opened);
    assert_eq!(records.len(), 3);
    assert_eq!(records.iter().map(|r| r.row).collect::<Vec<_>>(), vec![1, 2, 3]);
    for h in
        ["externalSystemId", "barcode", "personal.lastName", "personal.mobilePhone", "customFields.researchArea", "customFields.enrollYear"]
    {
        assert!(headers.iter().any(|x| x == h), "{h} in {headers:?}");
    }
    assert!(records.iter().all(|r| r.cells.len() == headers.len()));
    let (wang, smith, li) = (&records[0], &records[1], &records[2]);
    assert_eq!(cell(&headers, wang, "customFields.researchArea"), "宋史,元史");
    assert_eq!(cell(&headers, wang, "customFields.enrollYear"), "2023");
    assert_eq!(cell(&headers, wang, "personal.addresses"), "颐和园路5号, 北京, 100871, CN");
    assert_eq!(cell(&headers, wang, "active"), "true");
    assert_eq!(cell(&headers, smith, "personal.middleName"), "Q");
    assert_eq!(cell(&headers, smith, "customFields.enrollYear"), "");
    assert_eq!(cell(&headers, li, "departments"), "物理学院,数学学院");
    assert_eq!(cell(&headers, li, "customFields.office"), "");

    // The detected profile reads the users into readers.
    let mut profile = Profile::detect(&headers);
    profile.columns.get_mut("customFields.researchArea").unwrap().split = Some(",".into());
    let attributes = [attr("research_area", AttrKind::Text, true), attr("enroll_year", AttrKind::Number, false)];
    let categories: Vec<String> = ["undergraduate", "graduate", "faculty"].iter().map(|s| s.to_string()).collect();
    let mapper = profile.compile(&headers, &attributes, &categories).unwrap();
    let today = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();

    let wang = mapper.convert(wang, today).unwrap();
    assert_eq!(wang.external_id, "S2023001");
    assert_eq!(wang.input.card_no.as_str(), "20230001");
    assert_eq!(wang.input.name.as_str(), "王小明");
    assert_eq!(wang.input.category, "undergraduate");
    assert_eq!(wang.input.enrolled_on, NaiveDate::from_ymd_opt(2023, 9, 1));
    assert_eq!(wang.input.affiliation.as_deref(), Some("历史学系"));
    assert_eq!(wang.input.attributes.get("research_area"), Some(&vec!["宋史".to_string(), "元史".to_string()]));
    assert_eq!(wang.input.attributes.get("enroll_year"), Some(&vec!["2023".to_string()]));
    assert!(wang.input.contacts.iter().any(|c| c.kind == ContactKind::Mobile && c.value == "13800138000"));

    let smith = mapper.convert(smith, today).unwrap();
    assert_eq!(smith.input.name.as_str(), "John Smith");
    assert_eq!(smith.input.category, "faculty");

    let li = mapper.convert(li, today).unwrap();
    assert_eq!(li.input.status, ReaderStatus::Deactivated, "active: false");
    assert_eq!(li.input.name.as_str(), "李雷");
    assert_eq!(li.input.affiliation.as_deref(), Some("物理学院,数学学院"));
}

#[test]
fn malformed_folio_documents_are_clear_errors() {
    let e = folio(b"{\"users\": [ {\"barcode\": \"1\"}, \n  {\"barcode\": } ]}").err().expect("broken JSON");
    assert_eq!(e.row, None);
    assert!(e.message.en.contains("FOLIO") && e.message.en.contains("line 2"), "{e:?}");
    assert!(e.message.zh.contains("第 2 行"), "{e:?}");

    let e = folio(b"{\"totalRecords\": 0}").err().expect("no users");
    assert!(e.message.en.contains("users"), "{e:?}");

    let e = folio(b"{\"users\": {\"barcode\": \"1\"}}").err().expect("users not a list");
    assert!(e.message.en.contains("FOLIO"), "{e:?}");

    let e = folio(b"{\"users\": [{\"active\": \"yes\"}]}").err().expect("active is not a boolean");
    assert!(e.message.en.contains("line 1"), "{e:?}");

    // A byte-order mark is not an error.
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), b"{\"users\": []}"].concat();
    let (_, records) = drain(folio(&with_bom).unwrap());
    assert!(records.is_empty());
}

#[test]
fn koha_attribute_cells() {
    let pairs = |cell: &str| koha_attributes(cell).unwrap_or_else(|e| panic!("{cell}: {e}"));
    let p = |list: &[(&str, &str)]| list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(pairs("SCHOOL:文学院, GRADE:3"), p(&[("SCHOOL", "文学院"), ("GRADE", "3")]));
    assert_eq!(pairs("AREA:宋史,AREA:元史"), p(&[("AREA", "宋史"), ("AREA", "元史")]));
    assert_eq!(pairs("\"NOTE:a, b\",X:1"), p(&[("NOTE", "a, b"), ("X", "1")]));
    assert_eq!(pairs("NOTE:\"say \"\"hi\"\", then go\""), p(&[("NOTE", "say \"hi\", then go")]));
    assert_eq!(pairs("URL:http://x.cn/a"), p(&[("URL", "http://x.cn/a")]));
    assert_eq!(pairs("NOTE:left, right"), p(&[("NOTE", "left, right")]), "an unquoted comma continues the value");
    assert_eq!(pairs(""), p(&[]));
    assert_eq!(pairs(" , "), p(&[]));
    for bad in ["SCHOOL", ":x", "\"NOTE:open", "A B:c"] {
        let e = koha_attributes(bad).expect_err(bad);
        assert!(!e.zh.is_empty() && !e.en.is_empty());
    }
}
