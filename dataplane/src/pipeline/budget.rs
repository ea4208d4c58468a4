//! The new-session budget of a worker (`[sessions] new_per_second`): a token bucket that
//! a packet opening a session draws from, so that a flood of SYNs of new flows is
//! refused above the budget (counted as `new-session-budget`) instead of filling the
//! session table; packets of existing sessions never touch it.
//!
//! The bucket counts thousandths of a session and is refilled from the millisecond clock
//! the worker reads every turn (its TSC): `new_per_second` thousandths per millisecond,
//! up to one second's budget (the burst a quiet worker may take at once). Integer
//! arithmetic only: no allocation, lock or system call.

/// Thousandths of a session per session.
const MILLI: u64 = 1000;

/// A worker's new-session token bucket; `per_second` 0 is no budget.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NewSessionBudget {
    per_second: u64,
    /// Thousandths of a session available.
    milli: u64,
    /// The clock (ms) of the last refill.
    last_ms: u64,
}

impl NewSessionBudget {
    /// A budget of `per_second` new sessions per second, full.
    pub(super) fn new(per_second: u32) -> NewSessionBudget {
        let per_second = u64::from(per_second);
        NewSessionBudget {
            per_second,
            milli: per_second * MILLI,
            last_ms: 0,
        }
    }

    /// Whether a new session may be created at `now_ms` (refilling first); the session
    /// is paid for with [`NewSessionBudget::charge`] once created.
    #[inline]
    pub(super) fn allows(&mut self, now_ms: u64) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let elapsed = now_ms.saturating_sub(self.last_ms);
        if elapsed > 0 {
            let earned = elapsed.saturating_mul(self.per_second);
            self.milli = self
                .milli
                .saturating_add(earned)
                .min(self.per_second * MILLI);
            self.last_ms = now_ms;
        }
        self.milli >= MILLI
    }

    /// Pays for a session created.
    #[inline]
    pub(super) fn charge(&mut self) {
        if self.per_second != 0 {
            self.milli = self.milli.saturating_sub(MILLI);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_holds_one_second_and_refills_with_the_clock() {
        let mut b = NewSessionBudget::new(10);
        let mut took = 0;
        while b.allows(0) {
            b.charge();
            took += 1;
        }
        assert_eq!(took, 10, "one second's budget at once");
        assert!(!b.allows(99), "a tenth of a session after 99 ms is not one");
        assert!(b.allows(100), "one session after 100 ms");
        b.charge();
        assert!(!b.allows(100));
        // A long quiet period fills it to one second's budget, no more.
        let mut took = 0;
        while b.allows(1_000_000) {
            b.charge();
            took += 1;
        }
        assert_eq!(took, 10);
    }

    #[test]
    fn no_budget_allows_everything() {
        let mut b = NewSessionBudget::new(0);
        for _ in 0..10_000 {
            assert!(b.allows(0));
            b.charge();
        }
    }
}
