//! The star schema: every table and column analysts rely on, with its type and its description
//! in Chinese and English. This one list is the data dictionary, the Arrow schema of the files
//! and the contract of every loader: a column is added here, nowhere else.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// What kind of table a definition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// Events, partitioned by the month of `time_column` (`month=YYYY-MM`).
    Fact { time_column: &'static str },
    /// Descriptions of readers, items or dates; versions appended, never rewritten.
    Dimension,
}

/// A column's type; timestamps are the library's local time, to the microsecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    Float,
    Bool,
    Timestamp,
    Date,
}

impl ColumnType {
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Int => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::Date => DataType::Date32,
        }
    }

    /// The SQL name shown in the dictionary.
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Text => "VARCHAR",
            ColumnType::Int => "BIGINT",
            ColumnType::Float => "DOUBLE",
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::Date => "DATE",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ColumnDef {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
    pub zh: &'static str,
    pub en: &'static str,
}

#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub kind: TableKind,
    pub zh: &'static str,
    pub en: &'static str,
    /// Where the rows come from (lineage), in English and Chinese.
    pub lineage_en: &'static str,
    pub lineage_zh: &'static str,
    /// All columns in file order (for a fact: the common head, then its own).
    pub columns: Vec<ColumnDef>,
}

impl TableDef {
    /// The Arrow schema of the table's files (the columns above, in order).
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.columns.iter().map(|c| Field::new(c.name, c.ty.arrow(), c.nullable)).collect::<Vec<_>>()))
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const fn col(name: &'static str, ty: ColumnType, nullable: bool, zh: &'static str, en: &'static str) -> ColumnDef {
    ColumnDef { name, ty, nullable, zh, en }
}

use ColumnType::*;

/// Columns every fact starts with, before its own.
const FACT_HEAD: &[ColumnDef] = &[
    col(
        "event_key",
        Text,
        false,
        "事件键：来源内唯一，重复装载只存一次，更正按此键取代旧值",
        "event key: unique within its source; a repeated load is stored once, a correction supersedes by this key",
    ),
    col("batch_id", Int, false, "装载批次号", "the batch that loaded the row"),
    col("month", Text, false, "事件所在月份（YYYY-MM，分区键）", "month of the event (YYYY-MM, the partition key)"),
    col(
        "reader_key",
        Text,
        true,
        "读者键：读者编号的带密钥散列，不含姓名与联系方式",
        "reader key: a keyed hash of the reader id; no names or contact details",
    ),
];

const FACT_LOAN: &[ColumnDef] = &[
    col("item_id", Text, false, "单册编号（ILS 的单册号或条码）", "item id (the ILS's item number or barcode)"),
    col("loaned_at", Timestamp, false, "借出时间", "when the item was loaned"),
    col("due_at", Timestamp, true, "应还时间", "when it was due"),
    col("returned_at", Timestamp, true, "归还时间（未还为空）", "when it was returned (empty while on loan)"),
    col("renewals", Int, false, "续借次数", "number of renewals"),
    col(
        "overdue_days",
        Int,
        false,
        "超期天数（归还晚于应还的天数；未还按装载时计）",
        "days overdue (returned after due; for a loan still out, as of the load)",
    ),
    col("branch", Text, true, "借出馆/分馆", "branch that issued the loan"),
    col("source", Text, false, "数据源", "source the event came from"),
];

const FACT_VISIT: &[ColumnDef] = &[
    col("visited_at", Timestamp, false, "入馆时间", "when the reader passed the gate"),
    col("gate", Text, true, "门禁编号", "gate"),
    col("branch", Text, true, "馆/分馆", "branch"),
    col("source", Text, false, "数据源", "source the event came from"),
];

const FACT_ERESOURCE_USE: &[ColumnDef] = &[
    col("used_at", Timestamp, false, "访问时间", "when the resource was used"),
    col("resource", Text, false, "电子资源（数据库或平台的主机名）", "e-resource (host name of the database or platform)"),
    col("path", Text, true, "访问路径（不含查询参数）", "path requested (without query string)"),
    col("bytes", Int, true, "传输字节数", "bytes transferred"),
    col("status", Int, true, "HTTP 状态码", "HTTP status"),
    col("source", Text, false, "数据源", "source the event came from"),
];

const FACT_INTERACTION: &[ColumnDef] = &[
    col("occurred_at", Timestamp, false, "联系时间", "when the contact happened"),
    col(
        "channel",
        Text,
        false,
        "渠道（visit、phone、email、qq、wechat、chat、consultation、training、event）",
        "channel (visit, phone, email, qq, wechat, chat, consultation, training, event)",
    ),
    col(
        "direction",
        Text,
        false,
        "方向（inbound 读者来访/来电，outbound 馆员联系）",
        "direction (inbound: from the reader; outbound: from staff)",
    ),
    col("staff", Text, true, "记录的馆员用户名", "username of the staff member who recorded it"),
    col("source", Text, false, "数据源", "source the event came from"),
];

const FACT_CASE_EVENT: &[ColumnDef] = &[
    col("case_id", Int, false, "工单编号（内部）", "case id (internal)"),
    col("occurred_at", Timestamp, false, "事件时间", "when the step happened"),
    col(
        "kind",
        Text,
        false,
        "工单类型（suggestion、complaint、inquiry、purchase、praise）",
        "case kind (suggestion, complaint, inquiry, purchase, praise)",
    ),
    col("category", Text, true, "类别", "category"),
    col("priority", Text, true, "优先级", "priority"),
    col("department", Text, true, "负责部门代码", "code of the responsible department"),
    col("action", Text, false, "动作（create、triage、assign、approve …）", "action (create, triage, assign, approve …)"),
    col("from_status", Text, true, "原状态", "status before"),
    col("to_status", Text, false, "新状态", "status after"),
    col("rating_satisfaction", Int, true, "满意度评分 1–5（评价事件）", "satisfaction 1–5 (on the rating event)"),
    col("rating_recommend", Int, true, "推荐意愿 0–10（评价事件）", "likelihood to recommend 0–10 (on the rating event)"),
    col("source", Text, false, "数据源", "source the event came from"),
];

const FACT_MESSAGE_EVENT: &[ColumnDef] = &[
    col("occurred_at", Timestamp, false, "事件时间（发送、失败或退订）", "when it happened (sent, failed or unsubscribed)"),
    col("campaign_id", Int, true, "群发任务编号（触发消息为空）", "campaign id (empty for a triggered message)"),
    col("trigger", Text, true, "触发类型（welcome、card_expiry、case_received …）", "trigger (welcome, card_expiry, case_received …)"),
    col(
        "channel",
        Text,
        false,
        "渠道类型（email、sms、wecom、dingtalk、qq、webhook）",
        "channel kind (email, sms, wecom, dingtalk, qq, webhook)",
    ),
    col("purpose", Text, false, "用途（service、news、survey）", "purpose (service, news, survey)"),
    col("status", Text, false, "结果（sent、failed、unsubscribed）", "outcome (sent, failed, unsubscribed)"),
    col("attempts", Int, false, "尝试次数", "attempts made"),
    col("source", Text, false, "数据源", "source the event came from"),
];

const DIM_READER: &[ColumnDef] = &[
    col("reader_key", Text, false, "读者键（与各事实表相同的散列）", "reader key (the same hash as in the facts)"),
    col("batch_id", Int, false, "装载批次号", "the batch that loaded the version"),
    col("valid_from", Timestamp, false, "此版本生效时间", "when this version took effect"),
    col("category", Text, true, "读者类型代码", "reader category code"),
    col("affiliation", Text, true, "单位/院系", "affiliation (school, faculty or employer)"),
    col("status", Text, false, "读者状态（active、suspended、expired、left …）", "reader status (active, suspended, expired, left …)"),
    col("gender", Text, true, "性别（m、f）", "gender (m, f)"),
    col("age_band", Text, true, "年龄段（如 18-22、23-29、30-39 …）", "age band (e.g. 18-22, 23-29, 30-39 …)"),
    col("enrolled_on", Date, true, "办证日期", "date the card was issued"),
    col("expires_on", Date, true, "证件有效期", "card expiry date"),
];

const DIM_ITEM: &[ColumnDef] = &[
    col("item_id", Text, false, "单册编号（ILS 的单册号）", "item id (the ILS's item number)"),
    col("batch_id", Int, false, "装载批次号", "the batch that loaded the version"),
    col("valid_from", Timestamp, false, "此版本生效时间", "when this version took effect"),
    col("barcode", Text, true, "条码", "barcode"),
    col("title", Text, true, "题名", "title"),
    col("clc_class", Text, true, "中图法分类号", "CLC class number"),
    col("clc_top", Text, true, "中图法大类（A–Z 之一）", "CLC top-level class (one of A–Z)"),
    col("branch", Text, true, "馆藏地/分馆", "holding branch"),
];

const DIM_DATE: &[ColumnDef] = &[
    col("date", Date, false, "日期", "the date"),
    col("year", Int, false, "年", "year"),
    col("quarter", Int, false, "季度", "quarter"),
    col("month", Int, false, "月", "month"),
    col("day", Int, false, "日", "day of month"),
    col("weekday", Int, false, "星期（1 = 星期一 … 7 = 星期日）", "weekday (1 = Monday … 7 = Sunday)"),
    col("is_weekend", Bool, false, "是否周末", "whether it is a Saturday or Sunday"),
    col("ym", Text, false, "年月（YYYY-MM，与事实表 month 相同）", "year and month (YYYY-MM, as the facts' month)"),
];

fn fact_columns(own: &[ColumnDef]) -> Vec<ColumnDef> {
    FACT_HEAD.iter().chain(own).copied().collect()
}

/// Every table, in the order the dictionary lists them.
pub fn tables() -> &'static [TableDef] {
    static TABLES: OnceLock<Vec<TableDef>> = OnceLock::new();
    TABLES.get_or_init(|| {
        vec![
            TableDef {
                name: "fact_loan",
                kind: TableKind::Fact { time_column: "loaned_at" },
                zh: "借阅事实：每次借出一行，含应还、归还、续借与超期",
                en: "loans: one row per loan, with due date, return, renewals and days overdue",
                lineage_en: "circulation files (CSV/TSV/Excel, Koha issues/old_issues/statistics) and the Koha database preset",
                lineage_zh: "流通数据文件（CSV/TSV/Excel，Koha issues/old_issues/statistics）与 Koha 数据库预设",
                columns: fact_columns(FACT_LOAN),
            },
            TableDef {
                name: "fact_visit",
                kind: TableKind::Fact { time_column: "visited_at" },
                zh: "入馆事实：每次通过门禁一行",
                en: "visits: one row per gate entry",
                lineage_en: "gate logs",
                lineage_zh: "门禁日志",
                columns: fact_columns(FACT_VISIT),
            },
            TableDef {
                name: "fact_eresource_use",
                kind: TableKind::Fact { time_column: "used_at" },
                zh: "电子资源使用事实：每次访问一行",
                en: "e-resource use: one row per request",
                lineage_en: "EZproxy logs",
                lineage_zh: "EZproxy 日志",
                columns: fact_columns(FACT_ERESOURCE_USE),
            },
            TableDef {
                name: "fact_interaction",
                kind: TableKind::Fact { time_column: "occurred_at" },
                zh: "联系记录事实：馆员与读者的每次联系",
                en: "interactions: every contact between staff and a reader",
                lineage_en: "operational store: interactions",
                lineage_zh: "业务库：联系记录",
                columns: fact_columns(FACT_INTERACTION),
            },
            TableDef {
                name: "fact_case_event",
                kind: TableKind::Fact { time_column: "occurred_at" },
                zh: "服务工单事件：工单的每一步流转与评价",
                en: "case events: every step of a service case, and its rating",
                lineage_en: "operational store: cases and case events",
                lineage_zh: "业务库：服务工单及其事件",
                columns: fact_columns(FACT_CASE_EVENT),
            },
            TableDef {
                name: "fact_message_event",
                kind: TableKind::Fact { time_column: "occurred_at" },
                zh: "消息事件：每条消息的发送结果",
                en: "message events: the outcome of every message",
                lineage_en: "operational store: outbox",
                lineage_zh: "业务库：消息发件箱",
                columns: fact_columns(FACT_MESSAGE_EVENT),
            },
            TableDef {
                name: "dim_reader",
                kind: TableKind::Dimension,
                zh: "读者维度（缓慢变化，类型 2）：每次属性变化追加一个版本；valid_to、is_current 由视图计算",
                en: "reader dimension (slowly changing, type 2): a version per change of attributes; valid_to and is_current computed by the view",
                lineage_en: "operational store: readers",
                lineage_zh: "业务库：读者",
                columns: DIM_READER.to_vec(),
            },
            TableDef {
                name: "dim_item",
                kind: TableKind::Dimension,
                zh: "单册维度：题名与中图法分类",
                en: "item dimension: title and CLC class",
                lineage_en: "item files and the Koha database preset",
                lineage_zh: "单册数据文件与 Koha 数据库预设",
                columns: DIM_ITEM.to_vec(),
            },
            TableDef {
                name: "dim_date",
                kind: TableKind::Dimension,
                zh: "日期维度（生成，覆盖有数据的年份）",
                en: "date dimension (generated over the years that have data)",
                lineage_en: "generated",
                lineage_zh: "自动生成",
                columns: DIM_DATE.to_vec(),
            },
        ]
    })
}

/// The definition of the table called `name`.
pub fn table(name: &str) -> Option<&'static TableDef> {
    tables().iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_has_the_common_head_and_a_time_column_of_its_own() {
        for t in tables() {
            if let TableKind::Fact { time_column } = t.kind {
                let names: Vec<_> = t.columns.iter().take(4).map(|c| c.name).collect();
                assert_eq!(names, ["event_key", "batch_id", "month", "reader_key"], "{}", t.name);
                assert_eq!(t.column(time_column).map(|c| c.ty), Some(ColumnType::Timestamp), "{}", t.name);
            }
        }
    }

    #[test]
    fn the_loan_fact_has_the_columns_analysts_rely_on() {
        let loan = table("fact_loan").unwrap();
        for c in ["reader_key", "item_id", "loaned_at", "due_at", "returned_at", "renewals", "branch"] {
            assert!(loan.column(c).is_some(), "fact_loan.{c}");
        }
    }

    #[test]
    fn every_column_is_described_in_both_languages_and_named_once() {
        for t in tables() {
            let mut seen = std::collections::HashSet::new();
            for c in &t.columns {
                assert!(seen.insert(c.name), "{}.{} twice", t.name, c.name);
                assert!(!c.zh.is_empty() && !c.en.is_empty(), "{}.{}", t.name, c.name);
            }
            assert_eq!(t.schema().fields().len(), t.columns.len());
        }
    }
}
