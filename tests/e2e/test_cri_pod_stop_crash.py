"""kill -9 of the shim in the middle of StopPodSandbox's CNI DEL (issue 14 made Stop write its
record once, after the DEL): the restarted shim still lists the pod, the kubelet's retried Stop and
Remove finish the job, and nothing is left -- no netns, no lease, no pod directory."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import grpc
from cri_api.v1 import api_pb2 as api

import crihelpers as h

SLOW_DEL_PLUGIN = """#!/bin/sh
if [ "$CNI_COMMAND" = DEL ]; then
  touch "%s"
  sleep 10
fi
if [ "$CNI_COMMAND" = ADD ]; then
  exec %s -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))'
fi
exit 0
"""


def _netns(shim, pod_id: str) -> str:
    """The pod's own netns path (other sessions' shims make podwire- namespaces meanwhile)."""
    resp = shim.rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True))
    return json.loads(resp.info["info"])["netns"]


def test_shim_killed_during_stop_leaks_nothing(shim_factory, cri_net, tmp_path):
    marker = str(tmp_path / "del-started")
    cri_net.add_plugin("slowdel", SLOW_DEL_PLUGIN % (marker, sys.executable))
    cri_net.write(h.conflist(cri_net.network, extra_plugins=[{"type": "slowdel"}]))
    first = shim_factory(process=True)
    pod_id = first.rt.RunPodSandbox(api.RunPodSandboxRequest(config=h.pod_config()), timeout=120).pod_sandbox_id
    netns = _netns(first, pod_id)
    assert cri_net.network.leases() != {} and os.path.ismount(netns)
    stopping = threading.Thread(target=lambda: _ignore(first.rt.StopPodSandbox, pod_id))
    stopping.start()
    deadline = time.monotonic() + 30
    while not os.path.exists(marker):               # the DEL of the last plugin runs (first in DEL order)
        assert time.monotonic() < deadline, "CNI DEL never started"
        time.sleep(0.02)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    stopping.join()
    cri_net.write(h.conflist(cri_net.network))      # the slow plugin is gone: the retry can finish
    second = shim_factory(process=True)
    assert [p.id for p in second.rt.ListPodSandbox(api.ListPodSandboxRequest()).items] == [pod_id]
    second.rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert cri_net.network.leases() == {}
    assert not os.path.lexists(netns)
    second.rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert second.rt.ListPodSandbox(api.ListPodSandboxRequest()).items == []
    assert os.listdir(second.cfg.pods_dir) == []


def _ignore(rpc, pod_id: str) -> None:
    try:
        rpc(api.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    except grpc.RpcError:
        pass                                        # the shim was killed under it
