//! The session tables the tests of `conn` drive: one service, its real servers, a
//! simulated clock.

pub(super) use super::state::Direction;
pub(super) use super::table::ConnTable;
pub(super) use super::{flags, ConnConfig, ConnId, PacketMeta, Refuse};
pub(super) use crate::flow::{Addr, FlowKey, FwdMethod, Proto, TcpFlags};
pub(super) use crate::sched::CoreSched;
pub(super) use crate::service::{
    DestConfig, DestId, SchedKind, ServiceConfig, ServiceKey, ServiceTable,
};

pub(super) const VIP: Addr = Addr::v4(192, 168, 1, 100);
pub(super) const RS1: Addr = Addr::v4(10, 1, 1, 1);
pub(super) const RS2: Addr = Addr::v4(10, 1, 1, 2);
pub(super) const RS3: Addr = Addr::v4(10, 1, 1, 3);
pub(super) const SEC: u64 = 1000;

pub(super) struct H {
    pub(super) st: ServiceTable,
    pub(super) t: ConnTable,
    pub(super) core: CoreSched,
    pub(super) key: ServiceKey,
    pub(super) released: Vec<(Addr, u16, Addr, u16)>,
}

/// The address service `proto` VIP:`port` of the tests.
pub(super) fn vip_key(proto: Proto, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto,
        addr: VIP,
        port,
    }
}

impl H {
    pub(super) fn new(proto: Proto, cfg: ServiceConfig, dests: &[DestConfig], cap: u32) -> H {
        let mut st = ServiceTable::new();
        let key = cfg.key;
        st.add_service(cfg).unwrap();
        for d in dests {
            st.add_dest(&key, *d).unwrap();
        }
        let _ = proto;
        let mut c = ConnConfig::new(cap);
        c.seed = 7;
        let mut h = H {
            st,
            t: ConnTable::new(c),
            core: CoreSched::new(1),
            key,
            released: Vec::new(),
        };
        h.publish();
        h
    }

    pub(super) fn tcp(sched: SchedKind, dests: &[DestConfig]) -> H {
        let key = vip_key(Proto::Tcp, 80);
        H::new(Proto::Tcp, ServiceConfig::new(key, sched), dests, 64)
    }

    pub(super) fn publish(&mut self) {
        let snap = self.st.snapshot();
        self.t.adopt(&mut self.core, snap);
    }

    pub(super) fn pkt(
        &mut self,
        c: Addr,
        cport: u16,
        proto: Proto,
        vport: u16,
        fl: TcpFlags,
        now: u64,
    ) -> Result<ConnId, Refuse> {
        let p = PacketMeta {
            flow: FlowKey {
                proto,
                saddr: c,
                daddr: VIP,
                sport: cport,
                dport: vport,
            },
            fwmark: 0,
            tcp_flags: fl,
        };
        let lip = Some((Addr::v4(172, 16, 0, 1), 40000));
        let id = self.t.resolve_in(&mut self.core, &p, now, lip)?.id;
        self.t.state_transition(id, Direction::Input, fl, now);
        Ok(id)
    }

    pub(super) fn syn(&mut self, c: Addr, cport: u16, now: u64) -> Result<ConnId, Refuse> {
        self.pkt(c, cport, Proto::Tcp, 80, TcpFlags::SYN, now)
    }

    pub(super) fn reply(&mut self, id: ConnId, fl: TcpFlags, now: u64) {
        let s = self.t.get(id).unwrap();
        let k = s.out_key();
        assert_eq!(self.t.lookup_out(&k), Some(id));
        self.t.state_transition(id, Direction::Output, fl, now);
    }

    pub(super) fn state(&self, id: ConnId) -> &'static str {
        self.t.get(id).unwrap().state_name()
    }

    pub(super) fn counts(&self, id: DestId) -> (u32, u32, u32) {
        let d = self.t.dests().by_id(id).unwrap();
        (d.active, d.inactive, d.persist)
    }

    pub(super) fn expire(&mut self, now: u64) -> usize {
        let r = &mut self.released;
        self.t.expire(now, |_, s| {
            r.push((s.caddr(), s.cport(), s.laddr(), s.lport()))
        })
    }

    pub(super) fn id_of(&self, a: Addr) -> DestId {
        self.st.services()[0]
            .dests
            .iter()
            .find(|d| d.addr == a)
            .unwrap()
            .id
    }
}

pub(super) fn nat(a: Addr) -> DestConfig {
    DestConfig::new(a, 8080, FwdMethod::Masq)
}

pub(super) const C1: Addr = Addr::v4(203, 0, 113, 5);
