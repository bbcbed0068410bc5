"""The components' declaration (kubelab.components.catalog) is what the reset, the upgrade, the
bounds and the validation use, and it agrees with what the deploy puts on a host."""

import posixpath
import re
from types import SimpleNamespace

import pytest
from conftest import HOSTS, MASTER
from fakehosts import REPO, debian12, run_deploy

import kubelab
from kubelab import SettingError
from kubelab.components import catalog
from kubelab.components.catalog import COMPONENTS
from kubelab.engine import bounds
from kubelab.settings import validation
from kubelab.settings.defaults import DEFAULTS
from kubelab.workflows import teardown, upgrade_plan

UNITS = REPO / "templates" / "etc" / "systemd" / "system"


def target(**data):
    """A host as ``setting`` sees it: its data over the defaults."""
    return SimpleNamespace(name="host", data=data)


def declared_services() -> set[str]:
    return {c.service for c in COMPONENTS if c.service}


def installed_paths(artifact) -> list[str]:
    if artifact.members:
        return [posixpath.join(artifact.install_path, name) for _, name in artifact.members]
    return [artifact.install_path]


# The declaration ---------------------------------------------------------------------------


def test_every_declared_service_has_a_unit_template_and_every_unit_a_component():
    assert {p.name.removesuffix(".service.j2") for p in UNITS.glob("*.service.j2")} == (
        declared_services()
    )


def test_the_services_needing_etcd_are_ordered_after_it_in_their_units():
    for component in COMPONENTS:
        if component.service and component.service != "etcd":
            text = (UNITS / f"{component.service}.service.j2").read_text()
            after = re.search(r"^After=(.*)$", text, re.M)
            ordered = bool(after) and "etcd.service" in after[1].split()
            assert ordered == component.needs_etcd, component.name


def test_names_ports_and_paths_are_declared_once():
    names = [c.name for c in COMPONENTS]
    assert len(names) == len(set(names))
    ports = [port for c in COMPONENTS for port, _ in c.ports]
    assert len(ports) == len(set(ports))
    port_settings = {DEFAULTS[name] for name in DEFAULTS if name.endswith("_port")}
    assert not port_settings & set(ports)
    for field in ("state", "shared"):
        paths = [path for c in COMPONENTS for path in getattr(c, field)]
        assert len(paths) == len(set(paths)), field
    for c in COMPONENTS:
        assert c.roles and set(c.roles) <= {catalog.MASTER, catalog.MINION}, c.name
        assert all(p.startswith("/") for p in (*c.config, *c.state, *c.shared)), c.name


def test_shared_directories_come_deepest_first():
    shared = catalog.shared_dirs()
    for index, directory in enumerate(shared):
        assert not any(d.startswith(directory + "/") for d in shared[index + 1 :]), directory


def test_the_orders_name_every_service_of_their_hosts():
    assert sorted(catalog.STOP_ORDER) == sorted(declared_services())
    minion = {c.service for c in catalog.on(catalog.MINION) if c.service}
    assert sorted(catalog.RESTART_ORDER) == sorted(minion)
    stop = catalog.STOP_ORDER.index
    assert stop("kubelet") < stop("containerd")  # the pods end before their runtime
    assert catalog.STOP_ORDER[-1] == "etcd"  # what needs etcd stops first


def test_flannels_device_follows_the_backend_and_vni():
    device = catalog.named("flanneld").devices
    data = SimpleNamespace(**DEFAULTS)
    assert device(data) == ("flannel.1",)
    assert device(SimpleNamespace(**{**DEFAULTS, "flannel_vni": 7})) == ("flannel.7",)
    assert device(SimpleNamespace(**{**DEFAULTS, "flannel_backend": "host-gw"})) == ()


# The reset ---------------------------------------------------------------------------------


def test_the_reset_stops_exactly_the_declared_services():
    assert teardown.SERVICES == catalog.STOP_ORDER
    assert set(teardown.units()) == {f"{s}.service" for s in declared_services()} | {
        teardown.PODS_SLICE
    }


def test_the_reset_removes_exactly_the_declared_files():
    data = SimpleNamespace(**DEFAULTS)
    binaries = [
        path
        for c in COMPONENTS
        for artifact in c.artifacts(data)
        for path in installed_paths(artifact)
    ]
    config = [path for c in COMPONENTS for path in c.config]
    state = [path for c in COMPONENTS for path in c.state]
    assert set(teardown.binaries()) == set(binaries)
    assert set(teardown.CONFIG) == set(config)
    assert set(teardown.STATE) == set(state)
    assert set(teardown.SHARED_DIRS) == {path for c in COMPONENTS for path in c.shared}
    assert set(teardown.paths()) == {*teardown.unit_files(), *binaries, *config, *state}


@pytest.mark.parametrize("vni", [1, 7])
def test_the_reset_looks_for_the_declared_devices(vni):
    host = target(flannel_vni=vni)
    _, arguments = teardown.leftovers_fact(host)
    assert arguments["links"] == (f"flannel.{vni}", catalog.CNI_BRIDGE)
    data = catalog.settings_of(host)
    assert arguments["links"] == tuple(d for c in COMPONENTS for d in c.devices(data))


# The upgrade, the bounds, the validation ---------------------------------------------------


@pytest.mark.parametrize("role", [catalog.MASTER, catalog.MINION])
def test_the_upgrade_installs_each_declared_artifact_and_restarts_its_service(role):
    host = target(kube_version="v1.36.0", runc_version="v1.4.0")
    pairs = (
        upgrade_plan.master_components(host)
        if role == catalog.MASTER
        else upgrade_plan.minion_components(host)
    )
    data = catalog.settings_of(host)
    assert pairs == [(c.service, a) for c in catalog.on(role) for a in c.artifacts(data)]
    services = {artifact.name: service for service, artifact in pairs}
    versions = {artifact.name: artifact.version for _, artifact in pairs}
    assert services["kube-proxy"] == "kube-proxy" and versions["kube-proxy"] == "v1.36.0"
    if role == catalog.MINION:
        assert services["runc.amd64"] is None and versions["runc.amd64"] == "v1.4.0"
        assert upgrade_plan.restart_order(reversed(catalog.RESTART_ORDER)) == list(
            catalog.RESTART_ORDER
        )


def test_the_bounds_name_etcd_for_the_services_that_wait_on_it():
    assert set(bounds.NEEDS_ETCD) == {c.service for c in COMPONENTS if c.needs_etcd}


def test_the_validation_keeps_the_declared_master_ports_free():
    ports = {
        port: f"{c.name}'s {what}" for c in catalog.on(catalog.MASTER) for port, what in c.ports
    }
    assert validation.FIXED_PORTS["modern"] == ports


@pytest.mark.parametrize("port", sorted(catalog.fixed_ports(catalog.MASTER)))
def test_a_port_setting_on_a_declared_port_is_refused(port):
    machines = {name: debian12() for name in HOSTS}
    what = catalog.fixed_ports(catalog.MASTER)[port]
    with pytest.raises(SettingError) as raised:
        run_deploy(machines, kubelab.deploy_cluster, data={"etcd_client_port": port})
    assert str(raised.value) == (
        f"kubelab: setting 'etcd_client_port' on {MASTER}: {port} is also {what} (both listen "
        "on the master)"
    )
