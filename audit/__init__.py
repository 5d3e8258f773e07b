"""Audit: the tamper-evident audit log, login security and 等保 self-assessment."""
