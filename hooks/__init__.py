"""The keepalived-facing entry points: parse what keepalived passes, dispatch, exit as it expects."""
