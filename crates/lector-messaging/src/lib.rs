//! Lector's messaging: message templates (minijinja), the channels messages leave by (SMTP,
//! an SMS gateway, WeCom and DingTalk robots, a QQ bot, generic webhooks), and the worker that
//! drains the store's outbox. See `docs/adr/0005-messaging.md`.

pub mod render;
pub mod send;
pub mod worker;
