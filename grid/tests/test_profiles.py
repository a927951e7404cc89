"""Profiles: time-to-step mapping, SimBench's own, the standard ones and uploaded CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import simbench

from grid.networks import reference_network
from grid.powerflow import CompiledNetwork
from grid.profiles import (
    ProfilesInvalid,
    profiles_from_csv,
    simbench_profiles,
    standard_profiles,
    standard_shapes,
    year_step,
)

STEPS_2016 = 35136


@pytest.mark.parametrize(
    ("when", "step"),
    [
        (datetime(2025, 1, 1, 0, 0, tzinfo=UTC), 0),
        (datetime(2025, 1, 1, 0, 14, 59, tzinfo=UTC), 0),
        (datetime(2025, 1, 1, 0, 15, tzinfo=UTC), 1),
        (datetime(2025, 1, 2, 0, 0, tzinfo=UTC), 96),
        (datetime(2024, 12, 31, 23, 45, tzinfo=UTC), STEPS_2016 - 1),
        # 01:00 at UTC+1 is midnight UTC: the mapping is by UTC, whatever the display zone.
        (datetime(2025, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))), 0),
    ],
)
def test_year_step(when, step):
    assert year_step(when, STEPS_2016) == step


def test_year_step_needs_aware_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        year_step(datetime(2025, 1, 1), STEPS_2016)  # naive on purpose


RURAL = "1-LV-rural1--0-sw"
NOON = datetime(2025, 6, 21, 11, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rural():
    net = reference_network(RURAL)
    return net, CompiledNetwork.from_pandapower(net)


@pytest.fixture(scope="module")
def cigre():
    return CompiledNetwork.from_pandapower(reference_network("cigre_lv"))


def test_simbench_profiles_are_simbench_own_absolute_values(rural):
    net, compiled = rural
    profiles = simbench_profiles(RURAL, compiled)
    absolute = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
    for when in (NOON, NOON.replace(hour=1), datetime(2025, 12, 24, 17, 15, tzinfo=UTC)):
        step = year_step(when, 35136)
        powers = profiles.at(when)
        assert np.allclose(powers.load_mw, absolute[("load", "p_mw")].iloc[step].to_numpy())
        assert np.allclose(powers.load_mvar, absolute[("load", "q_mvar")].iloc[step].to_numpy())
        assert np.allclose(powers.sgen_mw, absolute[("sgen", "p_mw")].iloc[step].to_numpy())
    assert profiles.at(NOON.replace(hour=1)).sgen_mw.sum() == 0  # no sun at night


def test_standard_profiles_scale_each_element_by_its_rating(cigre):
    when = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)
    household, _ = standard_shapes()
    factor = household[year_step(when, len(household))]
    powers = standard_profiles(cigre).at(when)
    assert np.allclose(powers.load_mw, cigre.loads.p_mw * factor)
    assert np.allclose(powers.load_mvar, cigre.loads.q_mvar * factor)


def _csv(rows, header="step,load 0,sgen 0"):
    return header + "\n" + "\n".join(rows) + "\n"


def test_uploaded_day_profile_repeats_every_day(rural):
    _, compiled = rural
    rows = [f"{step},{0.5 if step == 44 else 0.1},{0.9 if step == 44 else 0.0}" for step in
            range(96)]  # fmt: skip
    profiles = profiles_from_csv(_csv(rows), compiled)
    for day in (datetime(2025, 1, 7, 11, 0, tzinfo=UTC), NOON):
        powers = profiles.at(day)
        assert powers.load_mw[0] == pytest.approx(0.5 * compiled.loads.p_mw[0])
        assert powers.sgen_mw[0] == pytest.approx(0.9 * compiled.sgens.p_mw[0])
    # Elements the file does not name follow the standard profiles.
    standard = standard_profiles(compiled).at(NOON)
    assert profiles.at(NOON).load_mw[1] == pytest.approx(standard.load_mw[1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (_csv(["0,1,1"], header="time,load 0"), "first column must be 'step'"),
        (_csv([f"{s},0.1" for s in range(96)], header="step,load 999"), "no load 999"),
        (_csv([f"{s},0.1" for s in range(96)], header="step,bus 1"), "is not 'load"),
        (_csv([f"{s},0.1,0.1" for s in range(96)], header="step,load 0,load 0"), "twice"),
        (_csv([f"{s},0.1,0" for s in range(95)]), "95 rows"),
        (_csv([f"{s},0.1,0" for s in range(95)] + ["96,0.1,0"]), "line 97: step '96'"),
        (_csv([f"{s},0.1,0" for s in range(95)] + ["95,x,0"]), "line 97, column 2: 'x'"),
        (_csv([f"{s},0.1,0" for s in range(95)] + ["95,-1,0"]), "outside 0 to 10"),
        (_csv([f"{s},0.1,0" for s in range(95)] + ["95,nan,0"]), "outside 0 to 10"),
        (_csv([f"{s},0.1,0" for s in range(95)] + ["95,0.1"]), "2 columns"),
    ],
)
def test_uploaded_profiles_are_validated(rural, text, message):
    with pytest.raises(ProfilesInvalid, match=message):
        profiles_from_csv(text, rural[1])
