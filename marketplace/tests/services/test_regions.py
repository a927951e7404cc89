"""A region's market in the pipeline: three communities whose surplus and deficit meet before
the grid, the ledger's side of it, and which communities a period waits for."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from config.errors import ErrorCode
from marketplace.ledger.models import AccountKind, EntryKind, LedgerAccount, LedgerEntry
from marketplace.ledger.selectors import account_balance, member_balance
from marketplace.ledger.services import ledger_verify
from marketplace.models import (
    Interval,
    IntervalState,
    Region,
    RegionInterval,
    RegionPart,
    RegionResidual,
    RegionTrade,
    Trade,
    TradeSource,
)
from marketplace.services.pipeline import interval_advance, intervals_advance_due
from marketplace.services.regions import (
    RegionPeriod,
    region_communities_set,
    region_interval_clear,
    region_periods_due,
)
from marketplace.tests.factories import T0, member, new_community, open_interval
from marketplace.tests.fixtures import post, refused

D = Decimal
AFTER_GATE = T0 + timedelta(minutes=11)  # the first interval's gate is 09:10, its start 09:15
SETTLE = T0 + timedelta(hours=3)  # past the settlement window: readings are the schedule


def pool_community(**rules):
    return new_community(market_structure="pool", clearing_mechanism="uniform", **rules)


@pytest.fixture
def region_of_three(db):
    """A exports 6 kWh (two sellers), B imports 3, C imports 4 and exports 1 (its pool does not
    match them: the ask 0.35 is above the bid 0.20). Tariffs 0.32 retail, 0.08 feed-in.

    The region offers at 0.25 and requests at 0.75 of the way from feed-in to retail:
    A asks 6 kWh at 0.14, B bids 3 at 0.26, C bids its net 3 at 0.26. Supply meets demand at
    6 kWh with nothing excluded: [a, b] = [0.14, 0.26], p = 0.20 at k = 1/2.
    """
    a, b, c = pool_community(), pool_community(), pool_community()
    region = Region.objects.create(
        name="Valley", slug="valley", offer_k=D("0.25"), request_k=D("0.75")
    )
    region_communities_set(region=region, communities=[a, b, c])
    intervals = {name: open_interval(x) for name, x in (("a", a), ("b", b), ("c", c))}
    members = {
        "a1": member(a), "a2": member(a), "b1": member(b), "c1": member(c), "c2": member(c),
    }  # fmt: skip
    post(members["a1"], intervals["a"], "sell", "5", "0.30")
    post(members["a2"], intervals["a"], "sell", "1", "0.30")
    post(members["b1"], intervals["b"], "buy", "3", "0.10")
    post(members["c1"], intervals["c"], "buy", "4", "0.20")
    post(members["c2"], intervals["c"], "sell", "1", "0.35")
    return region, {"a": a, "b": b, "c": c}, intervals, members


def balance(community, kind) -> Decimal:
    return account_balance(account=LedgerAccount.objects.get(community=community, kind=kind))


def test_surplus_and_deficit_meet_before_the_grid_and_the_ledger_balances(region_of_three):
    region, communities, intervals, members = region_of_three
    _done, errors = intervals_advance_due(now=AFTER_GATE)
    assert errors == []
    for interval in intervals.values():
        interval.refresh_from_db()
        assert interval.state == IntervalState.CONFIRMED
    period = RegionInterval.objects.get(region=region, start=intervals["a"].start)
    assert (period.price_per_kwh, period.traded_kwh) == (D("0.2000"), D("6.000"))
    residuals = {r.community_id: r for r in RegionResidual.objects.filter(region_interval=period)}
    a, b, c = (residuals[communities[n].pk] for n in "abc")
    assert (a.side, a.quantity_kwh, a.limit_price_per_kwh, a.traded_kwh) == (
        "sell", D("6.000"), D("0.1400"), D("6.000"))  # fmt: skip
    assert (b.side, b.quantity_kwh, b.limit_price_per_kwh) == ("buy", D("3.000"), D("0.2600"))
    assert (c.import_kwh, c.export_kwh, c.side, c.quantity_kwh) == (
        D("4.000"), D("1.000"), "buy", D("3.000"))  # fmt: skip
    assert all(r.outside_kwh == 0 for r in residuals.values())  # nothing left for the grid
    trades = RegionTrade.objects.filter(region_interval=period)
    assert sorted((t.seller_id, t.buyer_id, t.quantity_kwh, t.price_per_kwh) for t in trades) == [
        (a.pk, b.pk, D("3.000"), D("0.2000")),
        (a.pk, c.pk, D("3.000"), D("0.2000")),
    ]
    # The members' trades (and so the grid check's schedule) are those of their communities.
    assert (
        Trade.objects.filter(interval__in=intervals.values(), source=TradeSource.GRID).count() == 5
    )

    _done, errors = intervals_advance_due(now=SETTLE)
    assert errors == []
    # The region's price replaces the tariffs: each member ends at 0.20 per kWh the region took.
    assert member_balance(membership=members["a1"].membership) == D("1.00")  # 5 x 0.20
    assert member_balance(membership=members["a2"].membership) == D("0.20")
    assert member_balance(membership=members["b1"].membership) == D("-0.60")  # 3 x 0.20
    # c1: 3 kWh from the region at 0.20, 1 kWh (matched by c2's export) at retail.
    assert member_balance(membership=members["c1"].membership) == D("-0.92")
    assert member_balance(membership=members["c2"].membership) == D("0.08")
    a_, b_, c_ = (communities[n] for n in "abc")
    # The region accounts: A is owed 1.20, B and C owe 0.60 each, summing to zero.
    assert [balance(x, AccountKind.REGION) for x in (a_, b_, c_)] == [
        D("-1.20"), D("0.60"), D("0.60")]  # fmt: skip
    # Grid accounts as if the 6 kWh never met the grid: C still pays retail for 1 kWh and
    # receives feed-in for the 1 kWh its pool exported.
    assert [balance(x, AccountKind.GRID) for x in (a_, b_, c_)] == [D("0.00"), D("0.00"),
                                                                     D("0.24")]  # fmt: skip
    shares = LedgerEntry.objects.filter(kind=EntryKind.REGION_SHARE).order_by("sequence")
    assert [(e.amount, e.energy_kwh, e.price_per_kwh) for e in shares] == [
        (D("0.60"), D("5.000"), D("0.1200")),
        (D("0.12"), D("1.000"), D("0.1200")),
        (D("0.36"), D("3.000"), D("0.1200")),
        (D("0.36"), D("3.000"), D("0.1200")),
    ]
    for transaction_id in LedgerEntry.objects.values_list("transaction", flat=True).distinct():
        amounts = LedgerEntry.objects.filter(transaction=transaction_id).values_list("amount")
        assert sum(x for (x,) in amounts) == 0
    assert ledger_verify().ok
    assert all(ledger_verify(community=x).ok for x in (a_, b_, c_))


def test_the_region_waits_for_its_communities_until_delivery_begins(region_of_three):
    region, communities, intervals, _ = region_of_three
    # A and B clear and confirm; C's clearing has not run yet.
    intervals_advance_due(now=AFTER_GATE, communities=[communities["a"], communities["b"]])
    start = intervals["a"].start
    assert not RegionInterval.objects.filter(region=region, start=start).exists()
    assert region_periods_due(now=AFTER_GATE) == []
    assert (
        region_interval_clear(
            region_id=region.pk, start=start, end=intervals["a"].end, now=AFTER_GATE
        )
        is None
    )
    # At the start of delivery the region goes ahead without C, whose interval is late. A's
    # 6 kWh at 0.14 against B's 3 at 0.26: the best excluded ask is A's own 0.14, so
    # [a, b] = [0.14, min(0.26, 0.14)] and the price is 0.14.
    period = region_interval_clear(region_id=region.pk, start=start, end=intervals["a"].end,
                                   now=start)  # fmt: skip
    assert period is not None
    assert (period.price_per_kwh, period.traded_kwh) == (D("0.1400"), D("3.000"))
    parts = dict(period.residuals.values_list("community_id", "part"))
    assert parts[communities["c"].pk] == RegionPart.LATE
    # Once cleared, a period never clears again.
    assert region_interval_clear(region_id=region.pk, start=start, end=intervals["a"].end,
                                 now=start) is None  # fmt: skip


def test_a_held_community_lets_the_others_trade_without_it(region_of_three):
    region, communities, intervals, members = region_of_three
    intervals_advance_due(now=AFTER_GATE, communities=[communities["a"], communities["c"]])
    b = intervals["b"]
    # B clears; its grid check holds the interval for the manager.
    for state in (IntervalState.GATE_CLOSED, IntervalState.CLEARED):
        assert interval_advance(interval_id=b.pk, to_state=state, now=AFTER_GATE)
    Interval.objects.filter(pk=b.pk).update(held_reason="infeasible")
    due = region_periods_due(now=AFTER_GATE)
    assert [(p.region_id, p.start) for p in due] == [(region.pk, b.start)]
    intervals_advance_due(now=AFTER_GATE)
    period = RegionInterval.objects.get(region=region, start=b.start)
    parts = dict(period.residuals.values_list("community_id", "part"))
    assert parts[communities["b"].pk] == RegionPart.HELD
    # A's surplus meets C's deficit only, at A's ask (A's 4th kWh is the best excluded ask).
    assert (period.price_per_kwh, period.traded_kwh) == (D("0.1400"), D("3.000"))
    # B, released and settled later, is settled against the grid alone.
    Interval.objects.filter(pk=b.pk).update(held_reason="")
    intervals_advance_due(now=SETTLE)
    assert member_balance(membership=members["b1"].membership) == D("-0.96")  # 3 x retail
    # a1: 5 kWh at feed-in plus 5/6 of (0.14 - 0.08) x 3 kWh.
    assert member_balance(membership=members["a1"].membership) == D("0.55")
    assert ledger_verify().ok


def test_a_community_belongs_to_one_region_at_most(db):
    first, second = pool_community(), pool_community()
    valley = Region.objects.create(name="Valley", slug="valley")
    hills = Region.objects.create(name="Hills", slug="hills")
    region_communities_set(region=valley, communities=[first, second])
    with refused(ErrorCode.CONFLICT, "communities"):
        region_communities_set(region=hills, communities=[second])
    region_communities_set(region=valley, communities=[first])
    second.refresh_from_db()
    assert second.region_id is None
    region_communities_set(region=hills, communities=[second])
    assert list(hills.communities.all()) == [second]


@pytest.fixture
def cleared_region(region_of_three):
    intervals_advance_due(now=AFTER_GATE)
    intervals_advance_due(now=SETTLE)
    return region_of_three


def test_the_api_shows_volumes_and_prices_between_communities(cleared_region):
    from rest_framework.test import APIClient

    from accounts.models import User

    _region, communities, _intervals, members = cleared_region
    regulator = User.objects.create_user("regulator@region.test", "pw", is_regulator=True)
    client = APIClient()
    client.force_login(regulator)
    regions = client.get("/api/v1/regions/").json()["results"]
    assert [
        (r["slug"], r["offer_k"], r["request_k"], sorted(r["communities"])) for r in regions
    ] == [("valley", "0.250", "0.750", sorted(c.slug for c in communities.values()))]
    page = client.get("/api/v1/region-intervals/", {"region": "valley"}).json()["results"]
    traded = [p for p in page if p["traded_kwh"] != "0.000"]
    assert len(traded) == 1
    period = traded[0]
    assert (period["price_per_kwh"], period["traded_kwh"]) == ("0.2000", "6.000")
    by_slug = {r["community"]: r for r in period["residuals"]}
    a, c = by_slug[communities["a"].slug], by_slug[communities["c"].slug]
    assert (a["side"], a["quantity_kwh"], a["traded_kwh"], a["outside_kwh"]) == (
        "sell", "6.000", "6.000", "0.000")  # fmt: skip
    assert (c["import_kwh"], c["export_kwh"], c["limit_price_per_kwh"]) == (
        "4.000", "1.000", "0.2600")  # fmt: skip
    assert sorted((t["seller"], t["buyer"], t["quantity_kwh"]) for t in period["trades"]) == sorted(
        [(communities["a"].slug, communities[x].slug, "3.000") for x in "bc"]
    )
    # A member of one of the communities reads its region; someone outside it reads none.
    client.force_login(members["b1"].membership.user)
    assert len(client.get("/api/v1/region-intervals/").json()["results"]) == len(page)
    outsider = member(pool_community())
    client.force_login(outsider.membership.user)
    assert client.get("/api/v1/regions/").json()["results"] == []
    assert client.get("/api/v1/region-intervals/").json()["results"] == []
    # Read-only, and bad filters are a 400 naming the field.
    assert client.post("/api/v1/region-intervals/", {}, format="json").status_code == 405
    bad = client.get("/api/v1/region-intervals/", {"start_after": "yesterday"})
    assert bad.status_code == 400
    assert "start_after" in str(bad.json())


def test_the_regulators_dashboard_shows_trade_between_communities(cleared_region):
    from django.test import Client

    from accounts.models import User

    _region, communities, _intervals, _members = cleared_region
    regulator = User.objects.create_user("regulator@region.test", "pw", is_regulator=True)
    client = Client()
    client.force_login(regulator)
    query = {"date_from": "2026-03-02", "date_to": "2026-03-02"}
    page = client.get("/regulator/regions/", query)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Energy traded between communities" in text
    assert "energy between communities (kWh)" in text
    csv_text = client.get("/regulator/regions/csv/region_flows/", query).content.decode()
    rows = [line.split(",") for line in csv_text.strip().splitlines()]
    assert rows[0] == ["community", "region", "bought_kwh", "bought_price_per_kwh", "sold_kwh",
                       "sold_price_per_kwh", "outside_kwh"]  # fmt: skip
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name[communities["a"].name][4:6] == ["6.000", "0.2000"]
    assert by_name[communities["b"].name][2:4] == ["3.000", "0.2000"]
    volumes = client.get("/regulator/regions/csv/regions/", query).content.decode()
    assert ",6.000,0.2000,6.000,6.000,0.000" in volumes
    # The community filter narrows the flows to that community.
    only_b = client.get("/regulator/regions/csv/region_flows/",
                        {**query, "community": communities["b"].slug}).content.decode()  # fmt: skip
    assert [line.split(",")[0] for line in only_b.strip().splitlines()[1:]] == [
        communities["b"].name
    ]


def test_an_operator_creates_a_region_in_the_admin(db):
    from django.test import Client

    from accounts.models import User

    first, second, third = pool_community(), pool_community(), pool_community()
    operator = User.objects.create_superuser("operator@region.test", "pw")
    client = Client()
    client.force_login(operator)
    form = {
        "name": "Valley", "slug": "valley", "description": "", "clearing_mechanism": "uniform",
        "pricing_k": "0.5", "offer_k": "0.25", "request_k": "0.75",
        "communities": [first.pk, second.pk],
    }  # fmt: skip
    response = client.post("/admin/marketplace/region/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    valley = Region.objects.get(slug="valley")
    assert sorted(c.pk for c in valley.communities.all()) == sorted([first.pk, second.pk])
    # A second region cannot take a community the first one holds; the page says why.
    hills = {**form, "name": "Hills", "slug": "hills", "communities": [second.pk, third.pk]}
    page = client.post("/admin/marketplace/region/add/", hills)
    assert page.status_code == 200
    assert "belongs to at most one region" in page.content.decode()
    assert not Region.objects.filter(slug="hills").exists()
    # An out-of-range k is a form error, not a server error.
    page = client.post("/admin/marketplace/region/add/", {**hills, "communities": [third.pk],
                                                          "offer_k": "1.5"})  # fmt: skip
    assert page.status_code == 200
    assert not Region.objects.filter(slug="hills").exists()
    # The community's own page shows its region but cannot change it.
    html = client.get(f"/admin/marketplace/community/{first.pk}/change/").content.decode()
    assert "Valley" in html
    assert 'name="region"' not in html


def test_beat_queues_a_due_region_period_and_its_task_clears_it_once(
    region_of_three, monkeypatch, django_capture_on_commit_callbacks
):
    from marketplace.services import pipeline
    from marketplace.tasks import region_clear_task

    region, _communities, intervals, _members = region_of_three
    for interval in intervals.values():
        for state in (IntervalState.GATE_CLOSED, IntervalState.CLEARED,
                      IntervalState.GRID_CHECKED, IntervalState.CONFIRMED):  # fmt: skip
            assert interval_advance(interval_id=interval.pk, to_state=state, now=AFTER_GATE)
    queued: list[RegionPeriod] = []
    monkeypatch.setattr(pipeline, "dispatch_region", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.pipeline_tick(now=AFTER_GATE, dispatch=lambda step: None)
    start, end = intervals["a"].start, intervals["a"].end
    assert [(p.region_id, p.start, p.end) for p in queued] == [(region.pk, start, end)]
    assert region_clear_task.run(region.pk, start.isoformat(), end.isoformat()) is True
    assert region_clear_task.run(region.pk, start.isoformat(), end.isoformat()) is False
    assert RegionInterval.objects.get(region=region, start=start).traded_kwh == D("6.000")
    assert region_periods_due(now=AFTER_GATE) == []


def test_the_confirmed_periods_statement_selects_what_the_orm_query_does(region_of_three):
    from django.db.models import Exists, OuterRef

    from marketplace.services.regions import _confirmed_periods

    region, communities, intervals, _ = region_of_three
    intervals_advance_due(now=AFTER_GATE, communities=[communities["a"], communities["b"]])
    cleared = RegionInterval.objects.filter(
        region_id=OuterRef("community__region_id"), start=OuterRef("start"), end=OuterRef("end")
    )

    def orm(**filters):
        return set(
            Interval.objects.filter(
                state=IntervalState.CONFIRMED, community__region__isnull=False, **filters
            )
            .filter(~Exists(cleared))
            .values_list("community__region_id", "start", "end")
        )

    before = orm()
    assert before
    assert _confirmed_periods(None) == before
    assert _confirmed_periods(region.pk) == orm(community__region=region) == before
    assert _confirmed_periods(region.pk + 1000) == set()
    start = intervals["a"].start
    assert region_interval_clear(region_id=region.pk, start=start, end=intervals["a"].end,
                                 now=start) is not None  # fmt: skip
    assert _confirmed_periods(None) == orm() == before - {(region.pk, start, intervals["a"].end)}
