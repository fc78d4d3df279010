//! The Hugging Face Hub client. To be completed.
