"""Settings of the wrong type or out of range, and cluster-wide settings that differ between
hosts, stop the run with one line before any host is touched.
"""

import re

import pytest
from conftest import MASTER, MINIONS
from refusal_cases import MASTER_LINE, Case, minions_with, refuse_case
from test_validation_inventory import CASES as INVENTORY_CASES
from test_validation_kinds import CASES as KIND_CASES
from test_validation_networks import CASES as NETWORK_CASES
from test_validation_values import CASES as VALUE_CASES

from kubelab.settings.defaults import SETTINGS
from kubelab.settings.setting_spec import CLUSTER, HOST

MINION1 = MINIONS[0]

CASES = [
    # Types
    pytest.param(
        Case(
            "flannel_subnet_len",
            MASTER,
            "'24' is a string, not a whole number \\(write 24 without quotes\\)",
            group_data={"all": 'flannel_subnet_len = "24"\n'},
        ),
        id="int-as-string-in-group-data",
    ),
    pytest.param(
        Case(
            "apiserver_insecure_port",
            MASTER,
            "'8080' is a string, not a whole number",
            group_data={"masters": 'apiserver_insecure_port = "8080"\n'},
        ),
        id="port-as-string",
    ),
    pytest.param(
        Case(
            "manage_etc_hosts",
            MASTER,
            "'yes' is a string, not True or False \\(write True or False without quotes\\)",
            data={"manage_etc_hosts": "yes"},
        ),
        id="bool-as-string",
    ),
    pytest.param(
        Case("kube_log_level", MASTER, "True is not a whole number", data={"kube_log_level": True}),
        id="bool-for-int",
    ),
    pytest.param(
        Case(
            "artifact_sha256",
            MASTER,
            "\\['abc'\\] is not a mapping",
            data={"artifact_sha256": ["abc"]},
        ),
        id="list-for-mapping",
    ),
    pytest.param(
        Case(
            "etcd_client_port",
            MASTER,
            "70000 is out of range 1-65535",
            data={"etcd_client_port": 70000},
        ),
        id="port-out-of-range",
    ),
    pytest.param(
        Case(
            "flannel_vni",
            MASTER,
            "16777216 is out of range 0-16777215",
            data={"flannel_vni": 2**24},
        ),
        id="vni-too-large",
    ),
    pytest.param(
        Case("flannel_vni", MASTER, "-1 is out of range 0-16777215", data={"flannel_vni": -1}),
        id="vni-negative",
    ),
    # One cluster, one value
    pytest.param(
        Case(
            "flannel_network",
            MINION1,
            f"'10.30.0.0/16' differs from '10.20.0.0/16' on the master {MASTER}: a cluster-wide "
            "setting must be the same on every host",
            group_data={"minions": 'flannel_network = "10.30.0.0/16"\n'},
        ),
        id="cluster-wide-setting-differs",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_before_any_host_is_touched(case, tmp_path, monkeypatch, io_log):
    refuse_case(case, tmp_path, monkeypatch, io_log)


def test_corpus_is_large_enough():
    corpus = CASES + INVENTORY_CASES + KIND_CASES + NETWORK_CASES + VALUE_CASES
    assert len(corpus) >= 100
    assert len({case.id for case in corpus}) == len(corpus)


# The rules as each setting declares them (setting_spec.Setting): every range and every
# cluster-wide setting is enforced, with the line the corpus above shows for one of each.


def test_every_setting_declares_what_validation_reads():
    for item in SETTINGS:
        assert item.scope in (CLUSTER, HOST), item.name
        assert item.profiles in ("both", "el7", "modern"), item.name
        assert (item.limits is not None) == (item.value_type is int), item.name
        assert item.form in (None, "release", "image"), item.name
        assert item.optional or item.kind in (None, type(item.default)), item.name


def out_of_range_cases():
    for item in SETTINGS:
        if item.limits:
            low, high = item.limits
            for value in (low - 1, high + 1):
                phrase = f"{value} is out of range {low}-{high}$"
                case = Case(item.name, MASTER, phrase, data={item.name: value})
                yield pytest.param(case, id=f"{item.name}={value}")


def another_value(item):
    """A value of the setting's type other than its default."""
    if item.value_type is bool:
        return not item.default
    if item.value_type is int:
        return item.default + 1 if item.default < item.limits[1] else item.default - 1
    return f"{item.default or ''}x"


def cluster_wide_cases():
    for item in SETTINGS:
        if item.scope == CLUSTER:
            value = another_value(item)
            phrase = (
                f"{re.escape(repr(value))} differs from {re.escape(repr(item.default))} on the "
                f"master {re.escape(MASTER)}: a cluster-wide setting must be the same on every "
                "host$"
            )
            inventory = MASTER_LINE + minions_with({item.name: value})
            case = Case(item.name, MINION1, phrase, inventory=inventory)
            yield pytest.param(case, id=item.name)


@pytest.mark.parametrize("case", [*out_of_range_cases(), *cluster_wide_cases()])
def test_each_declared_rule_stops_the_run(case, tmp_path, monkeypatch, io_log):
    refuse_case(case, tmp_path, monkeypatch, io_log)
