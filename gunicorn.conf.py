"""gunicorn settings for the web processes: `gunicorn -c gunicorn.conf.py`.

Every web process is stateless: the database (PostgreSQL) holds the data and each process
builds the download files it serves into its own ISD_DOWNLOADS_DIR (or a shared one), so any
number of them can run, on any number of machines. The scheduler is a process of its own,
never a part of these. See docs/deployment.md.

Environment: ISD_BIND (default 127.0.0.1:8000), ISD_WORKERS (default 2 x CPUs + 1, at most
16), ISD_THREADS (default 1), ISD_TIMEOUT (default 120 s), ISD_FORWARDED_ALLOW_IPS (the
reverse proxy's addresses, default 127.0.0.1), plus the ISD_* settings of the service itself.
"""

from __future__ import annotations

from isd_service.config import web_server

_settings = web_server()

wsgi_app = "isd_service.entrypoints.app:create_app()"
bind = _settings["bind"]
workers = _settings["workers"]
threads = _settings["threads"]
# A worker that takes longer than this on one request is restarted. Downloads leave by
# sendfile(2) from a finished file, so even a large snapshot to a fast client is quick; slow
# clients belong behind a buffering reverse proxy (nginx), not in a worker's time.
timeout = _settings["timeout"]
graceful_timeout = 30
keepalive = 5

# Each worker imports the app after the fork, so no database connection or pool ever
# crosses a fork (a connection shared by two processes corrupts both ends' protocol state).
preload_app = False

accesslog = "-"
errorlog = "-"
loglevel = _settings["loglevel"]
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'

# Trust X-Forwarded-* (scheme, client address) only from the reverse proxy in front.
forwarded_allow_ips = _settings["forwarded_allow_ips"]
