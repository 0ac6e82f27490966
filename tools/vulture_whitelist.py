"""Names vulture (the dead-code check in `make lint`) cannot see being used. Keep this short: every entry says
who uses the name. Dead code is deleted, not listed here."""
# ruff: noqa

# pydantic reads these class attributes
model_config
# sqlite3 reads the connection's row_factory
_.row_factory
# pytest reads module-level marks and finds fixtures by name
pytestmark
kit_tool
# pytest calls hooks in conftest.py by name
pytest_sessionstart
# http.server and aiosmtpd call handler methods by name; the SMTP auth hook's signature is fixed
_.do_POST
_.log_message
_.handle_RCPT
_.handle_DATA
mechanism

# logging.Filter rewrites a LogRecord in place (server.QuietParseErrors); the logging module reads these
_.msg
_.exc_text
_.stack_info
# pytest runs autouse fixtures by themselves
_restore_loggers
# pytest calls its hooks by name
pytest_sessionstart
# the WAL file's name, spelled out in wal_bytes (perf)
wal_path
# asyncio calls a protocol's data_received; httptools' parser calls its on_* callbacks by name (connections.py)
_.data_received
_.on_header
_.on_headers_complete
_.on_body
_.on_message_complete
