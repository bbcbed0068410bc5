#!/usr/bin/env python3
"""make demo: the lab up, the cluster deployed on it, the specs run, timings; the lab stays up."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", "--inventory", default="inventory.py")
    inventory = parser.parse_args().inventory
    if not pipeline.require_root("make demo"):
        return 1
    try:
        up = pipeline.lab_up(inventory)
        changes, deployed = pipeline.deploy(inventory, "demo-deploy")
        checked = pipeline.specs(inventory)
    except pipeline.StepFailed as error:
        print(f"demo: {error}")
        return 1
    print(
        f"""
kubelab demo: the cluster of {inventory} is deployed and verified on the local lab.
  lab up   {up:6.1f} s
  deploy   {deployed:6.1f} s  ({sum(changes.values())} operations changed something; log in
                     {pipeline.LOGS / "demo-deploy.log"})
  specs    {checked:6.1f} s
The kube and flannel binaries in the lab are stand-ins (see tests/lab/README.md).
Explore:  make lab-ssh HOST=kubemaster     Tear down:  make lab-down"""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
