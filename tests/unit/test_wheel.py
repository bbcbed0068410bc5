"""The distribution: a wheel built from the repo installs, imports elsewhere, renders templates."""

import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from fakehosts import REPO


def tracked_copy(target):
    """The files of the checkout git knows of, copied to ``target``: a build/ left by an older
    layout is not among them (setuptools would ship its modules too)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    source = tracked_copy(tmp_path_factory.mktemp("source"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("pyinfra_kubelab-*.whl")
    return built


def test_wheel_ships_package_and_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "kubelab/__init__.py" in names
    assert "kubelab/templates/etc/kubernetes/apiserver.j2" in names
    assert "kubelab/templates/etc/etcd/etcd.conf.j2" in names
    assert not any(name.startswith("deploys/") for name in names)
    # the library only: every module of kubelab/, none of the scripts users run
    library = sorted(str(p.relative_to(REPO)) for p in (REPO / "kubelab").rglob("*.py"))
    assert library and set(library) <= set(names), sorted(set(library) - set(names))
    for package in ("components", "engine", "pki", "settings", "workflows"):
        assert f"kubelab/{package}/__init__.py" in names
    # no script: the only module at the top is the package's __init__.py
    top = [name for name in names if re.fullmatch(r"kubelab/[^/]+\.py", name)]
    assert top == ["kubelab/__init__.py"], top


def test_installed_wheel_imports_and_renders_elsewhere(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    script = (
        "import jinja2, kubelab, kubelab.engine.common as c\n"
        "from kubelab import deploy_cluster, deploy_smoke, validate_inventory\n"
        f"assert kubelab.__file__.startswith({str(target)!r}), kubelab.__file__\n"
        "text = open(c.template('/etc/kubernetes/config')).read()\n"
        "out = jinja2.Template(text).render(cluster_name='x', kube_log_level=0,\n"
        "    kube_allow_privileged=False, api_url='http://10.0.0.1:8080')\n"
        "print(out)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert 'KUBE_MASTER="--master=http://10.0.0.1:8080"' in result.stdout
