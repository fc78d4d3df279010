//! The virtual file layout. To be completed.
