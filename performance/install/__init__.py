"""Unattended installations: opening hours, supervision, heartbeat, status, logs, disk guard."""
