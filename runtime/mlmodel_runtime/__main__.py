"""The runtime's entry point (docs/contracts.md section 2).

    python -m mlmodel_runtime serve [--package URI] [--model-name NAME] [--host H] [--port P] ...
    python -m mlmodel_runtime fetch [--package URI] [--model-dir DIR]

Flags override the MLMODEL_* environment. Exit codes: 0 ok, 2 usage or settings error, the
contract's 10-16 for package failures, 1 for anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from mlmodel_runtime.logs import configure_logging
from mlmodel_runtime.package import EXIT_USAGE
from mlmodel_runtime.settings import FetchSettings, ServeSettings

log = logging.getLogger("mlmodel_runtime")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlmodel_runtime", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--package", help="s3://bucket/prefix/, s3://bucket/x.zip or a local directory")
        sub.add_argument("--model-dir", help="where the package is downloaded")
        sub.add_argument("--package-digest", help="expected sha256:<hex> of deployment_manifest.json")
        sub.add_argument("--format", help="override metadata.json's format")
        sub.add_argument("--model-name", help="the name served under /v2/models/{name}")
        sub.add_argument("--model-revision", help="revision, in logs and metrics")
        sub.add_argument("--log-level", help="debug, info, warning, error")

    serve = commands.add_parser("serve", help="download, verify, load and serve the model")
    common(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--metrics-port", type=int, help="0 = /metrics on the main port")
    serve.add_argument("--max-batch-size", type=int, help="dynamic batching: rows per batch (0/1 = off)")
    serve.add_argument("--max-batch-delay-ms", type=float, help="dynamic batching: longest wait to fill a batch")
    serve.add_argument("--max-queue-size", type=int)
    serve.add_argument("--max-request-bytes", type=int)
    serve.add_argument("--intra-op-threads", type=int)
    serve.add_argument("--inter-op-threads", type=int)
    serve.add_argument("--device", help="auto, cpu or cuda")
    fetch = commands.add_parser("fetch", help="download and verify the package (init container)")
    common(fetch)
    return parser


def _settings(args: argparse.Namespace) -> FetchSettings:
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    if args.command == "serve":
        return ServeSettings(**given)
    return FetchSettings(**given)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env_level = os.environ.get("MLMODEL_LOG_LEVEL", "info")
    configure_logging(env_level if env_level.upper() in logging.getLevelNamesMapping() else "info", "", "")
    try:
        settings = _settings(args)
    except ValidationError as exc:
        problems = "; ".join(f"MLMODEL_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        log.error(f"invalid settings: {problems}", extra={"reason": "InvalidSettings", "exit_code": EXIT_USAGE})
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.model_name, settings.model_revision)
    if isinstance(settings, ServeSettings):
        from mlmodel_runtime.server.serve import serve

        return serve(settings)
    from mlmodel_runtime.fetch import run_fetch

    return run_fetch(settings)


if __name__ == "__main__":
    sys.exit(main())
