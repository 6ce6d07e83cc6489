"""``wolfpackd --config node.toml``: run one node's cluster service.

``--validate-config`` checks the configuration (every problem at once, and
the timing obligations) and exits; ``--help-config`` prints the schema.
Exit status: 0 after a clean stop (SIGTERM or SIGINT: a planned leave), 1 for
a configuration problem, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from wolfpack.errors import WolfpackError
from wolfpack.runtime.daemon import config as node_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wolfpackd", description="Run one node of a Wolfpack cluster.")
    p.add_argument("--config", type=Path, help="the node's TOML file (`wolfpack cluster create` writes them)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (above the file and the environment)")
    p.add_argument("--validate-config", action="store_true", help="check the configuration and exit")
    p.add_argument("--help-config", action="store_true", help="print every setting with its default and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.help_config:
        print(json.dumps(node_config.describe(), indent=2, default=str))
        return 0
    overrides = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"wolfpackd: --set {item!r} is not SECTION.KEY=VALUE", file=sys.stderr)
            return 2
        overrides[name.strip()] = value.strip()
    try:
        cfg = node_config.load(args.config, overrides=overrides)
    except WolfpackError as exc:
        print(f"wolfpackd: {exc}", file=sys.stderr)
        return 1
    if args.validate_config:
        print(f"{cfg.source}: valid; node {cfg.node_id} of cluster {cfg['cluster.name']!r} "
              f"({len(cfg.nodes)} nodes, quorum {cfg['cluster.quorum']}); timing obligations hold")
        return 0
    logging.basicConfig(level=getattr(logging, str(cfg["node.log_level"]).upper()),
                        format=f"%(asctime)s node{cfg.node_id} %(name)s %(levelname)s: %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)  # our own log says what each step decided
    from wolfpack.runtime.daemon.service import serve

    try:
        asyncio.run(serve(cfg))
    except WolfpackError as exc:
        logging.getLogger("wolfpack").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
