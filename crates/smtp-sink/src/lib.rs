//! A small SMTP server for tests and benchmarks. CONTRACT STUB — the senders helper owns this.
