use lector_messaging::send::*;
use lector_domain::messaging::*;
use std::sync::Arc;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate() {
    let port: u16 = std::env::var("SINK_PORT").unwrap().parse().unwrap();
    let s = ChannelSettings::Email { host: "127.0.0.1".into(), port, security: SmtpSecurity::Plain, username: None, from_address: "a@b.cn".into(), from_name: "图书馆".into(), qq_mailbox: false, accept_invalid_certs: false };
    let snd = Arc::new(Sender::new(&s, None).unwrap());
    let t = std::time::Instant::now();
    let n = 20000;
    let mut set = tokio::task::JoinSet::new();
    for w in 0..16 {
        let snd = snd.clone();
        set.spawn(async move {
            for i in 0..n/16 {
                let out = Outgoing { address: format!("r{w}-{i}@y.z"), display_name: "王小明".into(), subject: "【通知】读者证到期".into(), text: "您好，".repeat(50), html: Some("<p>您好</p>".repeat(30)), message_id: format!("<o-{w}-{i}@lector>"), unsubscribe_url: Some("https://x/u?t=1".into()), preferences_url: Some("https://x/p".into()), extra: serde_json::json!(null) };
                snd.send(&out).await.unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await { r.unwrap(); }
    println!("{} msg/s", n as f64 / t.elapsed().as_secs_f64());
}
