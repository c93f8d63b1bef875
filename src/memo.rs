//! Compute-once slots keyed by a value: the repository checkouts and
//! mirrors of `source` and the chart indexes and archives of `chart`. The
//! first caller for a key computes; concurrent callers for the same key wait
//! for it; the result is kept, failures too (one unreachable repository is
//! asked once per run and reported to every app that uses it).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;

type Slot<T, E> = Arc<Mutex<Option<Result<T, E>>>>;

/// The slots of one kind of result, by key.
pub struct Memo<K, T, E>(Mutex<HashMap<K, Slot<T, E>>>);

impl<K, T, E> Default for Memo<K, T, E> {
    fn default() -> Self {
        Memo(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq, T: Clone, E: Clone> Memo<K, T, E> {
    /// The result for `key`, computed by `f` if no caller asked before.
    pub fn get_or_compute(&self, key: K, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let slot = self.0.lock().entry(key).or_default().clone();
        let mut guard = slot.lock();
        if let Some(done) = &*guard {
            return done.clone();
        }
        let result = f();
        *guard = Some(result.clone());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_once_and_keeps_failures() {
        let m: Memo<u32, u32, String> = Memo::default();
        let mut calls = 0;
        let mut ask = |key, value: Result<u32, String>| {
            m.get_or_compute(key, || {
                calls += 1;
                value
            })
        };
        assert_eq!(ask(1, Ok(7)), Ok(7));
        assert_eq!(ask(1, Ok(8)), Ok(7));
        assert_eq!(ask(2, Err("unreachable".into())), Err("unreachable".into()));
        assert_eq!(ask(2, Ok(1)), Err("unreachable".into()));
        assert_eq!(calls, 2);
    }

    #[test]
    fn concurrent_callers_wait_for_the_first() {
        let m: Arc<Memo<&str, u32, String>> = Arc::default();
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (m, calls) = (m.clone(), calls.clone());
                std::thread::spawn(move || {
                    m.get_or_compute("k", || {
                        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        Ok(5)
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread"), Ok(5));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
