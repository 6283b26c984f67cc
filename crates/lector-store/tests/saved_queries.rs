//! Saved warehouse queries: per owner, shared or private, replaced by name, validated with
//! bilingual field errors, every change audited. Every scenario runs on SQLite and on
//! PostgreSQL (see `common`).

#[macro_use]
#[allow(dead_code)]
mod common;

use common::actor;
use lector_store::audit::AuditQuery;
use lector_store::auth::NewUser;
use lector_store::domain::role::Role;
use lector_store::saved_queries::{SavedQueryInput, MAX_SQL_CHARS};
use lector_store::{Actor, Store, StoreError};

scenarios!(
    scenario:
    queries_are_private_unless_shared_and_replaced_by_name,
    invalid_input_names_every_field,
);

async fn analyst(store: &Store, name: &str) -> Actor {
    let user = store
        .create_user(
            &actor(),
            NewUser {
                username: name.into(),
                display_name: name.into(),
                role: Role::Analyst,
                department: None,
                password: "a long enough password".into(),
            },
        )
        .await
        .expect("create an analyst");
    Actor::user(user.id, &user.username, "test")
}

fn input(name: &str, shared: bool) -> SavedQueryInput {
    SavedQueryInput { name: name.into(), sql: "SELECT count(*) FROM fact_loan".into(), description: "借阅总数".into(), shared }
}

async fn audited(store: &Store, action: &str) -> i64 {
    store
        .audit_log(&AuditQuery { action: Some(action.into()), page: 1, per_page: 10, ..Default::default() })
        .await
        .expect("audit log")
        .total
}

mod scenario {
    use super::*;

    pub async fn queries_are_private_unless_shared_and_replaced_by_name(store: Store) {
        let (wang, li) = (analyst(&store, "wang").await, analyst(&store, "li").await);
        let (wang_id, li_id) = (wang.user_id.expect("a user"), li.user_id.expect("a user"));
        let private = store.save_query(&wang, &input("私有", false)).await.expect("save a private query");
        let shared = store.save_query(&wang, &input("共享", true)).await.expect("save a shared query");
        assert_eq!((private.owner.as_str(), private.shared, shared.shared), ("wang", false, true));
        // Another user may use the same name.
        store.save_query(&li, &input("私有", false)).await.expect("the same name for another owner");

        let names = |qs: Vec<lector_store::saved_queries::SavedQuery>| {
            qs.into_iter().map(|q| format!("{}:{}", q.owner, q.name)).collect::<Vec<_>>()
        };
        assert_eq!(names(store.saved_queries(li_id).await.expect("li's list")), ["wang:共享", "li:私有"]);
        assert!(matches!(store.saved_query(li_id, private.id).await, Err(StoreError::NotFound)), "a private query stays private");
        assert_eq!(store.saved_query(li_id, shared.id).await.expect("a shared query").sql, shared.sql);
        assert!(matches!(store.delete_saved_query(&li, shared.id).await, Err(StoreError::NotFound)), "only the owner deletes");

        let replaced = store
            .save_query(&wang, &SavedQueryInput { sql: "SELECT 1".into(), shared: true, ..input("私有", false) })
            .await
            .expect("replace by name");
        assert_eq!((replaced.id, replaced.sql.as_str(), replaced.shared), (private.id, "SELECT 1", true));
        assert_eq!(store.saved_queries(wang_id).await.expect("wang's list").len(), 2);

        store.delete_saved_query(&wang, private.id).await.expect("delete");
        assert_eq!(names(store.saved_queries(wang_id).await.expect("wang's list")), ["wang:共享"]);
        assert_eq!(
            (
                audited(&store, "saved_query.create").await,
                audited(&store, "saved_query.update").await,
                audited(&store, "saved_query.delete").await
            ),
            (3, 1, 1)
        );
    }

    pub async fn invalid_input_names_every_field(store: Store) {
        let wang = analyst(&store, "wang").await;
        let bad =
            SavedQueryInput { name: " ".into(), sql: "x".repeat(MAX_SQL_CHARS + 1), description: "说明".repeat(600), shared: false };
        let Err(StoreError::Invalid(errors)) = store.save_query(&wang, &bad).await else { panic!("invalid input must be refused") };
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "sql", "description"]);
        assert!(errors.get("name").is_some_and(|m| m.zh.contains("查询名称") && m.en.contains("query name")));
        assert!(store.save_query(&Actor::system("test"), &input("系统", false)).await.is_err(), "a query needs an owning user");
        assert_eq!(audited(&store, "saved_query").await, 0);
        assert!(store.saved_queries(wang.user_id.expect("a user")).await.expect("list").is_empty());
    }
}
