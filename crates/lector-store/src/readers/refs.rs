//! References of many reader inputs (category, owner, custom attributes) resolved against one
//! snapshot of the configuration, so a bulk load or an import asks the database once, not per row.

use super::Resolved;
use crate::db::flag;
use crate::Result;
use lector_domain::attribute::AttrDef;
use lector_domain::reader::ReaderInput;
use lector_domain::Msg;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) fn no_category(code: &str) -> Msg {
    Msg::new(format!("没有读者类型“{code}”"), format!("no reader category '{code}'"))
}

pub(crate) fn retired_category(code: &str) -> Msg {
    Msg::new(format!("读者类型“{code}”已停用"), format!("category '{code}' is retired"))
}

pub(crate) fn no_owner(name: &str) -> Msg {
    Msg::new(format!("没有在职馆员“{name}”"), format!("no active staff member '{name}'"))
}

pub(crate) fn no_attribute(code: &str) -> Msg {
    Msg::new(format!("没有自定义属性“{code}”"), format!("no custom attribute '{code}'"))
}

pub(crate) fn unique_taken(def: &AttrDef, value: &str, card: &str) -> Msg {
    Msg::new(
        format!("“{}”的值“{value}”已被读者 {card} 使用", def.label_zh),
        format!("'{}' value '{value}' is already used by reader {card}", def.label_en),
    )
}

/// How strictly references are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// New values: categories must be active (or the reader's current one), owners active staff.
    Input,
    /// Values that were stored before (an undo writes them back): anything that still exists.
    Stored,
}

/// Categories, staff and attribute definitions by code, read once.
pub(crate) struct RefCache {
    /// code → (id, active)
    categories: HashMap<String, (i64, bool)>,
    /// user name → (id, active)
    users: HashMap<String, (i64, bool)>,
    attributes: HashMap<String, (i64, Arc<AttrDef>)>,
}

impl RefCache {
    pub(crate) async fn load(conn: &mut sqlx::AnyConnection) -> Result<Self> {
        let mut categories = HashMap::new();
        for r in sqlx::query("SELECT id, code, active FROM categories").fetch_all(&mut *conn).await? {
            categories.insert(r.try_get("code")?, (r.try_get("id")?, flag(&r, "active")?));
        }
        let mut users = HashMap::new();
        for r in sqlx::query("SELECT id, username, active FROM users").fetch_all(&mut *conn).await? {
            users.insert(r.try_get("username")?, (r.try_get("id")?, flag(&r, "active")?));
        }
        let attributes =
            crate::config::attribute_defs_in(conn).await?.into_iter().map(|(id, d)| (d.code.clone(), (id, Arc::new(d)))).collect();
        Ok(RefCache { categories, users, attributes })
    }

    pub(crate) fn category_id(&self, code: &str) -> Option<i64> {
        self.categories.get(code).map(|c| c.0)
    }

    /// Resolves the references of `input`, or names the first field that refers to something
    /// missing (`category`, `owner`, `attributes.CODE`). `current_category` is the reader's
    /// category as stored, which may stay even when retired.
    pub(crate) fn resolve(&self, input: &ReaderInput, current_category: Option<i64>, check: Check) -> Result<Resolved, (String, Msg)> {
        let category_id = match self.categories.get(&input.category) {
            Some(&(id, active)) if active || check == Check::Stored || current_category == Some(id) => id,
            Some(_) => return Err(("category".into(), retired_category(&input.category))),
            None => return Err(("category".into(), no_category(&input.category))),
        };
        let owner_id = match &input.owner {
            None => None,
            Some(name) => match self.users.get(&name.to_lowercase()) {
                Some(&(id, active)) if active || check == Check::Stored => Some(id),
                _ => return Err(("owner".into(), no_owner(name))),
            },
        };
        let mut attributes = Vec::with_capacity(input.attributes.len());
        for (code, raw) in &input.attributes {
            let field = format!("attributes.{code}");
            let Some((id, def)) = self.attributes.get(code) else {
                if check == Check::Stored {
                    // The attribute was deleted since: its values went with it.
                    continue;
                }
                return Err((field, no_attribute(code)));
            };
            let values = match check {
                Check::Input => def.parse_values(raw).map_err(|m| (field, m))?,
                Check::Stored => raw.clone(),
            };
            attributes.push((*id, def.clone(), values));
        }
        Ok(Resolved { category_id, owner_id, attributes })
    }
}
