"""Reads behind the regulators' dashboards, one module per dashboard: every figure aggregated in
the database. The names are re-exported here (``selectors.prices(scope)``).

Each chart's data is a ``Table`` (column names and rows), so the page's chart, its table and its
CSV export are the same numbers. Sums, averages, minima and maxima run in SQL grouped by time
bucket, community or member; Python only combines at most one row per member (the fair-access
figures need each member's total to rank them: Gini, HHI, groups).

Anonymised by construction: no selector here reads a user, an email address or a pseudonym; the
finest grain any of them returns is a group of members.

Definitions (the README repeats them):

* delivered energy of a trade = ``confirmed_kwh`` once confirmed, else ``quantity_kwh -
  curtailed_kwh``; peer-to-peer (P2P) trades are ``bilateral`` and ``pool`` trades.
* energy from the grid = the community's ``grid`` trades buying + positive settlement imbalances
  (metered more than scheduled); energy to the grid = ``grid`` trades selling + negative ones.
* self-sufficiency = P2P energy / (P2P energy + energy from the grid): the share of the members'
  consumption bought from each other. self-consumption = P2P energy / (P2P energy + energy to the
  grid): the share of the members' generation used inside the community.
* a member's savings against the grid tariff = sum of bought kWh * (retail tariff - price paid)
  + sum of sold kWh * (price received - feed-in tariff), with the tariffs of the interval's rules.
* Gini of savings over every approved member (a loss counts as zero saving); seller HHI =
  sum of (seller's share of the community's P2P energy sold, in %)², 0 to 10,000.
"""

from marketplace.oversight.selectors.access_dashboard import (
    ACCESS_COLUMNS,
    DISADVANTAGE_RATIO,
    PRICE_GAP,
    PV_GROUPS,
    SavingsSummary,
    access_by_group,
    gini,
    hhi,
    member_figures,
    pv_group,
    savings_distribution,
    seller_concentration,
)
from marketplace.oversight.selectors.common import (
    DEFAULT_DAYS,
    ENERGY,
    MONEY,
    P2P_SOURCES,
    PER_INTERVAL_MAX,
    ZERO,
    Scope,
    Table,
    bucket_of,
    dec,
    default_scope,
    delivered_kwh,
    in_scope,
    p2p_trades,
    ratio,
    rows_of,
    scope_timezone,
    sum_if,
)
from marketplace.oversight.selectors.integrity_dashboard import Integrity, integrity
from marketplace.oversight.selectors.network_costs import (
    COSTS_COLUMNS,
    network_costs,
    strength_events,
)
from marketplace.oversight.selectors.network_dashboard import (
    curtailment_reasons,
    network,
    violations_by_kind,
)
from marketplace.oversight.selectors.prices_dashboard import prices
from marketplace.oversight.selectors.region_dashboard import region_flows, region_volumes
from marketplace.oversight.selectors.volumes_dashboard import community_sufficiency, volumes

__all__ = [
    "ACCESS_COLUMNS",
    "COSTS_COLUMNS",
    "DEFAULT_DAYS",
    "DISADVANTAGE_RATIO",
    "ENERGY",
    "MONEY",
    "P2P_SOURCES",
    "PER_INTERVAL_MAX",
    "PRICE_GAP",
    "PV_GROUPS",
    "ZERO",
    "Integrity",
    "SavingsSummary",
    "Scope",
    "Table",
    "access_by_group",
    "bucket_of",
    "community_sufficiency",
    "curtailment_reasons",
    "dec",
    "default_scope",
    "delivered_kwh",
    "gini",
    "hhi",
    "in_scope",
    "integrity",
    "member_figures",
    "network",
    "network_costs",
    "p2p_trades",
    "prices",
    "pv_group",
    "ratio",
    "region_flows",
    "region_volumes",
    "rows_of",
    "savings_distribution",
    "scope_timezone",
    "seller_concentration",
    "strength_events",
    "sum_if",
    "violations_by_kind",
    "volumes",
]
