//! The client's address under FULLNAT in the general path: a session's PROXY protocol
//! header and TOA option, and the sequence shift of its established packets (the fast
//! path's part is [`Core::shift_established`]). The byte work is [`crate::forward::cip`].
//!
//! A TCP session of a service with `--proxy-protocol` learns the client's initial
//! sequence number from its SYN and the header's length then (the shift, `IN_SEQ`).
//! The client's first segment after the SYN (the handshake's ACK, or data carrying it)
//! is forwarded shifted, followed by the header as a segment of its own with the
//! sequence number of the client's first byte, built from that segment's headers: the
//! real server's socket is accepted with the header as the first bytes it will read,
//! before anything the client sends and before the server speaks. Until the server
//! acknowledges the whole header the session stays on the general path; a client that
//! sends its first byte again while the header is unacknowledged for 300 ms gets the
//! header segment sent again (a lost header is recovered when the client retransmits).
//! Once acknowledged, every packet of the session takes the fast path with one shift.

use std::net::IpAddr;

use crate::buf::PacketBuf;
use crate::conn::{cip, flags, ConnId, Session};
use crate::flow::TcpFlags;
use crate::forward::cip::{self as bytes, ProxyHeader};
use crate::forward::Layout;

use super::{Core, DropReason};

/// Resend the header segment when it has been unacknowledged this long (100 ms ticks).
const RESEND_TICKS: u8 = 3;

/// The clock of [`Session::cip_at`]: 100 ms ticks, modulo 256.
fn tick(now_ms: u64) -> u8 {
    (now_ms / 100) as u8
}

/// The PROXY header of a session (TCP), by the version its `cip` bits name.
fn tcp_header(s: &Session) -> Option<ProxyHeader> {
    if s.cip & cip::PP2 != 0 {
        Some(ProxyHeader::v2(
            s.caddr(),
            s.cport,
            s.vaddr(),
            s.vport,
            false,
        ))
    } else if s.cip & cip::PP1 != 0 {
        ProxyHeader::v1(s.caddr(), s.cport, s.vaddr(), s.vport)
    } else {
        None
    }
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

impl<P: PacketBuf> Core<P> {
    /// After the rewrite of a packet of session `id`, before its VLAN retag; nothing for
    /// a session without client-address work or a shift (`CIP` or `IN_SEQ`). Else: the SYN's sequence number and
    /// the shift are learned, a client segment is shifted (and gets the TOA option
    /// once), a server segment's acknowledgement and SACK blocks are shifted back, a
    /// UDP datagram gets its v2 header. `Ok(true)`: the header segment is due
    /// ([`Core::proxy_segment`] once the frame is final). `Err`: drop the packet.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn client_addr(
        &mut self,
        pkt: &mut P,
        id: ConnId,
        reply: bool,
        at: &Layout,
        tcp: TcpFlags,
        mtu: u16,
        now_ms: u64,
    ) -> Result<bool, DropReason> {
        let Some(s) = self.conns.get_mut(id) else {
            return Ok(false);
        };
        if s.flags & (flags::CIP | flags::IN_SEQ) == 0 {
            return Ok(false);
        }
        // A first fragment: its lengths are the datagram's, so it can take no PROXY
        // header or TOA option, and it is no template for the header segment. Refused
        // while the session has that to do (the sequence shift alone is fine).
        let frag = pkt
            .data()
            .get(at.l3 + 6..at.l3 + 8)
            .is_some_and(|f| u16::from_be_bytes([f[0], f[1]]) & 0x3fff != 0);
        if at.udp {
            if reply || s.cip & cip::PP2 == 0 {
                return Ok(false);
            }
            if frag {
                return Err(DropReason::ProxyNoRoom);
            }
            let h = ProxyHeader::v2(s.caddr(), s.cport, s.vaddr(), s.vport, true);
            return match bytes::prepend_udp(pkt, at.l3, at.l4, h.bytes(), mtu) {
                Ok(()) => {
                    self.counters.proxy_headers += 1;
                    Ok(false)
                }
                Err(_) => Err(DropReason::ProxyNoRoom),
            };
        }
        if frag && !reply && s.flags & flags::CIP != 0 {
            return Err(DropReason::ProxyNoRoom);
        }
        let l4 = at.l4;
        let seq = be32(pkt.data(), l4 + 4);
        let (init, delta) = (s.seq_init, u32::from(s.seq_delta));
        let mut due = false;
        if reply {
            if s.flags & flags::IN_SEQ != 0 {
                let ack = bytes::unshift_ack(pkt.data_mut(), l4, init, delta);
                if s.cip & cip::SENT != 0
                    && ack.is_some_and(|a| bytes::header_acked(a, init, delta))
                {
                    s.cip |= cip::ACKED;
                }
            }
        } else if tcp.has(TcpFlags::SYN) {
            // The client's SYN (again): where its stream starts, and the header's length.
            if let Some(h) = tcp_header(s) {
                s.seq_init = seq;
                s.seq_delta = h.len() as u16;
                s.flags |= flags::IN_SEQ;
                s.cip &= !(cip::SENT | cip::ACKED);
            }
        } else {
            if s.flags & flags::IN_SEQ != 0 {
                let rst = tcp.has(TcpFlags::RST);
                if s.cip & cip::SENT == 0 {
                    // A reset before the header went: the server's stream has no header
                    // (its next expected byte is the client's first), so no shift.
                    due = !rst;
                } else if !rst
                    && s.cip & cip::ACKED == 0
                    && seq == init.wrapping_add(1)
                    && tick(now_ms).wrapping_sub(s.cip_at) >= RESEND_TICKS
                {
                    due = true;
                    self.counters.proxy_resent += 1;
                }
                if s.cip & cip::SENT != 0 || due {
                    bytes::shift_seq(pkt.data_mut(), l4, delta);
                }
            }
            if s.cip & (cip::TOA | cip::TOA_DONE) == cip::TOA {
                s.cip |= cip::TOA_DONE;
                let (client, cport) = (s.caddr().to_ip(), s.cport);
                if let IpAddr::V4(c) = client {
                    match bytes::insert_toa(pkt, at.l3, l4, c, cport, mtu) {
                        Ok(()) => self.counters.toa_added += 1,
                        Err(_) => self.counters.toa_no_room += 1,
                    }
                }
            }
        }
        let Some(s) = self.conns.get_mut(id) else {
            return Ok(due);
        };
        if cip::settled(s.cip) {
            s.flags &= !flags::CIP;
        }
        Ok(due)
    }

    /// Sends session `id`'s PROXY header segment, built from `pkt`, the client segment
    /// just rewritten for the real server (final: retagged for port `port`): queued in
    /// the scratch buffer to leave after it. Nothing when the header's length is not
    /// the session's shift (a synced session of a changed service).
    pub(super) fn proxy_segment(&mut self, pkt: &P, id: ConnId, port: u16, now_ms: u64) {
        let Some(s) = self.conns.get_mut(id) else {
            return;
        };
        let Some(h) = tcp_header(s) else {
            return;
        };
        if h.len() != usize::from(s.seq_delta) {
            return;
        }
        let f = pkt.data();
        let l3 = if f.get(12..14) == Some(&[0x81, 0x00]) {
            18
        } else {
            14
        };
        let Some(ihl) = f.get(l3).map(|b| usize::from(b & 0x0f) * 4) else {
            return;
        };
        let first = s.seq_init.wrapping_add(1);
        let Some(len) = bytes::header_segment(f, l3, l3 + ihl, first, h.bytes(), &mut self.scratch)
        else {
            return;
        };
        s.cip |= cip::SENT;
        s.cip_at = tick(now_ms);
        if cip::settled(s.cip) {
            s.flags &= !flags::CIP;
        }
        self.counters.proxy_headers += 1;
        self.originated(port, len);
    }

    /// The fast path's part: an established packet of a session whose header the real
    /// server has (`IN_SEQ` without `CIP`), already rewritten: a client segment's
    /// sequence number shifted up, a server segment's acknowledgement and SACK blocks
    /// shifted back.
    #[inline]
    pub(super) fn shift_established(&self, pkt: &mut P, id: ConnId, reply: bool, l4: usize) {
        let Some(s) = self.conns.get(id) else {
            return;
        };
        let (init, delta) = (s.seq_init, u32::from(s.seq_delta));
        if reply {
            bytes::unshift_ack(pkt.data_mut(), l4, init, delta);
        } else {
            bytes::shift_seq(pkt.data_mut(), l4, delta);
        }
    }
}
