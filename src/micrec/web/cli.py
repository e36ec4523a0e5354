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
    serve.add_argument("--store", metavar="s3://BUCKET/PREFIX",
                       help="keep the takes in an S3-compatible bucket (credentials and endpoint from AWS_* "
                            "variables); --dir then only holds takes while they are recorded")
    serve.add_argument("--max-visitor-takes", type=int, metavar="N", help="most takes one visitor may keep")
    serve.add_argument("--max-visitor-bytes", type=_size, metavar="SIZE",
                       help="most bytes one visitor's takes may hold (e.g. 200M, 2G; binary units)")
    serve.add_argument("--max-store-bytes", type=_size, metavar="SIZE",
                       help="most bytes all takes together may hold (e.g. 50G)")
    serve.set_defaults(run=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from .takes import open_store

    uvicorn = require("uvicorn", extra="web")
    require("starlette", extra="web")
    # An unusable --dir or bucket fails here, with a message, not in every worker.
    open_store(args.store, args.dir).close()
    if not os.environ.get("MICREC_WEB_SECRET"):
        print("micrec: MICREC_WEB_SECRET is not set: visitors lose access to their takes when this server "
              "restarts, and other hosts cannot serve them (set it to 64 hex digits: "
              "python -c 'import secrets; print(secrets.token_hex(32))')", file=sys.stderr)
    os.environ.update(_environment(args))
    if args.host in _WILDCARD_BINDS and not args.allow_host:
        print("micrec: serving on all interfaces, but only to the host names 127.0.0.1/localhost; "
              "add --allow-host NAME for the name others use", file=sys.stderr)
    print(f"micrec: recorder page at http://{_display_host(args.host)}:{args.port}/ "
          f"(takes go to {args.store or os.path.abspath(args.dir)})", file=sys.stderr)
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
    quotas = {name: getattr(args, name) for name in ("max_visitor_takes", "max_visitor_bytes", "max_store_bytes")
              if getattr(args, name) is not None}
    # The secret in the environment, when set, is the one every host and restart must share.
    secret = os.environ.get("MICREC_WEB_SECRET") or secrets.token_hex(32)
    return {"MICREC_WEB_DIR": os.path.abspath(args.dir), "MICREC_WEB_SECRET": secret,
            "MICREC_WEB_STORE": args.store or "", "MICREC_WEB_LIMITS": json.dumps(quotas),
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


def _size(text: str) -> int:
    """``"200M"`` → bytes (K, M, G, T are powers of 1024; a bare number is bytes)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.strip().upper().rstrip("IB") or "0", ""
    if number[-1:] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: give bytes or a number with K, M, G or T "
                                         "(e.g. 200M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a quota must be more than 0 bytes")
    return int(value)


def _display_host(host: str) -> str:
    if host in _WILDCARD_BINDS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
