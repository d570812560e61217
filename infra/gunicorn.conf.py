"""gunicorn settings for the gateway (``gunicorn -c infra/gunicorn.conf.py gateway.wsgi:app``)."""

import os

bind = os.environ.get("GATEWAY_BIND") or f"127.0.0.1:{os.environ.get('GATEWAY_PORT', '8080')}"
workers = int(os.environ.get("GATEWAY_WORKERS", "2"))
# Threads keep status polls flowing while another request waits on Redis.
worker_class = "gthread"
threads = int(os.environ.get("GATEWAY_THREADS", "4"))
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = "-" if os.environ.get("GATEWAY_ACCESS_LOG") == "1" else None
errorlog = "-"
loglevel = os.environ.get("GATEWAY_LOG_LEVEL", "info")
# Each worker builds its own Redis connections after the fork.
preload_app = False
