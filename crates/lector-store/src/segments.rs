//! Segments (读者分组): saved filters over readers. CONTRACT STUB — the segments helper owns this.

use crate::db::Sql;
use crate::{Result, Store};

impl Store {
    /// Appends to `sql` a subquery selecting the ids of `segment_id`'s members (one column,
    /// `reader_id`): the frozen snapshot, or the live filter compiled to SQL. Callers wrap it:
    /// `… WHERE r.id IN (` + this + `)`. Binds continue `sql`'s numbering.
    pub(crate) async fn push_segment_members(&self, _sql: &mut Sql, _segment_id: i64) -> Result<()> {
        todo!("segments helper")
    }
}
