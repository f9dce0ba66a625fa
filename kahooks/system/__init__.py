"""This node as kahooks reads and drives it: /proc, addresses, sockets, commands, signals, systemd, TLS."""
