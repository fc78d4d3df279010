//! A GGUF reader for `inspect` and tests. (To be completed: see module docs.)
