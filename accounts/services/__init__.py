"""Writes for accounts, one module per entity: users, memberships, meter points, API tokens and
the audit log. One transaction each.

Permission checks call `accounts.permissions` from inside the service, so every channel (pages,
admin, API, commands) gets the same answer. An actor of `None` means the system itself (seeding,
an operator's management command) and is not checked. The names are re-exported here so a caller
writes `from accounts import services` and `services.membership_approve(...)`.
"""

from accounts.services.api_tokens import (
    TOKEN_LAST_USED_RESOLUTION,
    TOKEN_USE_AUDIT_SECONDS,
    api_token_create,
    api_token_revoke,
    api_token_touch,
)
from accounts.services.audit import audit_record, sign_in_failure_record
from accounts.services.memberships import (
    community_manager_add,
    membership_approve,
    membership_reinstate,
    membership_reject,
    membership_request,
    membership_suspend,
)
from accounts.services.meter_points import (
    METER_POINT_EDITABLE,
    check_bus,
    check_max_connection,
    meter_point_approve,
    meter_point_assign_bus,
    meter_point_check_values,
    meter_point_register,
    meter_point_reject,
    meter_point_update,
)
from accounts.services.sign_up import (
    SIGN_UP_LINK_MAX_AGE,
    sign_up_link_check,
    sign_up_request,
    user_sign_up_confirm,
)
from accounts.services.users import regulator_grant, regulator_revoke, user_create

__all__ = [
    "METER_POINT_EDITABLE",
    "SIGN_UP_LINK_MAX_AGE",
    "TOKEN_LAST_USED_RESOLUTION",
    "TOKEN_USE_AUDIT_SECONDS",
    "api_token_create",
    "api_token_revoke",
    "api_token_touch",
    "audit_record",
    "check_bus",
    "check_max_connection",
    "community_manager_add",
    "membership_approve",
    "membership_reinstate",
    "membership_reject",
    "membership_request",
    "membership_suspend",
    "meter_point_approve",
    "meter_point_assign_bus",
    "meter_point_check_values",
    "meter_point_register",
    "meter_point_reject",
    "meter_point_update",
    "regulator_grant",
    "regulator_revoke",
    "sign_in_failure_record",
    "sign_up_link_check",
    "sign_up_request",
    "user_create",
    "user_sign_up_confirm",
]
