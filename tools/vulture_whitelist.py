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
# http.server and aiosmtpd call handler methods by name; the SMTP auth hook's signature is fixed
_.do_POST
_.log_message
_.handle_RCPT
_.handle_DATA
mechanism

# Issue 8 item 5, owned by other branches (config/models/metrics/store), to be deleted there; remove these
# lines when that lands.
_duration
DELIVERY_STATUSES
_.scrapes
last_at
# Owned by branch emu (emulator_model.SCOPES, the scope names a limited token may hold, unused by code): to be
# used or deleted there.
SCOPES
