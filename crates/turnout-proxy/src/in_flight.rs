//! In-flight accounting: every request forwarded to an instance, and every
//! upgraded connection to it while it lasts, holds an [`InFlight`] that
//! counts it in the instance's `in_flight`. The drain of a removed
//! instance ends as soon as that count is 0, so the control plane can stop
//! the process without waiting for the drain deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::instance::{Instance, InstanceState};

/// One request or upgraded connection using an instance, counted from
/// [`InFlight::acquire`] until drop. Costs two atomic increments (the
/// count and the `Arc`), no allocation and no lock.
#[derive(Debug)]
pub(crate) struct InFlight {
    instance: Arc<Instance>,
}

impl InFlight {
    /// Counts a new request on `instance` if it takes new requests.
    ///
    /// The count goes up before the state is read, and the drain marks the
    /// instance draining before it reads the count, all `SeqCst`: so either
    /// this sees `Draining` and backs off, or the drain sees this request
    /// in the count. When the drain (or the control plane) reads 0 after
    /// `start_draining`, no request is using the instance and none will.
    pub fn acquire(instance: &Arc<Instance>) -> Option<InFlight> {
        instance.in_flight.fetch_add(1, Ordering::SeqCst);
        // Built before the check so that backing off goes through `drop`,
        // which wakes a drain waiting for 0.
        let guard = InFlight {
            instance: instance.clone(),
        };
        (instance.state_seq_cst() == InstanceState::Ready).then_some(guard)
    }

    /// The instance this request uses.
    pub fn instance(&self) -> &Arc<Instance> {
        &self.instance
    }
}

impl Clone for InFlight {
    /// Another holder on the same instance (an upgraded connection that
    /// outlives its request). The count is at least 1 while `self` lives,
    /// so a drain cannot end in between.
    fn clone(&self) -> Self {
        self.instance.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            instance: self.instance.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let before = self.instance.in_flight.fetch_sub(1, Ordering::SeqCst);
        if before == 1 && self.instance.state_seq_cst() == InstanceState::Draining {
            // A permit is stored if the drain is not waiting yet; it checks
            // the count again either way.
            self.instance.idle.notify_one();
        }
    }
}
