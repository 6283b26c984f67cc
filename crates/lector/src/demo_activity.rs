//! Demo service activity: interactions, follow-up tasks, hand-overs and service cases at every
//! stage, so that a new user's tracking pages, case queues and dashboard are alive too.

use anyhow::Context;
use chrono::Duration;
use lector_domain::case::{CaseAction, CaseInput, CaseKind, Priority, RatingDraft, TriageOutcome};
use lector_domain::tracking::{Channel, Direction, InteractionInput, TaskInput};
use lector_store::cases::{CaseCategory, CaseSource};
use lector_store::readers::{ReaderQuery, ReaderSort};
use lector_store::{Actor, Store};
use rand::prelude::*;
use rand::rngs::StdRng;

/// What the demo library has been asked and told, by kind: (subject, body).
const CASES: &[(CaseKind, &str, &str, &str)] = &[
    (CaseKind::Complaint, "noise", "自习区噪音太大", "三楼自习区晚上经常有人打电话，希望加强管理。"),
    (CaseKind::Complaint, "facilities", "座位插座损坏", "二楼东侧靠窗座位的插座已经坏了一周。"),
    (CaseKind::Complaint, "service", "借还书排队时间长", "中午自助借还机只开了一台，排队二十分钟。"),
    (CaseKind::Suggestion, "hours", "考试周延长开放时间", "建议期末考试周图书馆开放到晚上十二点。"),
    (CaseKind::Suggestion, "space", "增加小组讨论室", "小组讨论室总是约不到，建议增加几间。"),
    (CaseKind::Suggestion, "collection", "增加新书展示", "希望一楼大厅设新书展示架。"),
    (CaseKind::Purchase, "book", "荐购《深度学习》", "课程指定参考书，馆藏只有两本，经常借不到。"),
    (CaseKind::Purchase, "database", "荐购 IEEE Xplore 全文库", "学院科研需要，希望学校订购。"),
    (CaseKind::Inquiry, "borrowing", "研究生借书册数", "研究生最多可以借多少本书？可以续借几次？"),
    (CaseKind::Inquiry, "eresources", "校外访问数据库", "在家里怎么访问知网和万方？"),
    (CaseKind::Praise, "service", "感谢参考咨询部老师", "王老师帮我查到了很难找的文献，非常感谢！"),
];

const CATEGORIES: &[(CaseKind, &str, &str, &str)] = &[
    (CaseKind::Complaint, "noise", "噪音", "Noise"),
    (CaseKind::Complaint, "facilities", "设施设备", "Facilities"),
    (CaseKind::Complaint, "service", "服务", "Service"),
    (CaseKind::Suggestion, "hours", "开放时间", "Opening hours"),
    (CaseKind::Suggestion, "space", "空间", "Space"),
    (CaseKind::Suggestion, "collection", "馆藏", "Collection"),
    (CaseKind::Purchase, "book", "图书", "Books"),
    (CaseKind::Purchase, "database", "数据库", "Databases"),
    (CaseKind::Inquiry, "borrowing", "借阅规则", "Borrowing rules"),
    (CaseKind::Inquiry, "eresources", "电子资源", "E-resources"),
    (CaseKind::Praise, "service", "服务", "Service"),
];

const SUBJECTS: &[(Channel, &str)] = &[
    (Channel::Visit, "到馆咨询借阅证办理"),
    (Channel::Phone, "电话咨询逾期罚款"),
    (Channel::Email, "邮件询问馆际互借进度"),
    (Channel::Wechat, "微信咨询座位预约"),
    (Channel::Consultation, "论文检索咨询"),
    (Channel::Training, "参加文献检索培训"),
    (Channel::Event, "参加读书会活动"),
    (Channel::Qq, "QQ 咨询电子资源访问"),
    (Channel::Chat, "在线咨询开放时间"),
];

/// Seeds activity around the first readers of the store, deterministically.
pub async fn seed(store: &Store, now: chrono::NaiveDateTime) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(2026);
    let mut actors = Vec::new();
    for name in ["librarian", "librarian2", "circ", "ref", "leader"] {
        let u = store.user_by_name(name).await.with_context(|| format!("demo user {name}"))?;
        actors.push(Actor::user(u.id, &u.username, "demo"));
    }
    let [lib, lib2, circ, reference, leader] = <[Actor; 5]>::try_from(actors).expect("five demo staff");
    let portal_actor = Actor::system("portal");
    let readers =
        store.readers(&ReaderQuery { sort: Some(ReaderSort::Created), page: 1, per_page: 200, ..Default::default() }).await?.items;
    if readers.is_empty() {
        return Ok(());
    }
    let staff = [&lib, &lib2, &circ, &reference];

    for i in 0..300 {
        let r = &readers[rng.gen_range(0..readers.len())];
        let (channel, subject) = SUBJECTS[i % SUBJECTS.len()];
        let input = InteractionInput {
            channel,
            direction: if rng.gen_bool(0.7) { Direction::Inbound } else { Direction::Outbound },
            subject: subject.into(),
            notes: Some(format!("已答复读者{}。", r.name)),
            occurred_at: now - Duration::minutes(rng.gen_range(10..60 * 24 * 60)),
        };
        store.record_interaction(staff[i % staff.len()], r.id, &input).await?;
    }

    let today = now.date();
    for i in 0..30 {
        let r = &readers[i * 3 % readers.len()];
        let input = TaskInput {
            title: ["回电确认荐购到书", "发送数据库使用指南", "跟进馆际互借", "邀请参加新生培训"][i % 4].into(),
            notes: None,
            due_on: today + Duration::days(rng.gen_range(-5..20)),
            assignee: ["librarian", "librarian2", "circ", "ref"][i % 4].into(),
        };
        store.create_task(staff[(i + 1) % staff.len()], Some(r.id), &input).await?;
    }

    let ids: Vec<i64> = readers.iter().take(40).map(|r| r.id).collect();
    store.hand_over(&leader, &ids, Some("librarian"), "新生入馆教育由李娜老师负责").await?;

    for (kind, code, zh, en) in CATEGORIES {
        let category = CaseCategory { kind: *kind, code: (*code).into(), name_zh: (*zh).into(), name_en: (*en).into() };
        store.create_case_category(&Actor::system("demo"), &category).await?;
    }
    for i in 0..66 {
        let (kind, category, subject, body) = CASES[i % CASES.len()];
        let r = &readers[rng.gen_range(0..readers.len())];
        let portal = i % 2 == 0;
        let input = CaseInput {
            kind,
            subject: subject.into(),
            body: body.into(),
            card_no: Some(r.card_no.clone()),
            contact_name: Some(r.name.clone()),
            contact: None,
        };
        let source = if portal { CaseSource::Portal } else { CaseSource::Staff };
        let (mut case, token) = store.create_case(if portal { &portal_actor } else { &lib }, &input, source, None).await?;
        // Walk each case some way along the default path; later cases get further.
        let department =
            if matches!(kind, CaseKind::Inquiry | CaseKind::Praise | CaseKind::Purchase) { "reference" } else { "circulation" };
        let worker = if department == "reference" { &reference } else { &circ };
        let steps: Vec<(&Actor, CaseAction)> = vec![
            (
                &lib,
                CaseAction::Triage {
                    outcome: TriageOutcome::Accepted,
                    category: Some(category.into()),
                    priority: [Priority::Normal, Priority::High, Priority::Low, Priority::Urgent][i % 4],
                    duplicate_of: None,
                    comment: None,
                },
            ),
            (&lib, CaseAction::Assign { department: department.into(), comment: None }),
            (worker, CaseAction::Claim),
            (worker, CaseAction::Propose { solution: "已与相关部门沟通，拟在两周内处理。".into() }),
            (&leader, CaseAction::Approve { comment: Some("同意".into()) }),
            (worker, CaseAction::Resolve { reply: "您好，问题已处理，感谢您对图书馆工作的支持！".into() }),
        ];
        for (actor, action) in steps.into_iter().take(i % 7) {
            if matches!(action, CaseAction::Approve { .. }) && case.status != lector_domain::case::CaseStatus::AwaitingApproval {
                continue;
            }
            case = store.act_on_case(actor, case.id, &action, case.version).await?;
        }
        if let (Some(token), lector_domain::case::CaseStatus::Resolved) = (token, case.status) {
            let rating = RatingDraft { satisfaction: [5, 4, 5, 3, 2][i % 5], recommend: Some([10, 8, 9, 6, 4][i % 5]), comment: None };
            store.rate_case(&token, &rating).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lector_domain::case::CaseStatus;
    use lector_store::cases::CaseQuery;
    use lector_store::tracking::{InteractionQuery, TaskQuery};

    /// A fresh demo library has interactions, tasks, owners and cases at every stage.
    #[tokio::test]
    async fn the_demo_library_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let store = lector_store::Store::open(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        crate::demo::seed(&store, 120, today, dir.path()).await.unwrap();
        let interactions = store.interactions(&InteractionQuery { page: 1, per_page: 1, ..Default::default() }).await.unwrap();
        assert_eq!(interactions.total, 300);
        let tasks = store.tasks(&TaskQuery { page: 1, per_page: 1, ..Default::default() }).await.unwrap();
        assert_eq!(tasks.total, 30);
        let owned = store
            .readers(&lector_store::readers::ReaderQuery { owner: Some("librarian".into()), page: 1, per_page: 1, ..Default::default() })
            .await
            .unwrap();
        assert!(owned.total >= 40, "{}", owned.total);
        for status in [CaseStatus::Received, CaseStatus::Assigned, CaseStatus::AwaitingApproval, CaseStatus::InProgress, CaseStatus::Closed]
        {
            let n = store.cases(&CaseQuery { status: Some(status), page: 1, per_page: 1, ..Default::default() }).await.unwrap().total;
            assert!(n > 0, "no demo case is {status:?}");
        }
        let jobs = store.import_jobs(1, 10).await.unwrap();
        assert_eq!(jobs.total, 1);
        let c = jobs.items[0].counts;
        assert_eq!((c.merged, c.created, c.rejected), (30, 10, 3), "{c:?}");
        let merged = store.merges(1, 1).await.unwrap().total;
        let queued = store.match_candidates("pending", 1, 1).await.unwrap().total;
        assert!(merged > 0 && queued > 0, "some respelled readers are merged, some wait for review: {merged}, {queued}");
        assert!(merged + queued >= 10, "every respelled reader is merged or queued: {merged} + {queued}");
    }
}
