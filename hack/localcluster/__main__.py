"""`python -m hack.localcluster up|down|status [--only cluster|objectstore|prometheus|keda]`."""

from __future__ import annotations

import argparse
import sys

from . import ALL_COMPONENTS, COMPONENTS, ClusterError, Layout, down, prometheus, status, up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--only", choices=ALL_COMPONENTS,
                        help="just this component (prometheus and keda need the cluster)")
    args = parser.parse_args(argv)
    components = (args.only,) if args.only else COMPONENTS
    layout = Layout.default()
    try:
        if args.command == "up":
            st = up(components, layout)
        elif args.command == "down":
            down(components, layout)
            print("[localcluster] stopped")
            return 0
        else:
            st = status(layout)
    except ClusterError as e:
        print(f"[localcluster] error: {e}", file=sys.stderr)
        if args.command == "up":
            print("[localcluster] nothing is left running; fix the cause above and run `make cluster-up` again",
                  file=sys.stderr)
        return 1
    print(f"[localcluster] cluster: {'running' if st.cluster else 'stopped'}"
          f"{f' (kubeconfig {layout.kubeconfig})' if st.cluster else ''}")
    if st.node_unavailable:
        print(f"[localcluster] real node: unavailable ({st.node_unavailable}); kwok's simulated nodes only")
    else:
        print(f"[localcluster] real node: {'running' if st.node else 'stopped'}")
    print(f"[localcluster] object store: {'running' if st.objectstore else 'stopped'}"
          f"{f' (credentials in {layout.objectstore_env})' if st.objectstore else ''}")
    print(f"[localcluster] prometheus: {'running' if st.prometheus else 'stopped'}"
          f"{f' ({prom_url})' if st.prometheus and (prom_url := prometheus.url(layout)) else ''}")
    print(f"[localcluster] keda: {'running' if st.keda else 'stopped'}"
          f"{f' (unavailable: {st.keda_unavailable})' if st.keda_unavailable else ''}")
    done = all(getattr(st, c) or (c == "keda" and st.keda_unavailable) for c in components)
    return 0 if args.command == "status" or done else 1


if __name__ == "__main__":
    sys.exit(main())
