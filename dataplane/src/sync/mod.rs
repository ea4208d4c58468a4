//! Connection synchronisation between an active and a standby director, following the
//! kernel's IPVS sync daemon (`ip_vs_sync.c`).
//!
//! - [`wire`]: the version 1 message (byte-compatible with the kernel; version 0 is read
//!   too), rvs's optional FULLNAT option carrying the LIP and lport, MTU-sized batching.
//! - [`net`]: the sockets (UDP to multicast 224.0.0.81:8848 by default, or a unicast
//!   peer) and the sender/receiver threads' loops, independent of DPDK.
//! - [`group`]: active/active sync among N directors (`[sync] state = "group"`): the
//!   peer table, what is refused (own messages, unknown senders), per-peer counters and
//!   state (heartbeats), the bulk sync of the whole table to a peer that comes up
//!   ([`net::run_bulk`], driven by the engine's bulk thread).
//! - [`auth`]: with a key shared by the sync group (`[sync] key_file`), the master's
//!   trailer (sender, sequence number, HMAC-SHA256) after each message and the backup's
//!   check of it and of replays. A kernel backup drops such a message (its length is not
//!   the size its header announces); without a key, messages are the kernel's, both ways.
//!
//! Data flow on the master: a worker's pipeline decides per client packet whether the
//! session must be sent ([`crate::conn::replica::conn_needed`]) and emits a [`SyncConn`] into a side
//! buffer; the worker moves them into its lock-free queue to the sync thread (a full queue
//! drops the event and counts it; a worker never blocks). The sync thread batches records
//! into messages of at most `sync_maxlen` bytes and sends them: a full message at once, a
//! partial one after at most [`net::PARTIAL_FLUSH`] (2 s, as the kernel).
//!
//! On the backup: the receiving thread checks the trailer when it has a key (refusing
//! messages without a valid MAC and replays, each reason counted), decodes messages
//! (dropping those whose size is wrong or, with a non-zero syncid, whose syncid differs),
//! and hands each record to the worker that will own the session — the same ownership
//! functions as the data path: the FULLNAT local port's slice owner, else the client
//! address's hash — which installs it ([`crate::conn::ConnTable::install_synced`]).

pub mod auth;
pub mod group;
pub mod net;
pub mod wire;

pub use wire::{MessageBuilder, Record};

/// The default multicast group (`IP_VS_SYNC_GROUP`, 224.0.0.81).
pub const DEFAULT_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 81);
/// The default UDP port (`IP_VS_SYNC_PORT`).
pub const DEFAULT_PORT: u16 = 8848;
/// The default message length of the master (1500 - 28).
pub const DEFAULT_MAXLEN: u16 = 1472;

/// A sync record of the tests: an established TCP session from 10.10.0.2:`cport` to
/// 10.10.0.100:80 on real server 10.20.0.11:8080.
#[cfg(test)]
pub(crate) fn test_conn(cport: u16) -> crate::conn::SyncConn {
    use crate::flow::Addr;
    crate::conn::SyncConn {
        protocol: 6,
        v6: false,
        flags: 0,
        state: 1,
        cport,
        vport: 80,
        dport: 8080,
        fwmark: 0,
        timeout: 900,
        caddr: Addr::v4(10, 10, 0, 2),
        vaddr: Addr::v4(10, 10, 0, 100),
        daddr: Addr::v4(10, 20, 0, 11),
        local: None,
        in_seq: None,
        out_seq: None,
    }
}
