#!/usr/bin/env python3
"""make demo: the lab up, the cluster deployed on it, the specs run, timings; the lab stays up."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cgroups  # noqa: E402
import nodes  # noqa: E402
import pipeline  # noqa: E402


def memory_report() -> str:
    lines = []
    for node in nodes.machine_records():
        use = cgroups.memory_use(node.short)
        if use:
            resident, charged = use["rss"] // 2**20, use["charged"] // 2**20
            lines.append(f"  {node.short:<14} {resident:5} MiB resident, {charged:5} MiB charged")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", "--inventory", default="inventory.py")
    inventory = parser.parse_args().inventory
    if not pipeline.require_root("make demo"):
        return 1
    try:
        up = pipeline.lab_up(inventory)
        changes, deployed = pipeline.deploy(inventory, "demo-deploy")
        smoked = pipeline.smoke(inventory, "demo-smoke")
        checked = pipeline.specs(inventory, "demo-specs")
    except pipeline.StepFailed as error:
        print(f"demo: {error}")
        return 1
    print(
        f"""
kubelab demo: the cluster of {inventory} is deployed and verified on the local lab.
  lab up   {up:6.1f} s
  deploy   {deployed:6.1f} s  ({sum(changes.values())} operations changed something; log in
                     {pipeline.LOGS / "demo-deploy.log"})
  final test {smoked:4.1f} s  (deploys/smoke.py: minions Ready, the service-account token, nginx x3
                     on the minions, its cluster IP from every host, pod to pod across minions)
  specs    {checked:6.1f} s
Memory per machine (its cgroup):
{memory_report()}
Everything in the lab is the real program, built here from Go modules (tests/lab/README.md).
Explore:  make lab-ssh HOST=kubemaster, there: kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig
          get pods -o wide (or from here with ~/.kubelab/kubelab/admin.kubeconfig)
Tear down:  make lab-down"""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
