"""Where a running `sayna-sip up` is: its state file, `<data dir>/up.json`.

`up` writes it once its NATS is ready and removes it when it stops. The commands an
operator runs beside it (`dlq`, `deliveries`, `hooks`, `send-test-event`) read it when
nothing else names a NATS or an ingress, so in the quick-start shell they work without
flags even when `up`'s NATS is not on 4222. A file whose `up` is gone is ignored.
The file is a contract between releases: `version` 1, unknown keys ignored (`sip`
came later: absent in an older file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nats.js.errors import NotFoundError

from sayna_sip.common import natsconn
from sayna_sip.common.config import NatsConfig
from sayna_sip.common.config_load import nats_settings, read_yaml
from sayna_sip.common.validate import nats_urls

DEFAULT_DATA_DIR = ".sayna-sip"
DATA_DIR_HELP = "where a running `sayna-sip up` keeps its state (up.json; default .sayna-sip)"
STATE_FILE = "up.json"
VERSION = 1
TOOL_START_TIMEOUT = 1.0  # seconds an interactive tool waits for NATS (NATS_START_TIMEOUT wins)


@dataclass(frozen=True)
class UpState:
    pid: int  # the `up` process
    nats_url: str  # may hold credentials (an external NATS): the file is mode 600
    ingress_url: str  # base URL, e.g. http://127.0.0.1:3001
    sip: bool | None = None  # SIP on in that stack (None: a file from before it was kept)


def state_path(data_dir: str | Path = DEFAULT_DATA_DIR) -> Path:
    return Path(data_dir) / STATE_FILE


def write(data_dir: str | Path, state: UpState) -> Path:
    """Replace the state file atomically (a reader never sees half of it)."""
    path = state_path(data_dir)
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}")
    body = {"version": VERSION, "pid": state.pid, "nats_url": state.nats_url,
            "ingress_url": state.ingress_url, "sip": state.sip}  # fmt: skip
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(body, out)
        out.write("\n")
    tmp.replace(path)
    return path


def remove(data_dir: str | Path, pid: int) -> None:
    """Remove the state file if it is still `pid`'s (another `up` may have taken over)."""
    found = _load(state_path(data_dir))
    if found is not None and found.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            state_path(data_dir).unlink()


def read(data_dir: str | Path = DEFAULT_DATA_DIR) -> UpState | None:
    """The state of the `up` running from `data_dir`, or None (no file, or its `up` is gone)."""
    found = _load(state_path(data_dir))
    return found if found is not None and _alive(found.pid) else None


def _load(path: Path) -> UpState | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sip = data.get("sip")
        return UpState(int(data["pid"]), str(data["nats_url"]), str(data["ingress_url"]),
                       sip if isinstance(sip, bool) else None)  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def tool_nats(
    config_path: str | None,
    env: Mapping[str, str] | None = None,
    data_dir: str | Path = DEFAULT_DATA_DIR,
) -> tuple[NatsConfig, str]:
    """The NATS settings of a tool that only reads NATS, and where its URL came from.

    Only the `nats:` section and the NATS_* variables are read, so a SIP block (or a
    SIP_* variable, as the quick start exports) neither helps nor hurts. The URL comes
    from NATS_URL, else the config file, else a running `sayna-sip up`, else the default.
    """
    env = os.environ if env is None else env
    data = read_yaml(config_path) if config_path else {}
    nats = nats_settings(data, env)
    if not env.get("NATS_START_TIMEOUT", "").strip():  # an interactive tool answers fast
        nats = replace(nats, start_timeout=TOOL_START_TIMEOUT)
    if env.get("NATS_URL", "").strip():
        return nats, "NATS_URL"
    if (data.get("nats") or {}).get("url"):
        return nats, f"nats.url in {config_path}"
    running = read(data_dir)
    if running is not None:
        found = f"the `sayna-sip up` running here ({state_path(data_dir)})"
        return replace(nats, url=",".join(nats_urls(running.nats_url, "NATS_URL"))), found
    return nats, "the default"


def tool_hint(source: str) -> str:
    """What to do when a tool's NATS cannot be reached."""
    if source == "the default":
        return ("no NATS named: is `sayna-sip up` running here? (else set NATS_URL, or "
                "nats.url in --config)")  # fmt: skip
    if source.startswith("the `sayna-sip up`"):
        return f"NATS from {source}: is `sayna-sip up` running here?"
    return f"NATS from {source}"


def add_tool_options(
    parser: argparse.ArgumentParser, actions: Iterable[argparse.ArgumentParser]
) -> None:
    """`--config` and `--data-dir` of a NATS-only tool, taken before its action or after."""
    parser.add_argument("--config", metavar="FILE", help="YAML config (environment wins)")
    parser.add_argument("--data-dir", metavar="DIR", default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)
    for action in actions:
        action.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
        action.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS)


def run_tool(
    prog: str, stream: str, nats: NatsConfig, source: str, work: Coroutine[Any, Any, int],
    data_dir: str | Path = DEFAULT_DATA_DIR,
) -> int:  # fmt: skip
    """Run a NATS-only tool's work; an unreachable NATS (saying where its URL came from)
    or a missing stream is one line on stderr and exit 1."""
    # One line, not one warning per failed attempt: the message below says it all.
    logging.getLogger(natsconn.log.name).setLevel(logging.ERROR)
    try:
        return asyncio.run(work)
    except natsconn.NatsUnavailable as exc:
        print(f"{prog}: {exc} ({tool_hint(source)})", file=sys.stderr)
        return 1
    except NotFoundError:
        running = read(data_dir) if source.startswith("the `sayna-sip up`") else None
        if running is not None and running.sip is False:  # nothing SIP's is provisioned
            print(f"{prog}: SIP is off in the `sayna-sip up` running here: nothing is routed "
                  f"or delivered, so there is no {stream}. To route calls: sayna-sip up "
                  "--config local.yaml, or set SIP_ROOM_PREFIX", file=sys.stderr)  # fmt: skip
            return 1
        print(f"{prog}: no stream {stream} in NATS at {nats.display}: "
              "run `sayna-sip provision`", file=sys.stderr)  # fmt: skip
        return 1
