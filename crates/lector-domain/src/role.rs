//! Staff roles and the permission matrix (see `docs/permissions.md`).

use crate::Msg;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Leader,
    Department,
    Librarian,
    Analyst,
}

/// Something a request may want to do. Every route names the permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See reader profiles (contact details masked).
    ReadersView,
    /// See a reader's full contact details (audited).
    ReadersContacts,
    /// Create and update readers.
    ReadersEdit,
    /// Delete readers.
    ReadersDelete,
    /// Export readers to a file (audited).
    ReadersExport,
    /// Manage staff accounts.
    UsersManage,
    /// Create and revoke API tokens for any user.
    TokensManage,
    /// Configure categories, custom attributes and departments.
    ConfigManage,
    /// Browse the audit log.
    AuditView,
    /// See interactions and follow-up tasks across readers.
    TrackingView,
    /// Record interactions with readers and assign follow-up tasks.
    TrackingRecord,
    /// Hand readers over to another owner (业务负责人).
    ReadersHandOver,
    /// File cases on a reader's behalf and triage received cases.
    CasesTriage,
    /// Work on cases assigned to one's own department (claim, propose, resolve, transfer).
    CasesWork,
    /// Approve or reject proposed solutions.
    CasesApprove,
    /// See every case, whatever the department.
    CasesViewAll,
    /// The service dashboard (aggregates only).
    ServiceDashboard,
    /// Case categories, workflows, the working calendar.
    CasesConfigure,
    /// Import readers from files (upload, map, preview, run, undo) and keep mapping profiles.
    ReadersImport,
    /// Review identity candidates: merge two records, mark "not the same person", undo merges.
    IdentityReview,
    /// Schedule the re-sync of import sources.
    ImportSchedule,
    /// Create, edit and freeze segments (saved reader filters); see their members.
    SegmentsManage,
    /// Write campaigns and templates, preview them, send tests, and send, pause, resume or cancel.
    CampaignsManage,
    /// Configure channels (SMTP, SMS gateway, robots, webhooks) and the triggered messages.
    ChannelsConfigure,
    /// Record a reader's consent on their behalf (audited).
    ConsentManage,
    /// The warehouse: data dictionary, load history, read-only SQL, saved queries, CSV download (audited).
    WarehouseQuery,
    /// The warehouse's quarantine, with the raw records it holds (they may carry a card number).
    WarehouseAdmin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Admin, Role::Leader, Role::Department, Role::Librarian, Role::Analyst];

    pub fn code(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Leader => "leader",
            Role::Department => "department",
            Role::Librarian => "librarian",
            Role::Analyst => "analyst",
        }
    }

    pub fn label(self) -> Msg {
        match self {
            Role::Admin => Msg::new("系统管理员", "Administrator"),
            Role::Leader => Msg::new("馆领导", "Leader"),
            Role::Department => Msg::new("部门馆员", "Department staff"),
            Role::Librarian => Msg::new("馆员", "Librarian"),
            Role::Analyst => Msg::new("数据分析员", "Analyst"),
        }
    }

    pub fn parse(code: &str) -> Result<Self, Msg> {
        Self::ALL.into_iter().find(|r| r.code() == code.trim()).ok_or_else(|| {
            Msg::new(
                format!("未知角色“{code}”，可选：admin、leader、department、librarian、analyst"),
                format!("unknown role '{code}'; use admin, leader, department, librarian or analyst"),
            )
        })
    }

    /// The permission matrix. Analysts work on pseudonymised warehouse data and see no reader
    /// records; leaders see everything and change nothing operational.
    pub fn can(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Leader => matches!(
                p,
                ReadersView
                    | ReadersContacts
                    | ReadersExport
                    | AuditView
                    | TrackingView
                    | ReadersHandOver
                    | CasesApprove
                    | CasesViewAll
                    | ServiceDashboard
                    | SegmentsManage
                    | WarehouseQuery
            ),
            Role::Librarian => matches!(
                p,
                ReadersView
                    | ReadersContacts
                    | ReadersEdit
                    | ReadersExport
                    | TrackingView
                    | TrackingRecord
                    | ReadersHandOver
                    | CasesTriage
                    | CasesViewAll
                    | ReadersImport
                    | IdentityReview
                    | SegmentsManage
                    | CampaignsManage
                    | ConsentManage
            ),
            Role::Department => matches!(p, ReadersView | TrackingView | TrackingRecord | CasesWork),
            Role::Analyst => matches!(p, ServiceDashboard | WarehouseQuery),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix() {
        assert!(Role::Admin.can(Permission::UsersManage));
        assert!(Role::Librarian.can(Permission::ReadersEdit));
        assert!(!Role::Librarian.can(Permission::ReadersDelete));
        assert!(!Role::Leader.can(Permission::ReadersEdit));
        assert!(Role::Department.can(Permission::ReadersView));
        assert!(!Role::Department.can(Permission::ReadersContacts));
        assert!(!Role::Analyst.can(Permission::ReadersView));
        assert!(Role::Department.can(Permission::TrackingRecord));
        assert!(!Role::Department.can(Permission::ReadersHandOver));
        assert!(Role::Leader.can(Permission::ReadersHandOver) && !Role::Leader.can(Permission::TrackingRecord));
        assert!(!Role::Analyst.can(Permission::TrackingView));
        assert!(Role::Analyst.can(Permission::ServiceDashboard) && !Role::Analyst.can(Permission::CasesViewAll));
        assert!(Role::Leader.can(Permission::CasesApprove) && !Role::Librarian.can(Permission::CasesApprove));
        assert!(Role::Department.can(Permission::CasesWork) && !Role::Department.can(Permission::CasesViewAll));
        assert!(Role::Librarian.can(Permission::ReadersImport) && Role::Librarian.can(Permission::IdentityReview));
        assert!(!Role::Librarian.can(Permission::ImportSchedule) && Role::Admin.can(Permission::ImportSchedule));
        for role in [Role::Leader, Role::Department, Role::Analyst] {
            for p in [Permission::ReadersImport, Permission::IdentityReview, Permission::ImportSchedule] {
                assert!(!role.can(p), "{role:?} must not have {p:?}");
            }
        }
        assert!(Role::Librarian.can(Permission::CampaignsManage) && !Role::Librarian.can(Permission::ChannelsConfigure));
        assert!(Role::Leader.can(Permission::SegmentsManage) && !Role::Leader.can(Permission::CampaignsManage));
        for p in [Permission::SegmentsManage, Permission::CampaignsManage, Permission::ConsentManage] {
            assert!(!Role::Department.can(p) && !Role::Analyst.can(p), "{p:?}");
        }
        for role in [Role::Admin, Role::Leader, Role::Analyst] {
            assert!(role.can(Permission::WarehouseQuery), "{role:?} queries the warehouse");
        }
        for role in [Role::Librarian, Role::Department] {
            assert!(!role.can(Permission::WarehouseQuery), "{role:?} must not query the warehouse");
        }
        assert!(Role::Admin.can(Permission::WarehouseAdmin));
        for role in [Role::Leader, Role::Analyst, Role::Librarian, Role::Department] {
            assert!(!role.can(Permission::WarehouseAdmin), "{role:?} must not see the quarantine");
        }
        assert_eq!(Role::parse("leader").unwrap(), Role::Leader);
        assert!(Role::parse("root").is_err());
    }
}
