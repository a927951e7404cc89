"""The simulation bench's population trades peer to peer in winter, and nobody posts silently."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from bench.bench_simulation import scenario
from marketplace.models import Interval, IntervalState, Posting, Trade, TradeSource
from simulation.engine import NO_NEED, Simulation, simulation_setup
from simulation.report import report_build
from simulation.scenario import scenario_parse

# A mid-December day: next to no PV, the community's wind and CHP and the batteries supply it.
WINTER_DAY = "2026-12-15T00:00:00Z"


@pytest.mark.django_db
def test_a_winter_day_of_the_bench_population_trades_peer_to_peer() -> None:
    data = scenario(6, 96, "1-LV-urban6--0-sw", WINTER_DAY)
    outcome = simulation_setup(scenario=scenario_parse(data))
    Simulation(outcome).run()
    assert outcome.errors == []
    intervals = Interval.objects.filter(
        community=outcome.community, start__in=[r.start for r in outcome.records]
    )
    assert intervals.filter(state=IntervalState.SETTLED).count() == 96
    peer = Trade.objects.filter(interval__in=intervals, source=TradeSource.POOL)
    assert peer.aggregate(kwh=Sum("confirmed_kwh"))["kwh"] > 10
    sellers = {p.meter_point.pk: p for p in outcome.participants}
    sold_by = {sellers[mp].agent.key for mp in peer.values_list("seller_meter_point", flat=True)}
    assert {"plant-01", "plant-02"} <= sold_by
    # Every member-interval either posted or says why not: no agent is silent.
    posted = Posting.objects.filter(interval__in=intervals).count()
    assert posted + sum(outcome.unposted.values()) == len(outcome.participants) * 96
    assert set(outcome.unposted) <= {NO_NEED}
    report = report_build(outcome)
    # The households buying from peers below retail pay less than without trading.
    assert report.summary.savings > 0
    assert report.summary.p2p_kwh == pytest.approx(
        float(peer.aggregate(q=Sum("confirmed_kwh"))["q"]), abs=0.001
    )
