"""Build the lab's stand-ins for binaries that cannot be downloaded here.

``build(name, version, dest_path)`` writes one self-contained executable: standin.py (what
each stand-in checks and serves is documented there) followed by the accepted flag names of
that component from tests/data/flags.json, so the file needs nothing but /usr/bin/python3.
"""

import json
import pprint
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS_JSON = HERE.parents[1] / "data" / "flags.json"
DEFAULT_VERSIONS = {
    "kube-apiserver": "v1.35.0",
    "kube-controller-manager": "v1.35.0",
    "kube-scheduler": "v1.35.0",
    "kubelet": "v1.35.0",
    "kube-proxy": "v1.35.0",
    "kubectl": "v1.35.0",
    "flanneld": "v0.28.9",
    "flannel-amd64": "v1.9.1-flannel3",  # the flannel CNI plugin
}
WITHOUT_FLAGS = ("kubectl", "flannel-amd64")


def build(name: str, version: str, dest_path) -> Path:
    """Write the stand-in for ``name`` reporting ``version`` to ``dest_path``, mode 0755."""
    if name not in DEFAULT_VERSIONS:
        raise ValueError(f"no stand-in for {name!r}; known: {', '.join(DEFAULT_VERSIONS)}")
    version = "v" + version.removeprefix("v")
    dest = Path(dest_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(render(name, version))
    dest.chmod(0o755)
    return dest


def numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.removeprefix("v").split("-")[0].split("."))


def flag_list_version(available, version: str) -> str:
    """The list of the same minor release, else the nearest one (scheduler: 1.36 for 1.35)."""
    major, minor = numbers(version)[:2]
    candidates = [listed for listed in available if numbers(listed)[0] == major]
    if not candidates:
        raise ValueError(f"no flag list for major version {major} in {FLAGS_JSON}")

    def distance(listed: str) -> tuple[int, int]:
        return abs(numbers(listed)[1] - minor), -numbers(listed)[1]  # ties: the newer list

    return min(candidates, key=distance)


def render(name: str, version: str) -> str:
    accepted, env_names, origin = [], {}, "no flag list"
    if name not in WITHOUT_FLAGS:
        data = json.loads(FLAGS_JSON.read_text())
        listed = flag_list_version(data[name], version)
        accepted = data[name][listed]
        origin = f"flag list {name} {listed} from tests/data/flags.json"
        env_names = data.get(f"{name}_env", {}).get(listed, {})
    return "\n".join(
        [
            "#!/usr/bin/python3",
            f"# kubelab lab stand-in for {name} {version}: not the real binary.",
            f"# Built by tests/lab/standins build() from standin.py; {origin}.",
            (HERE / "standin.py").read_text(),
            "",
            f"NAME = {name!r}",
            f"VERSION = {version!r}",
            f"ACCEPTED_FLAGS = frozenset({pprint.pformat(accepted, width=96, compact=True)})",
            f"ENV_NAMES = {pprint.pformat(env_names, width=96)}",
            "",
            'if __name__ == "__main__":',
            "    sys.exit(main(NAME, VERSION, ACCEPTED_FLAGS, ENV_NAMES))",
            "",
        ]
    )
