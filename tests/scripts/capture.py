#!/usr/bin/python3
"""Prints every IPv4 TCP or UDP packet seen on IFACE for SECONDS, one line each:
`src sport dst dport`. A real server's view of what the director sent it."""

import sys

from scapy.all import IP, TCP, UDP, conf, sniff

conf.verb = 0
iface, secs = sys.argv[1], float(sys.argv[2])


def show(p):
    l4 = p[TCP] if TCP in p else p[UDP]
    print(p[IP].src, l4.sport, p[IP].dst, l4.dport, flush=True)


print("ready", flush=True)
sniff(iface=iface, timeout=secs, store=False, prn=show,
      lfilter=lambda p: IP in p and (TCP in p or UDP in p))
