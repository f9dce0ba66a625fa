"""`kahooks doctor`: a keepalived pair's configuration mistakes, found before they cause an outage.

conf.py reads keepalived.conf as keepalived does (with FILE:LINE); model.py turns it into the
node it configures; findings.py and peers.py report what is wrong; election.py predicts who
holds each VIP when a tracked item fails and recovers; running.py asks keepalived itself
(`keepalived -t`, and the JSON state dump for --live); report.py puts it together.
"""
