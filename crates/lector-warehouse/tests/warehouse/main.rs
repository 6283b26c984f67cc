//! The warehouse on a temporary folder: loading batches all or nothing, and querying them.

mod common;
mod loading;
mod querying;
