//! A fake Hugging Face Hub for tests and demos. To be completed.
