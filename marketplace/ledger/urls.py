"""Statement pages: /ledger/statements/<community>/ and /<yyyy>-<mm>/ (page and CSV)."""

from django.urls import path, register_converter

from marketplace.ledger import views


class FourDigits:
    regex = "[0-9]{4}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return f"{value:04d}"


class TwoDigits(FourDigits):
    regex = "[0-9]{2}"

    def to_url(self, value: int) -> str:
        return f"{value:02d}"


register_converter(FourDigits, "yyyy")
register_converter(TwoDigits, "mm")

app_name = "ledger"

urlpatterns = [
    path("statements/<slug:slug>/", views.statement_index, name="statement_index"),
    path(
        "statements/<slug:slug>/<yyyy:year>-<mm:month>/",
        views.statement_page,
        name="statement",
    ),
    path(
        "statements/<slug:slug>/<yyyy:year>-<mm:month>/csv",
        views.statement_csv,
        name="statement_csv",
    ),
]
