//! Demo data: a realistic Chinese academic library, generated deterministically.
//!
//! Every reader is built as a [`ReaderDraft`] (strings, as a form or an import would supply them)
//! and parsed with the same rules as user input before it is stored, so demo data can never hold
//! what a user could not enter.

use anyhow::{anyhow, bail, Context};
use chrono::{Datelike, Duration, NaiveDate};
use lector_domain::reader::{ContactDraft, ReaderDraft, ReaderInput, RelatedDraft};
use lector_domain::role::Role;
use lector_store::auth::NewUser;
use lector_store::config::NamedInput;
use lector_store::{Actor, Store, StoreError};
use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand::rngs::StdRng;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// The password of every demo staff account.
pub const DEMO_PASSWORD: &str = "lector-demo-2026";
/// The seed of the generator: the same seed and date give the same library.
pub const DEMO_SEED: u64 = 2026;
/// Readers inserted per transaction.
pub const BATCH_SIZE: usize = 5_000;
/// Progress is reported every this many readers.
const PROGRESS_EVERY: usize = 50_000;

/// Library departments: (code, 中文, English).
pub const DEPARTMENTS: &[(&str, &str, &str)] = &[
    ("circulation", "流通部", "Circulation"),
    ("reference", "参考咨询部", "Reference"),
    ("technical", "技术部", "Technical services"),
    ("acquisitions", "采编部", "Acquisitions and cataloguing"),
    ("special", "特藏部", "Special collections"),
];

/// Demo staff: (user name, display name, role, department code).
pub const STAFF: &[(&str, &str, Role, Option<&str>)] = &[
    ("admin", "王磊（系统管理员）", Role::Admin, None),
    ("leader", "陈静（副馆长）", Role::Leader, None),
    ("circ", "刘洋（流通部）", Role::Department, Some("circulation")),
    ("ref", "赵敏（参考咨询部）", Role::Department, Some("reference")),
    ("librarian", "李娜（学科馆员）", Role::Librarian, None),
    ("librarian2", "张伟（学科馆员）", Role::Librarian, None),
    ("analyst", "周婷（数据分析）", Role::Analyst, None),
];

/// Surnames with their approximate share of the population in units of 0.01 %.
const SURNAMES: &[(&str, u32)] = &[
    ("王", 710),
    ("李", 700),
    ("张", 680),
    ("刘", 540),
    ("陈", 460),
    ("杨", 310),
    ("黄", 240),
    ("赵", 230),
    ("吴", 200),
    ("周", 190),
    ("徐", 150),
    ("孙", 150),
    ("马", 130),
    ("朱", 130),
    ("胡", 120),
    ("郭", 120),
    ("何", 120),
    ("林", 110),
    ("高", 110),
    ("罗", 100),
    ("郑", 90),
    ("梁", 90),
    ("谢", 80),
    ("宋", 70),
    ("唐", 70),
    ("许", 70),
    ("韩", 60),
    ("冯", 60),
    ("邓", 60),
    ("曹", 60),
    ("彭", 50),
    ("曾", 50),
    ("肖", 50),
    ("田", 50),
    ("董", 50),
    ("袁", 40),
    ("潘", 40),
    ("于", 40),
    ("蒋", 40),
    ("蔡", 40),
    ("余", 40),
    ("杜", 40),
    ("叶", 40),
    ("程", 40),
    ("苏", 30),
    ("魏", 30),
    ("吕", 30),
    ("丁", 30),
    ("任", 30),
    ("沈", 30),
    ("姚", 30),
    ("卢", 30),
    ("姜", 30),
    ("崔", 30),
    ("钟", 30),
    ("谭", 30),
    ("陆", 30),
    ("汪", 30),
    ("范", 30),
    ("金", 30),
    ("石", 30),
    ("廖", 30),
    ("贾", 30),
    ("夏", 20),
    ("韦", 20),
    ("付", 20),
    ("方", 20),
    ("白", 20),
    ("邹", 20),
    ("孟", 20),
    ("熊", 20),
    ("秦", 20),
    ("邱", 20),
    ("江", 20),
    ("尹", 20),
    ("薛", 20),
    ("闫", 20),
    ("段", 20),
    ("雷", 20),
    ("侯", 20),
    ("龙", 20),
    ("史", 20),
    ("陶", 20),
    ("黎", 20),
    ("贺", 20),
    ("顾", 20),
    ("毛", 20),
    ("郝", 20),
    ("龚", 20),
    ("邵", 20),
    ("万", 10),
    ("钱", 10),
    ("严", 10),
    ("覃", 10),
    ("武", 10),
    ("戴", 10),
    ("莫", 10),
    ("孔", 10),
    ("向", 10),
    ("汤", 10),
    ("欧阳", 5),
    ("司马", 2),
    ("上官", 2),
    ("司徒", 2),
    ("诸葛", 1),
    ("东方", 1),
    ("皇甫", 1),
    ("令狐", 1),
    ("慕容", 1),
];

/// Characters common in given names, by the gender they are most often given to.
const GIVEN_MALE: &[&str] = &[
    "伟", "强", "磊", "军", "勇", "杰", "涛", "斌", "超", "明", "刚", "平", "辉", "鹏", "华", "飞", "鑫", "波", "宇", "浩", "凯", "健",
    "俊", "帆", "旭", "龙", "林", "阳", "博", "文", "轩", "晨", "昊", "然", "泽", "睿", "哲", "子", "一", "航", "远", "志", "建", "国",
    "海", "峰", "洋", "亮", "成", "天", "乐", "嘉", "锦", "铭", "宏", "毅", "诚", "彬", "坤", "晟", "翔", "瑞",
];
const GIVEN_FEMALE: &[&str] = &[
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "玲", "婷", "雪", "慧", "颖", "琳", "晶", "欣", "悦", "怡", "佳", "雨", "萱",
    "涵", "诗", "梦", "琪", "瑶", "璐", "倩", "蕾", "妍", "菲", "薇", "月", "馨", "晓", "思", "婧", "彤", "可", "心", "宁", "洁", "茜",
    "岚", "雯", "露",
];

/// Schools and faculties (院系) with a weight for their size.
const COLLEGES: &[(&str, u32)] = &[
    ("计算机学院", 12),
    ("文学院", 7),
    ("历史学院", 4),
    ("哲学系", 3),
    ("数学科学学院", 6),
    ("物理学院", 6),
    ("化学与分子工程学院", 6),
    ("生命科学学院", 5),
    ("经济学院", 8),
    ("管理学院", 8),
    ("法学院", 6),
    ("医学部", 10),
    ("外国语学院", 6),
    ("新闻与传播学院", 4),
    ("环境科学与工程学院", 4),
    ("建筑与景观设计学院", 3),
    ("艺术学院", 3),
    ("马克思主义学院", 2),
    ("教育学院", 3),
    ("心理与认知科学学院", 2),
];

/// Administrative units where university staff work.
const UNITS: &[&str] = &[
    "图书馆",
    "教务部",
    "科学研究部",
    "后勤保障部",
    "信息化建设中心",
    "校医院",
    "档案馆",
    "学生工作部",
    "国际合作部",
    "财务部",
    "出版社",
    "校友会",
];

/// Employers of external (校外) readers.
const EMPLOYERS: &[&str] = &[
    "中国科学院计算技术研究所",
    "海淀区实验中学",
    "华信科技有限公司",
    "中关村软件园管委会",
    "人民文学出版社",
    "协和医院",
    "金诚律师事务所",
    "自由职业",
    "退休人员",
    "本校校友",
    "市档案局",
    "北方设计研究院",
];

/// Titles an advisor (导师) may be given in the demo.
const ADVISOR_RELATIONS: &[&str] = &["导师", "导师", "导师", "副导师"];
const GUARDIAN_RELATIONS: &[&str] = &["父亲", "母亲", "监护人"];

/// Reader categories (codes of the default list) with their share of readers.
const CATEGORIES: &[(&str, u32)] =
    &[("undergraduate", 620), ("graduate", 180), ("doctoral", 60), ("faculty", 70), ("staff", 40), ("external", 30)];

/// A deterministic generator of reader drafts.
pub struct Generator {
    rng: StdRng,
    today: NaiveDate,
    surnames: WeightedIndex<u32>,
    colleges: WeightedIndex<u32>,
    categories: WeightedIndex<u32>,
    /// Next sequence number per card-number prefix.
    seq: HashMap<String, u64>,
}

/// A number that looks random but is unique per `n`: a bijection on `0..10^digits`.
fn scramble(n: u64, digits: u32) -> String {
    let space = 10u64.pow(digits);
    // Odd and not a multiple of 5, hence coprime with every power of ten.
    const A: u64 = 736_373;
    let v = (n % space * A + 104_729) % space;
    format!("{v:0width$}", width = digits as usize)
}

/// The local part of a staff e-mail address: the pinyin of the name, `ü` written `v` as
/// Chinese keyboards do.
fn email_local(name: &str) -> String {
    lector_domain::name::pinyin_of(name).full.replace('ü', "v").chars().filter(char::is_ascii_alphanumeric).collect()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

impl Generator {
    pub fn new(seed: u64, today: NaiveDate) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            today,
            surnames: WeightedIndex::new(SURNAMES.iter().map(|s| s.1)).expect("weights"),
            colleges: WeightedIndex::new(COLLEGES.iter().map(|c| c.1)).expect("weights"),
            categories: WeightedIndex::new(CATEGORIES.iter().map(|c| c.1)).expect("weights"),
            seq: HashMap::new(),
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.rng.gen_range(0..list.len())]
    }

    /// A unique card number: `prefix` followed by scrambled digits (6, or 8 once a prefix has
    /// used up the million six-digit numbers; lengths differ, so numbers never repeat).
    fn card(&mut self, prefix: &str) -> String {
        let n = self.seq.entry(prefix.to_string()).or_insert(0);
        let k = *n;
        *n += 1;
        let digits = if k < 1_000_000 { 6 } else { 8 };
        format!("{prefix}{}", scramble(k, digits))
    }

    fn name(&mut self, male: bool) -> String {
        let mut name = SURNAMES[self.surnames.sample(&mut self.rng)].0.to_string();
        let pool = if male { GIVEN_MALE } else { GIVEN_FEMALE };
        let len = if self.chance(0.72) { 2 } else { 1 };
        for _ in 0..len {
            name.push_str(self.pick(pool));
        }
        name
    }

    fn birth(&mut self, year: i32) -> String {
        let day = self.rng.gen_range(1..=365);
        NaiveDate::from_yo_opt(year, day).unwrap_or(date(year, 1, 1)).to_string()
    }

    fn mobile(&mut self) -> String {
        let second = self.rng.gen_range(3..=9);
        format!("1{second}{:09}", self.rng.gen_range(0..1_000_000_000u32))
    }

    fn qq(&mut self) -> String {
        let len = self.rng.gen_range(8..=10);
        let mut s = self.rng.gen_range(1..=9).to_string();
        for _ in 1..len {
            s.push(char::from(b'0' + self.rng.gen_range(0..10u8)));
        }
        s
    }

    fn wechat(&mut self) -> String {
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut s = String::from("wxid_");
        for _ in 0..10 {
            s.push(char::from(ALNUM[self.rng.gen_range(0..ALNUM.len())]));
        }
        s
    }

    fn contact(kind: &str, value: String, verified: bool) -> ContactDraft {
        ContactDraft { kind: kind.into(), value, primary: false, verified }
    }

    /// The year of the newest cohort: this year once September has come, else last year.
    fn cohort_year(&self) -> i32 {
        if self.today.month() >= 9 {
            self.today.year()
        } else {
            self.today.year() - 1
        }
    }

    /// The next reader.
    pub fn draft(&mut self) -> ReaderDraft {
        let category = CATEGORIES[self.categories.sample(&mut self.rng)].0;
        let male = self.chance(0.5);
        let name = self.name(male);
        let gender = if self.chance(0.01) {
            "unknown"
        } else if male {
            "male"
        } else {
            "female"
        };
        let mut d = ReaderDraft { name: name.clone(), gender: Some(gender.into()), category: category.into(), ..Default::default() };
        let today = self.today;
        let newest = self.cohort_year();
        let mut status = "active";
        let mut contacts = Vec::new();
        match category {
            "undergraduate" | "graduate" | "doctoral" => {
                let (length, age, oldest) = match category {
                    "undergraduate" => (4, 18, 5),
                    "graduate" => (3, 22, 4),
                    _ => (4, 25, 6),
                };
                // Mostly current students; some have graduated and their cards lapsed.
                let year = newest - self.rng.gen_range(0..=oldest);
                let extra = if category == "doctoral" && self.chance(0.3) { self.rng.gen_range(1..=2) } else { 0 };
                let enrolled = date(year, 9, self.rng.gen_range(1..=10));
                let expires = date(year + length + extra, 7, 31);
                d.card_no = self.card(&year.to_string());
                d.enrolled_on = Some(enrolled.to_string());
                d.expires_on = Some(expires.to_string());
                let birth_year = year - age - i32::from(self.chance(0.25)) + i32::from(self.chance(0.1));
                d.birth_date = Some(self.birth(birth_year));
                d.affiliation = Some(COLLEGES[self.colleges.sample(&mut self.rng)].0.into());
                if expires < today {
                    status = if self.chance(0.75) { "expired" } else { "deactivated" };
                    if status == "deactivated" {
                        d.notes = Some("已办理离校手续".into());
                    }
                } else {
                    let r = self.rng.gen_range(0..100);
                    status = match r {
                        0..=2 => "suspended",
                        3 => "deactivated",
                        _ => "active",
                    };
                    if status == "suspended" {
                        d.notes = Some("图书逾期未还，暂停借阅".into());
                    }
                    if year == newest && category == "undergraduate" && self.chance(0.85) {
                        d.tags.push("新生".into());
                    }
                    if expires.year() == newest + 1 && self.chance(0.8) {
                        d.tags.push("毕业班".into());
                    }
                }
                let domain = "stu.example.edu.cn";
                contacts.push(Self::contact("email", format!("{}@{domain}", d.card_no.to_lowercase()), true));
                if self.chance(0.96) {
                    let m = self.mobile();
                    contacts.push(Self::contact("mobile", m, self.chance(0.7)));
                }
                if self.chance(0.3) {
                    let q = self.qq();
                    contacts.push(Self::contact("qq", q, false));
                }
                if self.chance(0.25) {
                    let w = self.wechat();
                    contacts.push(Self::contact("wechat", w, false));
                }
                if category != "undergraduate" && self.chance(0.8) {
                    let advisor_male = self.chance(0.6);
                    let advisor = self.name(advisor_male);
                    let py = email_local(&advisor);
                    let relation = self.pick(ADVISOR_RELATIONS).to_string();
                    let phone = format!("010-6275{:04}", self.rng.gen_range(0..10_000));
                    d.related.push(RelatedDraft {
                        name: advisor,
                        relation,
                        phone: Some(phone),
                        email: Some(format!("{py}@example.edu.cn")),
                    });
                }
                if category == "undergraduate" && self.chance(0.12) {
                    let surname_first = name.chars().next().map(String::from).unwrap_or_default();
                    let relation = self.pick(GUARDIAN_RELATIONS).to_string();
                    let guardian = if relation == "父亲" {
                        // Children usually carry their father's surname.
                        let given = self.name(true);
                        let given: String = given.chars().skip(1).collect();
                        format!("{surname_first}{given}")
                    } else {
                        self.name(relation != "母亲")
                    };
                    let phone = self.mobile();
                    d.related.push(RelatedDraft { name: guardian, relation, phone: Some(phone), email: None });
                }
            }
            "faculty" | "staff" => {
                let faculty = category == "faculty";
                let birth_year = self.rng.gen_range(today.year() - 66..=today.year() - 26);
                let hired = (birth_year + self.rng.gen_range(24..=33)).min(today.year() - 1);
                d.card_no = self.card(if faculty { "T" } else { "S" });
                d.birth_date = Some(self.birth(birth_year));
                d.enrolled_on = Some(date(hired, self.rng.gen_range(1..=12), 1).to_string());
                d.affiliation =
                    Some(if faculty { COLLEGES[self.colleges.sample(&mut self.rng)].0.into() } else { self.pick(UNITS).into() });
                if today.year() - birth_year >= 63 {
                    // Retired: the card lapsed at retirement.
                    let retired = date(birth_year + 63, 12, 31).min(today);
                    d.expires_on = Some(retired.to_string());
                    status = if self.chance(0.6) { "expired" } else { "deactivated" };
                    d.notes = Some("已退休".into());
                } else {
                    d.expires_on = Some(date(today.year() + self.rng.gen_range(1..=3), 12, 31).to_string());
                    if self.chance(0.01) {
                        status = "suspended";
                    }
                }
                let py = email_local(&name);
                let n = self.rng.gen_range(0..100);
                contacts.push(Self::contact("email", format!("{py}{n}@example.edu.cn"), true));
                let m = self.mobile();
                contacts.push(Self::contact("mobile", m, self.chance(0.8)));
                if self.chance(0.5) {
                    let phone = format!("010-6275{:04}", self.rng.gen_range(0..10_000));
                    contacts.push(Self::contact("phone", phone, false));
                }
                if self.chance(0.3) {
                    let w = self.wechat();
                    contacts.push(Self::contact("wechat", w, false));
                }
                if faculty && self.chance(0.15) {
                    d.tags.push("学科馆员联系人".into());
                }
            }
            _ => {
                let enrolled = today - Duration::days(self.rng.gen_range(0..3 * 365));
                let expires = enrolled + Duration::days(365);
                d.card_no = self.card(&format!("W{}", enrolled.year()));
                let birth_year = self.rng.gen_range(today.year() - 75..=today.year() - 18);
                d.birth_date = Some(self.birth(birth_year));
                d.enrolled_on = Some(enrolled.to_string());
                d.expires_on = Some(expires.to_string());
                d.affiliation = Some(self.pick(EMPLOYERS).into());
                if expires < today {
                    status = "expired";
                }
                let m = self.mobile();
                contacts.push(Self::contact("mobile", m, true));
                if self.chance(0.6) {
                    let q = self.qq();
                    let host = if self.chance(0.5) { "qq.com" } else { "163.com" };
                    contacts.push(Self::contact("email", format!("{q}@{host}"), false));
                }
                if self.chance(0.2) {
                    let addr = format!("北京市海淀区中关村大街{}号", self.rng.gen_range(1..=300));
                    contacts.push(Self::contact("address", addr, false));
                }
            }
        }
        // Interests and roles any reader may have.
        for (tag, p) in [("读书会", 0.05), ("志愿者", 0.04), ("信息素养课程", 0.06), ("古籍爱好者", 0.01), ("馆员助理", 0.015)]
        {
            if self.chance(p) {
                d.tags.push(tag.into());
            }
        }
        let owner_share = match category {
            "faculty" => 0.3,
            "doctoral" => 0.15,
            _ => 0.05,
        };
        if self.chance(owner_share) {
            d.owner = Some(if self.chance(0.5) { "librarian" } else { "librarian2" }.into());
        }
        d.status = Some(status.into());
        d.contacts = contacts;
        d
    }

    /// The next `n` readers, parsed by the rules user input obeys.
    pub fn batch(&mut self, n: usize) -> anyhow::Result<Vec<ReaderInput>> {
        (0..n)
            .map(|_| {
                let draft = self.draft();
                draft.parse(self.today).map_err(|e| anyhow!("demo reader {} does not parse: {e}", draft.card_no))
            })
            .collect()
    }
}

/// What seeding did.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub readers: usize,
    pub seconds: f64,
    pub readers_per_second: f64,
    pub departments: Vec<String>,
    pub users: Vec<SeedUser>,
    /// The password of every demo staff account.
    pub password: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedUser {
    pub username: String,
    pub role: String,
    pub department: Option<String>,
    /// False when the account already existed (its password was left alone).
    pub created: bool,
}

impl SeedReport {
    /// How to sign in, for people.
    pub fn sign_in_text(&self) -> String {
        let names: Vec<String> = self
            .users
            .iter()
            .map(|u| format!("{} ({}{})", u.username, u.role, u.department.as_ref().map(|d| format!(", {d}")).unwrap_or_default()))
            .collect();
        format!("登录 Sign in: user name `admin`, password `{}`\n演示账号 Demo staff (same password): {}", self.password, names.join(", "))
    }
}

/// Creates the demo departments and staff where missing, then `readers` readers. The store
/// must hold no readers yet. The demo's import file is written under `data_dir`.
pub async fn seed(store: &Store, readers: usize, today: NaiveDate, data_dir: &std::path::Path) -> anyhow::Result<SeedReport> {
    let actor = Actor::system("demo");
    let existing: Vec<String> = store.departments().await?.into_iter().map(|d| d.code).collect();
    for (code, zh, en) in DEPARTMENTS {
        if !existing.iter().any(|c| c == code) {
            let input = NamedInput { code: (*code).into(), name_zh: (*zh).into(), name_en: (*en).into() };
            store.create_department(&actor, &input).await.with_context(|| format!("creating department {code}"))?;
        }
    }
    let mut users = Vec::new();
    for (username, display, role, department) in STAFF {
        let created = match store.user_by_name(username).await {
            Ok(_) => false,
            Err(StoreError::NotFound) => {
                let new = NewUser {
                    username: (*username).into(),
                    display_name: (*display).into(),
                    role: *role,
                    department: department.map(String::from),
                    password: DEMO_PASSWORD.into(),
                };
                store.create_user(&actor, new).await.with_context(|| format!("creating user {username}"))?;
                true
            }
            Err(e) => return Err(e.into()),
        };
        users.push(SeedUser { username: (*username).into(), role: role.code().into(), department: department.map(String::from), created });
    }

    let started = Instant::now();
    let inserted = insert_readers(store, &actor, readers, today, started).await?;
    let seconds = started.elapsed().as_secs_f64();
    crate::demo_activity::seed(store, chrono::Local::now().naive_local()).await.context("seeding demo service activity")?;
    crate::demo_import::seed(store, data_dir).await.context("seeding the demo import")?;
    crate::demo_messaging::seed(store).await.context("seeding demo messaging")?;
    Ok(SeedReport {
        readers: inserted,
        seconds,
        readers_per_second: if seconds > 0.0 { inserted as f64 / seconds } else { 0.0 },
        departments: DEPARTMENTS.iter().map(|d| d.0.to_string()).collect(),
        users,
        password: DEMO_PASSWORD.into(),
    })
}

/// Generates readers on a thread of their own while the previous batch is being written.
async fn insert_readers(store: &Store, actor: &Actor, total: usize, today: NaiveDate, started: Instant) -> anyhow::Result<usize> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<ReaderInput>>>(2);
    let producer = std::thread::spawn(move || {
        let mut generator = Generator::new(DEMO_SEED, today);
        let mut left = total;
        while left > 0 {
            let n = left.min(BATCH_SIZE);
            left -= n;
            let batch = generator.batch(n);
            let failed = batch.is_err();
            if tx.blocking_send(batch).is_err() || failed {
                break;
            }
        }
    });
    let mut inserted = 0;
    let mut next_report = PROGRESS_EVERY;
    while let Some(batch) = rx.recv().await {
        let batch = batch?;
        let created_at = lector_store::now_text();
        inserted += store
            .bulk_create_readers(actor, &batch, &created_at)
            .await
            .with_context(|| format!("inserting demo readers {}–{}", inserted + 1, inserted + batch.len()))?;
        if inserted >= next_report && total >= 2 * PROGRESS_EVERY {
            eprintln!("  {inserted} / {total} readers ({:.1} s)", started.elapsed().as_secs_f64());
            next_report += PROGRESS_EVERY;
        }
    }
    producer.join().map_err(|_| anyhow!("the demo data generator failed"))?;
    if inserted != total {
        bail!("only {inserted} of {total} demo readers were written");
    }
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn today() -> NaiveDate {
        date(2026, 11, 28)
    }

    #[test]
    fn names_are_chinese() {
        let mut g = Generator::new(1, today());
        for _ in 0..2000 {
            let d = g.draft();
            let n = d.name.chars().count();
            assert!((2..=4).contains(&n), "{}", d.name);
            assert!(d.name.chars().all(lector_domain::text::is_han), "{}", d.name);
        }
    }

    #[test]
    fn card_numbers_are_unique_and_drafts_parse() {
        let mut g = Generator::new(DEMO_SEED, today());
        let batch = g.batch(10_000).unwrap();
        let cards: HashSet<&str> = batch.iter().map(|r| r.card_no.as_str()).collect();
        assert_eq!(cards.len(), batch.len());
        let undergrads = batch.iter().filter(|r| r.category == "undergraduate").count();
        assert!(undergrads > 5_000 && undergrads < 7_500, "{undergrads}");
        assert!(batch.iter().any(|r| r.name.as_str().chars().count() == 4 || r.name.as_str().starts_with("欧阳")));
        assert!(batch.iter().any(|r| !r.related.is_empty()));
        assert!(batch.iter().any(|r| r.owner.is_some()));
        let active = batch.iter().filter(|r| r.status.code() == "active").count();
        assert!(active > 6_000, "{active}");
    }

    #[test]
    fn deterministic() {
        let a: Vec<ReaderDraft> = {
            let mut g = Generator::new(7, today());
            (0..50).map(|_| g.draft()).collect()
        };
        let mut g = Generator::new(7, today());
        let b: Vec<ReaderDraft> = (0..50).map(|_| g.draft()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn scramble_is_a_bijection() {
        let seen: HashSet<String> = (0..100_000).map(|n| scramble(n, 6)).collect();
        assert_eq!(seen.len(), 100_000);
        assert!(seen.iter().all(|s| s.len() == 6));
    }
}
