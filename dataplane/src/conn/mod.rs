//! The per-core session table: IPVS connections and persistence templates.
//!
//! One [`ConnTable`] per worker core. Sessions live in a slab preallocated to the configured
//! capacity and are found through one index of 64-byte buckets (`index`) holding slab
//! indexes under two tuples: the client-side tuple (`caddr:cport -> vaddr:vport`,
//! [`ConnTable::lookup_in`]) and the server-side tuple (`daddr:dport -> laddr:lport`,
//! [`ConnTable::lookup_out`], only for NAT and FULLNAT sessions, whose replies come back
//! through the director). A bucket's address comes from the hash alone, so a burst
//! prefetches its buckets, then its sessions, before looking anything up
//! ([`ConnTable::prefetch_flow`], [`ConnTable::prefetch_session`]).
//!
//! What follows the kernel (`ip_vs_conn.c`, `ip_vs_core.c`, `ip_vs_proto_tcp.c`):
//! - Only a TCP SYN without RST, or any UDP datagram, creates a session; other packets
//!   without one are counted ([`ConnStats::not_syn`]) and refused.
//! - New sessions start in state NONE with a 3 s timeout and `INACTIVE` (InActConn); the
//!   pipeline then runs [`ConnTable::state_transition`] for the packet, as for every packet,
//!   which walks the TCP state table ([`state`]) and moves the session between ActiveConn and
//!   InActConn. UDP sessions stay inactive. Every packet re-arms the timeout of the new state.
//! - Persistence: a template `<proto, caddr & mask, 0, vaddr, vport>` (fwmark services:
//!   `<IP, caddr & mask, 0, mark, 0>`) pins the client network to a real server; each new
//!   session re-arms it; an expiring template that still controls sessions retries 60 s
//!   later. A template whose server is gone (or quiesced, with `expire_quiescent_template`)
//!   is invalidated and a new one scheduled.
//! - `conn_reuse_mode`: a SYN that hits a TIME_WAIT or CLOSE session (without a controlling
//!   template) expires it and schedules a new one ([`ConnTable::schedule`]).
//! - `expire_nodest_conn`: a packet for a session whose server was removed is dropped (0) or
//!   the session is expired and the packet rescheduled (1); [`ConnTable::expire_nodest_conns`]
//!   expires all such sessions at once.
//! - A full table refuses new sessions ([`ConnStats::table_full`]); existing ones are kept.
//!
//! Expiry: a hashed timer wheel of 16384 slots of 100 ms (27 min per turn) linked through the
//! slab; [`ConnTable::expire`] visits only the slots between the previous call and `now`, so
//! the cost is per tick and per due session, never a scan. A packet only updates the
//! session's expiry time; the entry moves in the wheel when its slot comes up (or at once if
//! the new expiry is earlier), so the per-packet path touches no other entry.
//!
//! Time is an explicit `now` in milliseconds of a monotonic clock (a simulated clock in
//! tests), starting near 0 (ticks are kept in 32 bits: 13 years).
//!
//! Session ids ([`ConnId`]) are slab indexes, valid until the session is released by
//! [`ConnTable::expire`]; don't keep them across an `expire` call.

mod alloc;
mod index;
mod listing;
pub mod replica;
mod schedule;
mod session;
pub mod state;
mod table;
#[cfg(test)]
mod testutil;
mod transition;
mod wheel;

pub use listing::ConnListing;
pub use replica::{SyncConn, SyncRefuse, SyncRules};
pub use schedule::{ChosenServer, NewSession, Resolved, Scheduled};
pub use session::Session;
pub(crate) use session::{cip, SynProxyState, CADDR, DADDR, LADDR, VADDR};
pub use state::{Direction, SessionState, TcpState, Timeouts};
pub use table::{memory_per_session, table_bytes, ConnTable, LookupHint};
pub use transition::Transition;

use crate::flow::{FlowKey, TcpFlags};

/// IPVS conn flags (`IP_VS_CONN_F_*`, include/uapi/linux/ip_vs.h).
pub mod flags {
    /// Forwarding method mask.
    pub const FWD_MASK: u16 = 0x0007;
    /// TCP sequence adjustments present, in and out (`IP_VS_CONN_F_SEQ_MASK`).
    pub const SEQ_MASK: u16 = 0x0600;
    /// Server sequence numbers shifted (`IP_VS_CONN_F_OUT_SEQ`): a SYN-proxied session
    /// whose real server answered; its segments are translated (sequence and
    /// acknowledgement numbers, SACK edges, timestamps, window scales).
    pub const OUT_SEQ: u16 = 0x0200;
    /// Client sequence numbers shifted (`IP_VS_CONN_F_IN_SEQ`): a PROXY protocol header
    /// was inserted into the stream toward the real server.
    pub const IN_SEQ: u16 = 0x0400;
    /// Created by the sync daemon.
    pub const SYNC: u16 = 0x0020;
    /// In the client-side index.
    pub const HASHED: u16 = 0x0040;
    /// Replies bypass the director: INPUT-ONLY state rows.
    pub const NOOUTPUT: u16 = 0x0080;
    /// Counted in InActConn.
    pub const INACTIVE: u16 = 0x0100;
    /// Client port unknown (sync).
    pub const NO_CPORT: u16 = 0x0800;
    /// Persistence template.
    pub const TEMPLATE: u16 = 0x1000;
    /// One-packet scheduling.
    pub const ONE_PACKET: u16 = 0x2000;
    /// rvs private: the client's address still has to be given to the real server
    /// (PROXY header not yet acknowledged, TOA not yet added, or any PROXY UDP session):
    /// the session's packets take the general path.
    pub(crate) const CIP: u16 = 0x0010;
    /// rvs private: a SYN-proxied session whose real server has not answered the
    /// director's SYN yet: its packets take the general path.
    pub(crate) const SYNPROXY: u16 = 0x0008;
    /// rvs private: in the server-side index.
    pub(crate) const OUT_HASHED: u16 = 0x4000;
    /// rvs private: slab entry in use.
    pub(crate) const LIVE: u16 = 0x8000;
    /// rvs private bits, never reported or synced.
    pub(crate) const PRIVATE: u16 = OUT_HASHED | LIVE | CIP | SYNPROXY;
}

/// A session's slab index (see the module docs for its lifetime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u32);

/// What the pipeline knows of a client packet when looking up or creating a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PacketMeta {
    /// The packet's tuple (client to virtual service).
    pub flow: FlowKey,
    /// Firewall mark (0: none).
    pub fwmark: u32,
    /// TCP flags (NONE for UDP).
    pub tcp_flags: TcpFlags,
}

/// Why no session was found or created for a client packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refuse {
    /// No virtual service matches: not for the balancer.
    #[error("no virtual service")]
    NoService,
    /// TCP packet other than SYN (or with RST) and no session: dropped.
    #[error("no session and not a SYN")]
    NotSyn,
    /// The session table is full: dropped.
    #[error("session table full")]
    TableFull,
    /// The scheduler found no server: IPVS answers ICMP port-unreachable.
    #[error("no destination available")]
    NoDest,
    /// FULLNAT: no local address or port could be allocated.
    #[error("no local address available")]
    NoLocalAddr,
    /// The session's server was removed and `expire_nodest_conn` is 0: dropped.
    #[error("destination unavailable")]
    DestUnavailable,
}

/// Per-core counters of the session table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Sessions created.
    pub created: u64,
    /// Persistence templates created.
    pub templates: u64,
    /// Sessions and templates released.
    pub expired: u64,
    /// Packets without a session that could not create one (not a SYN).
    pub not_syn: u64,
    /// Refused because the table was full.
    pub table_full: u64,
    /// Refused because no server was available.
    pub no_dest: u64,
    /// Refused because FULLNAT had no local address/port.
    pub no_local_addr: u64,
    /// Dropped because the session's server was removed.
    pub dest_unavailable: u64,
    /// Packets of no virtual service.
    pub no_service: u64,
    /// Sessions expired early by `conn_reuse_mode` or `expire_nodest_conn`.
    pub reused: u64,
    /// Sessions and templates installed from sync messages (standby).
    pub synced: u64,
    /// Existing sessions updated from sync messages (standby).
    pub sync_updated: u64,
    /// Sessions opened by a TCP segment that is not a SYN (`sloppy_tcp`).
    pub sloppy: u64,
}

/// Settings of a session table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// Maximum number of sessions and templates of this core.
    pub capacity: u32,
    /// `conn_reuse_mode` (default 1; bit 2 adds FIN_WAIT+NOOUTPUT sessions).
    pub conn_reuse_mode: u8,
    /// `expire_nodest_conn` (default off).
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template` (default off).
    pub expire_quiescent_template: bool,
    /// Protocol timeouts.
    pub timeouts: Timeouts,
    /// Hash seed (0: random).
    pub seed: u64,
    /// The sysctl `sloppy_tcp` (default off): a TCP segment without RST of a flow that
    /// has no session may open one, not only a SYN (`tcp_conn_schedule`), so that a
    /// flow another director saw the SYN of goes on here; the session starts in the
    /// state the segment implies (ESTABLISHED for an ACK). Not for FULLNAT servers: the
    /// server knows the flow by another director's local address and port.
    pub sloppy_tcp: bool,
}

impl ConnConfig {
    /// Defaults with the given capacity.
    pub fn new(capacity: u32) -> ConnConfig {
        ConnConfig {
            capacity,
            conn_reuse_mode: 1,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            timeouts: Timeouts::default(),
            seed: 0,
            sloppy_tcp: false,
        }
    }
}
