//! Waiting until deleted objects are gone: the one loop behind a
//! `Force=true` recreate (`apply`), a BeforeHookCreation clear (`hooks`) and
//! the group-by-group delete of a removed app (`removed`). Each object is
//! read every `poll` (the engine's `poll_interval`) until the server no
//! longer has it or the deadline (the app's wait timeout) passes. Deleting
//! stays with the callers: they differ in propagation and bookkeeping.

use std::fmt;
use std::time::{Duration, Instant};

use crate::cluster::{ClusterClient, ClusterError};
use crate::model::ObjectRef;

/// How a wait for deleted objects polls and when it gives up.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    pub(super) poll: Duration,
    pub(super) deadline: Instant,
}

/// Why a deleted object is not known to be gone.
#[derive(Debug)]
pub(super) enum NotGone {
    /// Still there at the deadline (a finalizer, a slow foreground delete).
    Lingering { object: ObjectRef, waited: Duration },
    /// It could not be read.
    Unreadable(ClusterError),
}

impl fmt::Display for NotGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotGone::Lingering { object, waited } => write!(
                f,
                "{object}: still being deleted after {}s",
                waited.as_secs()
            ),
            NotGone::Unreadable(e) => write!(f, "{e}"),
        }
    }
}

/// Waits until every object of `refs` is gone from the server.
pub(super) async fn wait_gone(
    client: &ClusterClient,
    refs: &[ObjectRef],
    pace: Pace,
) -> Result<(), NotGone> {
    let start = Instant::now();
    for r in refs {
        loop {
            match client.get(r).await {
                Ok(None) => break,
                Ok(Some(_)) if Instant::now() < pace.deadline => {
                    let wake = (Instant::now() + pace.poll).min(pace.deadline);
                    tokio::time::sleep_until(wake.into()).await
                }
                Ok(Some(_)) => {
                    return Err(NotGone::Lingering {
                        object: r.clone(),
                        waited: start.elapsed(),
                    })
                }
                Err(e) => return Err(NotGone::Unreadable(e)),
            }
        }
    }
    Ok(())
}
