"""The front door's pieces: the listener (sockets, connection limits), the proxy rule (which client address to
believe), access (the admin token, sessions, CSRF), the access log, request ids and the auth throttle. server.py
composes them with api, console and ingest; api and console use access; nothing here imports them."""
