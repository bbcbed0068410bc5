"""Several masters: cluster-level work (the add-ons, the smoke test's objects) is the first
master's alone, while every master runs its own control plane."""

from test_ha_etcd import MASTERS, three  # noqa: F401 (a fixture)

from kubelab.components import coredns, metrics_server

M1, *OTHERS = MASTERS


def applies(commands: list[str], manifest: str) -> list[str]:
    return [command for command in commands if f"apply -f {manifest}" in command]


def test_only_the_first_master_holds_and_applies_the_addons(three):  # noqa: F811
    machines, run, _, _ = three
    for manifest in (coredns.MANIFEST, metrics_server.MANIFEST):
        assert machines[M1].exists(manifest)
        assert applies(run.commands[M1], manifest), f"{M1} never applied {manifest}"
        for other in OTHERS:
            assert not machines[other].exists(manifest), f"{other} holds {manifest}"
            assert not applies(run.commands[other], manifest), f"{other} applied {manifest}"


def test_every_master_runs_its_own_control_plane(three):  # noqa: F811
    machines, _, _, _ = three
    for name in MASTERS:
        for unit in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            assert machines[name].units[f"{unit}.service"] == {"active": True, "enabled": True}
