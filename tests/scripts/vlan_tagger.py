#!/usr/bin/python3
"""A VLAN sub-interface in user space, for kernels without 802.1Q devices (no 8021q
module, no bridge VLAN filtering): bridges the untagged interface PLAIN and the trunk
TRUNK for VLAN VID. A frame the kernel sends on PLAIN leaves TRUNK with the tag; a frame
of VID VID received on TRUNK reaches PLAIN untagged; anything else on TRUNK (untagged,
other VIDs) is ignored. Give the client's address to PLAIN's veth peer, and its kernel
TCP talks over VLAN VID. Prints `ready`, runs until killed.

The kernel moves a received tag into the packet's metadata: it is read back from
PACKET_AUXDATA (or from the frame, if it is still there)."""

import select
import socket
import struct
import sys

SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID = 1 << 4
PACKET_OUTGOING = 4
ETH_P_ALL = 3

plain_if, trunk_if, vid = sys.argv[1], sys.argv[2], int(sys.argv[3])


def open_raw(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((ifname, 0))
    return s


def receive(s):
    """(frame, the VID of its tag or None, outgoing) with the tag taken out."""
    data, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(64))
    tag = None
    for level, kind, blob in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(blob) >= 20:
            status, _, _, _, _, tci, _ = struct.unpack("IIIHHHH", blob[:20])
            if status & TP_STATUS_VLAN_VALID or tci:
                tag = tci & 0x0FFF
    if tag is None and data[12:14] == b"\x81\x00":
        tag = struct.unpack("!H", data[14:16])[0] & 0x0FFF
        data = data[:12] + data[16:]
    return data, tag, addr[2] == PACKET_OUTGOING


plain, trunk = open_raw(plain_if), open_raw(trunk_if)
print("ready", flush=True)
while True:
    ready, _, _ = select.select([plain, trunk], [], [])
    for s in ready:
        frame, tag, outgoing = receive(s)
        if outgoing:
            continue
        if s is plain and tag is None:
            trunk.send(frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:])
        elif s is trunk and tag == vid:
            plain.send(frame)
