"""The event model: what keepalived said (Event, LVS names), where it goes (rules), what a channel is told."""
