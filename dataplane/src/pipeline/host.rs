//! The director's own addresses: ARP requests for them answered (and senders learned),
//! ICMP echo to them answered, and the ARP frames the director originates.

use std::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::forward::icmp::ICMP_TTL;
use crate::wire::icmpv4::Message;
use crate::wire::{
    self, ethernet, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, IpMeta,
};

use super::{Core, DropReason, LocalKind, NeighUpdate, Out, Snapshot, SIDE_CAP};

/// The shortest Ethernet frame (without the FCS): what an ARP frame is padded to.
pub const MIN_FRAME_LEN: usize = 60;

impl<P: PacketBuf> Core<P> {
    /// ARP: answer requests for our addresses, learn senders.
    pub(super) fn arp(
        &mut self,
        mut pkt: P,
        l3: usize,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let Some(body) = pkt.data().get(l3..) else {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        };
        let repr = match ArpPacket::new_checked(body).and_then(|p| ArpRepr::parse(&p)) {
            Ok(r) => r,
            Err(e) => return self.drop(pkt, DropReason::Malformed(e)),
        };
        let ours = snap.net.local.get(&repr.target_protocol_addr).copied();
        let sender = repr.source_protocol_addr;
        if let Some(&(kind, _)) = snap.net.local.get(&sender) {
            // Another host speaking for one of our addresses is never learned.
            return self.arp_from_our_address(pkt, &repr, kind, snap, now_ms);
        }
        // Learn the sender when the packet is for us or when we already track it.
        if (ours.is_some() || self.neigh.contains(sender)) && sender != Ipv4Addr::UNSPECIFIED {
            let mac = repr.source_hardware_addr.0;
            let released = &mut self.released;
            self.neigh.learn(sender, mac, now_ms, |(mut p, port), mac| {
                set_dst_mac(&mut p, mac);
                released.push((p, port));
            });
            if self.learned.len() < SIDE_CAP {
                self.learned.push(NeighUpdate {
                    ip: sender.into(),
                    mac,
                });
            }
        }
        let silent = |(kind, _): (LocalKind, u16)| {
            snap.net.passive
                && (kind != LocalKind::Dip
                    || snap.net.floating.contains(&repr.target_protocol_addr))
        };
        match (repr.operation, ours.filter(|o| !silent(*o))) {
            (ArpOperation::Request, Some((_, port)))
                if port == in_port || snap.net.ports.len() == 1 =>
            {
                let Some(pn) = snap.net.ports.get(usize::from(in_port)) else {
                    return self.drop(pkt, DropReason::NoRoute);
                };
                let reply = ArpRepr {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: EthernetAddress(pn.mac),
                    source_protocol_addr: repr.target_protocol_addr,
                    target_hardware_addr: repr.source_hardware_addr,
                    target_protocol_addr: repr.source_protocol_addr,
                };
                let data = pkt.data_mut();
                let Some(arp) = data.get_mut(l3..) else {
                    return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
                };
                if let Err(e) = reply.emit(arp) {
                    return self.drop(pkt, DropReason::Rewrite(e));
                }
                data[ethernet::field::DESTINATION].copy_from_slice(&repr.source_hardware_addr.0);
                data[ethernet::field::SOURCE].copy_from_slice(&pn.mac);
                self.counters.arp_replies += 1;
                Out::Tx(pkt, in_port)
            }
            _ => Out::Consumed(pkt),
        }
    }

    /// An ARP frame whose sender address is one of ours. Our own frames (a port's MAC)
    /// and, on a standby, the active director's announcements of the addresses that
    /// move with the active role are consumed; anything else claims an address of ours:
    /// counted as `arp-conflict`, dropped, and reported once per address per minute
    /// ([`Core::take_arp_conflicts`]).
    fn arp_from_our_address(
        &mut self,
        pkt: P,
        repr: &ArpRepr,
        kind: LocalKind,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        let mac = repr.source_hardware_addr.0;
        let sender = repr.source_protocol_addr;
        let own_frame = snap.net.ports.iter().any(|p| p.mac == mac);
        let moves_with_role = kind != LocalKind::Dip || snap.net.floating.contains(&sender);
        if own_frame || (snap.net.passive && moves_with_role) {
            return Out::Consumed(pkt);
        }
        if self.conflict_log.due(sender, now_ms) && self.arp_conflicts.len() < SIDE_CAP {
            self.arp_conflicts.push(ArpConflict { ip: sender, mac });
        }
        self.drop(pkt, DropReason::ArpConflict)
    }

    /// ICMP echo request to one of our addresses: answer in place.
    pub(super) fn echo_reply(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        in_port: u16,
        snap: &Snapshot,
    ) -> Out<P> {
        let Some(pn) = snap.net.ports.get(usize::from(in_port)) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let mac = pn.mac;
        let l3 = meta.l3_offset();
        let l4 = meta.l4_offset;
        let end = meta.ip_end;
        let data = pkt.data_mut();
        if data.len() < end || l4 + 4 > end {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        }
        // Ethernet: back to the sender.
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&data[ethernet::field::SOURCE]);
        data[ethernet::field::DESTINATION].copy_from_slice(&src_mac);
        data[ethernet::field::SOURCE].copy_from_slice(&mac);
        // IPv4: swap addresses, fresh TTL, recomputed header checksum.
        {
            let mut ip = wire::Ipv4Packet::new_unchecked(&mut data[l3..end]);
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            ip.set_src_addr(d);
            ip.set_dst_addr(s);
            ip.set_ttl(ICMP_TTL);
            ip.fill_checksum();
        }
        // ICMP: echo request -> echo reply, checksum adjusted.
        let old = u16::from_be_bytes([data[l4], data[l4 + 1]]);
        data[l4] = Message::ECHO_REPLY.0;
        let new = u16::from_be_bytes([data[l4], data[l4 + 1]]);
        let ck = u16::from_be_bytes([data[l4 + 2], data[l4 + 3]]);
        let ck = wire::checksum::update_u16(ck, old, new);
        data[l4 + 2..l4 + 4].copy_from_slice(&ck.to_be_bytes());
        self.counters.echo_replies += 1;
        Out::Tx(pkt, in_port)
    }
}

/// Sets the destination MAC of a held packet whose next hop resolved.
pub(super) fn set_dst_mac<P: PacketBuf>(p: &mut P, mac: [u8; 6]) {
    if let Some(d) = p.data_mut().get_mut(ethernet::field::DESTINATION) {
        d.copy_from_slice(&mac);
    }
}

/// Writes an ARP request (broadcast) from `src_mac`/`src_ip` for `target` into `buf`
/// (at least [`MIN_FRAME_LEN`] bytes: the frame is padded to it); returns the frame length.
pub fn build_arp_request(
    buf: &mut [u8],
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Option<usize> {
    let frame = buf.get_mut(..MIN_FRAME_LEN)?;
    frame.fill(0);
    frame[ethernet::field::DESTINATION].copy_from_slice(&EthernetAddress::BROADCAST.0);
    frame[ethernet::field::SOURCE].copy_from_slice(&src_mac);
    frame[ethernet::field::ETHERTYPE].copy_from_slice(&EtherType::ARP.0.to_be_bytes());
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(src_mac),
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    repr.emit(&mut frame[ethernet::HEADER_LEN..]).ok()?;
    Some(MIN_FRAME_LEN)
}

/// Writes a gratuitous ARP (a request for `ip` from `ip`) into `buf`; returns the length.
pub fn build_gratuitous_arp(buf: &mut [u8], mac: [u8; 6], ip: Ipv4Addr) -> Option<usize> {
    build_arp_request(buf, mac, ip, ip)
}

/// An ARP frame from another host claiming one of the director's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpConflict {
    /// Our address it claimed.
    pub ip: Ipv4Addr,
    /// The MAC it claimed it for.
    pub mac: [u8; 6],
}

/// How often one address's ARP conflict is reported.
pub const CONFLICT_REPORT_MS: u64 = 60_000;
/// How many addresses' last report times are kept (the oldest is forgotten).
const CONFLICT_SLOTS: usize = 16;

/// When each address's ARP conflict was last reported: a small fixed table, so that a
/// flood of forged frames costs a scan of it and no allocation.
#[derive(Debug, Clone, Default)]
pub(super) struct ConflictLog {
    slots: [(u32, u64); CONFLICT_SLOTS],
    used: usize,
}

impl ConflictLog {
    /// Whether a conflict for `ip` is to be reported now (and notes that it is).
    pub(super) fn due(&mut self, ip: Ipv4Addr, now_ms: u64) -> bool {
        let key = u32::from(ip);
        let live = &mut self.slots[..self.used];
        if let Some(slot) = live.iter_mut().find(|(a, _)| *a == key) {
            if now_ms.saturating_sub(slot.1) < CONFLICT_REPORT_MS {
                return false;
            }
            slot.1 = now_ms;
            return true;
        }
        if self.used < CONFLICT_SLOTS {
            self.slots[self.used] = (key, now_ms);
            self.used += 1;
        } else if let Some(oldest) = self.slots.iter_mut().min_by_key(|(_, t)| *t) {
            *oldest = (key, now_ms);
        }
        true
    }
}

/// Linux's `icmp_msgs_per_sec`: ICMP errors a worker may originate per second.
pub const ICMP_ERRORS_PER_SEC: u64 = 1000;
/// Linux's `icmp_msgs_burst`: how many it may send at once after a quiet spell.
pub const ICMP_ERRORS_BURST: u64 = 50;

/// The token bucket of the ICMP errors a worker originates.
#[derive(Debug, Clone, Copy)]
pub(super) struct IcmpBudget {
    tokens: u64,
    last_ms: u64,
}

impl Default for IcmpBudget {
    fn default() -> Self {
        IcmpBudget {
            tokens: ICMP_ERRORS_BURST,
            last_ms: 0,
        }
    }
}

impl IcmpBudget {
    /// Takes a token if one is left at `now_ms`.
    pub(super) fn take(&mut self, now_ms: u64) -> bool {
        let earned = now_ms.saturating_sub(self.last_ms) * ICMP_ERRORS_PER_SEC / 1000;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(ICMP_ERRORS_BURST);
            self.last_ms = now_ms;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}
