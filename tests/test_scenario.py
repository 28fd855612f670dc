from pathlib import Path

import pytest

from vfedsim.errors import ScenarioError
from vfedsim.scenario import Scenario, apply_overrides, load_channel_profile, load_scenario_file, parse_scenario

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["tiny.yaml", "quickstart.yaml"])
def test_shipped_scenarios_validate(name):
    s = load_scenario_file(REPO / "scenarios" / name)
    assert isinstance(s, Scenario)
    assert s.world.channel.profile == "log-distance"


def test_defaults_are_complete_and_frozen():
    s = parse_scenario({})
    with pytest.raises(Exception):
        s.seed = 3  # frozen
    assert s.to_dict()["world"]["channel"]["bandwidth_hz"] > 0


def test_profile_is_merged_and_overridden():
    s = parse_scenario({"world": {"channel": {"profile": "3gpp-highway", "bandwidth_hz": 1e6}}})
    assert s.world.channel.path_loss.model == "3gpp-highway-los"
    assert s.world.channel.bandwidth_hz == 1e6
    assert s.world.channel.noise_figure_db == 9.0
    assert load_channel_profile("3gpp-highway").bandwidth_hz == 10e6


def test_set_overrides_parse_yaml_values_and_index_lists():
    raw = {"fleet": {"device_classes": [{"name": "a", "flops_per_s": 1e9, "compute_power_w": 5}]}}
    out = apply_overrides(raw, ["strategy.rounds=7", "fleet.device_classes.0.flops_per_s=2e9",
                                "world.network.handover=drop"])
    s = parse_scenario(out)
    assert s.strategy.rounds == 7 and s.fleet.device_classes[0].flops_per_s == 2e9
    assert s.world.network.handover == "drop"
    assert raw["fleet"]["device_classes"][0]["flops_per_s"] == 1e9  # input untouched


@pytest.mark.parametrize("raw, pattern", [
    ({"strategy": {"deadlin_s": 3}}, r"^strategy\.deadlin_s: unknown key; did you mean 'deadline_s'\? allowed: "),
    ({"world": {"channel": {"bandwidth_hz": -1}}}, r"^world\.channel\.bandwidth_hz: input should be greater than 0"),
    ({"world": {"channel": {"profile": "nope"}}}, r"^world\.channel\.profile: unknown channel profile 'nope'; allowed: .*log-distance"),
    ({"learning": {"tasks": ["maneuvr"]}}, r"^learning\.tasks\.0: invalid value 'maneuvr'; did you mean 'maneuver'"),
    ({"world": {"channel": {"path_loss": {"model": "x"}}}}, r"^world\.channel\.path_loss\.model: unknown 'x'; allowed: free-space"),
    ({"world": {"traffic": {"speed": {"min_kmh": 90, "max_kmh": 50}}}}, r"^world\.traffic\.speed: min_kmh must not exceed max_kmh"),
    ({"learning": {"model": {"d_model": 30, "heads": 4}}}, r"^learning\.model: d_model \(30\) must be a multiple of heads"),
    ([1, 2], r"a scenario must be a mapping"),
])
def test_bad_input_is_one_line_with_key_path(raw, pattern):
    with pytest.raises(ScenarioError, match=pattern) as info:
        parse_scenario(raw)
    assert "\n" not in str(info.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {road: [\n")
    with pytest.raises(ScenarioError, match=r"^scenario: malformed YAML in .*bad\.yaml' at line \d+"):
        load_scenario_file(bad)
    with pytest.raises(ScenarioError, match=r"^scenario: file not found"):
        load_scenario_file(tmp_path / "missing.yaml")


def test_bad_set_syntax():
    with pytest.raises(ScenarioError, match=r"^--set: expected dotted.key=value"):
        apply_overrides({}, ["strategy.rounds"])
    with pytest.raises(ScenarioError, match=r"^strategy\.rounds: is a value"):
        apply_overrides({"strategy": {"rounds": 3}}, ["strategy.rounds.x=1"])


def test_profile_by_path_relative_to_scenario(tmp_path):
    (tmp_path / "mine.yaml").write_text("carrier_hz: 2.0e9\npath_loss: {model: free-space}\n")
    (tmp_path / "s.yaml").write_text("world: {channel: {profile: mine.yaml, min_snr_db: 3}}\n")
    s = load_scenario_file(tmp_path / "s.yaml")
    assert s.world.channel.carrier_hz == 2e9 and s.world.channel.profile == "mine"
    assert s.world.channel.path_loss.model == "free-space" and s.world.channel.min_snr_db == 3
