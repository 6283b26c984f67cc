//! What the campaign pages and the messaging pages share: one row of tabs across both.

use super::Tab;
use crate::auth::Staff;
use lector_domain::role::Permission;

/// The campaign and messaging tabs the user may open, written once so both page sets show the
/// same row; `with_settings` adds the messaging settings tab (the campaign pages leave it out).
pub fn tabs(staff: &Staff, active: &str, with_settings: bool) -> Vec<Tab> {
    let l = staff.lang;
    let mut tabs = Vec::new();
    let mut tab = |id: &'static str, href: &str, zh: &str, en: &str| {
        tabs.push(Tab { href: href.into(), label: l.pick(zh, en).into(), id, active: id == active });
    };
    if staff.can(Permission::CampaignsManage) {
        tab("tab-campaigns", "/campaigns", "群发任务", "Campaigns");
    }
    if staff.can(Permission::ChannelsConfigure) {
        tab("tab-triggers", "/campaigns/triggers", "触发消息", "Triggered messages");
    }
    if staff.can(Permission::CampaignsManage) {
        tab("tab-templates", "/messaging/templates", "消息模板", "Templates");
    }
    if staff.can(Permission::ChannelsConfigure) {
        tab("tab-channels", "/messaging/channels", "消息渠道", "Channels");
        if with_settings {
            tab("tab-settings", "/messaging/settings", "消息设置", "Settings");
        }
    }
    tabs
}
