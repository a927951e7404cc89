"""Network use of transfers by impedance-weighted flow factors, on CIGRE LV and SimBench rural."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grid.network_use import network_use
from grid.networks import connection_buses, reference_network

# CIGRE LV: bus 19 (R18) ends the residential feeder, bus 3 (R2) sits next to its transformer,
# 22 (I2) is behind the industrial transformer and 41 (C17) the commercial feeder's end.
RES_FAR, RES_NEAR, INDUSTRIAL, COMMERCIAL_FAR = 19, 3, 22, 41


@pytest.fixture(scope="module")
def cigre_use():
    return network_use(reference_network("cigre_lv"))


@pytest.fixture(scope="module")
def rural_use():
    return network_use(reference_network("1-LV-rural1--0-sw"))


def test_one_bus_pays_nothing_across_the_transformer_most(cigre_use):
    same_bus = cigre_use.pair_use(RES_FAR, RES_FAR)
    neighbours = cigre_use.pair_use(RES_FAR, 18)
    along_the_feeder = cigre_use.pair_use(RES_FAR, RES_NEAR)
    across_transformers = cigre_use.pair_use(RES_FAR, COMMERCIAL_FAR)
    assert same_bus == 0.0
    assert 0 < neighbours < along_the_feeder < across_transformers
    # Across the two transformers is the path from one feeder head to the other: both heads.
    assert across_transformers == pytest.approx(
        cigre_use.head_use(RES_FAR) + cigre_use.head_use(COMMERCIAL_FAR), rel=0.02
    )


def test_the_average_meter_point_uses_one_unit_from_the_feeder_head(cigre_use, rural_use):
    for name, use in (("cigre_lv", cigre_use), ("1-LV-rural1--0-sw", rural_use)):
        heads = [use.head_use(b) for b in connection_buses(reference_network(name))]
        assert np.mean(heads) == pytest.approx(1.0)


def test_on_a_radial_feeder_use_adds_up_along_the_path(rural_use):
    # SimBench rural 1 is radial: bus 4 -> 5 -> 13 -> 11 -> 6 -> 3 (the transformer's LV bus).
    path = rural_use.pair_use(4, 13) + rural_use.pair_use(13, 3)
    assert rural_use.pair_use(4, 3) == pytest.approx(path, rel=0.02)


def test_a_transfer_is_used_alike_in_both_directions(rural_use):
    assert rural_use.pair_use(4, 10) == pytest.approx(rural_use.pair_use(10, 4), rel=0.02)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, 3, 12, 19, 22, 24, 35, 41]),
            st.sampled_from([None, 3, 12, 19, 22, 24, 35, 41]),
        ),
        max_size=20,
    )
)
def test_many_pairs_at_once_equal_one_by_one(cigre_use, pairs):
    together = cigre_use.pair_uses(pairs)
    one_by_one = [cigre_use.pair_use(s, b) for s, b in pairs]
    assert together == pytest.approx(one_by_one)
    assert (together >= 0).all()


def test_an_unknown_bus_is_refused(cigre_use):
    with pytest.raises(ValueError, match="bus 999"):
        cigre_use.pair_use(999, None)
