//! Admission of sandboxed calls. A call needs one of the pooling allocator's slots and the
//! worst case of its memory, its cap, reserved from a host-wide budget before it starts; calls
//! that do not fit wait (on blocking threads) until running ones end. So however many workers,
//! validations and probes run, guest memory stays within the budget, and a burst of hostile
//! images costs time, not the host.

use std::sync::{Condvar, Mutex, MutexGuard};

/// One GiB, kept for the host itself (runtime, database, request bodies) when the budget is
/// derived from the machine.
const HOST_RESERVE_BYTES: u64 = 1 << 30;

/// The default budget: half of the machine's memory left after [`HOST_RESERVE_BYTES`], where
/// the machine's memory is the cgroup limit if there is one, else the physical memory; never
/// less than one call's `cap`. Without either reading, four calls' worth.
pub fn default_budget(cap: u64) -> u64 {
    match machine_memory() {
        Some(total) => (total.saturating_sub(HOST_RESERVE_BYTES) / 2).max(cap),
        None => cap.saturating_mul(4),
    }
}

/// The smaller of the cgroup v2 memory limit and `MemTotal`, where they can be read.
fn machine_memory() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let physical = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    match (cgroup, physical) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Pool slots and budget bytes, taken together or not at all.
pub(super) struct CallGate {
    budget: u64,
    free: Mutex<Free>,
    freed: Condvar,
}

struct Free {
    slots: usize,
    bytes: u64,
}

/// A running call's slot and reservation, returned when dropped.
pub(super) struct Admission<'a> {
    gate: &'a CallGate,
    bytes: u64,
}

impl CallGate {
    pub(super) fn new(slots: usize, budget: u64) -> Self {
        CallGate {
            budget,
            free: Mutex::new(Free { slots, bytes: budget }),
            freed: Condvar::new(),
        }
    }

    /// Waits for a slot and `bytes` of the budget. A request over the whole budget is
    /// clamped to it, so it runs alone rather than never.
    pub(super) fn admit(&self, bytes: u64) -> Admission<'_> {
        let bytes = bytes.min(self.budget);
        let mut free = self.lock();
        while free.slots == 0 || free.bytes < bytes {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        free.slots -= 1;
        free.bytes -= bytes;
        Admission { gate: self, bytes }
    }

    pub(super) fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes reserved by running calls.
    pub(super) fn in_use(&self) -> u64 {
        self.budget - self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let mut free = self.gate.lock();
        free.slots += 1;
        free.bytes += self.bytes;
        drop(free);
        // Waiters need different amounts, so each checks for itself.
        self.gate.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_waits_until_its_bytes_are_free() {
        let gate = std::sync::Arc::new(CallGate::new(4, 100));
        let first = gate.admit(60);
        assert_eq!(gate.in_use(), 60);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let _second = gate.admit(60);
                tx.send(gate.in_use()).unwrap();
            })
        };
        // Still waiting: 40 bytes are free and it needs 60.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(100)).is_err());
        drop(first);
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(), 60);
        waiter.join().unwrap();
        assert_eq!(gate.in_use(), 0);
    }

    #[test]
    fn slots_limit_calls_and_an_oversized_request_runs_alone() {
        let gate = CallGate::new(2, 100);
        let a = gate.admit(500);
        assert_eq!(gate.in_use(), 100, "clamped to the budget");
        drop(a);
        let _b = gate.admit(1);
        let _c = gate.admit(1);
        assert_eq!(gate.lock().slots, 0);
    }

    #[test]
    fn the_default_budget_holds_at_least_one_call() {
        assert!(default_budget(u64::MAX / 2) >= u64::MAX / 2);
        let cap = 1 << 20;
        assert!(default_budget(cap) >= cap);
    }
}
