"""The one domain error: a stable code, a human message and, where it applies, the field.

Services raise it; the API's exception handler turns it into a 400/403/404/409 with the code and
the field, and the pages show its message next to the field.
"""

from __future__ import annotations

from enum import StrEnum

from django.http import Http404


class ErrorCode(StrEnum):
    """Every refusal's code: services raise the domain ones, the API adds its transport ones.

    ``MEANINGS`` says what each means; the OpenAPI schema lists them (``marketplace.api.schema``).
    A code the API's framework produces that is not listed here is sent as ``invalid``.
    """

    INVALID = "invalid"
    REQUIRED = "required"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    CONFLICT = "conflict"
    NOT_APPROVED = "not_approved"
    SUSPENDED = "suspended"
    ALREADY_MEMBER = "already_member"
    INVALID_STATE = "invalid_state"
    INTERVAL_CLOSED = "interval_closed"
    OUT_OF_RANGE = "out_of_range"
    OVER_CAPACITY = "over_capacity"
    OWN_POSTING = "own_posting"
    OVER_ALLOCATED = "over_allocated"
    UNKNOWN_BUS = "unknown_bus"
    INVALID_NETWORK = "invalid_network"
    DUPLICATE = "duplicate"
    NOT_A_NUMBER = "not_a_number"
    TOO_PRECISE = "too_precise"
    NOT_AN_INTEGER = "not_an_integer"
    UNKNOWN_CHOICE = "unknown_choice"
    NOT_EDITABLE = "not_editable"
    INCONSISTENT_RULES = "inconsistent_rules"
    BIDDING_NOT_ALLOWED = "bidding_not_allowed"
    NOT_OWN_METER_POINT = "not_own_meter_point"
    WRONG_POSTING = "wrong_posting"
    FORBIDDEN_CHARACTER = "forbidden_character"
    NO_SUCH_MONTH = "no_such_month"
    BAD_DATETIME = "bad_datetime"
    NOT_UTF8 = "not_utf8"
    NOT_FLEXIBLE = "not_flexible"
    ALREADY_POSTED = "already_posted"
    BAD_CSV_HEADER = "bad_csv_header"
    INVALID_EMAIL = "invalid_email"
    WEAK_PASSWORD = "weak_password"  # noqa: S105 - an error code, not a password
    INACTIVE_USER = "inactive_user"
    UNBALANCED_LEDGER = "unbalanced_ledger"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PARSE_ERROR = "parse_error"
    THROTTLED = "throttled"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_REQUEST = "bad_request"
    NOT_CSV = "not_csv"
    SERVER_ERROR = "server_error"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INVALID_CHOICE = "invalid_choice"
    NULL = "null"
    BLANK = "blank"
    MAX_LENGTH = "max_length"
    MIN_LENGTH = "min_length"
    MAX_VALUE = "max_value"
    MIN_VALUE = "min_value"
    MAX_DIGITS = "max_digits"
    MAX_DECIMAL_PLACES = "max_decimal_places"
    MAX_WHOLE_DIGITS = "max_whole_digits"
    NOT_A_LIST = "not_a_list"
    EMPTY = "empty"
    MAKE_AWARE = "make_aware"
    METER_POINT_NOT_APPROVED = "meter_point_not_approved"
    ABOVE_MAX_CONNECTION = "above_max_connection"
    NOT_METERING_SOURCE = "not_metering_source"
    NEGATIVE_READING = "negative_reading"
    READING_JUMP = "reading_jump"
    BAD_RANGE = "bad_range"
    LINK_INVALID = "link_invalid"
    LINK_EXPIRED = "link_expired"
    LINK_USED = "link_used"


MEANINGS: dict[ErrorCode, str] = {
    ErrorCode.INVALID: (
        "A field's value is not of the expected type or format (the API's field validation)."
    ),
    ErrorCode.REQUIRED: "A required field or choice is missing.",
    ErrorCode.NOT_FOUND: "No such object, or not yours to see: the two look the same.",
    ErrorCode.PERMISSION_DENIED: "The role, or the token's scopes, do not allow this.",
    ErrorCode.CONFLICT: (
        "The action was already done (an interval cleared twice, a concurrent change)."
    ),
    ErrorCode.NOT_APPROVED: "The membership is not approved yet.",
    ErrorCode.SUSPENDED: "The membership is suspended: history stays readable, trading is refused.",
    ErrorCode.ALREADY_MEMBER: "A request to join this community exists already.",
    ErrorCode.INVALID_STATE: (
        "The object is in a state that does not allow this (e.g. a decided bid)."
    ),
    ErrorCode.INTERVAL_CLOSED: "The interval's gate has closed; no more orders or decisions.",
    ErrorCode.BAD_RANGE: (
        "A from/to pair (days, times) in the wrong order or spanning more than allowed."
    ),
    ErrorCode.OUT_OF_RANGE: "A number is outside its allowed range (not above 0, beyond the cap).",
    ErrorCode.OVER_CAPACITY: "The quantity exceeds the meter point's capacity for the interval.",
    ErrorCode.OWN_POSTING: "Members cannot bid on their own posting.",
    ErrorCode.OVER_ALLOCATED: "Accepting this would allocate more than the posting's quantity.",
    ErrorCode.UNKNOWN_BUS: "The bus is not a connection bus of the community's grid model.",
    ErrorCode.NOT_FLEXIBLE: "Only a purchase (a buy request) can be declared flexible.",
    ErrorCode.ALREADY_POSTED: (
        "The autopilot does not post: the member or the autopilot posted or bid for this meter "
        "point in the interval already."
    ),
    ErrorCode.INVALID_NETWORK: "The grid model is missing, or the uploaded network is not usable.",
    ErrorCode.DUPLICATE: "The value is taken already (e.g. an email address).",
    ErrorCode.NOT_A_NUMBER: (
        "Not a finite decimal number (floats are refused: give text or an exact decimal)."
    ),
    ErrorCode.TOO_PRECISE: (
        "More decimal places than the quantity's step (kWh 0.001, kW 0.001, price 0.0001)."
    ),
    ErrorCode.NOT_AN_INTEGER: "Not a whole number, or not an id.",
    ErrorCode.UNKNOWN_CHOICE: (
        "Not one of the allowed values (side, scope, market structure, time zone, ...)."
    ),
    ErrorCode.NOT_EDITABLE: "The field cannot be changed through this action.",
    ErrorCode.INCONSISTENT_RULES: (
        "Market rules that contradict each other (e.g. k-pricing outside a uniform auction)."
    ),
    ErrorCode.BIDDING_NOT_ALLOWED: (
        "The community clears all orders in one pool; post an order instead of bidding."
    ),
    ErrorCode.NOT_OWN_METER_POINT: "The meter point belongs to another membership.",
    ErrorCode.WRONG_POSTING: "The bid belongs to another posting.",
    ErrorCode.FORBIDDEN_CHARACTER: "The input holds a character that cannot be stored (NUL).",
    ErrorCode.NO_SUCH_MONTH: "The year and month do not name a month with a statement.",
    ErrorCode.BAD_DATETIME: "Not an ISO 8601 date and time with a time zone.",
    ErrorCode.NOT_UTF8: "The uploaded file is not UTF-8 text.",
    ErrorCode.BAD_CSV_HEADER: "The CSV file's first line does not name the expected columns.",
    ErrorCode.INVALID_EMAIL: "Not a valid email address.",
    ErrorCode.WEAK_PASSWORD: "The password fails the password rules (the message says which).",
    ErrorCode.INACTIVE_USER: "The user account is deactivated.",
    ErrorCode.UNBALANCED_LEDGER: (
        "Ledger lines that do not sum to zero, or name another community's account."
    ),
    ErrorCode.INVALID_IDEMPOTENCY_KEY: (
        "The Idempotency-Key header is empty, too long or not printable."
    ),
    ErrorCode.IDEMPOTENCY_IN_PROGRESS: (
        "A request with this Idempotency-Key is still being processed; retry shortly."
    ),
    ErrorCode.IDEMPOTENCY_KEY_REUSED: "The Idempotency-Key was used with a different request.",
    ErrorCode.NOT_AUTHENTICATED: "No credentials were sent.",
    ErrorCode.AUTHENTICATION_FAILED: "The credentials are invalid, expired or revoked.",
    ErrorCode.METHOD_NOT_ALLOWED: "The endpoint does not support this HTTP method.",
    ErrorCode.NOT_ACCEPTABLE: "The endpoint cannot answer in the requested media type.",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "Only application/json request bodies are accepted.",
    ErrorCode.PARSE_ERROR: "The request body is not valid JSON.",
    ErrorCode.THROTTLED: "Too many requests; see Retry-After.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The request body is larger than the server accepts.",
    ErrorCode.BAD_REQUEST: "The request is malformed and was refused before the endpoint saw it.",
    ErrorCode.NOT_CSV: "The file is not CSV the import can read (a NUL byte, an endless cell).",
    ErrorCode.SERVER_ERROR: "An error on the server; nothing was stored. Retrying may help.",
    ErrorCode.SERVICE_UNAVAILABLE: (
        "The database or the task broker is unreachable; nothing was stored. See Retry-After."
    ),
    ErrorCode.INVALID_CHOICE: "Not one of the field's choices.",
    ErrorCode.NULL: "The field may not be null.",
    ErrorCode.BLANK: "The field may not be blank.",
    ErrorCode.MAX_LENGTH: "The text is too long.",
    ErrorCode.MIN_LENGTH: "The text is too short.",
    ErrorCode.MAX_VALUE: "The number is too large.",
    ErrorCode.MIN_VALUE: "The number is too small.",
    ErrorCode.MAX_DIGITS: "The decimal has too many digits.",
    ErrorCode.MAX_DECIMAL_PLACES: "The decimal has too many decimal places.",
    ErrorCode.MAX_WHOLE_DIGITS: "The decimal has too many digits before the point.",
    ErrorCode.NOT_A_LIST: "A list was expected.",
    ErrorCode.EMPTY: "The list may not be empty.",
    ErrorCode.MAKE_AWARE: "The time does not exist in the time zone.",
    ErrorCode.METER_POINT_NOT_APPROVED: (
        "The meter point awaits its manager's approval (or was rejected): it cannot post, bid, "
        "report readings or settle yet."
    ),
    ErrorCode.ABOVE_MAX_CONNECTION: (
        "A capacity above the community's maximum connection (the `max_connection_kw` rule)."
    ),
    ErrorCode.NOT_METERING_SOURCE: (
        "Readings that settle money come only from a metering source: the manager's CSV "
        "import or a `meter_data` token a manager issued for the community."
    ),
    ErrorCode.NEGATIVE_READING: "A meter reading below 0 kWh.",
    ErrorCode.READING_JUMP: (
        "A reading far above the meter's history: stored but flagged, it settles only once a "
        "manager accepts it."
    ),
    ErrorCode.LINK_INVALID: "The link is not one PeerGrid made (mistyped, cut off or altered).",
    ErrorCode.LINK_EXPIRED: "The link is older than it may be; ask for a new one.",
    ErrorCode.LINK_USED: "The link was used already; each works once.",
}


# The HTTP status each code maps to; anything not listed is a 400.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_METERING_SOURCE: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.IDEMPOTENCY_IN_PROGRESS: 409,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 409,
    ErrorCode.NOT_AUTHENTICATED: 401,
    ErrorCode.AUTHENTICATION_FAILED: 401,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.SERVER_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}


class ApplicationError(Exception):
    """A rule of the domain refused an action; nothing was written."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ObjectNotFoundError(ApplicationError, Http404):
    """The object does not exist or is not the caller's to act on; the two look the same.

    An ``Http404`` as well, so a page that lets it through answers with the site's 404 page and
    the API with its ``not_found`` error (the field says which id).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(ErrorCode.NOT_FOUND, message, field=field)


# --- Outages --------------------------------------------------------------------------------
RETRY_AFTER_SECONDS = 30
UNAVAILABLE_MESSAGE = (
    "The service is briefly unavailable (its database or task broker cannot be reached); "
    "nothing was stored. Retry later."
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database or the broker is down, not a bug: a 503, not a 500."""
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(
        exc,
        OperationalError | InterfaceError | BrokerError | RedisConnectionError | RedisTimeoutError,
    )
