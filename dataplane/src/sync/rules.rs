//! When the master sends a connection: the kernel's `ip_vs_sync_conn_needed`.
//!
//! Called for every client packet with `pkts = ++in_pkts`:
//! - templates are always sent when their connection is (subject to the refresh rule);
//! - TCP is synced only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and TIME_WAIT;
//!   entering one of these other than ESTABLISHED forces a send at once;
//! - otherwise a send happens when `pkts % sync_period == sync_threshold` (defaults 3 and
//!   50: packets 3, 53, 103, …); with `sync_period` 0 only packet `sync_threshold` is sent
//!   (when `sync_refresh_period` is 0 too);
//! - `sync_refresh_period` > 0 suppresses resends while the expiry announced last time is
//!   within `min(refresh, max(timeout/2, 10 s))` of the new one, with up to
//!   `sync_retries` retries after `refresh/8`.
//!
//! The per-connection memory is [`SyncMark`]: the state last sent (`old_state`) and the
//! announced end time in seconds (low 2 bits: retries), as the kernel's `sync_endtime`.

use crate::conn::TcpState;

/// The sysctls that drive sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRules {
    /// `sync_threshold` (default 3).
    pub threshold: u32,
    /// `sync_period` (default 50).
    pub period: u32,
    /// `sync_refresh_period`, seconds (default 0: off).
    pub refresh_period: u32,
    /// `sync_retries` 0..=3 (default 0).
    pub retries: u8,
    /// `sync_persist_mode`: send only templates for persistent services (default off).
    pub persist_mode: bool,
}

impl Default for SyncRules {
    fn default() -> Self {
        SyncRules {
            threshold: 3,
            period: 50,
            refresh_period: 0,
            retries: 0,
            persist_mode: false,
        }
    }
}

/// What the master remembers per connection between sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncMark {
    /// State at the last send (`cp->old_state`).
    pub old_state: u8,
    /// Announced end time, seconds, low 2 bits = retries (`cp->sync_endtime`).
    pub end: u16,
}

/// The connection as the rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnView {
    /// IP protocol number.
    pub protocol: u8,
    /// A persistence template.
    pub template: bool,
    /// Controlled by a template (`in_persistence`).
    pub persistent: bool,
    /// Current state.
    pub state: u8,
    /// Full timeout of the state, seconds.
    pub timeout: u32,
}

/// Decides whether to send; updates `mark` when it does. `pkts` is the connection's
/// `in_pkts` after this packet; `now_s` a monotonic clock in seconds.
pub fn conn_needed(
    r: &SyncRules,
    c: &ConnView,
    mark: &mut SyncMark,
    pkts: u32,
    now_s: u64,
) -> bool {
    let orig = mark.end;
    let mut n = ((now_s + u64::from(c.timeout)) as u16) & !3;
    let force;
    if c.template {
        force = false;
    } else if r.persist_mode && c.persistent {
        return false;
    } else if c.protocol == 6 {
        let st = TcpState::from_u8(c.state);
        if !matches!(
            st,
            TcpState::Established
                | TcpState::FinWait
                | TcpState::Close
                | TcpState::CloseWait
                | TcpState::TimeWait
        ) {
            return false;
        }
        force = c.state != mark.old_state;
        if force && st != TcpState::Established {
            mark.old_state = c.state;
            mark.end = n;
            return true;
        }
    } else {
        force = false;
    }
    if r.refresh_period > 0 {
        let diff = i64::from(n.wrapping_sub(orig) as i16);
        let min_diff = i64::from((c.timeout / 2).max(10));
        if diff.abs() < i64::from(r.refresh_period).min(min_diff) {
            let retries = orig & 3;
            if retries >= u16::from(r.retries) {
                return false;
            }
            // time_before(now, orig - timeout + refresh/8)
            let since = (now_s as u16).wrapping_sub(orig.wrapping_sub(c.timeout as u16)) as i16;
            if i64::from(since) < i64::from(r.refresh_period >> 3) {
                return false;
            }
            n |= retries + 1;
        }
    }
    if r.period > 0 {
        if !c.template && pkts % r.period != r.threshold {
            return false;
        }
    } else if r.refresh_period == 0 && pkts != r.threshold {
        return false;
    }
    mark.old_state = c.state;
    let changed = mark.end == orig;
    mark.end = n;
    changed || force
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(state: TcpState) -> ConnView {
        ConnView {
            protocol: 6,
            template: false,
            persistent: false,
            state: state as u8,
            timeout: 900,
        }
    }

    fn sends(r: &SyncRules, states: &[TcpState]) -> Vec<u32> {
        let mut m = SyncMark::default();
        let mut v = Vec::new();
        for (i, s) in states.iter().enumerate() {
            let pkts = i as u32 + 1;
            if conn_needed(r, &tcp(*s), &mut m, pkts, 1000) {
                v.push(pkts);
            }
        }
        v
    }

    #[test]
    fn established_tcp_is_sent_at_packets_3_53_103() {
        let states = vec![TcpState::Established; 160];
        assert_eq!(sends(&SyncRules::default(), &states), vec![3, 53, 103, 153]);
    }

    #[test]
    fn handshake_states_are_not_sent_and_closing_forces_a_send() {
        let mut states = vec![
            TcpState::SynRecv,
            TcpState::Established,
            TcpState::Established,
        ];
        states.extend([TcpState::Established; 5]);
        states.push(TcpState::FinWait); // packet 9: forced
        states.push(TcpState::FinWait); // no change
        states.push(TcpState::TimeWait); // packet 11: forced
        assert_eq!(sends(&SyncRules::default(), &states), vec![3, 9, 11]);
    }

    #[test]
    fn udp_follows_threshold_and_period() {
        let r = SyncRules::default();
        let mut m = SyncMark::default();
        let udp = ConnView {
            protocol: 17,
            template: false,
            persistent: false,
            state: 0,
            timeout: 300,
        };
        let sent: Vec<u32> = (1..=110)
            .filter(|&p| conn_needed(&r, &udp, &mut m, p, 5))
            .collect();
        assert_eq!(sent, vec![3, 53, 103]);
    }

    #[test]
    fn period_zero_sends_once() {
        let r = SyncRules {
            period: 0,
            ..SyncRules::default()
        };
        let states = vec![TcpState::Established; 200];
        assert_eq!(sends(&r, &states), vec![3]);
    }

    #[test]
    fn templates_are_sent_whenever_asked_and_persist_mode_skips_children() {
        let r = SyncRules {
            persist_mode: true,
            ..SyncRules::default()
        };
        let mut m = SyncMark::default();
        let t = ConnView {
            protocol: 6,
            template: true,
            persistent: false,
            state: 0,
            timeout: 360,
        };
        assert!(conn_needed(&r, &t, &mut m, 7, 0));
        let mut child = tcp(TcpState::Established);
        child.persistent = true;
        assert!(!conn_needed(&r, &child, &mut SyncMark::default(), 3, 0));
    }

    #[test]
    fn refresh_period_suppresses_resends_until_the_expiry_moves() {
        let r = SyncRules {
            period: 0,
            refresh_period: 60,
            ..SyncRules::default()
        };
        let mut m = SyncMark::default();
        let c = tcp(TcpState::Established);
        // First time: sent (the end time changes from 0).
        assert!(conn_needed(&r, &c, &mut m, 1, 100));
        // 20 s later: the announced end moved by 20 s < 60 s: suppressed.
        assert!(!conn_needed(&r, &c, &mut m, 2, 120));
        // 80 s later: moved by 80 s: sent again.
        assert!(conn_needed(&r, &c, &mut m, 3, 180));
    }
}
