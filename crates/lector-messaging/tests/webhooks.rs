//! The HTTP channels against real local HTTP servers (axum) that record what they receive.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use lector_domain::messaging::ChannelSettings;
use lector_messaging::send::{Outgoing, SendError, Sender};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Hit {
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn query(&self, name: &str) -> Option<String> {
        let url = url::Url::parse(&format!("http://x{}", self.uri)).unwrap();
        url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

#[derive(Default)]
struct Recorder {
    hits: Mutex<Vec<Hit>>,
    reply: Mutex<Option<(u16, String)>>,
}

/// A local endpoint: records every request and answers with the reply set (200 `{}` first).
struct Endpoint {
    base: String,
    state: Arc<Recorder>,
}

impl Endpoint {
    async fn start() -> Endpoint {
        let state = Arc::new(Recorder::default());
        let app = Router::new().fallback(record).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Endpoint { base, state }
    }

    fn reply(&self, status: u16, body: &str) {
        *self.state.reply.lock().unwrap() = Some((status, body.to_owned()));
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    fn last(&self) -> Hit {
        self.hits().pop().expect("a request arrived")
    }
}

async fn record(State(state): State<Arc<Recorder>>, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    state.hits.lock().unwrap().push(Hit { uri, headers, body });
    let (status, body) = state.reply.lock().unwrap().clone().unwrap_or((200, "{}".to_owned()));
    (StatusCode::from_u16(status).unwrap(), body)
}

fn outgoing() -> Outgoing {
    Outgoing {
        address: "13800138000".into(),
        display_name: "王小明".into(),
        subject: "工单已办结".into(),
        text: "您的建议 C-7 已办结，请评价。".into(),
        html: Some("<p>您的建议已办结</p>".into()),
        message_id: "<outbox-9.zz@lector>".into(),
        unsubscribe_url: None,
        preferences_url: Some("https://lib.example.edu.cn/portal/preferences".into()),
        extra: json!({ "card_no": "2023010001", "campaign": null, "purpose": "service" }),
    }
}

fn hmac_sha256(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[tokio::test]
async fn sms_gateway_gets_its_fields_and_token() {
    let ep = Endpoint::start().await;
    let settings =
        ChannelSettings::Sms { url: format!("{}/sms/send", ep.base), mobile_field: "phone".into(), text_field: "content".into() };
    let sender = Sender::new(&settings, Some("gw-token-123")).unwrap();
    sender.send(&outgoing()).await.unwrap();
    let hit = ep.last();
    assert_eq!(hit.uri.path(), "/sms/send");
    assert_eq!(hit.header("authorization"), Some("Bearer gw-token-123"));
    assert_eq!(hit.header("content-type"), Some("application/json"));
    assert_eq!(
        hit.json(),
        json!({
            "phone": "13800138000",
            "content": "您的建议 C-7 已办结，请评价。\n管理消息偏好 / Manage preferences: https://lib.example.edu.cn/portal/preferences",
        })
    );

    // Without a secret there is no Authorization header.
    Sender::new(&settings, None).unwrap().send(&outgoing()).await.unwrap();
    assert_eq!(ep.last().header("authorization"), None);
}

#[tokio::test]
async fn http_statuses_are_classified() {
    let ep = Endpoint::start().await;
    let settings = ChannelSettings::Sms { url: format!("{}/sms", ep.base), mobile_field: "mobile".into(), text_field: "text".into() };
    let sender = Sender::new(&settings, Some("gw-token-123")).unwrap();
    for (status, transient) in [(500, true), (503, true), (429, true), (400, false), (401, false), (404, false), (302, false)] {
        ep.reply(status, "{\"error\":\"nope\"}");
        let err = sender.send(&outgoing()).await.unwrap_err();
        assert_eq!(err.is_transient(), transient, "{status}: {err:?}");
        assert!(err.reason().contains(&status.to_string()), "{err}");
    }
    // A gateway that echoes the token does not get it into our error text.
    ep.reply(400, "bad token gw-token-123");
    let err = sender.send(&outgoing()).await.unwrap_err();
    assert!(matches!(&err, SendError::Permanent(r) if r.contains("***") && !r.contains("gw-token-123")), "{err:?}");
    ep.reply(204, "");
    sender.send(&outgoing()).await.unwrap();
}

#[tokio::test]
async fn wecom_robot_payload_and_errcodes() {
    let ep = Endpoint::start().await;
    let settings = ChannelSettings::Wecom { url: format!("{}/cgi-bin/webhook/send?key=robot-key-1", ep.base) };
    let sender = Sender::new(&settings, None).unwrap();
    ep.reply(200, r#"{"errcode":0,"errmsg":"ok"}"#);
    sender.send(&outgoing()).await.unwrap();
    let hit = ep.last();
    assert_eq!(hit.query("key").as_deref(), Some("robot-key-1"));
    assert_eq!(
        hit.json(),
        json!({
            "msgtype": "text",
            "text": {
                "content": "工单已办结\n\n您的建议 C-7 已办结，请评价。\n管理消息偏好 / Manage preferences: https://lib.example.edu.cn/portal/preferences",
                "mentioned_mobile_list": ["13800138000"],
            },
        })
    );

    ep.reply(200, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#);
    let err = sender.send(&outgoing()).await.unwrap_err();
    assert!(matches!(&err, SendError::Transient(r) if r.contains("45009")), "{err:?}");
    ep.reply(200, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#);
    let err = sender.send(&outgoing()).await.unwrap_err();
    assert!(matches!(&err, SendError::Permanent(r) if r.contains("93000") && r.contains("invalid webhook url")), "{err:?}");
    ep.reply(502, "bad gateway");
    assert!(sender.send(&outgoing()).await.unwrap_err().is_transient());
    ep.reply(200, "<html>not json</html>");
    assert!(sender.send(&outgoing()).await.unwrap_err().is_transient());

    // The robot key in the URL stays out of Debug and errors.
    assert!(!format!("{sender:?}").contains("robot-key-1"), "{sender:?}");
    assert!(!err.to_string().contains("robot-key-1"));
}

#[tokio::test]
async fn dingtalk_robot_is_signed() {
    let ep = Endpoint::start().await;
    let secret = "SECd41d8cd98f00b204e9800998ecf8427e";
    let settings = ChannelSettings::Dingtalk { url: format!("{}/robot/send?access_token=tok-1", ep.base) };
    let sender = Sender::new(&settings, Some(secret)).unwrap();
    ep.reply(200, r#"{"errcode":0,"errmsg":"ok"}"#);
    sender.send(&outgoing()).await.unwrap();
    let hit = ep.last();
    assert_eq!(hit.query("access_token").as_deref(), Some("tok-1"));
    let timestamp = hit.query("timestamp").expect("timestamp");
    let ts: i64 = timestamp.parse().unwrap();
    assert!((chrono::Utc::now().timestamp_millis() - ts).abs() < 3_600_000, "timestamp in milliseconds: {ts}");
    let expected = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, format!("{timestamp}\n{secret}").as_bytes()));
    assert_eq!(hit.query("sign"), Some(expected.clone()));
    // The raw query carries the signature URL-encoded (base64's + / = escaped).
    let raw_query = hit.uri.query().unwrap();
    let raw_sign = raw_query.split('&').find_map(|p| p.strip_prefix("sign=")).unwrap();
    assert!(!raw_sign.contains(['+', '/', '=']), "{raw_sign}");
    assert_eq!(
        hit.json(),
        json!({
            "msgtype": "text",
            "text": { "content": "工单已办结\n\n您的建议 C-7 已办结，请评价。\n管理消息偏好 / Manage preferences: https://lib.example.edu.cn/portal/preferences" },
            "at": { "atMobiles": ["13800138000"] },
        })
    );
    assert!(!format!("{sender:?}").contains(secret));

    ep.reply(200, r#"{"errcode":130101,"errmsg":"send too fast"}"#);
    assert!(sender.send(&outgoing()).await.unwrap_err().is_transient());
    ep.reply(200, r#"{"errcode":310000,"errmsg":"sign not match"}"#);
    let err = sender.send(&outgoing()).await.unwrap_err();
    assert!(matches!(&err, SendError::Permanent(r) if r.contains("310000")), "{err:?}");

    // Without a secret the URL is left as configured.
    ep.reply(200, r#"{"errcode":0}"#);
    Sender::new(&settings, None).unwrap().send(&outgoing()).await.unwrap();
    let hit = ep.last();
    assert_eq!((hit.query("timestamp"), hit.query("sign")), (None, None));
}

#[tokio::test]
async fn qq_bot_payload_and_token() {
    let ep = Endpoint::start().await;
    let settings = ChannelSettings::Qq { url: format!("{}/send_private_msg", ep.base) };
    let sender = Sender::new(&settings, Some("qq-bot-token")).unwrap();
    let out = Outgoing { address: "123456789".into(), ..outgoing() };
    sender.send(&out).await.unwrap();
    let hit = ep.last();
    assert_eq!(hit.header("authorization"), Some("Bearer qq-bot-token"));
    let body = hit.json();
    assert_eq!(body["qq"], "123456789");
    assert!(body["text"].as_str().unwrap().starts_with("工单已办结\n\n您的建议 C-7 已办结"), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn generic_webhook_is_signed_over_the_exact_body() {
    let ep = Endpoint::start().await;
    let settings = ChannelSettings::Webhook { url: format!("{}/hooks/lector", ep.base) };
    let sender = Sender::new(&settings, Some("hook-secret")).unwrap();
    let out = Outgoing { address: "2023010001".into(), ..outgoing() };
    sender.send(&out).await.unwrap();
    let hit = ep.last();
    assert_eq!(hit.header("x-lector-message-id"), Some("<outbox-9.zz@lector>"));
    let expected = format!("sha256={}", hex::encode(hmac_sha256("hook-secret", &hit.body)));
    assert_eq!(hit.header("x-lector-signature"), Some(expected.as_str()));
    let body = hit.json();
    assert_eq!(body["message_id"], "<outbox-9.zz@lector>");
    assert_eq!(body["address"], "2023010001");
    assert_eq!(body["display_name"], "王小明");
    assert_eq!(body["subject"], "工单已办结");
    assert_eq!(body["text"], "您的建议 C-7 已办结，请评价。");
    assert_eq!(body["html"], "<p>您的建议已办结</p>");
    assert_eq!(body["extra"], json!({ "card_no": "2023010001", "campaign": null, "purpose": "service" }));
    assert_eq!(body["preferences_url"], "https://lib.example.edu.cn/portal/preferences");

    // Unsigned without a secret; 4xx is final.
    let unsigned = Sender::new(&settings, None).unwrap();
    ep.reply(422, "unprocessable");
    assert!(matches!(unsigned.send(&out).await, Err(SendError::Permanent(_))));
    assert_eq!(ep.last().header("x-lector-signature"), None);
    assert_eq!(ep.hits().len(), 2);
}

#[tokio::test]
async fn unreachable_endpoint_is_transient_and_bad_urls_are_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let settings = ChannelSettings::Webhook { url: format!("http://127.0.0.1:{port}/hook?token=very-secret-token") };
    let err = Sender::new(&settings, None).unwrap().send(&outgoing()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(!err.to_string().contains("very-secret-token"), "{err}");

    assert!(Sender::new(&ChannelSettings::Wecom { url: "ftp://example.com".into() }, None).is_err());
    assert!(Sender::new(&ChannelSettings::Webhook { url: "https://".into() }, None).is_err());
}

#[tokio::test]
async fn a_silent_endpoint_times_out_as_transient() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let settings = ChannelSettings::Sms { url: format!("http://{addr}/sms"), mobile_field: "mobile".into(), text_field: "text".into() };
    let sender = Sender::with_timeout(&settings, None, std::time::Duration::from_secs(1)).unwrap();
    let err = sender.send(&outgoing()).await.unwrap_err();
    assert!(matches!(&err, SendError::Transient(r) if r.contains("timed out")), "{err:?}");
}
