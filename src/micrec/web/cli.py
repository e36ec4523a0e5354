"""``micrec serve``: the browser recorder page on a local web server (uvicorn).

Registered into the ``micrec`` command by :mod:`micrec.cli`; imports nothing heavy until run.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .._lazy import require
from ..types import AudioEncoder

__all__ = ["register"]

_WILDCARD_BINDS = ("0.0.0.0", "::", "")


def register(sub: Any) -> None:
    """Add the ``serve`` subcommand to the ``micrec`` parser's subparsers."""
    serve = sub.add_parser("serve", help="record from a browser: a recorder page and its WebSocket",
                           description="Serve a page that records the browser's microphone into "
                                       "files in --dir, named by the server.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--dir", default="recordings", help="where takes are written (default ./recordings)")
    serve.add_argument("--encoder", "-e", choices=[e.value for e in AudioEncoder], default="wav",
                       help="the page's default format (default wav)")
    serve.add_argument("--rate", "-r", type=int, default=48000,
                       help="the page's default rate (default 48000)")
    serve.add_argument("--channels", "-c", type=int, default=1,
                       help="the page's default channels (default 1)")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="another host name the page is reached by (repeatable; '*' for any)")
    serve.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                       help="another page origin allowed to record, e.g. https://app.example (repeatable)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    serve.add_argument("--drop-limit", type=_seconds, default=60.0, metavar="SECONDS",
                       help="how long a take whose connection dropped waits for its browser to come "
                            "back and resume it, before it is saved as it is (default 60; 0: at once)")
    serve.set_defaults(run=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from .takes import TakeStore

    uvicorn = require("uvicorn", extra="web")
    require("starlette", extra="web")
    TakeStore(args.dir)  # an unusable --dir fails here, with a message, not in every worker
    os.environ.update(_environment(args))
    if args.host in _WILDCARD_BINDS and not args.allow_host:
        print("micrec: serving on all interfaces, but only to the host names 127.0.0.1/localhost; "
              "add --allow-host NAME for the name others use", file=sys.stderr)
    print(f"micrec: recorder page at http://{_display_host(args.host)}:{args.port}/ "
          f"(takes go to {os.path.abspath(args.dir)})", file=sys.stderr)
    uvicorn.run("micrec.web.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="info", ws_max_size=1 << 20,
                ws_per_message_deflate=False)  # PCM barely compresses: deflate would only cost CPU
    return 0


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """What the worker processes read in ``app_from_env``; one secret so all accept all tokens."""
    import json
    import secrets

    from .security import DEFAULT_HOSTS

    hosts = list(DEFAULT_HOSTS) + list(args.allow_host)
    if args.host not in _WILDCARD_BINDS and args.host not in hosts:
        hosts.append(args.host)
    defaults = {"audio_encoder": args.encoder, "sample_rate": args.rate, "channels_num": args.channels}
    return {"MICREC_WEB_DIR": os.path.abspath(args.dir), "MICREC_WEB_SECRET": secrets.token_hex(32),
            "MICREC_WEB_HOSTS": ",".join(hosts), "MICREC_WEB_ORIGINS": ",".join(args.allow_origin),
            "MICREC_WEB_DEFAULTS": json.dumps(defaults), "MICREC_WEB_HANDLE_SIGNALS": "1",
            "MICREC_WEB_DROP_LIMIT": repr(args.drop_limit)}


def _seconds(text: str) -> float:
    """A --drop-limit value: seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def _display_host(host: str) -> str:
    if host in _WILDCARD_BINDS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
