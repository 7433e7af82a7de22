//! Handing a write to a task that runs writes one after another (SQLite's writer, each of
//! PostgreSQL's lanes): queued before the call returns, so that calls keep their order, and
//! answered once committed.

use tokio::sync::{mpsc, oneshot};

use super::{Ordered, StoreError, StoreResult};

/// Puts `work` on `queue` now and returns the future of the answer the task sends on
/// `answer`; `gone` is the error once the task has stopped.
pub(crate) fn in_order<W, T>(
    queue: &mpsc::Sender<W>,
    work: W,
    answer: oneshot::Receiver<StoreResult<T>>,
    gone: fn() -> StoreError,
) -> Ordered<T>
where
    W: Send + 'static,
    T: Send + 'static,
{
    let waiting = match queue.try_send(work) {
        Ok(()) => None,
        // A full queue: wait for room (order may then interleave with other callers).
        Err(mpsc::error::TrySendError::Full(work)) => Some((queue.clone(), work)),
        Err(mpsc::error::TrySendError::Closed(_)) => return Box::pin(async move { Err(gone()) }),
    };
    Box::pin(async move {
        if let Some((queue, work)) = waiting {
            queue.send(work).await.map_err(|_| gone())?;
        }
        answer.await.map_err(|_| gone())?
    })
}
