"""What kahooks says: a probe's result, logs and syslog, and secrets kept out of all of it."""
