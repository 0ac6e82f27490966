"""Windmill's deployment API (CONTRACT D1-D8, C4): the routes `wmill sync push` uses, defined once so the
deployer (deploy.py) builds its URLs from them and the emulator (emulator_deploy.py) answers on them.

All sit under `/api/w/{workspace}` and take `Authorization: Bearer`. Sources (windmill-labs/windmill v1.721.0):
`backend/windmill-api-groups/src/folders.rs`, `backend/windmill-store/src/variables.rs` and `resources.rs`,
`backend/windmill-api-scripts/src/scripts.rs`, `backend/windmill-api-flows/src/flows.rs`,
`backend/windmill-api-schedule/src/lib.rs`.
"""

from __future__ import annotations

import re

from headrace.windmill.urls import FLOW, SCRIPT, Route

FOLDER_NAME = re.compile(r"^[a-zA-Z_0-9]{1,64}$")  # folders.rs: ^[a-zA-Z_0-9]+$ (the length is headrace's limit)
WORKSPACE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

WHOAMI = Route("whoami", "/w/{workspace}/users/whoami")
FOLDER_EXISTS = Route("folder_exists", "/w/{workspace}/folders/exists/{name}")
FOLDER_CREATE = Route("folder_create", "/w/{workspace}/folders/create")
VARIABLE_EXISTS = Route("variable_exists", "/w/{workspace}/variables/exists/{path}")
VARIABLE_GET = Route("variable_get", "/w/{workspace}/variables/get/{path}")
VARIABLE_CREATE = Route("variable_create", "/w/{workspace}/variables/create")
VARIABLE_UPDATE = Route("variable_update", "/w/{workspace}/variables/update/{path}")
RESOURCE_EXISTS = Route("resource_exists", "/w/{workspace}/resources/exists/{path}")
RESOURCE_GET = Route("resource_get", "/w/{workspace}/resources/get/{path}")
RESOURCE_CREATE = Route("resource_create", "/w/{workspace}/resources/create")
RESOURCE_TYPE_EXISTS = Route("resource_type_exists", "/w/{workspace}/resources/type/exists/{name}")
RESOURCE_TYPE_CREATE = Route("resource_type_create", "/w/{workspace}/resources/type/create")
SCRIPT_CREATE = Route("script_create", "/w/{workspace}/scripts/create")
SCRIPT_EXISTS = Route("script_exists", "/w/{workspace}/scripts/exists/p/{path}")
SCRIPT_STATUS = Route("script_status", "/w/{workspace}/scripts/deployment_status/h/{hash}")
FLOW_CREATE = Route("flow_create", "/w/{workspace}/flows/create")
FLOW_UPDATE = Route("flow_update", "/w/{workspace}/flows/update/{path}")
FLOW_EXISTS = Route("flow_exists", "/w/{workspace}/flows/exists/{path}")
FLOW_STATUS = Route("flow_status", "/w/{workspace}/flows/deployment_status/p/{path}")
SCHEDULE_GET = Route("schedule_get", "/w/{workspace}/schedules/get/{path}")
SCHEDULE_CREATE = Route("schedule_create", "/w/{workspace}/schedules/create")
SCHEDULE_UPDATE = Route("schedule_update", "/w/{workspace}/schedules/update/{path}")
SCRIPT_GET = SCRIPT  # scripts/get/p/{path} and flows/get/{path} are urls.py's (the client reads them too)
FLOW_GET = FLOW

# The scope a scoped token needs for each route (the emulator's reading of Windmill's scope names).
# In the description of everything `connect windmill` creates: what tells a later run the item is headrace's to
# update. The emulator's own stand-in targets (dev windmill's starter flow, --kit) carry it too: headrace put them
# there, so connect may replace them with the kit's.
MARK = "Created by headrace connect windmill"

DEPLOY_SCOPES = {
    WHOAMI.name: ("users", "read"),
    FOLDER_EXISTS.name: ("folders", "read"),
    FOLDER_CREATE.name: ("folders", "write"),
    VARIABLE_EXISTS.name: ("variables", "read"),
    VARIABLE_GET.name: ("variables", "read"),
    VARIABLE_CREATE.name: ("variables", "write"),
    VARIABLE_UPDATE.name: ("variables", "write"),
    RESOURCE_EXISTS.name: ("resources", "read"),
    RESOURCE_GET.name: ("resources", "read"),
    RESOURCE_CREATE.name: ("resources", "write"),
    RESOURCE_TYPE_EXISTS.name: ("resources", "read"),
    RESOURCE_TYPE_CREATE.name: ("resources", "write"),
    SCRIPT_CREATE.name: ("scripts", "write"),
    SCRIPT_EXISTS.name: ("scripts", "read"),
    SCRIPT_STATUS.name: ("scripts", "read"),
    FLOW_CREATE.name: ("flows", "write"),
    FLOW_UPDATE.name: ("flows", "write"),
    FLOW_EXISTS.name: ("flows", "read"),
    FLOW_STATUS.name: ("flows", "read"),
    SCHEDULE_GET.name: ("schedules", "read"),
    SCHEDULE_CREATE.name: ("schedules", "write"),
    SCHEDULE_UPDATE.name: ("schedules", "write"),
}
GETS = (
    WHOAMI,
    FOLDER_EXISTS,
    VARIABLE_EXISTS,
    VARIABLE_GET,
    RESOURCE_EXISTS,
    RESOURCE_GET,
    RESOURCE_TYPE_EXISTS,
    SCRIPT_EXISTS,
    SCRIPT_STATUS,
    FLOW_EXISTS,
    FLOW_STATUS,
    SCHEDULE_GET,
)
POSTS = (
    FOLDER_CREATE,
    VARIABLE_CREATE,
    VARIABLE_UPDATE,
    RESOURCE_CREATE,
    RESOURCE_TYPE_CREATE,
    SCRIPT_CREATE,
    FLOW_CREATE,
    FLOW_UPDATE,
    SCHEDULE_CREATE,
    SCHEDULE_UPDATE,
)
