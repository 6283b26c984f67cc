//! Demo messaging: channels (an email channel to a local SMTP sink on 127.0.0.1:1025, an SMS
//! gateway and a WeCom robot with example addresses, both off), bilingual templates, triggered
//! messages for case updates and the portal sign-in code, three segments, consent answers for
//! part of the readers, and two past campaigns whose messages are history (recorded as sent or
//! failed, never sent again) — so a new user finds the messaging pages alive.

use anyhow::Context;
use chrono::Duration;
use lector_domain::campaign::CampaignInput;
use lector_domain::messaging::{ChannelKind, ConsentSource, Purpose, Trigger};
use lector_store::channels::ChannelInput;
use lector_store::consent::ConsentChange;
use lector_store::readers::{ReaderQuery, ReaderSort};
use lector_store::segments::SegmentInput;
use lector_store::templates::{TemplateInput, TemplateVariant};
use lector_store::triggers::TriggerSettingInput;
use lector_store::{Actor, Store, StoreError};
use rand::prelude::*;
use rand::rngs::StdRng;
use serde_json::json;

/// Readers (the first, by card number) whose consent answers are seeded: enough for the pages
/// and the demo campaigns, few enough to keep `lector demo` fast at any size.
const CONSENT_READERS: i64 = 2_000;

/// (code, name, purpose, [(lang, email subject, email text, email HTML, short text)]).
type TemplateSpec = (&'static str, &'static str, Purpose, [(&'static str, &'static str, &'static str, &'static str, &'static str); 2]);

const TEMPLATES: &[TemplateSpec] = &[
    (
        "lecture_notice",
        "讲座与活动通知",
        Purpose::News,
        [
            (
                "zh",
                "【活动】{{ campaign.name }}",
                "{{ reader.name }}，您好：\n\n图书馆将于本周五 14:00 在一楼报告厅举办“{{ campaign.name }}”，欢迎参加。\n\n{{ library.name }}",
                "<p>{{ reader.name }}，您好：</p><p>图书馆将于本周五 14:00 在一楼报告厅举办“{{ campaign.name }}”，欢迎参加。</p><p>{{ library.name }}</p>",
                "【{{ library.name }}】{{ reader.name }}您好，本周五14:00一楼报告厅举办“{{ campaign.name }}”，欢迎参加。退订：{{ preferences_url }}",
            ),
            (
                "en",
                "[Event] {{ campaign.name }}",
                "Dear {{ reader.name }},\n\nThe library holds \"{{ campaign.name }}\" this Friday at 14:00 in the ground-floor lecture hall. You are welcome to join.\n\n{{ library.name }}",
                "<p>Dear {{ reader.name }},</p><p>The library holds “{{ campaign.name }}” this Friday at 14:00 in the ground-floor lecture hall. You are welcome to join.</p><p>{{ library.name }}</p>",
                "[{{ library.name }}] {{ reader.name }}: \"{{ campaign.name }}\" this Friday 14:00, lecture hall. Opt out: {{ preferences_url }}",
            ),
        ],
    ),
    (
        "card_expiry",
        "读者证到期提醒",
        Purpose::Service,
        [
            (
                "zh",
                "您的读者证将于 {{ reader.expires_on }} 到期",
                "{{ reader.name }}，您好：\n\n您的读者证（{{ reader.card_no }}）将于 {{ reader.expires_on }} 到期。如需继续使用，请到流通部办理续期。\n\n{{ library.name }}",
                "<p>{{ reader.name }}，您好：</p><p>您的读者证（{{ reader.card_no }}）将于 <strong>{{ reader.expires_on }}</strong> 到期。如需继续使用，请到流通部办理续期。</p><p>{{ library.name }}</p>",
                "【{{ library.name }}】{{ reader.name }}您好，您的读者证将于{{ reader.expires_on }}到期，请及时到流通部办理续期。",
            ),
            (
                "en",
                "Your library card expires on {{ reader.expires_on }}",
                "Dear {{ reader.name }},\n\nYour library card ({{ reader.card_no }}) expires on {{ reader.expires_on }}. Please renew it at the circulation desk.\n\n{{ library.name }}",
                "<p>Dear {{ reader.name }},</p><p>Your library card ({{ reader.card_no }}) expires on <strong>{{ reader.expires_on }}</strong>. Please renew it at the circulation desk.</p><p>{{ library.name }}</p>",
                "[{{ library.name }}] {{ reader.name }}, your card expires on {{ reader.expires_on }}; please renew it at the circulation desk.",
            ),
        ],
    ),
    (
        "welcome",
        "新读者欢迎",
        Purpose::Service,
        [
            (
                "zh",
                "欢迎来到{{ library.name }}",
                "{{ reader.name }}，您好：\n\n欢迎加入{{ library.name }}！您的读者证号是 {{ reader.card_no }}。开放时间、借阅规则和电子资源都可以在图书馆主页查到。\n\n{{ library.name }}",
                "<p>{{ reader.name }}，您好：</p><p>欢迎加入{{ library.name }}！您的读者证号是 <strong>{{ reader.card_no }}</strong>。开放时间、借阅规则和电子资源都可以在图书馆主页查到。</p>",
                "【{{ library.name }}】欢迎{{ reader.name }}！您的读者证号是{{ reader.card_no }}。",
            ),
            (
                "en",
                "Welcome to {{ library.name }}",
                "Dear {{ reader.name }},\n\nWelcome to {{ library.name }}! Your card number is {{ reader.card_no }}. Opening hours, borrowing rules and e-resources are on the library's home page.\n\n{{ library.name }}",
                "<p>Dear {{ reader.name }},</p><p>Welcome to {{ library.name }}! Your card number is <strong>{{ reader.card_no }}</strong>.</p>",
                "[{{ library.name }}] Welcome, {{ reader.name }}! Your card number is {{ reader.card_no }}.",
            ),
        ],
    ),
    (
        "case_received",
        "工单已受理",
        Purpose::Service,
        [
            (
                "zh",
                "您的{{ case.kind }}已受理（{{ case.number }}）",
                "您好：\n\n您提交的{{ case.kind }}“{{ case.title }}”已受理，编号 {{ case.number }}，当前状态：{{ case.status }}。查看进度：{{ link }}\n\n{{ library.name }}",
                "<p>您好：</p><p>您提交的{{ case.kind }}“{{ case.title }}”已受理，编号 {{ case.number }}，当前状态：{{ case.status }}。</p><p><a href=\"{{ link }}\">查看进度</a></p>",
                "【{{ library.name }}】您的{{ case.kind }}已受理，编号{{ case.number }}。查看进度：{{ link }}",
            ),
            (
                "en",
                "We received your {{ case.kind }} ({{ case.number }})",
                "Hello,\n\nWe received your {{ case.kind }} \"{{ case.title }}\" as {{ case.number }}; it is now: {{ case.status }}. Follow it: {{ link }}\n\n{{ library.name }}",
                "<p>Hello,</p><p>We received your {{ case.kind }} “{{ case.title }}” as {{ case.number }}; it is now: {{ case.status }}.</p><p><a href=\"{{ link }}\">Follow it</a></p>",
                "[{{ library.name }}] Received: {{ case.number }}. Follow it: {{ link }}",
            ),
        ],
    ),
    (
        "case_needs_info",
        "工单需补充信息",
        Purpose::Service,
        [
            (
                "zh",
                "请补充工单 {{ case.number }} 的信息",
                "您好：\n\n为处理您的{{ case.kind }}“{{ case.title }}”（{{ case.number }}），我们需要您补充一些信息。请在工单跟踪页面查看问题并答复：{{ link }}\n\n{{ library.name }}",
                "<p>您好：</p><p>为处理您的{{ case.kind }}“{{ case.title }}”（{{ case.number }}），我们需要您补充一些信息。</p><p><a href=\"{{ link }}\">查看问题并答复</a></p>",
                "【{{ library.name }}】工单{{ case.number }}需要您补充信息，请查看：{{ link }}",
            ),
            (
                "en",
                "Your case {{ case.number }} needs information",
                "Hello,\n\nTo work on your {{ case.kind }} \"{{ case.title }}\" ({{ case.number }}) we need a little more information. See the question and answer it here: {{ link }}\n\n{{ library.name }}",
                "<p>Hello,</p><p>To work on your {{ case.kind }} “{{ case.title }}” ({{ case.number }}) we need a little more information.</p><p><a href=\"{{ link }}\">See the question and answer it</a></p>",
                "[{{ library.name }}] Case {{ case.number }} needs your answer: {{ link }}",
            ),
        ],
    ),
    (
        "case_resolved",
        "工单已办结（请评价）",
        Purpose::Service,
        [
            (
                "zh",
                "工单 {{ case.number }} 已答复，请为我们评分",
                "您好：\n\n您的{{ case.kind }}“{{ case.title }}”（{{ case.number }}）已答复。请查看答复并为我们的服务评分：{{ link }}\n\n{{ library.name }}",
                "<p>您好：</p><p>您的{{ case.kind }}“{{ case.title }}”（{{ case.number }}）已答复。</p><p><a href=\"{{ link }}\">查看答复并评分</a></p>",
                "【{{ library.name }}】工单{{ case.number }}已答复，请查看并评分：{{ link }}",
            ),
            (
                "en",
                "Case {{ case.number }} is answered: please rate us",
                "Hello,\n\nYour {{ case.kind }} \"{{ case.title }}\" ({{ case.number }}) has been answered. Read the answer and rate our service: {{ link }}\n\n{{ library.name }}",
                "<p>Hello,</p><p>Your {{ case.kind }} “{{ case.title }}” ({{ case.number }}) has been answered.</p><p><a href=\"{{ link }}\">Read it and rate us</a></p>",
                "[{{ library.name }}] Case {{ case.number }} answered; please rate us: {{ link }}",
            ),
        ],
    ),
    (
        "portal_code",
        "读者门户登录验证码",
        Purpose::Service,
        [
            (
                "zh",
                "读者门户登录验证码：{{ code }}",
                "您好：\n\n您的登录验证码是 {{ code }}，10 分钟内有效。如非本人操作，请忽略本邮件。\n\n{{ library.name }}",
                "<p>您好：</p><p>您的登录验证码是 <strong>{{ code }}</strong>，10 分钟内有效。如非本人操作，请忽略本邮件。</p>",
                "【{{ library.name }}】登录验证码{{ code }}，10分钟内有效，请勿告诉他人。",
            ),
            (
                "en",
                "Your reader portal sign-in code: {{ code }}",
                "Hello,\n\nYour sign-in code is {{ code }}; it works for 10 minutes. If you did not ask for it, ignore this message.\n\n{{ library.name }}",
                "<p>Hello,</p><p>Your sign-in code is <strong>{{ code }}</strong>; it works for 10 minutes. If you did not ask for it, ignore this message.</p>",
                "[{{ library.name }}] Sign-in code {{ code }}, valid 10 minutes. Do not share it.",
            ),
        ],
    ),
];

/// Which template each trigger uses, and whether the demo switches it on.
const TRIGGERS: &[(Trigger, &str, bool)] = &[
    (Trigger::Welcome, "welcome", false),
    (Trigger::CardExpiry, "card_expiry", false),
    (Trigger::CaseReceived, "case_received", true),
    (Trigger::CaseNeedsInfo, "case_needs_info", true),
    (Trigger::CaseResolved, "case_resolved", true),
    (Trigger::PortalCode, "portal_code", true),
];

async fn channels(store: &Store, actor: &Actor) -> anyhow::Result<()> {
    let specs = [
        (
            "email",
            "图书馆邮箱（本机测试 SMTP）",
            json!({"kind": "email", "host": "127.0.0.1", "port": 1025, "security": "plain", "username": null,
                   "from_address": "library@example.edu.cn", "from_name": "示例大学图书馆", "qq_mailbox": true}),
            true,
        ),
        (
            "sms",
            "短信网关（示例）",
            json!({"kind": "sms", "url": "https://sms.example.edu.cn/api/send", "mobile_field": "mobile", "text_field": "content"}),
            false,
        ),
        (
            "wecom",
            "企业微信群机器人（示例）",
            json!({"kind": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=EXAMPLE-KEY"}),
            false,
        ),
    ];
    for (code, name, settings, enabled) in specs {
        let input = ChannelInput {
            code: code.into(),
            name: name.into(),
            settings: serde_json::from_value(settings).context("demo channel settings")?,
            secret: None,
            rate_per_second: 200,
            enabled,
        };
        store.create_channel(actor, &input).await.with_context(|| format!("creating channel {code}"))?;
    }
    Ok(())
}

/// The templates by code.
async fn templates(store: &Store, actor: &Actor) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let mut ids = Vec::new();
    for (code, name, purpose, langs) in TEMPLATES {
        let mut variants = Vec::new();
        for (lang, subject, text, html, short) in langs {
            variants.push(TemplateVariant {
                channel_kind: ChannelKind::Email,
                lang: (*lang).into(),
                subject: (*subject).into(),
                body_text: (*text).into(),
                body_html: Some((*html).into()),
            });
            for kind in [ChannelKind::Sms, ChannelKind::Wecom] {
                variants.push(TemplateVariant {
                    channel_kind: kind,
                    lang: (*lang).into(),
                    subject: String::new(),
                    body_text: (*short).into(),
                    body_html: None,
                });
            }
        }
        let input = TemplateInput { code: (*code).into(), name: (*name).into(), purpose: *purpose, variants };
        let t = store.create_template(actor, &input).await.with_context(|| format!("creating template {code}"))?;
        ids.push((*code, t.id));
    }
    Ok(ids)
}

async fn segments(store: &Store, actor: &Actor) -> anyhow::Result<[i64; 3]> {
    let specs = [
        (
            "研究生·计算机学院",
            "计算机学院在读研究生（讲座、培训通知）",
            json!({"all": [
                {"field": "category", "op": "eq", "value": "graduate"},
                {"field": "affiliation", "op": "eq", "value": "计算机学院"},
                {"field": "status", "op": "eq", "value": "active"}]}),
        ),
        (
            "证件 30 天内到期",
            "读者证在 30 天内到期的有效读者",
            json!({"all": [
                {"field": "expires_on", "op": "within_next_days", "value": 30},
                {"field": "status", "op": "eq", "value": "active"}]}),
        ),
        ("志愿者", "带“志愿者”标签的读者", json!({"all": [{"field": "tag", "op": "eq", "value": "志愿者"}]})),
    ];
    let mut ids = [0; 3];
    for (i, (name, description, filter)) in specs.into_iter().enumerate() {
        let input = SegmentInput { name: name.into(), description: description.into(), filter };
        ids[i] = store.create_segment(actor, &input).await.with_context(|| format!("creating segment {name}"))?.id;
    }
    Ok(ids)
}

/// Consent answers for the first readers: about 40 % opt in to news by email (some by SMS or
/// WeCom too), fewer to surveys, and a few withdrew news later or service notices by SMS.
async fn consents(store: &Store, actor: &Actor) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(2026);
    let mut page = 1;
    let mut seen = 0;
    while seen < CONSENT_READERS {
        let q = ReaderQuery { sort: Some(ReaderSort::CardNo), page, per_page: 200, ..Default::default() };
        let readers = store.readers(&q).await.context("listing demo readers")?;
        if readers.items.is_empty() {
            break;
        }
        for r in &readers.items {
            seen += 1;
            let mut changes = Vec::new();
            let grant =
                |changes: &mut Vec<ConsentChange>, purpose, channel, granted| changes.push(ConsentChange { purpose, channel, granted });
            if rng.gen_bool(0.4) {
                grant(&mut changes, Purpose::News, ChannelKind::Email, true);
                if rng.gen_bool(0.3) {
                    grant(&mut changes, Purpose::News, ChannelKind::Sms, true);
                }
                if rng.gen_bool(0.2) {
                    grant(&mut changes, Purpose::News, ChannelKind::Wecom, true);
                }
            }
            if rng.gen_bool(0.15) {
                grant(&mut changes, Purpose::Survey, ChannelKind::Email, true);
            }
            if rng.gen_bool(0.02) {
                grant(&mut changes, Purpose::Service, ChannelKind::Sms, false);
            }
            if changes.is_empty() {
                continue;
            }
            let source = if rng.gen_bool(0.5) { ConsentSource::Portal } else { ConsentSource::Import };
            store.set_consents(actor, r.id, &changes, source).await.with_context(|| format!("consent of reader {}", r.card_no))?;
            let opted_in = changes.iter().any(|c| c.purpose == Purpose::News && c.granted);
            if opted_in && rng.gen_bool(0.05) {
                let withdrawn = [ConsentChange { purpose: Purpose::News, channel: ChannelKind::Email, granted: false }];
                store.set_consents(actor, r.id, &withdrawn, ConsentSource::Unsubscribe).await?;
            }
            if seen >= CONSENT_READERS {
                break;
            }
        }
        page += 1;
    }
    Ok(())
}

/// A campaign sent some days ago: started (which queues its recipients), then recorded as
/// delivered, a few addresses bouncing. Skipped when a tiny demo leaves it nobody to send to.
async fn past_campaign(store: &Store, actor: &Actor, input: CampaignInput, days_ago: i64, rng: &mut StdRng) -> anyhow::Result<()> {
    let name = input.name.clone();
    let c = store.create_campaign(actor, &input).await.with_context(|| format!("creating campaign {name}"))?;
    match store.start_campaign(actor, c.id).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("starting campaign {name}")),
    }
    let recipients = store.campaign_recipients(c.id, None, 1, 500).await?;
    let failed: Vec<(i64, String)> = recipients
        .items
        .iter()
        .filter_map(|r| r.reader_id)
        .filter(|_| rng.gen_bool(0.04))
        .map(|id| (id, "550 5.1.1 用户不存在 (No such user)".to_string()))
        .collect();
    let at = chrono::Utc::now() - Duration::days(days_ago);
    store.record_campaign_history(actor, c.id, at, &failed).await.with_context(|| format!("recording campaign {name}"))?;
    Ok(())
}

/// Seeds the demo's messaging (see the module documentation). Runs after the readers and the
/// service activity exist, so the demo's cases queue no messages.
pub async fn seed(store: &Store) -> anyhow::Result<()> {
    let actor = Actor::system("demo");
    channels(store, &actor).await?;
    let templates = templates(store, &actor).await?;
    let template = |code: &str| templates.iter().find(|(c, _)| *c == code).map(|(_, id)| *id).expect("a demo template");
    for (trigger, code, enabled) in TRIGGERS {
        let input =
            TriggerSettingInput { template_id: Some(template(code)), channels: vec!["email".into(), "sms".into()], enabled: *enabled };
        store.set_trigger_setting(&actor, *trigger, &input).await.with_context(|| format!("setting trigger {}", trigger.code()))?;
    }
    let [graduates, _expiring, volunteers] = segments(store, &actor).await?;
    consents(store, &actor).await?;
    let mut rng = StdRng::seed_from_u64(5);
    let campaign = |name: &str, segment_id, template_id| CampaignInput {
        name: name.into(),
        segment_id,
        template_id,
        purpose: None,
        channels: vec!["email".into()],
        scheduled_at: None,
        quiet_hours: Some(lector_domain::quiet::QuietHours::parse("22:00-08:00").expect("demo quiet hours")),
    };
    let lecture = campaign("研究生文献检索讲座", graduates, template("lecture_notice"));
    past_campaign(store, &actor, lecture, 12, &mut rng).await?;
    let volunteering = campaign("世界读书日志愿者见面会", volunteers, template("lecture_notice"));
    past_campaign(store, &actor, volunteering, 5, &mut rng).await?;
    Ok(())
}
