//! Segment filters (读者分组条件). CONTRACT STUB — the segments helper owns this.
