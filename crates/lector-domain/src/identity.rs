//! Identity resolution (读者身份合并): deciding whether two reader records are the same person.
//! Candidate pairs come from blocking keys, never from comparing every pair; weighted rules
//! score a pair and two thresholds decide: merge, review, or leave apart.
// CONTRACT: names agreed; filled in by the identity helper.

use crate::attribute::parse_code;
use crate::contact::Mobile;
use crate::name::pinyin_of;
use crate::{text, FieldErrors, Msg};
use serde::{Deserialize, Serialize};

/// One piece of evidence that two records are (or are not) the same person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    SameCardNo,
    SameIdNumber,
    SameEmail,
    SameMobile,
    SameName,
    /// The names are written differently but sound the same (张伟 and "Zhang Wei").
    SamePinyin,
    SameBirthDate,
    SameAffiliation,
    DifferentBirthDate,
    /// Both have an ID number (身份证号) and they differ: almost surely two people.
    DifferentIdNumber,
}

impl Evidence {
    pub const ALL: [Evidence; 10] = [
        Evidence::SameCardNo,
        Evidence::SameIdNumber,
        Evidence::SameEmail,
        Evidence::SameMobile,
        Evidence::SameName,
        Evidence::SamePinyin,
        Evidence::SameBirthDate,
        Evidence::SameAffiliation,
        Evidence::DifferentBirthDate,
        Evidence::DifferentIdNumber,
    ];

    /// The code used in settings and the API (the serde name).
    pub fn code(self) -> &'static str {
        match self {
            Evidence::SameCardNo => "same_card_no",
            Evidence::SameIdNumber => "same_id_number",
            Evidence::SameEmail => "same_email",
            Evidence::SameMobile => "same_mobile",
            Evidence::SameName => "same_name",
            Evidence::SamePinyin => "same_pinyin",
            Evidence::SameBirthDate => "same_birth_date",
            Evidence::SameAffiliation => "same_affiliation",
            Evidence::DifferentBirthDate => "different_birth_date",
            Evidence::DifferentIdNumber => "different_id_number",
        }
    }

    /// How the review page names the evidence.
    pub fn label(self) -> Msg {
        let (zh, en) = match self {
            Evidence::SameCardNo => ("读者证号相同", "same card number"),
            Evidence::SameIdNumber => ("身份证号相同", "same ID number"),
            Evidence::SameEmail => ("电子邮箱相同", "same email"),
            Evidence::SameMobile => ("手机号相同", "same mobile"),
            Evidence::SameName => ("姓名相同", "same name"),
            Evidence::SamePinyin => ("姓名拼音相同", "same name in pinyin"),
            Evidence::SameBirthDate => ("出生日期相同", "same birth date"),
            Evidence::SameAffiliation => ("单位相同", "same affiliation"),
            Evidence::DifferentBirthDate => ("出生日期不同", "different birth dates"),
            Evidence::DifferentIdNumber => ("身份证号不同", "different ID numbers"),
        };
        Msg::new(zh, en)
    }

    /// True for evidence that two records are different people (its weight must not be positive).
    pub fn is_against(self) -> bool {
        matches!(self, Evidence::DifferentBirthDate | Evidence::DifferentIdNumber)
    }
}

/// What each piece of evidence adds to a pair's score. The defaults are set so that one
/// near-unique identifier (ID number, card number) merges on its own; a shared email or mobile
/// needs the name or the birth date as well to merge and is queued for review otherwise (a
/// family mailbox, a recycled mobile number); a name alone never reaches review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub same_card_no: f64,
    pub same_id_number: f64,
    pub same_email: f64,
    pub same_mobile: f64,
    pub same_name: f64,
    pub same_pinyin: f64,
    pub same_birth_date: f64,
    pub same_affiliation: f64,
    pub different_birth_date: f64,
    pub different_id_number: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            same_card_no: 0.9,
            same_id_number: 1.0,
            same_email: 0.6,
            same_mobile: 0.5,
            same_name: 0.3,
            same_pinyin: 0.2,
            same_birth_date: 0.3,
            same_affiliation: 0.1,
            different_birth_date: -0.8,
            different_id_number: -1.0,
        }
    }
}

impl Weights {
    pub fn of(&self, e: Evidence) -> f64 {
        match e {
            Evidence::SameCardNo => self.same_card_no,
            Evidence::SameIdNumber => self.same_id_number,
            Evidence::SameEmail => self.same_email,
            Evidence::SameMobile => self.same_mobile,
            Evidence::SameName => self.same_name,
            Evidence::SamePinyin => self.same_pinyin,
            Evidence::SameBirthDate => self.same_birth_date,
            Evidence::SameAffiliation => self.same_affiliation,
            Evidence::DifferentBirthDate => self.different_birth_date,
            Evidence::DifferentIdNumber => self.different_id_number,
        }
    }
}

/// Weights and thresholds, configurable by admins (TOML or the admin page). Every field has a
/// default, so a configuration names only what it changes:
///
/// ```toml
/// merge_at = 1.0
/// [weights]
/// same_email = 0.7
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchRules {
    /// A pair scoring at least this is merged without asking.
    pub merge_at: f64,
    /// A pair scoring at least this (and below `merge_at`) waits for a person to decide.
    pub review_at: f64,
    pub weights: Weights,
    /// Custom attribute codes holding a national ID number (身份证号).
    pub id_number_attributes: Vec<String>,
    /// Custom attribute codes holding other card-like numbers (学号, 工号, an old card).
    pub card_attributes: Vec<String>,
    /// A blocking key shared by more readers than this (a department's mailbox, a switchboard
    /// number) proposes no pairs: it says nothing about identity and would cost a quadratic count.
    pub max_block: usize,
}

impl Default for MatchRules {
    fn default() -> Self {
        MatchRules {
            merge_at: 0.9,
            review_at: 0.5,
            weights: Weights::default(),
            id_number_attributes: vec!["id_number".into()],
            card_attributes: vec!["student_no".into(), "staff_no".into()],
            max_block: 50,
        }
    }
}

impl MatchRules {
    /// Checks the rules make sense together; each problem names the setting to fix.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        for (field, v) in [("merge_at", self.merge_at), ("review_at", self.review_at)] {
            if !v.is_finite() {
                errs.push(field, Msg::new(format!("阈值 {field} 必须是有限的数"), format!("threshold {field} must be a finite number")));
            }
        }
        if self.review_at.is_finite() && self.review_at <= 0.0 {
            errs.push("review_at", Msg::new("复核阈值 review_at 必须大于 0", "review_at must be greater than 0"));
        }
        if self.review_at.is_finite() && self.merge_at.is_finite() && self.review_at >= self.merge_at {
            errs.push(
                "review_at",
                Msg::new(
                    format!("复核阈值 review_at（{}）必须小于合并阈值 merge_at（{}）", self.review_at, self.merge_at),
                    format!("review_at ({}) must be less than merge_at ({})", self.review_at, self.merge_at),
                ),
            );
        }
        for e in Evidence::ALL {
            let w = self.weights.of(e);
            let field = format!("weights.{}", e.code());
            if !w.is_finite() {
                errs.push(
                    field,
                    Msg::new(format!("权重 {} 必须是有限的数", e.code()), format!("weight {} must be a finite number", e.code())),
                );
            } else if e.is_against() && w > 0.0 {
                errs.push(
                    field,
                    Msg::new(
                        format!("权重 {} 表示不是同一人，不能为正数", e.code()),
                        format!("weight {} counts against a match: it cannot be positive", e.code()),
                    ),
                );
            } else if !e.is_against() && w < 0.0 {
                errs.push(
                    field,
                    Msg::new(
                        format!("权重 {} 表示是同一人，不能为负数", e.code()),
                        format!("weight {} counts for a match: it cannot be negative", e.code()),
                    ),
                );
            }
        }
        for (field, codes) in [("id_number_attributes", &self.id_number_attributes), ("card_attributes", &self.card_attributes)] {
            for (i, code) in codes.iter().enumerate() {
                if let Err(m) = parse_code(code) {
                    errs.push(format!("{field}[{i}]"), m);
                }
            }
        }
        if !(2..=10_000).contains(&self.max_block) {
            errs.push("max_block", Msg::new("max_block 应在 2 到 10000 之间", "max_block must be between 2 and 10000"));
        }
        errs.finish(|| ())
    }
}

/// What to do with a scored pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Merge,
    Review,
    Apart,
}

/// A reader as identity resolution sees it: every value normalised so that the variations
/// sources introduce (全角 digits, spaces in names, case in emails, +86 prefixes) compare equal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Person {
    pub id: i64,
    /// The card number and every card-like identifier (absorbed cards, 学号, 工号).
    pub card_nos: Vec<String>,
    /// The name without spaces or dots, lower-cased.
    pub name: String,
    /// Full pinyin without spaces, lower-cased (`ü` written `v`).
    pub pinyin: String,
    /// A Latin name also read with its last word first ("Wei Zhang" → `zhangwei`).
    pub pinyin_reversed: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub affiliation: Option<String>,
    pub emails: Vec<String>,
    pub mobiles: Vec<String>,
    pub id_numbers: Vec<String>,
}

impl Person {
    pub fn new(id: i64, name: &str, birth_date: Option<&str>, affiliation: Option<&str>) -> Self {
        let (pinyin, pinyin_reversed) = name_pinyin(name);
        Person {
            id,
            name: normalise_name(name),
            pinyin,
            pinyin_reversed,
            birth_date: birth_date.map(text::clean).filter(|s| !s.is_empty()),
            affiliation: affiliation.map(normalise_name).filter(|s| !s.is_empty()),
            ..Person::default()
        }
    }

    pub fn add_card_no(&mut self, raw: &str) {
        push_unique(&mut self.card_nos, normalise_card(raw));
    }

    pub fn add_email(&mut self, raw: &str) {
        push_unique(&mut self.emails, normalise_email(raw));
    }

    pub fn add_mobile(&mut self, raw: &str) {
        push_unique(&mut self.mobiles, normalise_mobile(raw));
    }

    pub fn add_id_number(&mut self, raw: &str) {
        push_unique(&mut self.id_numbers, normalise_id_number(raw));
    }

    fn pinyins(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.pinyin.as_str()).chain(self.pinyin_reversed.as_deref()).filter(|p| !p.is_empty())
    }
}

fn push_unique(list: &mut Vec<String>, v: String) {
    if !v.is_empty() && !list.contains(&v) {
        list.push(v);
    }
}

/// A name as compared: NFKC, no white space or name dots (· of transliterated names), lower case.
pub fn normalise_name(raw: &str) -> String {
    text::clean(raw).chars().filter(|c| !c.is_whitespace() && !matches!(c, '·' | '•' | '・' | '.')).flat_map(char::to_lowercase).collect()
}

/// A card number as compared: NFKC (全角 digits become ASCII), no white space, upper case.
pub fn normalise_card(raw: &str) -> String {
    text::clean(raw).chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect()
}

pub fn normalise_email(raw: &str) -> String {
    text::clean(raw).to_lowercase()
}

/// A mobile as compared: the 11 digits when it parses as a mainland mobile, else its digits.
pub fn normalise_mobile(raw: &str) -> String {
    match Mobile::parse(raw) {
        Ok(m) => m.as_str().to_string(),
        Err(_) => text::clean(raw).chars().filter(char::is_ascii_digit).collect(),
    }
}

/// An ID number (身份证号) as compared: 18 characters with an upper-case check letter; an old
/// 15-digit number is widened to its 18-digit form (century 19 and the check character added).
pub fn normalise_id_number(raw: &str) -> String {
    let v: String = text::clean(raw).chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect();
    if v.len() == 15 && v.bytes().all(|b| b.is_ascii_digit()) {
        let body = format!("{}19{}", &v[..6], &v[6..]);
        return format!("{body}{}", id_check_char(&body));
    }
    v
}

/// The GB 11643 check character of the first 17 digits.
fn id_check_char(body: &str) -> char {
    const FACTORS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let sum: u32 = body.chars().filter_map(|c| c.to_digit(10)).zip(FACTORS).map(|(d, f)| d * f).sum();
    CHECK[(sum % 11) as usize]
}

/// The pinyin of a name and, for a Latin name of several words, the same with the last word
/// moved to the front (given-name-first writing of a Chinese name).
fn name_pinyin(raw: &str) -> (String, Option<String>) {
    let cleaned = text::clean(raw).replace(['ü', 'Ü'], "v");
    let full = pinyin_of(&cleaned).full.replace('ü', "v");
    let latin = cleaned.chars().all(|c| c.is_ascii() || c.is_whitespace() || matches!(c, '·' | '•' | '・'));
    let words: Vec<String> = cleaned
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '·' | '•' | '・'))
        .map(|w| w.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect();
    let reversed = match words.split_last() {
        Some((last, rest)) if latin && !rest.is_empty() => Some(format!("{last}{}", rest.concat())).filter(|r| *r != full),
        _ => None,
    };
    (full, reversed)
}

/// A key that puts readers in the same block; only readers sharing a key are compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockKey(String);

impl BlockKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The blocking keys of a person: each identifier, email and mobile; pinyin with birth date;
/// name with affiliation.
pub fn blocking_keys(p: &Person) -> Vec<BlockKey> {
    let mut keys = Vec::new();
    keys.extend(p.card_nos.iter().map(|c| format!("card:{c}")));
    keys.extend(p.id_numbers.iter().map(|n| format!("id:{n}")));
    keys.extend(p.emails.iter().map(|e| format!("email:{e}")));
    keys.extend(p.mobiles.iter().map(|m| format!("mobile:{m}")));
    if let Some(birth) = &p.birth_date {
        keys.extend(p.pinyins().map(|py| format!("py:{py}|{birth}")));
    }
    if let Some(aff) = p.affiliation.as_ref().filter(|_| !p.name.is_empty()) {
        keys.push(format!("nm:{}|{aff}", p.name));
    }
    keys.into_iter().map(BlockKey).collect()
}

fn shares(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.contains(x))
}

/// Scores a pair: the sum of the weights of the evidence present (rounded to 6 decimals so
/// that 0.6 + 0.3 reaches a threshold of 0.9), with the evidence in a stable order.
pub fn score(a: &Person, b: &Person, rules: &MatchRules) -> (f64, Vec<Evidence>) {
    let mut ev = Vec::new();
    if shares(&a.card_nos, &b.card_nos) {
        ev.push(Evidence::SameCardNo);
    }
    if shares(&a.id_numbers, &b.id_numbers) {
        ev.push(Evidence::SameIdNumber);
    } else if !a.id_numbers.is_empty() && !b.id_numbers.is_empty() {
        ev.push(Evidence::DifferentIdNumber);
    }
    if shares(&a.emails, &b.emails) {
        ev.push(Evidence::SameEmail);
    }
    if shares(&a.mobiles, &b.mobiles) {
        ev.push(Evidence::SameMobile);
    }
    if !a.name.is_empty() && a.name == b.name {
        ev.push(Evidence::SameName);
    } else if a.pinyins().any(|x| b.pinyins().any(|y| x == y)) {
        ev.push(Evidence::SamePinyin);
    }
    match (&a.birth_date, &b.birth_date) {
        (Some(x), Some(y)) if x == y => ev.push(Evidence::SameBirthDate),
        (Some(_), Some(_)) => ev.push(Evidence::DifferentBirthDate),
        _ => {}
    }
    if a.affiliation.is_some() && a.affiliation == b.affiliation {
        ev.push(Evidence::SameAffiliation);
    }
    ev.sort();
    let sum: f64 = ev.iter().map(|e| rules.weights.of(*e)).sum();
    ((sum * 1e6).round() / 1e6, ev)
}

pub fn decide(score: f64, rules: &MatchRules) -> Decision {
    if score >= rules.merge_at {
        Decision::Merge
    } else if score >= rules.review_at {
        Decision::Review
    } else {
        Decision::Apart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zhang() -> Person {
        Person::new(1, "张伟", Some("1990-05-01"), Some("计算机学院"))
    }

    fn keys(p: &Person) -> Vec<String> {
        blocking_keys(p).iter().map(|k| k.as_str().to_string()).collect()
    }

    fn shared(a: &Person, b: &Person) -> bool {
        let kb = keys(b);
        keys(a).iter().any(|k| kb.contains(k))
    }

    #[test]
    fn default_rules_are_valid_and_parse_from_toml() {
        MatchRules::default().validate().unwrap();
        let rules: MatchRules = toml::from_str("merge_at = 1.2\nid_number_attributes = [\"sfz\"]\n[weights]\nsame_email = 0.7\n").unwrap();
        assert_eq!(rules.merge_at, 1.2);
        assert_eq!(rules.review_at, 0.5);
        assert_eq!(rules.weights.same_email, 0.7);
        assert_eq!(rules.weights.same_mobile, 0.5);
        assert_eq!(rules.id_number_attributes, vec!["sfz"]);
        rules.validate().unwrap();
        assert!(toml::from_str::<MatchRules>("merge_at = 1\nbogus = 2\n").is_err());
    }

    #[test]
    fn invalid_rules_name_the_setting() {
        let mut r = MatchRules { merge_at: 0.5, review_at: 0.7, ..MatchRules::default() };
        let errs = r.validate().unwrap_err();
        assert!(errs.get("review_at").unwrap().en.contains("less than merge_at"));
        r = MatchRules::default();
        r.weights.same_email = f64::NAN;
        r.weights.different_birth_date = 0.5;
        r.card_attributes = vec!["Bad Code".into()];
        r.max_block = 1;
        let errs = r.validate().unwrap_err();
        assert!(errs.get("weights.same_email").unwrap().en.contains("finite"));
        assert!(errs.get("weights.different_birth_date").unwrap().en.contains("cannot be positive"));
        assert!(errs.get("card_attributes[0]").is_some());
        assert!(errs.get("max_block").is_some());
        r = MatchRules { merge_at: f64::INFINITY, ..MatchRules::default() };
        assert!(r.validate().unwrap_err().get("merge_at").is_some());
    }

    #[test]
    fn normalisation_of_identifiers() {
        assert_eq!(normalise_card("２０２１００１ａ"), "2021001A");
        assert_eq!(normalise_card(" 2021 001 "), "2021001");
        assert_eq!(normalise_email(" Zhang.Wei@PKU.edu.CN"), "zhang.wei@pku.edu.cn");
        assert_eq!(normalise_mobile("+86 138-0013-8000"), "13800138000");
        assert_eq!(normalise_mobile("１３８００１３８０００"), "13800138000");
        assert_eq!(normalise_mobile("010-6275 1234"), "01062751234");
        assert_eq!(normalise_id_number("11010519491231002x"), "11010519491231002X");
        // The 15-digit form of the same person's number widens to the 18-digit one.
        assert_eq!(normalise_id_number("110105491231002"), "11010519491231002X");
        assert_eq!(normalise_name("张 伟"), "张伟");
        assert_eq!(normalise_name("ZHANG  Wei"), "zhangwei");
        assert_eq!(normalise_name("艾力·买买提"), "艾力买买提");
    }

    #[test]
    fn pinyin_of_latin_names_in_either_order() {
        let p = Person::new(2, "Zhang Wei", None, None);
        assert_eq!(p.pinyin, "zhangwei");
        assert_eq!(p.pinyin_reversed.as_deref(), Some("weizhang"));
        let q = Person::new(3, "Xiao-Ming ZHANG", None, None);
        assert_eq!(q.pinyin, "xiaomingzhang");
        assert_eq!(q.pinyin_reversed.as_deref(), Some("zhangxiaoming"));
        assert_eq!(Person::new(4, "张晓明", None, None).pinyin, "zhangxiaoming");
        assert_eq!(Person::new(5, "张晓明", None, None).pinyin_reversed, None);
        assert_eq!(Person::new(6, "吕布", None, None).pinyin, "lvbu");
        assert_eq!(Person::new(7, "Lü Bu", None, None).pinyin, "lvbu");
    }

    #[test]
    fn blocking_keys_of_a_person() {
        let mut p = zhang();
        p.add_card_no("２０２１００１");
        p.add_email("Zhang.Wei@PKU.edu.cn");
        p.add_mobile("+86 13800138000");
        p.add_id_number("11010519491231002x");
        p.add_email("zhang.wei@pku.edu.cn");
        assert_eq!(
            keys(&p),
            vec![
                "card:2021001",
                "id:11010519491231002X",
                "email:zhang.wei@pku.edu.cn",
                "mobile:13800138000",
                "py:zhangwei|1990-05-01",
                "nm:张伟|计算机学院",
            ]
        );
        // Neither a pinyin key without a birth date nor a name key without an affiliation.
        assert!(keys(&Person::new(9, "张伟", None, None)).is_empty());
    }

    #[test]
    fn variations_share_a_key() {
        let mut a = Person::new(1, "张伟", None, None);
        let mut b = Person::new(2, "张 伟", None, None);
        a.add_email("ZHANG@pku.edu.cn");
        b.add_email("zhang@PKU.EDU.CN");
        assert!(shared(&a, &b));
        let (mut a, mut b) = (Person::new(1, "王芳", None, None), Person::new(2, "王芳", None, None));
        a.add_card_no("2021001");
        b.add_card_no("２０２１００１");
        assert!(shared(&a, &b));
        let (mut a, mut b) = (Person::new(1, "王芳", None, None), Person::new(2, "王芳", None, None));
        a.add_mobile("13800138000");
        b.add_mobile("+86 138 0013 8000");
        assert!(shared(&a, &b));
        let latin = Person::new(2, "Wei Zhang", Some("1990-05-01"), None);
        assert!(shared(&zhang(), &latin));
        let other_day = Person::new(2, "Zhang Wei", Some("1990-05-02"), None);
        assert!(!shared(&zhang(), &other_day));
        let same_place = Person::new(2, "张 伟", None, Some("计算机 学院"));
        assert!(shared(&zhang(), &same_place));
    }

    /// Two persons whose only evidence is `e`.
    fn pair_showing(e: Evidence) -> (Person, Person) {
        let named = |id, name: &str| Person::new(id, name, None, None);
        let (mut a, mut b) = (named(1, ""), named(2, ""));
        match e {
            Evidence::SameCardNo => {
                a.add_card_no("A1");
                b.add_card_no("a1");
            }
            Evidence::SameIdNumber => {
                a.add_id_number("11010519491231002X");
                b.add_id_number("110105491231002");
            }
            Evidence::DifferentIdNumber => {
                a.add_id_number("11010519491231002X");
                b.add_id_number("110105194912310038");
            }
            Evidence::SameEmail => {
                a.add_email("x@y.cn");
                b.add_email("X@Y.CN");
            }
            Evidence::SameMobile => {
                a.add_mobile("13800138000");
                b.add_mobile("+8613800138000");
            }
            Evidence::SameName => (a, b) = (named(1, "张 伟"), named(2, "张伟")),
            Evidence::SamePinyin => (a, b) = (named(1, "Wei Zhang"), named(2, "张伟")),
            Evidence::SameBirthDate | Evidence::DifferentBirthDate => {
                a.birth_date = Some("2000-01-01".into());
                b.birth_date = Some(if e == Evidence::SameBirthDate { "2000-01-01" } else { "2000-01-02" }.into());
            }
            Evidence::SameAffiliation => {
                a = Person::new(1, "", None, Some("物理系"));
                b = Person::new(2, "", None, Some("物理 系"));
            }
        }
        (a, b)
    }

    #[test]
    fn every_kind_of_evidence_scores_its_weight() {
        let rules = MatchRules::default();
        for e in Evidence::ALL {
            let (a, b) = pair_showing(e);
            let (s, ev) = score(&a, &b, &rules);
            assert_eq!(ev, vec![e], "{e:?}");
            assert_eq!(s, rules.weights.of(e), "{e:?}");
        }
        let (s, ev) = score(&Person::new(1, "", None, None), &Person::new(2, "", None, None), &rules);
        assert_eq!((s, ev), (0.0, vec![]));
    }

    #[test]
    fn thresholds_decide() {
        let rules = MatchRules::default();
        // Same email in another case and the name with a space: 0.6 + 0.3 reaches merge_at 0.9.
        let (mut a, mut b) = (Person::new(1, "张伟", None, None), Person::new(2, "张 伟", None, None));
        a.add_email("Zhang.Wei@pku.edu.cn");
        b.add_email("zhang.wei@PKU.edu.cn");
        let (s, ev) = score(&a, &b, &rules);
        assert_eq!(ev, vec![Evidence::SameEmail, Evidence::SameName]);
        assert_eq!(decide(s, &rules), Decision::Merge);
        // Pinyin and birth date only: queued for review.
        let (s, ev) = score(&zhang(), &Person::new(2, "Zhang Wei", Some("1990-05-01"), None), &rules);
        assert_eq!(ev, vec![Evidence::SamePinyin, Evidence::SameBirthDate]);
        assert_eq!(decide(s, &rules), Decision::Review);
        // A shared email with a different birth date stays apart.
        let (mut a, mut b) = (zhang(), Person::new(2, "张伟", Some("1991-05-01"), None));
        a.add_email("lab@pku.edu.cn");
        b.add_email("lab@pku.edu.cn");
        let (s, _) = score(&a, &b, &rules);
        assert_eq!(decide(s, &rules), Decision::Apart);
        assert_eq!(decide(0.9, &rules), Decision::Merge);
        assert_eq!(decide(0.5, &rules), Decision::Review);
        assert_eq!(decide(0.49, &rules), Decision::Apart);
    }
}
