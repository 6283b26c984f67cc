//! CONTRACT: filled in by a helper.
