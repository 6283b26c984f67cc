//! Analyst SQL is read-only: it is parsed before anything is planned, and only one query
//! statement (`SELECT`, `WITH`, `VALUES`, or `EXPLAIN` of those) goes on. The planner's
//! [`SQLOptions`] are the second line, for what a query may hide (`SELECT … INTO`).

use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use lector_domain::Msg;

use crate::error::{Result, WarehouseError};

/// The one query statement `sql` holds.
pub fn single_query(sql: &str) -> Result<Statement> {
    let mut statements = DFParser::parse_sql(sql).map_err(|e| WarehouseError::Query(e.strip_backtrace()))?;
    if statements.len() != 1 {
        return Err(WarehouseError::Refused(Msg::new(
            format!("一次只能执行一条查询语句（收到 {} 条）", statements.len()),
            format!("run exactly one query statement at a time (got {})", statements.len()),
        )));
    }
    let statement = statements.pop_front().ok_or_else(|| WarehouseError::Query("empty statement list".into()))?;
    if is_query(&statement) {
        Ok(statement)
    } else {
        let kind = statement.to_string().split_whitespace().next().unwrap_or_default().to_uppercase();
        Err(WarehouseError::Refused(Msg::new(
            format!("数据仓库只允许只读查询（SELECT、WITH、VALUES、EXPLAIN），不能执行 {kind}"),
            format!("the warehouse allows read-only queries only (SELECT, WITH, VALUES, EXPLAIN), not {kind}"),
        )))
    }
}

/// What a planned query may not do: no DDL, no DML, no statements such as `SET`.
pub fn plan_options() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

fn is_query(statement: &Statement) -> bool {
    match statement {
        Statement::Statement(s) => is_sql_query(s),
        Statement::Explain(explain) => is_query(&explain.statement),
        Statement::CreateExternalTable(_) | Statement::CopyTo(_) | Statement::Reset(_) => false,
    }
}

fn is_sql_query(statement: &SqlStatement) -> bool {
    match statement {
        SqlStatement::Query(_) => true,
        SqlStatement::Explain { statement, .. } => is_sql_query(statement),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_pass_and_everything_else_is_refused() {
        for ok in ["SELECT 1", "WITH t AS (SELECT 1 AS x) SELECT x FROM t", "VALUES (1), (2)", "EXPLAIN SELECT 1"] {
            assert!(single_query(ok).is_ok(), "{ok}");
        }
        for refused in [
            "INSERT INTO t VALUES (1)",
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'",
            "COPY (SELECT 1) TO '/tmp/x.parquet'",
            "DROP TABLE fact_loan",
            "SET datafusion.execution.batch_size = 1",
            "EXPLAIN INSERT INTO t VALUES (1)",
            "SELECT 1; SELECT 2",
        ] {
            assert!(matches!(single_query(refused), Err(WarehouseError::Refused(_))), "{refused}");
        }
    }
}
