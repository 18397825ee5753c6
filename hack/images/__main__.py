"""python -m hack.images build [--load | --load-if-running] | refs"""

from __future__ import annotations

import argparse
import json
import sys
import time

from hack.localcluster.layout import Layout

from . import read_manifest
from .build import build
from .load import NodeNotRunning, load
from .tools import ImageError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.images", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build what is missing (cached by content) and write images.json")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--load", action="store_true",
                      help="import the images into the real node's containerd; fail when it is not running")
    mode.add_argument("--load-if-running", action="store_true",
                      help="import them when the real node's containerd runs; otherwise only say so")
    sub.add_parser("refs", help="print images.json")
    args = parser.parse_args(argv)
    layout = Layout.default()
    try:
        if args.command == "refs":
            print(json.dumps(read_manifest(layout), indent=2))
            return 0
        started = time.monotonic()
        data, images = build(layout)
        for image in images:
            state = "cached" if image.cached else "built"
            print(f"{image.name:9} {image.ref}  {image.unpacked_bytes / 1e6:.0f} MB unpacked, "
                  f"{image.compressed_bytes / 1e6:.0f} MB compressed ({state})")
        print(f"images.json: {layout.images / 'images.json'} ({time.monotonic() - started:.1f}s)")
        if args.load or args.load_if_running:
            try:
                imported = load(layout, data)
            except NodeNotRunning as e:
                if args.load:
                    raise
                print(f"not loaded: {e}")
                return 0
            print(f"node: {'imported ' + ', '.join(imported) if imported else 'already has both images'}")
        return 0
    except (ImageError, FileNotFoundError) as e:
        print(f"images: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
