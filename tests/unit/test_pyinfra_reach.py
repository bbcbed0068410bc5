"""What kubelab takes from pyinfra, and from inspect, beyond their documented API.

Each is checked here against the installed release: one that changes it fails here, naming
what changed and what in kubelab relies on it, instead of silently turning that off. The
pyinfra release kubelab takes is pinned to its minor (pyproject.toml).
"""

import inspect
import sys
import types

from pyinfra.api import State
from pyinfra.api import util as pyinfra_util
from pyinfra.api.operation import OperationMeta
from pyinfra.api.state import BaseStateCallback
from pyinfra.context import ctx_state

from kubelab.engine import bounds, callstack, once


def test_inspect_answers_from_modulesbyfile(tmp_path, monkeypatch):
    """callstack: after ``deploy_file_is_no_module``, inspect's lookup of the deploy file's
    frames is one look in ``inspect.modulesbyfile``, not a scan of sys.modules."""
    assert isinstance(getattr(inspect, "modulesbyfile", None), dict), (
        "inspect.modulesbyfile is gone: callstack.deploy_file_is_no_module can no longer spare "
        "pyinfra's CLI its scans of sys.modules; drop callstack"
    )
    monkeypatch.setattr(inspect, "modulesbyfile", dict(inspect.modulesbyfile))
    deploy = tmp_path / "deploy.py"
    deploy.write_text("import sys\nframe = sys._getframe()\n")
    namespace = {}
    exec(compile(deploy.read_text(), str(deploy), "exec"), namespace)
    # A module claiming the file: a scan of sys.modules would find it, the cached answer not.
    claimant = types.ModuleType("kubelab_reach_claimant")
    claimant.__file__ = str(deploy)
    monkeypatch.setitem(sys.modules, claimant.__name__, claimant)
    run = State()
    run.current_deploy_filename = str(deploy)
    with ctx_state.use(run):
        callstack.deploy_file_is_no_module()
    assert inspect.getmodule(namespace["frame"]) is None, (
        "inspect.getmodule no longer answers from inspect.modulesbyfile: "
        "callstack.deploy_file_is_no_module no longer spares the scans; drop callstack"
    )


def test_pyinfra_orders_operations_by_inspects_stack():
    """callstack pays because pyinfra's CLI orders operations by ``inspect.stack()`` and
    names the deploy file it executes in ``State.current_deploy_filename``."""
    assert pyinfra_util.stack is inspect.stack, (
        "pyinfra.api.util.get_operation_order_from_stack no longer reads inspect.stack(): "
        "callstack.deploy_file_is_no_module spares nothing; drop callstack"
    )
    assert "current_deploy_filename" in inspect.getsource(
        pyinfra_util.get_operation_order_from_stack
    ), "pyinfra's operation order no longer looks for State.current_deploy_filename (callstack)"
    assert State().current_deploy_filename is None, (
        "pyinfra's State has no current_deploy_filename: callstack cannot find the deploy file"
    )


def test_ctx_state_get_is_the_run_itself():
    """once.current_state: ``pyinfra.context.ctx_state.get()`` is the State in use, the one a
    callback evaluated at execution keeps its per-run caches by."""
    run = State()
    with ctx_state.use(run):
        assert once.current_state() is run, (
            "pyinfra.context.ctx_state.get() no longer gives the State in use: once's per-run "
            "caches (once.run_cache) would mix or lose runs"
        )


def test_operation_meta_has_its_hash():
    """bounds.waits_on: the OperationMeta an operation returns keeps the hash pyinfra's
    callbacks name it by (``OperationMeta._hash``)."""
    meta = OperationMeta("some-hash", is_change=True)
    assert getattr(meta, "_hash", None) == "some-hash", (
        "pyinfra's OperationMeta._hash is gone: bounds.waits_on cannot match a failed "
        "operation, and no 'failed, waiting on' line would be printed"
    )
    parameters = list(inspect.signature(BaseStateCallback.operation_host_error).parameters)
    assert parameters[:3] == ["state", "host", "op_hash"], (
        "pyinfra's BaseStateCallback.operation_host_error(state, host, op_hash, ...) changed: "
        f"bounds.Report's override must follow (now {parameters})"
    )
    assert issubclass(bounds.Report, BaseStateCallback)


def test_an_operations_success_is_read_before_it_completes():
    """node_removal.master_done and the upgrade read whether an operation succeeded without
    pyinfra raising when it has not run yet (``did_succeed(_raise_if_not_complete=False)``)."""
    meta = OperationMeta("some-hash", is_change=True)
    assert "_raise_if_not_complete" in inspect.signature(meta.did_succeed).parameters, (
        "pyinfra's OperationMeta.did_succeed lost _raise_if_not_complete: node_removal's and "
        "cluster_upgrade's master_done must read success another way"
    )
    assert meta.is_complete() is False
    assert meta.did_succeed(_raise_if_not_complete=False) is False
