"""The notification path: keepalived's FIFO, the durable spool, the delivery worker and its messages."""
