//! IPVS's rate estimator (`net/netfilter/ipvs/ip_vs_est.c`), fed from counter samples.
//!
//! Every 2 seconds the difference since the previous sample is turned into a scaled
//! per-second rate (connections and packets `<< 9` = ×2^10 / 2 s; bytes `<< 4` =
//! ×2^5 / 2 s) and smoothed with `avg += (rate - avg) >> 2`. Reading rounds and unscales:
//! `(cps + 0x1FF) >> 10`, `(bps + 0xF) >> 5`.

use crate::backend::{Rates, Stats};

/// Sampling interval of the estimator, seconds.
pub const INTERVAL_SECS: u64 = 2;

/// The estimator of one stats object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Stats,
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

fn smooth(avg: &mut i64, new: u64, last: u64, shift: u32) {
    let rate = (new.wrapping_sub(last) as i64).wrapping_shl(shift);
    *avg += (rate - *avg) >> 2;
}

impl Estimator {
    /// An estimator whose previous sample is `now` (kernel: `ip_vs_start_estimator`).
    pub fn new(now: &Stats) -> Self {
        Estimator {
            last: *now,
            ..Default::default()
        }
    }

    /// One 2-second tick with the current cumulative counters.
    pub fn update(&mut self, now: &Stats) {
        smooth(&mut self.cps, now.conns, self.last.conns, 9);
        smooth(&mut self.inpps, now.inpkts, self.last.inpkts, 9);
        smooth(&mut self.outpps, now.outpkts, self.last.outpkts, 9);
        smooth(&mut self.inbps, now.inbytes, self.last.inbytes, 4);
        smooth(&mut self.outbps, now.outbytes, self.last.outbytes, 4);
        self.last = *now;
    }

    /// `ip_vs_zero_estimator`: rates to 0, the next delta starts at `now`.
    pub fn zero(&mut self, now: &Stats) {
        *self = Estimator::new(now);
    }

    /// `ip_vs_read_estimator`: the rates per second.
    pub fn read(&self) -> Rates {
        let r = |v: i64, add: i64, shift: u32| ((v + add) >> shift).max(0) as u64;
        Rates {
            cps: r(self.cps, 0x1FF, 10),
            inpps: r(self.inpps, 0x1FF, 10),
            outpps: r(self.outpps, 0x1FF, 10),
            inbps: r(self.inbps, 0xF, 5),
            outbps: r(self.outbps, 0xF, 5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(conns: u64, pkts: u64, bytes: u64) -> Stats {
        Stats {
            conns,
            inpkts: pkts,
            outpkts: pkts / 2,
            inbytes: bytes,
            outbytes: bytes / 2,
        }
    }

    #[test]
    fn converges_to_the_rate() {
        // 100 conn/s, 1000 pkt/s, 1_000_000 B/s for a long time.
        let mut e = Estimator::new(&Stats::default());
        for i in 1..=100u64 {
            e.update(&s(200 * i, 2000 * i, 2_000_000 * i));
        }
        let r = e.read();
        assert_eq!(r.cps, 100);
        assert_eq!(r.inpps, 1000);
        assert_eq!(r.outpps, 500);
        assert_eq!(r.inbps, 1_000_000);
        assert_eq!(r.outbps, 500_000);
    }

    #[test]
    fn first_tick_is_a_quarter() {
        // avg = 0 + (rate - 0) >> 2: a step of 400 conns in 2 s (200/s) reads 50.
        let mut e = Estimator::new(&Stats::default());
        e.update(&s(400, 0, 0));
        assert_eq!(e.read().cps, 50);
        // Kernel arithmetic: rate = 400 << 9 = 204800; avg = 51200; (51200+511)>>10 = 50.
        e.update(&s(400, 0, 0));
        // avg = 51200 + (0 - 51200) >> 2 = 38400 -> (38400+511)>>10 = 37.
        assert_eq!(e.read().cps, 37);
        e.zero(&s(400, 0, 0));
        assert_eq!(e.read(), Rates::default());
    }
}
