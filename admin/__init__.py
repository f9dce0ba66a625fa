"""`kahooks`, the operator's command: serve, status, doctor, init, drain, snmp and the lab."""
