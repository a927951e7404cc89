"""How a community chooses which controllable power the grid check curtails first."""

from __future__ import annotations

from enum import StrEnum


class CurtailmentPolicy(StrEnum):
    SENSITIVITY = "sensitivity"
    LAST_ON_FIRST_OFF = "last_on_first_off"
