//! What admins configure: library departments, reader categories, custom attributes.

use crate::audit::{self, Change};
use crate::db::{flag, is_unique_violation, Store};
use crate::{now_text, Actor, Result, StoreError};
use lector_domain::attribute::{parse_code, AttrDef, AttrKind};
use lector_domain::{text, Msg};
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Department {
    pub id: i64,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Category {
    pub id: i64,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub sort_order: i64,
    pub active: bool,
}

/// A code and two names, as entered for a department or a category.
#[derive(Debug, Clone, Default)]
pub struct NamedInput {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

impl NamedInput {
    fn parse(&self) -> Result<(String, String, String)> {
        let mut errs = lector_domain::FieldErrors::default();
        let code = errs.take("code", parse_code(&self.code));
        let name = |raw: &str| {
            let v = text::clean(raw);
            if v.is_empty() || v.chars().count() > 64 {
                Err(Msg::new("名称应为 1 到 64 个字符", "a name has 1 to 64 characters"))
            } else {
                Ok(v)
            }
        };
        let zh = errs.take("name_zh", name(&self.name_zh));
        let en = errs.take("name_en", name(&self.name_en));
        errs.finish(|| (code.unwrap_or_default(), zh.unwrap_or_default(), en.unwrap_or_default())).map_err(StoreError::Invalid)
    }
}

fn taken(what_zh: &str, what_en: &str, code: &str) -> StoreError {
    StoreError::Conflict(Msg::new(format!("{what_zh}代码“{code}”已存在"), format!("{what_en} code '{code}' is taken")))
}

/// An attribute definition to create.
#[derive(Debug, Clone)]
pub struct NewAttribute {
    pub code: String,
    pub label_zh: String,
    pub label_en: String,
    pub kind: String,
    pub choices: Vec<String>,
    pub repeatable: bool,
    pub unique: bool,
    pub searchable: bool,
}

impl Store {
    pub async fn departments(&self) -> Result<Vec<Department>> {
        let rows = sqlx::query("SELECT id, code, name_zh, name_en FROM departments ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Department {
                    id: r.try_get("id")?,
                    code: r.try_get("code")?,
                    name_zh: r.try_get("name_zh")?,
                    name_en: r.try_get("name_en")?,
                })
            })
            .collect()
    }

    pub(crate) async fn department_id_in(&self, tx: &mut Transaction<'static, Any>, code: &str) -> Result<i64> {
        let row = sqlx::query("SELECT id FROM departments WHERE code = $1").bind(code.to_string()).fetch_optional(&mut **tx).await?;
        match row {
            Some(r) => Ok(r.try_get("id")?),
            None => Err(StoreError::invalid("department", Msg::new(format!("没有部门“{code}”"), format!("no department '{code}'")))),
        }
    }

    pub async fn create_department(&self, actor: &Actor, input: &NamedInput) -> Result<Department> {
        let (code, zh, en) = input.parse()?;
        let mut tx = self.begin().await?;
        let row = sqlx::query("INSERT INTO departments (code, name_zh, name_en, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(code.clone())
            .bind(zh.clone())
            .bind(en.clone())
            .bind(now_text())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { taken("部门", "department", &code) } else { e.into() })?;
        let d = Department { id: row.try_get("id")?, code, name_zh: zh, name_en: en };
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "department.create",
                entity: "department",
                entity_id: Some(d.id.to_string()),
                summary: d.name_zh.clone(),
                before: None,
                after: Some(serde_json::to_value(&d).unwrap_or_default()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(d)
    }

    pub async fn categories(&self) -> Result<Vec<Category>> {
        let rows = sqlx::query("SELECT id, code, name_zh, name_en, sort_order, active FROM categories ORDER BY sort_order, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Category {
                    id: r.try_get("id")?,
                    code: r.try_get("code")?,
                    name_zh: r.try_get("name_zh")?,
                    name_en: r.try_get("name_en")?,
                    sort_order: r.try_get("sort_order")?,
                    active: flag(r, "active")?,
                })
            })
            .collect()
    }

    pub async fn create_category(&self, actor: &Actor, input: &NamedInput) -> Result<Category> {
        let (code, zh, en) = input.parse()?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO categories (code, name_zh, name_en, sort_order, active)
             VALUES ($1, $2, $3, (SELECT COALESCE(MAX(sort_order), 0) + 10 FROM categories), 1) RETURNING id, sort_order",
        )
        .bind(code.clone())
        .bind(zh.clone())
        .bind(en.clone())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { taken("读者类型", "category", &code) } else { e.into() })?;
        let c = Category { id: row.try_get("id")?, code, name_zh: zh, name_en: en, sort_order: row.try_get("sort_order")?, active: true };
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "category.create",
                entity: "category",
                entity_id: Some(c.id.to_string()),
                summary: c.name_zh.clone(),
                before: None,
                after: Some(serde_json::to_value(&c).unwrap_or_default()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Retires or restores a category: a retired category keeps its readers but is not offered
    /// for new ones.
    pub async fn set_category_active(&self, actor: &Actor, id: i64, active: bool) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE categories SET active = $1 WHERE id = $2").bind(active as i64).bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        audit::record(
            &mut tx,
            actor,
            Change {
                action: if active { "category.enable" } else { "category.disable" },
                entity: "category",
                entity_id: Some(id.to_string()),
                summary: format!("category {id}"),
                before: None,
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn attribute_defs(&self) -> Result<Vec<(i64, AttrDef)>> {
        let mut conn = self.pool.acquire().await?;
        attribute_defs_in(&mut conn).await
    }

    pub async fn create_attribute(&self, actor: &Actor, new: &NewAttribute) -> Result<AttrDef> {
        let (code, label_zh, label_en) =
            NamedInput { code: new.code.clone(), name_zh: new.label_zh.clone(), name_en: new.label_en.clone() }.parse().map_err(
                |e| match e {
                    StoreError::Invalid(mut f) => {
                        f.0.iter_mut().for_each(|e| e.field = e.field.replace("name_", "label_"));
                        StoreError::Invalid(f)
                    }
                    e => e,
                },
            )?;
        let kind = AttrKind::parse(&new.kind).map_err(|m| StoreError::invalid("kind", m))?;
        let choices: Vec<String> = new.choices.iter().map(|c| text::clean(c)).filter(|c| !c.is_empty()).collect();
        if kind == AttrKind::Choice && choices.is_empty() {
            return Err(StoreError::invalid(
                "choices",
                Msg::new("选项类型的属性至少需要一个选项", "a choice attribute needs at least one choice"),
            ));
        }
        let def =
            AttrDef { code, label_zh, label_en, kind, choices, repeatable: new.repeatable, unique: new.unique, searchable: new.searchable };
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO attribute_defs (code, label_zh, label_en, kind, choices, repeatable, is_unique, searchable, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(def.code.clone())
        .bind(def.label_zh.clone())
        .bind(def.label_en.clone())
        .bind(kind.code().to_string())
        .bind(serde_json::to_string(&def.choices).unwrap_or_default())
        .bind(def.repeatable as i64)
        .bind(def.unique as i64)
        .bind(def.searchable as i64)
        .bind(now_text())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { taken("属性", "attribute", &def.code) } else { e.into() })?;
        let id: i64 = row.try_get("id")?;
        audit::record(
            &mut tx,
            actor,
            Change {
                action: "attribute.create",
                entity: "attribute",
                entity_id: Some(id.to_string()),
                summary: def.label_zh.clone(),
                before: None,
                after: Some(serde_json::to_value(&def).unwrap_or_default()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(def)
    }
}

/// The attribute definitions, read on `conn` (inside the caller's transaction, so that a writer
/// never waits for a second pool connection while it holds the first).
pub(crate) async fn attribute_defs_in(conn: &mut sqlx::AnyConnection) -> Result<Vec<(i64, AttrDef)>> {
    let rows = sqlx::query("SELECT * FROM attribute_defs ORDER BY id").fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            let choices: String = r.try_get("choices")?;
            Ok((
                r.try_get("id")?,
                AttrDef {
                    code: r.try_get("code")?,
                    label_zh: r.try_get("label_zh")?,
                    label_en: r.try_get("label_en")?,
                    kind: AttrKind::parse(&kind).map_err(|m| StoreError::Other(m.en))?,
                    choices: serde_json::from_str(&choices).unwrap_or_default(),
                    repeatable: flag(r, "repeatable")?,
                    unique: flag(r, "is_unique")?,
                    searchable: flag(r, "searchable")?,
                },
            ))
        })
        .collect()
}
