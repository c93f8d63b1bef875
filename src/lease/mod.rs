//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! `kubesync run` replicas exactly one writes to the cluster.
//!
//! It owns the Lease (created in its namespace if missing), the decision of
//! each round ([`decide`], pure: given the lease as read, when this replica
//! saw it, the time and our identity → create, acquire, renew or wait), the
//! task that runs rounds against the API server ([`LeaderElector`]), the
//! view the controller reads ([`Leadership`]: `is_leader()` before each batch
//! of writes, `subscribe()` for a `watch::Receiver<bool>`), and the CLI flags
//! ([`LeaderElectionArgs`]). The semantics are client-go's `leaderelection`:
//! optimistic concurrency on the resourceVersion, `holderIdentity`,
//! `acquireTime`, `renewTime`, `leaseTransitions`, expiry measured on the
//! observer's own clock, a leader that cannot renew within `renew_deadline`
//! stepping down before the lease can expire elsewhere, and a release on
//! graceful shutdown that lets a standby take over in about `retry_period`.
//!
//! It does not decide what the leader does, nor stop writes itself: the
//! controller checks [`Leadership::is_leader`].

mod config;
mod decide;
mod elector;

pub use config::{
    default_identity, LeaderElectionArgs, LeaseConfig, LeaseConfigError, DEFAULT_LEASE_NAME,
    DEFAULT_LEASE_NAMESPACE,
};
pub use decide::{decide, leader_valid_until, Action, Candidate, LeaseRecord, View};
pub use elector::{LeaderElector, Leadership, LeaseError};
