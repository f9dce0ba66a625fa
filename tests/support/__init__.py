"""Real peers for the tests: programs under test, servers on loopback, rsyslogd."""
