"""The accounts app: users, roles, memberships, meter points, tokens and the audit log."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and memberships"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401 - connects the audit receivers
