//! The pure core of leader election: given the Lease as last read, when this
//! replica first saw it in that form, the time now and who we are, what to
//! do — create the Lease, take it over, renew it, or wait.
//!
//! Expiry is judged as client-go judges it: not from the `renewTime` written
//! in the record (another replica's clock) but from when *this* replica
//! observed the record change, plus the record's `leaseDurationSeconds`. So
//! clock skew between replicas cannot make a standby take a lease early.
//!
//! The leader's side of the safety argument lives in [`leader_valid_until`]:
//! a leader counts itself leader only until `renew_deadline` after the start
//! of its last successful write. That write's `renewTime` is no earlier than
//! its start, a standby observes it no earlier still, and
//! `renew_deadline < lease_duration`; so the leader has stepped down before
//! any standby can consider the lease expired.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;

/// The election-relevant part of a Lease's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Who holds the lease; empty when it is free (never taken, or released).
    pub holder: String,
    /// How long the holder's claim is valid after each renewal.
    pub lease_duration: Duration,
    /// When the current holder took the lease.
    pub acquire_time: Option<Timestamp>,
    /// When the current holder last renewed it.
    pub renew_time: Option<Timestamp>,
    /// How many times the lease changed hands.
    pub transitions: i32,
}

impl LeaseRecord {
    /// Whether someone holds the lease (it was not released).
    pub fn is_held(&self) -> bool {
        !self.holder.is_empty()
    }

    /// The record a graceful shutdown writes: nobody holds it, so a standby
    /// takes it on its next try (client-go's `ReleaseOnCancel`).
    pub fn released(&self, wall_now: Timestamp) -> LeaseRecord {
        LeaseRecord {
            holder: String::new(),
            lease_duration: Duration::from_secs(1),
            acquire_time: Some(wall_now),
            renew_time: Some(wall_now),
            transitions: self.transitions,
        }
    }
}

/// What one round of the election should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// There is no Lease: create it, held by us.
    Create(LeaseRecord),
    /// The lease is free or expired: write this record (a takeover) with
    /// the resourceVersion read, so a concurrent taker makes one of us fail.
    Acquire(LeaseRecord),
    /// We hold it: write this record (a renewal) with the resourceVersion read.
    Renew(LeaseRecord),
    /// Someone else holds a valid lease; it expires at the earliest after
    /// `expires_in` unless renewed.
    Wait {
        holder: String,
        expires_in: Duration,
    },
}

/// One replica's view of the lease for [`decide`].
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The record as last read; `None` when there is no Lease object.
    pub record: Option<&'a LeaseRecord>,
    /// When this replica first saw the record in its current form (its
    /// resourceVersion changed then); ignored when `record` is `None`.
    pub observed_at: Instant,
}

/// Who we are and what we claim.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub identity: &'a str,
    /// The `leaseDurationSeconds` we write.
    pub lease_duration: Duration,
}

/// The decision of one round: pure, see the module docs.
///
/// `now` is the monotonic clock (expiry), `wall_now` the time written into
/// the record (`acquireTime`, `renewTime`).
pub fn decide(view: View<'_>, me: Candidate<'_>, now: Instant, wall_now: Timestamp) -> Action {
    let mine = |acquire_time: Option<Timestamp>, transitions: i32| LeaseRecord {
        holder: me.identity.to_string(),
        lease_duration: me.lease_duration,
        acquire_time,
        renew_time: Some(wall_now),
        transitions,
    };
    let Some(rec) = view.record else {
        return Action::Create(mine(Some(wall_now), 0));
    };
    if rec.holder == me.identity {
        return Action::Renew(mine(rec.acquire_time.or(Some(wall_now)), rec.transitions));
    }
    if rec.is_held() {
        // A record without a usable duration is judged by ours.
        let duration = if rec.lease_duration.is_zero() {
            me.lease_duration
        } else {
            rec.lease_duration
        };
        let expires = view.observed_at + duration;
        if now < expires {
            return Action::Wait {
                holder: rec.holder.clone(),
                expires_in: expires - now,
            };
        }
    }
    Action::Acquire(mine(Some(wall_now), rec.transitions.saturating_add(1)))
}

/// Until when a leader whose last successful acquire or renew *started* at
/// `last_success_start` may act as leader.
pub fn leader_valid_until(last_success_start: Instant, renew_deadline: Duration) -> Instant {
    last_success_start + renew_deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn rec(holder: &str, transitions: i32) -> LeaseRecord {
        LeaseRecord {
            holder: holder.into(),
            lease_duration: D,
            acquire_time: Some(Timestamp::from_second(1_000).unwrap()),
            renew_time: Some(Timestamp::from_second(1_010).unwrap()),
            transitions,
        }
    }

    fn me() -> Candidate<'static> {
        Candidate {
            identity: "a",
            lease_duration: D,
        }
    }

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let wall = Timestamp::from_second(2_000).unwrap();
        let secs = Duration::from_secs;
        let held_by_b = rec("b", 3);
        let mine = rec("a", 3);
        let released = rec("b", 4).released(Timestamp::from_second(1_500).unwrap());
        let no_duration = LeaseRecord {
            lease_duration: Duration::ZERO,
            ..rec("b", 0)
        };
        // (case, record, observed_at offset, now offset, expected)
        let taken = |transitions, acquire: Option<Timestamp>| LeaseRecord {
            holder: "a".into(),
            lease_duration: D,
            acquire_time: acquire,
            renew_time: Some(wall),
            transitions,
        };
        let cases: Vec<(&str, Option<&LeaseRecord>, u64, u64, Action)> = vec![
            ("no lease", None, 0, 0, Action::Create(taken(0, Some(wall)))),
            (
                "held by another, fresh",
                Some(&held_by_b),
                0,
                5,
                Action::Wait {
                    holder: "b".into(),
                    expires_in: secs(10),
                },
            ),
            (
                "held by another, one instant before expiry",
                Some(&held_by_b),
                10,
                24,
                Action::Wait {
                    holder: "b".into(),
                    expires_in: secs(1),
                },
            ),
            (
                "held by another, expired (counted from our observation)",
                Some(&held_by_b),
                10,
                25,
                Action::Acquire(taken(4, Some(wall))),
            ),
            (
                "released: taken at once",
                Some(&released),
                0,
                0,
                Action::Acquire(taken(5, Some(wall))),
            ),
            (
                "ours: renewed, acquireTime and transitions kept",
                Some(&mine),
                0,
                100,
                Action::Renew(taken(3, mine.acquire_time)),
            ),
            (
                "no duration in the record: ours is used",
                Some(&no_duration),
                0,
                14,
                Action::Wait {
                    holder: "b".into(),
                    expires_in: secs(1),
                },
            ),
        ];
        for (case, record, observed, now, want) in cases {
            let view = View {
                record,
                observed_at: t0 + secs(observed),
            };
            assert_eq!(decide(view, me(), t0 + secs(now), wall), want, "{case}");
        }
    }

    #[test]
    fn a_leader_steps_down_before_a_standby_may_take_over() {
        // The leader's write starts at t; the standby sees it at t or later.
        let t = Instant::now();
        let (lease, renew) = (Duration::from_secs(15), Duration::from_secs(10));
        let leader_until = leader_valid_until(t, renew);
        let standby = View {
            record: Some(&rec("b", 0)),
            observed_at: t,
        };
        let me = Candidate {
            identity: "a",
            lease_duration: lease,
        };
        let wall = Timestamp::from_second(0).unwrap();
        assert!(matches!(
            decide(standby, me, leader_until, wall),
            Action::Wait { .. }
        ));
        assert!(matches!(
            decide(standby, me, t + lease, wall),
            Action::Acquire(_)
        ));
    }

    #[test]
    fn release_frees_the_lease_and_keeps_the_count() {
        let wall = Timestamp::from_second(5).unwrap();
        let r = rec("a", 7).released(wall);
        assert!(!r.is_held());
        assert_eq!(r.transitions, 7);
        assert_eq!(r.renew_time, Some(wall));
    }
}
