//! Quiet hours (免打扰时段). CONTRACT STUB — the outbox helper owns this.
