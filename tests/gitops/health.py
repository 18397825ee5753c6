"""The two health readers GitOps tools use, run on real MLModel objects: kstatus (Flux, cli-utils; the real
Go library) and the chart's Argo CD Lua health check (run in Lua through lupa)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from hack.chart import CHART
from hack.localcluster.tools import control_plane_binaries

LUA = (CHART / "files" / "argocd-health.lua").read_text()


def kstatus(obj: dict[str, Any]) -> str:
    res = subprocess.run([str(control_plane_binaries() / "kstatus")], input=json.dumps(obj),
                         capture_output=True, text=True, timeout=30, check=True)
    return str(json.loads(res.stdout)["status"])


def argocd(obj: dict[str, Any]) -> tuple[str, str]:
    from lupa import LuaRuntime

    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(LUA)
    return str(hs["status"]), str(hs["message"] or "")
