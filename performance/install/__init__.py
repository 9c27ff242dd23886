"""Unattended installations.

hours.py       the setlist's [install] table: opening hours, closed dates, DST, daily restart
supervisor.py  `run.py supervise` / `play --install`: restarts a crashed or hung engine, safe setlist
heartbeat.py   the frame loop's heartbeat to the supervisor and systemd's watchdog
sdnotify.py    sd_notify (READY=1, WATCHDOG=1) without a dependency
status.py      the status file and `run.py status`
logs.py        rotating logs, transcripts under a disk-use cap
diskguard.py   writers pause on a full disk and retry; the show goes on
"""
