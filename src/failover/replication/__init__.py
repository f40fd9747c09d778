"""Replication: version stamps (and, next, the write journal and repair)."""
