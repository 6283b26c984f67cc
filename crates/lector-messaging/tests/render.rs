//! Message templates: variables, escaping, strict undefined, error lines, limits.

use lector_messaging::render::{check, render, sample_vars, Variant, MAX_OUTPUT_BYTES, MAX_SOURCE_BYTES};
use serde_json::json;

fn variant(subject: &str, text: &str, html: Option<&str>) -> Variant {
    Variant { subject: subject.into(), body_text: text.into(), body_html: html.map(Into::into) }
}

fn vars() -> serde_json::Value {
    json!({
        "reader": { "name": "李<雷>", "card_no": "2023010001", "category": "研究生", "affiliation": "物理学院", "expires_on": "2026-09-01" },
        "case": { "number": "C-7" },
        "link": "https://lib.example.edu.cn/portal/cases/7?a=1&b=2",
    })
}

#[test]
fn renders_reader_and_extra_variables() {
    let v = variant(
        "{{ reader.name }}，您的读者证即将到期",
        "{{ reader.name }}（{{ reader.card_no }}，{{ reader.category }}，{{ reader.affiliation }}）：\n到期日 {{ reader.expires_on }}。工单 {{ case.number }}：{{ link }}",
        None,
    );
    let r = render(&v, &vars()).unwrap();
    assert_eq!(r.subject, "李<雷>，您的读者证即将到期");
    assert_eq!(
        r.text,
        "李<雷>（2023010001，研究生，物理学院）：\n到期日 2026-09-01。工单 C-7：https://lib.example.edu.cn/portal/cases/7?a=1&b=2"
    );
    assert_eq!(r.html, None);
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let v = variant("{{ reader.name }}", "{{ reader.name }} {{ link }}", Some("<p>{{ reader.name }}</p><a href=\"{{ link }}\">x</a>"));
    let r = render(&v, &vars()).unwrap();
    assert_eq!(r.text, "李<雷> https://lib.example.edu.cn/portal/cases/7?a=1&b=2");
    let html = r.html.unwrap();
    assert!(html.starts_with("<p>李&lt;雷&gt;</p>"), "{html}");
    assert!(html.contains("?a=1&amp;b=2\">x</a>"), "{html}");
    assert!(!html.contains("<雷>"), "{html}");
    assert_eq!(r.subject, "李<雷>");
}

#[test]
fn blank_html_means_no_html_part() {
    let r = render(&variant("s", "t", Some("  \n")), &vars()).unwrap();
    assert_eq!(r.html, None);
}

#[test]
fn subject_is_forced_onto_one_line() {
    let v = variant("  第一行\r\n{% if true %}\n第二行{% endif %}\n\n", "x", None);
    let r = render(&v, &vars()).unwrap();
    assert_eq!(r.subject, "第一行 第二行");
    let injected = render(&variant("{{ reader.name }}", "x", None), &json!({"reader": {"name": "a\r\nBcc: evil@example.com"}})).unwrap();
    assert!(!injected.subject.contains('\n') && !injected.subject.contains('\r'), "{:?}", injected.subject);
}

#[test]
fn undefined_variable_is_an_error_with_its_line_and_name() {
    let v = variant("ok", "第一行\n第二行 {{ reader.nmae }}\n第三行", None);
    let e = render(&v, &vars()).unwrap_err();
    assert_eq!(e.part, "body_text");
    assert_eq!(e.line, 2);
    assert!(e.detail.contains("reader.nmae"), "{}", e.detail);
    assert!(e.detail.contains("未定义") && e.detail.contains("undefined"), "{}", e.detail);
    let msg = e.msg();
    assert_eq!(msg.zh, "正文第 2 行：变量“reader.nmae”未定义");
    assert_eq!(msg.en, "text body, line 2: undefined variable 'reader.nmae'");

    // A nested attribute is named in full, on its own line.
    let e = render(&variant("ok", "x", Some("<p>\n第二行\n{{ reader.address.city }}</p>")), &vars()).unwrap_err();
    assert_eq!((e.part, e.line), ("body_html", 3));
    assert_eq!(e.why.en, "undefined variable 'reader.address.city'");

    // Undefined top-level names too, and in the subject.
    let e = render(&variant("{{ nobody }}", "x", None), &vars()).unwrap_err();
    assert_eq!((e.part, e.line), ("subject", 1));
    // `default` and `is defined` keep working for optional extras.
    let r = render(&variant("s", "{{ code | default('无') }}{% if code is defined %}!{% endif %}", None), &vars()).unwrap();
    assert_eq!(r.text, "无");
}

#[test]
fn syntax_error_points_at_the_line_in_its_part() {
    let v = variant("ok", "fine", Some("<p>a</p>\n<p>b</p>\n<p>{% if reader.name %}</p>\n<p>c</p>"));
    let e = render(&v, &vars()).unwrap_err();
    assert_eq!(e.part, "body_html");
    assert!(e.line >= 3, "{e:?}");
    assert!(e.detail.contains("语法") && e.detail.contains("syntax"), "{}", e.detail);

    let e = render(&variant("ok", "a\nb {{ reader.name", None), &vars()).unwrap_err();
    assert_eq!((e.part, e.line), ("body_text", 2), "{e:?}");
    assert!(e.to_string().starts_with("body_text line 2: "), "{e}");
}

#[test]
fn unknown_filter_and_includes_are_refused() {
    let e = render(&variant("s", "{{ reader.name | shout }}", None), &vars()).unwrap_err();
    assert!(e.why.zh.starts_with("未知的过滤器") && e.why.en.contains("shout"), "{:?}", e.why);
    // There are no other templates to reach: include/import/extends are not even statements.
    let e = render(&variant("s", "{% include 'secrets.txt' %}", None), &vars()).unwrap_err();
    assert!(e.detail.contains("syntax error") && e.detail.contains("include"), "{}", e.detail);
}

#[test]
fn check_uses_sample_variables() {
    let good = variant(
        "{{ reader.name }} {{ case.number }}",
        "{{ reader.card_no }} {{ reader.category }} {{ reader.affiliation }} {{ reader.expires_on }} {{ link }} {{ code }} {{ unsubscribe_url }} {{ preferences_url }}",
        Some("<b>{{ reader.name }}</b>"),
    );
    assert_eq!(check(&good), Ok(()));
    let e = check(&variant("s", "t", Some("{{ reader.phone_number }}"))).unwrap_err();
    assert_eq!((e.part, e.line), ("body_html", 1));
    assert!(sample_vars()["reader"]["name"].is_string());
}

#[test]
fn runaway_templates_stop() {
    // A loop that would run forever in spirit: fuel stops it quickly.
    let v = variant("s", "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}", None);
    let e = render(&v, &vars()).unwrap_err();
    assert_eq!(e.part, "body_text");
    assert_eq!(e.why.en, "the template does too much work; check its loops");

    // Deep recursion through a recursive loop is cut off, not a stack overflow.
    let deep = json!({"tree": nest(200)});
    let v = variant("s", "{% for n in [tree] recursive %}{{ loop(n.children) }}{% endfor %}", None);
    assert_eq!(render(&v, &deep).unwrap_err().why.en, "the template nests too deeply");

    // A huge string repeat is refused rather than allocated.
    let e = render(&variant("s", "{{ 'x' * 90000000 }}", None), &vars()).unwrap_err();
    assert_eq!(e.part, "body_text");
}

fn nest(depth: usize) -> serde_json::Value {
    let mut v = json!({"children": []});
    for _ in 0..depth {
        v = json!({"children": [v]});
    }
    v
}

#[test]
fn size_limits() {
    let big = "a".repeat(MAX_SOURCE_BYTES + 1);
    let e = render(&variant("s", &big, None), &vars()).unwrap_err();
    assert_eq!((e.part, e.line), ("body_text", 0));
    assert_eq!(e.why.en, format!("template too long: {} bytes, limit {MAX_SOURCE_BYTES}", MAX_SOURCE_BYTES + 1));
    assert_eq!(e.msg().zh, format!("正文：模板过长（{} 字节，上限 {MAX_SOURCE_BYTES}）", MAX_SOURCE_BYTES + 1));
    assert_eq!(e.detail, e.why.to_string());

    // Within the source limit but rendering past the output limit.
    let v = variant("s", &format!("{{{{ 'x' * {} }}}}", MAX_OUTPUT_BYTES + 10), None);
    let e = render(&v, &vars()).unwrap_err();
    assert_eq!(e.part, "body_text");
    assert!(e.detail.contains("too long") || e.detail.contains("运算量"), "{}", e.detail);
}
