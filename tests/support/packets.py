"""Packets the wire tests send from inside a lab node (a script for `python -c`)."""

# GARP MAC: a gratuitous ARP for 192.0.2.100 from eth0 naming MAC as its sender.
GARP = """
import socket, struct, sys
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
vip = socket.inet_aton("192.0.2.100")
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + vip + bytes(6) + vip
sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
sock.sendto(arp, ("eth0", 0x0806, 0, 0, b"\\xff" * 6))
"""
