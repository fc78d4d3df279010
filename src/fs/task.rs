//! Running namespace calls off the FUSE session thread.
//!
//! fuser 0.16 dispatches every request from one thread, so any await there would stall all
//! other requests (one slow Hub fetch would freeze `ls` and every other reader). Slow
//! operations therefore move their `Reply` into a tokio task; the task answers when the
//! namespace does. A panic inside the task becomes `EIO` for that one request: a dead
//! daemon would turn into SIGBUS for every process that has a file mapped.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures::FutureExt;
use libc::c_int;
use tokio::runtime::Handle;

use crate::vfs::VirtualFile;

use super::attr::errno_of;

/// Runs `work` on `runtime` and hands its outcome to `reply`; a panic in `work` is logged
/// and answered with `EIO`.
pub fn spawn_replying<T, W, R>(runtime: &Handle, op: &'static str, work: W, reply: R)
where
    T: Send + 'static,
    W: Future<Output = Result<T, c_int>> + Send + 'static,
    R: FnOnce(Result<T, c_int>) + Send + 'static,
{
    runtime.spawn(async move {
        let outcome = match AssertUnwindSafe(work).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => {
                tracing::error!(op, panic = panic_message(&panic), "FUSE handler panicked");
                Err(libc::EIO)
            }
        };
        reply(outcome);
    });
}

/// Bytes `[offset, offset + len)` of `file`, exactly `len` of them unless the range
/// crosses the end of the file. A short answer inside the file would make the kernel
/// believe the file ends there (it shrinks `i_size`), so a namespace that returns fewer
/// bytes than asked is treated as an I/O error, never passed on.
pub async fn read_exact_range(file: &dyn VirtualFile, offset: u64, len: u32) -> Result<Bytes, c_int> {
    if file.volatile() {
        // A live report may be shorter than the size the kernel saw; a short read is its EOF.
        return file.read(offset, u64::from(len)).await.map_err(|err| errno_of(&err));
    }
    let expected = expected_read_len(file.size(), offset, len);
    if expected == 0 {
        return Ok(Bytes::new());
    }
    let bytes = file.read(offset, expected).await.map_err(|err| {
        tracing::warn!(offset, len, %err, "read failed");
        errno_of(&err)
    })?;
    let got = bytes.len() as u64;
    if got < expected {
        tracing::error!(offset, expected, got, "namespace returned a short read");
        return Err(libc::EIO);
    }
    // `got <= expected <= u32::MAX` after the clamp below, so the cast cannot truncate.
    Ok(bytes.slice(..expected as usize))
}

/// How many bytes a read of `len` at `offset` must return for a file of `size`.
pub fn expected_read_len(size: u64, offset: u64, len: u32) -> u64 {
    size.saturating_sub(offset).min(u64::from(len))
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::VfsError;
    use futures::future::BoxFuture;

    /// A file whose `read` returns `answer_len` bytes whatever is asked.
    struct Fixed {
        size: u64,
        answer_len: usize,
    }

    impl VirtualFile for Fixed {
        fn size(&self) -> u64 {
            self.size
        }
        fn read(&self, _offset: u64, _len: u64) -> BoxFuture<'_, Result<Bytes, VfsError>> {
            let bytes = Bytes::from(vec![7u8; self.answer_len]);
            Box::pin(async move { Ok(bytes) })
        }
    }

    fn block_on<F: Future>(fut: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(fut)
    }

    #[test]
    fn expected_length_is_clamped_only_at_eof() {
        assert_eq!(expected_read_len(100, 0, 10), 10);
        assert_eq!(expected_read_len(100, 95, 10), 5);
        assert_eq!(expected_read_len(100, 100, 10), 0);
        assert_eq!(expected_read_len(100, 200, 10), 0);
    }

    #[test]
    fn short_namespace_answer_inside_the_file_is_an_io_error() {
        let file = Fixed { size: 100, answer_len: 4 };
        assert_eq!(block_on(read_exact_range(&file, 0, 10)), Err(libc::EIO));
    }

    #[test]
    fn long_namespace_answer_is_trimmed_to_the_request() {
        let file = Fixed { size: 100, answer_len: 50 };
        let bytes = block_on(read_exact_range(&file, 95, 10)).expect("read");
        assert_eq!(bytes.len(), 5);
    }

    #[test]
    fn read_at_or_past_eof_is_empty_without_asking_the_namespace() {
        let file = Fixed { size: 100, answer_len: 0 };
        assert_eq!(block_on(read_exact_range(&file, 100, 10)), Ok(Bytes::new()));
    }

    #[test]
    fn panicking_work_is_answered_with_eio() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn_replying::<(), _, _>(runtime.handle(), "test", async { panic!("boom") }, move |outcome| {
            let _ = tx.send(outcome);
        });
        let outcome = runtime.block_on(rx).expect("reply");
        assert_eq!(outcome, Err(libc::EIO));
    }
}
