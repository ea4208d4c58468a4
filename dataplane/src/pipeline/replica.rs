//! Connection sync on a worker: the master's records after a client packet, and the
//! standby's installation of the sessions it receives (see [`crate::sync`]).

use crate::buf::PacketBuf;
use crate::conn::{ConnId, SyncRefuse};
use crate::conn::{SyncConn, SyncRules};
use crate::flow::Proto;
use crate::laddr::LocalEndpoint;
use crate::service::ServiceKey;

use super::{Core, SyncCounters, SIDE_CAP};

impl<P: PacketBuf> Core<P> {
    /// Turns this worker into a sync master (`Some(rules)`) or stops emitting (`None`).
    pub fn set_sync_master(&mut self, rules: Option<SyncRules>) {
        self.sync_rules = rules;
    }

    /// Sync records emitted since the last call (master); the worker moves them into its
    /// queue to the sync thread after each burst.
    pub fn take_sync(&mut self) -> std::vec::Drain<'_, SyncConn> {
        self.sync_out.drain(..)
    }

    /// Counts sync records the worker could not queue.
    pub fn count_sync_dropped(&mut self, n: u64) {
        self.sync_stats.dropped += n;
    }

    /// This worker's sync counters.
    pub fn sync_counters(&self) -> SyncCounters {
        self.sync_stats
    }

    /// Standby: installs a session received from the master on this worker (which must be
    /// its owner: [`crate::steer::sync_owner`]). A FULLNAT session's local port is reserved in this
    /// worker's slice of the service's LIP pool, on a LIP of its real server's family (an
    /// IPv4 LIP for NAT64, an IPv6 client's session with IPv4 servers). A FULLNAT session on a LIP that is in none
    /// of this worker's pools (a group peer's LIP: this director may take it over) is
    /// installed without a reservation, since no session is ever opened on such a LIP
    /// here, if its port is in the port range and this worker owns it. Returns whether the
    /// session is new.
    pub fn install_synced(&mut self, c: &SyncConn, now_ms: u64) -> Result<bool, SyncRefuse> {
        let laddrs = &mut self.laddrs;
        let (id, workers, range) = match &self.snap {
            Some(s) => (self.id, s.net.workers, s.net.lport_range),
            None => (self.id, 1, crate::laddr::DEFAULT_PORT_RANGE),
        };
        let threshold = SyncRules::default().threshold;
        let group = self.snap.as_ref().is_some_and(|s| s.net.sync_group);
        if group && c.flags & u32::from(crate::conn::flags::TEMPLATE) == 0 {
            let known = Proto::from_number(c.protocol).is_some_and(|proto| {
                self.sched
                    .snapshot()
                    .is_some_and(|s| s.find(proto, c.vaddr, c.vport, c.fwmark).is_some())
            });
            if !known {
                self.sync_stats.refused += 1;
                self.sync_stats.no_service += 1;
                return Err(SyncRefuse::NoService);
            }
        }
        let res = self
            .conns
            .install_synced(&mut self.sched, c, threshold, now_ms, |lip, lport| {
                let lip = lip.to_ip();
                let Some(proto) = Proto::from_number(c.protocol) else {
                    return false;
                };
                let key = super::PoolRef {
                    fwmark: c.fwmark,
                    key: ServiceKey::Addr {
                        proto,
                        addr: c.vaddr,
                        port: c.vport,
                    },
                };
                let ours = laddrs.values().any(|p| p.contains(lip));
                if !ours {
                    // A peer's LIP: sliced by worker as here (same layout).
                    return lport >= range.0
                        && lport <= range.1
                        && crate::steer::owner_of_port(lport, workers) == id
                        && super::pool_of(laddrs, key).is_some();
                }
                super::pool_of(laddrs, key).is_some_and(|pool| {
                    pool.reserve(LocalEndpoint {
                        addr: lip,
                        port: lport,
                    })
                })
            });
        match res {
            Ok((_, true)) => self.sync_stats.installed += 1,
            Ok((_, false)) => self.sync_stats.updated += 1,
            Err(_) => self.sync_stats.refused += 1,
        }
        res.map(|(_, new)| new)
    }

    /// Master: after a client packet, applies the sync rules to its session.
    pub(super) fn sync_after_input(&mut self, id: ConnId, now_ms: u64) {
        let Some(rules) = self.sync_rules else {
            return;
        };
        let (out, st) = (&mut self.sync_out, &mut self.sync_stats);
        self.conns.sync_check(id, &rules, now_ms, |c| {
            if out.len() < SIDE_CAP {
                out.push(c);
                st.emitted += 1;
            } else {
                st.dropped += 1;
            }
        });
    }
}
