"""What reacts to a VRRP transition: rebind, DNS, email, Slack, syslog, exec."""
