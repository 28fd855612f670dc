"""The calibration fields of a channel profile: mac_efficiency, mcs_fixed, mcs_snr_offset_db."""
from __future__ import annotations

import numpy as np
import pytest

from vfedsim.errors import ScenarioError
from vfedsim.scenario import MCS_TABLE_SIZES, ChannelProfile, load_channel_profile
from vfedsim.world.channel import MCS_TABLES, per_from_snr, rate_from_snr_bps, usable_snr_db
from vfedsim.world.radio import Radio

MCS = dict(rate_mapping="mcs", mcs_table="ieee80211p")


def test_table_sizes_match_the_tables():
    assert MCS_TABLE_SIZES == {name: len(t.rates_bps) for name, t in MCS_TABLES.items()}


def test_mac_efficiency_scales_the_rate_per_mcs():
    snr = np.array([9.5, 13.0, 30.0])  # 3, 6 and 27 Mbit/s by link adaptation
    plain = rate_from_snr_bps(ChannelProfile(**MCS), 10e6, snr, goodput=False)
    np.testing.assert_allclose(plain, [3e6, 6e6, 27e6])
    eff = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)
    got = rate_from_snr_bps(ChannelProfile(**MCS, mac_efficiency=eff), 10e6, snr, goodput=False)
    np.testing.assert_allclose(got, [0.9 * 3e6, 0.7 * 6e6, 0.2 * 27e6])
    shannon = ChannelProfile(mac_efficiency=0.5)
    np.testing.assert_allclose(rate_from_snr_bps(shannon, 1e6, 10.0), 0.5 * rate_from_snr_bps(ChannelProfile(), 1e6, 10.0))


def test_fixed_mcs_and_snr_offset():
    fixed = ChannelProfile(**MCS, mcs_fixed=2)  # 6 Mbit/s, minimum SNR 12 dB
    np.testing.assert_allclose(rate_from_snr_bps(fixed, 10e6, [11.0, 12.0, 40.0], goodput=False), [0.0, 6e6, 6e6])
    assert usable_snr_db(fixed) == 12.0
    shifted = ChannelProfile(**MCS, mcs_fixed=2, mcs_snr_offset_db=-5.0)
    assert usable_snr_db(shifted) == 7.0
    # the PER curve moves with the minimum SNR: 10 % at it
    assert float(per_from_snr(shifted, 7.0)) == pytest.approx(0.1) and float(per_from_snr(fixed, 12.0)) == pytest.approx(0.1)
    radio = Radio(profile=shifted.model_copy(update={"min_snr_db": 7.0}), rsu_xy=[[0.0, 0.0]], rsu_height_m=5.0, seed=0)
    assert radio.min_usable_snr_db == 7.0


@pytest.mark.parametrize("fields, message", [
    ({"mac_efficiency": (0.5, 0.5)}, "one value per MCS"),
    ({"mac_efficiency": 1.5}, "mac_efficiency"),
    ({"mcs_fixed": 8}, "0 .. 7"),
])
def test_bad_calibration_fields(fields, message):
    with pytest.raises(ScenarioError, match=message):
        load_channel_profile("log-distance", {**MCS, **fields})
    with pytest.raises(ScenarioError, match="rate_mapping 'mcs'"):
        load_channel_profile("log-distance", {"mcs_fixed": 1})
