//! The sync daemon's sockets and thread loops (kernel sockets: they run on the host's
//! network stack, not on DPDK ports).
//!
//! The sync network therefore needs a kernel interface with an IPv4 address: a dedicated
//! link between the directors, or the exception path's tap. Multicast goes out of (and is
//! joined on) the interface whose address is given; a unicast peer replaces the group.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use socket2::{Domain, Protocol, Socket, Type};

use super::wire::{self, MessageBuilder, Record};
use crate::conn::SyncConn;

/// A partial message waits at most this long before it is sent (the kernel's 2 s).
pub const PARTIAL_FLUSH: Duration = Duration::from_secs(2);
/// How long the sender sleeps when every queue is empty (the kernel's `HZ/50`).
pub const IDLE_SLEEP: Duration = Duration::from_millis(20);

/// How long the backup's receive waits before it checks its stop flag.
const RECV_POLL: Duration = Duration::from_millis(100);
/// The backup socket's receive buffer (bursts of messages while the workers are busy).
const RECV_BUFFER_BYTES: usize = 4 << 20;
/// Records the sender takes from one worker queue per round before moving to the next.
const DRAIN_PER_QUEUE: usize = 4096;
/// The largest datagram the backup receives.
const MAX_DATAGRAM: usize = 65536;
/// Decoded records kept per message (a message holds at most 255).
const RECORDS_PER_MESSAGE: usize = 256;

/// Where and how a sync daemon talks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncNetConfig {
    /// Sync id: written by the master; the backup drops other ids unless it is 0.
    pub syncid: u8,
    /// Maximum message length (`--sync-maxlen`).
    pub maxlen: u16,
    /// Multicast group.
    pub group: Ipv4Addr,
    /// UDP port.
    pub port: u16,
    /// Multicast TTL.
    pub ttl: u8,
    /// Address of the interface to send from and join on (`--mcast-interface`).
    pub iface: Option<Ipv4Addr>,
    /// Unicast peer instead of the group (master side).
    pub peer: Option<Ipv4Addr>,
}

impl Default for SyncNetConfig {
    fn default() -> Self {
        SyncNetConfig {
            syncid: 0,
            maxlen: super::DEFAULT_MAXLEN,
            group: super::DEFAULT_GROUP,
            port: super::DEFAULT_PORT,
            ttl: 1,
            iface: None,
            peer: None,
        }
    }
}

/// Counters of a sync daemon (both roles).
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages sent.
    pub sent_msgs: AtomicU64,
    /// Records sent.
    pub sent_conns: AtomicU64,
    /// Send failures (the message is lost).
    pub send_errors: AtomicU64,
    /// Messages received.
    pub recv_msgs: AtomicU64,
    /// Records handed to workers.
    pub recv_conns: AtomicU64,
    /// Messages dropped: bad size, other syncid, undecodable header.
    pub recv_dropped: AtomicU64,
    /// Records lost to a malformed record (it and the rest of its message).
    pub decode_errors: AtomicU64,
    /// Well-formed records skipped (mandatory unknown option, persistence engine).
    pub skipped: AtomicU64,
    /// Records a worker's queue could not take.
    pub queue_full: AtomicU64,
    /// When the last message was received: milliseconds since the Unix epoch (0: none
    /// yet). Not a counter: not in [`Stats::snapshot`].
    pub last_recv_unix_ms: AtomicU64,
}

impl Stats {
    /// The counters as `name=value` pairs, for listings.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("sent_msgs", l(&self.sent_msgs)),
            ("sent_conns", l(&self.sent_conns)),
            ("send_errors", l(&self.send_errors)),
            ("recv_msgs", l(&self.recv_msgs)),
            ("recv_conns", l(&self.recv_conns)),
            ("recv_dropped", l(&self.recv_dropped)),
            ("decode_errors", l(&self.decode_errors)),
            ("skipped", l(&self.skipped)),
            ("queue_full", l(&self.queue_full)),
        ]
    }
}

/// Milliseconds since the Unix epoch of `t` (0 before it).
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The master's socket and where it sends.
pub fn master_socket(cfg: &SyncNetConfig) -> io::Result<(UdpSocket, SocketAddr)> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let dest = match cfg.peer {
        Some(p) => SocketAddrV4::new(p, cfg.port),
        None => {
            if let Some(a) = cfg.iface {
                s.set_multicast_if_v4(&a)?;
            }
            s.set_multicast_ttl_v4(u32::from(cfg.ttl))?;
            s.set_multicast_loop_v4(false)?;
            SocketAddrV4::new(cfg.group, cfg.port)
        }
    };
    let local = SocketAddrV4::new(cfg.iface.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    s.bind(&local.into())?;
    Ok((s.into(), dest.into()))
}

/// The backup's socket: bound to the port, member of the group on the interface.
pub fn backup_socket(cfg: &SyncNetConfig) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.port).into())?;
    if cfg.peer.is_none() {
        s.join_multicast_v4(&cfg.group, &cfg.iface.unwrap_or(Ipv4Addr::UNSPECIFIED))?;
    }
    s.set_read_timeout(Some(RECV_POLL))?;
    let _ = s.set_recv_buffer_size(RECV_BUFFER_BYTES);
    Ok(s.into())
}

/// The master loop: drains the workers' queues into messages and sends them, a full
/// message at once, a partial one after [`PARTIAL_FLUSH`], until `stop`.
pub fn run_master(
    sock: &UdpSocket,
    dest: SocketAddr,
    cfg: &SyncNetConfig,
    queues: &[ArrayQueue<SyncConn>],
    stop: &AtomicBool,
    stats: &Stats,
) {
    let mut b = MessageBuilder::new(cfg.syncid, usize::from(cfg.maxlen));
    let mut first: Option<Instant> = None;
    let send = |b: &mut MessageBuilder| {
        if b.is_empty() {
            return;
        }
        match sock.send_to(b.bytes(), dest) {
            Ok(_) => {
                stats.sent_msgs.fetch_add(1, Ordering::Relaxed);
                stats
                    .sent_conns
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        b.reset();
    };
    while !stop.load(Ordering::Acquire) {
        let mut got = 0usize;
        for q in queues {
            for _ in 0..DRAIN_PER_QUEUE {
                let Some(c) = q.pop() else { break };
                got += 1;
                if !b.push(&c) {
                    send(&mut b);
                    first = None;
                    let _ = b.push(&c);
                }
                first.get_or_insert_with(Instant::now);
                if b.is_full() {
                    send(&mut b);
                    first = None;
                }
            }
        }
        if first.is_some_and(|t| t.elapsed() >= PARTIAL_FLUSH) {
            send(&mut b);
            first = None;
        }
        if got == 0 {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
    send(&mut b);
}

/// The backup loop: receives, checks and decodes messages, and hands every record to
/// `deliver` (which returns false when the owner's queue is full), until `stop`.
pub fn run_backup(
    sock: &UdpSocket,
    cfg: &SyncNetConfig,
    stop: &AtomicBool,
    stats: &Stats,
    mut deliver: impl FnMut(SyncConn) -> bool,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut recs: Vec<Record> = Vec::with_capacity(RECORDS_PER_MESSAGE);
    while !stop.load(Ordering::Acquire) {
        let n = match sock.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(_) => continue,
        };
        stats.recv_msgs.fetch_add(1, Ordering::Relaxed);
        stats
            .last_recv_unix_ms
            .store(unix_ms(std::time::SystemTime::now()), Ordering::Relaxed);
        process_message(&buf[..n], cfg.syncid, &mut recs, stats, &mut deliver);
    }
}

/// Checks and decodes one received message and delivers its records; what the backup
/// thread does per datagram.
pub fn process_message(
    msg: &[u8],
    syncid: u8,
    recs: &mut Vec<Record>,
    stats: &Stats,
    deliver: &mut impl FnMut(SyncConn) -> bool,
) {
    match wire::decode_header(msg) {
        Ok(h) if syncid == 0 || h.syncid == syncid => {}
        _ => {
            stats.recv_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    if wire::decode(msg, recs).is_err() {
        // The records before the malformed one stand, as in the kernel.
        stats.decode_errors.fetch_add(1, Ordering::Relaxed);
    }
    for r in recs.drain(..) {
        match r {
            Record::Conn(c) => {
                if deliver(c) {
                    stats.recv_conns.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            Record::Skipped(_) => {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Addr;
    use std::sync::Arc;

    fn conn(i: u16) -> SyncConn {
        SyncConn {
            protocol: 6,
            v6: false,
            flags: 0,
            state: 1,
            cport: 10000 + i,
            vport: 80,
            dport: 8080,
            fwmark: 0,
            timeout: 900,
            caddr: Addr::v4(10, 10, 0, 2),
            vaddr: Addr::v4(10, 10, 0, 100),
            daddr: Addr::v4(10, 20, 0, 11),
            local: None,
            in_seq: None,
        }
    }

    #[test]
    fn syncid_filter_and_size_check() {
        let stats = Stats::default();
        let mut b = MessageBuilder::new(5, 1472);
        b.push(&conn(1));
        let mut got = Vec::new();
        let mut recs = Vec::new();
        process_message(b.bytes(), 6, &mut recs, &stats, &mut |c| {
            got.push(c);
            true
        });
        assert!(got.is_empty());
        process_message(b.bytes(), 0, &mut recs, &stats, &mut |c| {
            got.push(c);
            true
        });
        process_message(b.bytes(), 5, &mut recs, &stats, &mut |c| {
            got.push(c);
            true
        });
        assert_eq!(got.len(), 2);
        process_message(&b.bytes()[..40], 0, &mut recs, &stats, &mut |c| {
            got.push(c);
            true
        });
        assert_eq!(got.len(), 2);
        assert_eq!(stats.recv_dropped.load(Ordering::Relaxed), 2);
    }

    /// Master and backup threads over loopback (unicast): every record arrives, in
    /// MTU-sized messages.
    #[test]
    fn master_to_backup_over_loopback() {
        let port = 20000 + (std::process::id() % 20000) as u16;
        let cfg = SyncNetConfig {
            syncid: 3,
            port,
            peer: Some(Ipv4Addr::LOCALHOST),
            iface: Some(Ipv4Addr::LOCALHOST),
            ..SyncNetConfig::default()
        };
        let rx = backup_socket(&cfg).expect("backup socket");
        let (tx, dest) = master_socket(&cfg).expect("master socket");
        let queues: Arc<Vec<ArrayQueue<SyncConn>>> =
            Arc::new((0..2).map(|_| ArrayQueue::new(4096)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let rstats = Arc::new(Stats::default());
        let (q2, s2, st2) = (queues.clone(), stop.clone(), stats.clone());
        let m = std::thread::spawn(move || run_master(&tx, dest, &cfg, &q2, &s2, &st2));
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (g2, s3, rs2) = (got.clone(), stop.clone(), rstats.clone());
        let b = std::thread::spawn(move || {
            run_backup(&rx, &cfg, &s3, &rs2, |c| {
                g2.lock().unwrap().push(c.cport);
                true
            })
        });
        for i in 0..1000u16 {
            queues[usize::from(i % 2)].push(conn(i)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.lock().unwrap().len() < 1000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Release);
        m.join().unwrap();
        b.join().unwrap();
        let mut v = got.lock().unwrap().clone();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 1000);
        let msgs = stats.sent_msgs.load(Ordering::Relaxed);
        assert!(
            (1000 / 40..=1000 / 40 + 4).contains(&msgs),
            "{msgs} messages"
        );
    }
}
