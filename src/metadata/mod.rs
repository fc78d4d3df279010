//! `general.*` metadata as the reference derives it in remote mode (converter-spec §2). To be completed.
