"""The kahooks lab: real keepalived nodes in network and pid namespaces on one machine (root only).

Used by the README's demo, the end-to-end tests and the failover benchmarks.
Every object it makes is named with its own prefix and recorded, and teardown
removes only what was recorded: it never touches the host's interfaces.
"""
