"""A manager's readings CSV through the admin: checked on upload, imported by a worker in chunks
with its progress, bad cells refused row by row, resumed after a crash without counting twice."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import CommunityFactory, manager_of
from marketplace.ledger.models import MeterReading, ReadingImport, ReadingImportStatus
from marketplace.ledger.services import reading_imports
from marketplace.ledger.tasks import reading_import_run_task
from marketplace.models import Community, Interval
from marketplace.tests.factories import Member

HEADER = "meter_point,interval_start,imported_kwh,exported_kwh\n"
BAD_CELLS = ("1e30", "NaN", "Infinity", "-Infinity", "9" * 200, "-1", "0x10", '"1,5"')


def _upload(client: Client, community: Community, text: str) -> Any:
    upload = io.BytesIO(text.encode())
    upload.name = "readings.csv"
    url = reverse("admin:ledger_meterreading_import_csv")
    return client.post(url, {"community": community.pk, "file": upload})


def _page(client: Client, job: ReadingImport) -> str:
    url = reverse("admin:ledger_meterreading_import_status", args=[job.pk])
    return str(client.get(url).content.decode())


def test_a_50000_row_file_is_imported_in_the_background_with_progress(
    client: Client, community: Community, interval: Interval, alice: Member, manager: User,
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    start = interval.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    mp = alice.meter_point.pk
    lines = [f"{mp},{start},1.000,0\n"]
    lines += [f"{mp},{start},{cell},0\n" for cell in BAD_CELLS]
    lines += [f"{mp},{start},0,{cell}\n" for cell in BAD_CELLS]
    # The rest name a meter point that is not the community's: refused, one by one.
    lines += [f"999999999,{start},0.5,0\n"] * (50_000 - len(lines))
    client.force_login(manager)
    with django_capture_on_commit_callbacks() as queued:
        response = _upload(client, community, HEADER + "".join(lines))
    assert response.status_code == 302
    job = ReadingImport.objects.get()
    assert response["Location"] == reverse("admin:ledger_meterreading_import_status", args=[job.pk])
    assert len(queued) == 1  # the import is queued for a worker once the upload commits
    assert (job.status, job.rows_total, job.rows_done) == (ReadingImportStatus.QUEUED, 50_000, 0)
    assert not MeterReading.objects.exists()  # nothing imported inside the upload's request
    assert "Queued</strong>: 0 of 50000 rows" in _page(client, job)

    # A worker that dies after two chunks: what it committed stays, with its counters.
    real = reading_imports.meter_readings_import_rows
    calls = {"n": 0}

    def crash_after_two(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 2:
            raise SystemExit("worker lost")
        return real(**kwargs)

    monkeypatch.setattr(reading_imports, "meter_readings_import_rows", crash_after_two)
    with pytest.raises(SystemExit):
        reading_import_run_task(job.pk)
    job.refresh_from_db()
    assert (job.status, job.rows_done) == (ReadingImportStatus.RUNNING, 2_000)
    page = _page(client, job)
    assert "Running</strong>: 2000 of 50000 rows (4 %)" in page
    assert 'http-equiv="refresh"' in page

    # Redelivered, it goes on from there and counts each row once.
    monkeypatch.setattr(reading_imports, "meter_readings_import_rows", real)
    assert reading_import_run_task(job.pk) == 50_000
    job.refresh_from_db()
    assert job.status == ReadingImportStatus.DONE
    assert (job.accepted, job.unchanged, job.refused) == (1, 0, 49_999)
    assert len(job.refused_rows) == reading_imports.MAX_REPORTED_REFUSALS
    reading = MeterReading.objects.get()
    assert (reading.imported_kwh, reading.exported_kwh) == (1, 0)
    page = _page(client, job)
    assert "1 accepted, 0 unchanged, 49999 refused" in page
    assert 'http-equiv="refresh"' not in page
    # Each bad cell is refused on its own line with its reason; line 2 was the good row.
    reasons = {row["row"]: row["reason"] for row in job.refused_rows}
    assert set(range(3, 3 + 2 * len(BAD_CELLS))) <= set(reasons)
    assert "imported_kwh" in reasons[3]
    assert "exported_kwh" in reasons[3 + len(BAD_CELLS)]
    # Run again (a duplicate delivery): nothing changes.
    assert reading_import_run_task(job.pk) == 50_000
    assert MeterReading.objects.count() == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8"),
        (b"a,b,c\n1,2,3\n", "The first line must name the columns"),
        (HEADER.encode(), "The file has no readings"),
        ((HEADER + "1,2,3,4\n" * 100_001).encode(), "import at most 100,000"),
        (HEADER.encode() + b"1,\x00,3,4\n", "not CSV"),
        (HEADER.encode() + b'1,"' + b"x" * 200_000 + b'",0,0\n', "not CSV"),
    ],
    ids=["encoding", "header", "empty", "too-many-rows", "nul", "huge-cell"],
)
def test_a_file_of_the_wrong_shape_is_refused_on_the_form(
    client: Client, community: Community, manager: User, content: bytes, message: str
) -> None:
    client.force_login(manager)
    upload = io.BytesIO(content)
    upload.name = "readings.csv"
    url = reverse("admin:ledger_meterreading_import_csv")
    response = client.post(url, {"community": community.pk, "file": upload})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ReadingImport.objects.exists()


def test_imports_are_the_managers_own(client: Client, community: Community, manager: User) -> None:
    job = ReadingImport.objects.create(
        community=community, submitted_by=manager, content=HEADER, rows_total=0
    )
    stranger = manager_of(CommunityFactory.create())
    client.force_login(stranger)
    url = reverse("admin:ledger_meterreading_import_status", args=[job.pk])
    assert client.get(url).status_code == 404
