//! The core clock, measured. rvs-bench counts cycles with the TSC, which ticks at a fixed
//! rate whatever the core's clock does; a core boosting above that rate (or held below
//! it) runs more (or fewer) of its own cycles per TSC cycle. Two machines with the same
//! TSC rate can therefore show very different "cycles per packet" for the same work done
//! in the same core cycles. The probe here runs a chain of dependent 64-bit multiplies,
//! whose latency is three core cycles on every x86-64 core rvs runs on (Intel since
//! Nehalem, AMD since Zen), and times it with the wall clock: multiplies × 3 / seconds
//! is the core clock. No hardware counter is needed (virtual machines seldom have them).

use std::hint::black_box;
use std::time::Instant;

/// Latency of a 64-bit register multiply, in core cycles.
pub const MUL_LATENCY: f64 = 3.0;

/// Multiplies per round (about 2 ms at 3 GHz).
const STEPS: u64 = 2_000_000;

/// Core cycles of `steps` dependent multiplies, and the seconds they took.
fn round(steps: u64) -> (f64, f64) {
    // Odd, so that squaring never reaches 0; a multiply's latency does not depend on its
    // operands anyway.
    let mut x = black_box(3u64);
    let t = Instant::now();
    for _ in 0..steps {
        x = x.wrapping_mul(x);
    }
    let secs = t.elapsed().as_secs_f64();
    black_box(x);
    (steps as f64 * MUL_LATENCY, secs)
}

/// The core clock in Hz: the fastest of `rounds` rounds of the multiply chain (a round
/// the thread was preempted in runs slow; none runs fast). Measured on the calling
/// thread's core, at that moment: a boosting core's clock moves with the load and the
/// temperature, hence a measurement next to the run it describes.
pub fn core_hz(rounds: usize) -> f64 {
    (0..rounds.max(1))
        .map(|_| {
            let (cycles, secs) = round(STEPS);
            if secs > 0.0 {
                cycles / secs
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max)
}

/// Core cycles per TSC cycle at a core clock of `core_hz` and a TSC of `tsc_hz` (`None`
/// when either is unknown).
pub fn core_per_tsc(core_hz: f64, tsc_hz: u64) -> Option<f64> {
    (core_hz > 0.0 && tsc_hz > 0).then(|| core_hz / tsc_hz as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_measures_a_clock_a_core_can_have() {
        // A chain the compiler folded or shortened would give an absurd clock (tens of
        // GHz or more); a chain of anything slower than a multiply (a debug build's
        // overflow checks are not taken: `wrapping_mul`) gives less. Any x86-64 core
        // clocks between 0.5 and 7 GHz.
        let hz = core_hz(20);
        assert!((0.5e9..7e9).contains(&hz), "{hz} Hz");
    }

    #[test]
    fn four_times_the_steps_take_about_four_times_as_long() {
        // The chain's time grows with its length: it was not folded into a constant.
        let best = |steps| {
            (0..10)
                .map(|_| round(steps).1)
                .fold(f64::INFINITY, f64::min)
        };
        let (short, long) = (best(STEPS), best(4 * STEPS));
        let ratio = long / short;
        assert!(
            (2.0..8.0).contains(&ratio),
            "4x the steps took {ratio}x the time"
        );
    }

    #[test]
    fn core_cycles_per_tsc_cycle() {
        assert_eq!(core_per_tsc(3.6e9, 2_400_000_000), Some(1.5));
        assert_eq!(core_per_tsc(0.0, 2_400_000_000), None);
        assert_eq!(core_per_tsc(3.6e9, 0), None);
    }
}
