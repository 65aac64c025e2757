# SPDX-License-Identifier: GPL-3.0-or-later
"""`python -m localcloud start|stop|status|env|settings|serve`."""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from localcloud.server import ENDPOINT_FILE, ENV_FILE, PID_FILE, STATUS_FILE, env_lines

DEFAULT_STATE_DIR = Path(".localcloud")
LOG_FILE = "server.log"
START_TIMEOUT = 1800.0
STOP_TIMEOUT = 120.0


class CloudError(RuntimeError):
    """One sentence for the user; the command exits non-zero."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def read_pid(state_dir: Path) -> int | None:
    """The daemon's pid, if it runs (a stale pid file naming another program does not count)."""
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"localcloud" in cmdline and pid_alive(pid) else None


def read_endpoint(state_dir: Path) -> dict[str, Any] | None:
    """The running cloud's endpoint document, or None when it is not running."""
    if read_pid(state_dir) is None:
        return None
    try:
        return json.loads((state_dir / ENDPOINT_FILE).read_text())
    except (OSError, ValueError):
        return None


def start(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    settings_file: Path | None = None,
    seed: int | None = None,
    timeout: float = START_TIMEOUT,
) -> dict[str, Any]:
    """Starts the daemon (or finds it running) and returns its endpoint document."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    # Two starts at once must not make two daemons.
    with (state_dir / ".start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _start_locked(state_dir, host, port, settings_file, seed, timeout)


def _start_locked(
    state_dir: Path, host: str, port: int, settings_file: Path | None, seed: int | None, timeout: float
) -> dict[str, Any]:
    running = read_endpoint(state_dir)
    if running is not None:
        return running
    pid = read_pid(state_dir)
    if pid is None:
        for name in (ENDPOINT_FILE, ENV_FILE, PID_FILE, STATUS_FILE):
            (state_dir / name).unlink(missing_ok=True)
        command = [sys.executable, "-m", "localcloud", "serve", "--state-dir", str(state_dir),
                   "--host", host, "--port", str(port)]
        if settings_file is not None:
            command += ["--settings", str(settings_file.resolve())]
        if seed is not None:
            command += ["--seed", str(seed)]
        log = (state_dir / LOG_FILE).open("ab")
        package_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env, cwd="/"
        )
        log.close()
    else:
        process = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_endpoint(state_dir)
        if info is not None:
            return info
        if process is not None and process.poll() is not None:
            raise CloudError(_failure_sentence(state_dir, process.returncode))
        time.sleep(0.2)
    raise CloudError(f"the local cloud did not come up within {timeout:.0f} s; see {state_dir / LOG_FILE}")


def _failure_sentence(state_dir: Path, code: int) -> str:
    lines = [line for line in (state_dir / LOG_FILE).read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("localcloud: "):
            return line[len("localcloud: ") :]
    tail = lines[-1] if lines else "no output"
    return f"the local cloud exited with status {code} ({tail}); see {state_dir / LOG_FILE}"


def stop(state_dir: Path, timeout: float = STOP_TIMEOUT) -> bool:
    """Stops the daemon; True if one was running. It tears down every instance before exiting."""
    state_dir = state_dir.resolve()
    pid = read_pid(state_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    raise CloudError(f"the local cloud (pid {pid}) did not stop within {timeout:.0f} s")


def _print_env(info: dict[str, Any]) -> None:
    sys.stdout.write(env_lines(info["env"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud", description="The bakery local cloud.")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("LOCALCLOUD_STATE_DIR", DEFAULT_STATE_DIR)))
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "serve"):
        sub = commands.add_parser(name, help="start the daemon" if name == "start" else "run in the foreground")
        sub.add_argument("--state-dir", type=Path, default=argparse.SUPPRESS)
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=0, help="0 picks a free port")
        sub.add_argument("--settings", type=Path, help="JSON file of latency and fault settings")
        sub.add_argument("--seed", type=int, help="seed for the throttling draw")
    for name, text in (("stop", "stop the daemon and every instance"), ("status", "say whether it runs"),
                       ("env", "print the client environment as export lines")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--state-dir", type=Path, default=argparse.SUPPRESS)
    sub = commands.add_parser("settings", help="show, or merge JSON into, the running cloud's settings")
    sub.add_argument("--state-dir", type=Path, default=argparse.SUPPRESS)
    sub.add_argument("changes", nargs="?", help='JSON, e.g. {"faults": {"throttle_rate": 0.2}}')
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir
    try:
        return _run(args, state_dir)
    except CloudError as error:
        print(f"localcloud: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, state_dir: Path) -> int:
    from localcloud.settings import Settings, SettingsError

    if args.command in ("start", "serve"):
        try:
            settings = Settings.from_file(args.settings) if args.settings else Settings()
        except (OSError, ValueError, SettingsError) as error:
            raise CloudError(f"cannot read the settings file {args.settings}: {error}") from error
        if args.command == "serve":
            from localcloud.server import serve

            return serve(state_dir.resolve(), args.host, args.port, settings, args.seed)
        info = start(state_dir, host=args.host, port=args.port, settings_file=args.settings, seed=args.seed)
        print(f"# local cloud at {info['endpoint_url']} (state in {info['state_dir']})")
        _print_env(info)
        return 0
    if args.command == "stop":
        print("local cloud stopped" if stop(state_dir) else "local cloud was not running")
        return 0
    running = read_endpoint(state_dir.resolve())
    if args.command == "status":
        if running is None:
            print("local cloud is not running")
            return 3
        print(f"local cloud running at {running['endpoint_url']} (pid {running['pid']})")
        return 0
    if running is None:
        raise CloudError(f"no local cloud runs with state in {state_dir}; start it with `python -m localcloud start`")
    if args.command == "env":
        _print_env(running)
        return 0
    from localcloud.control import ControlClient, ControlError

    client = ControlClient(running["endpoint_url"])
    try:
        result = client.update_settings(json.loads(args.changes)) if args.changes else client.settings()
    except (ValueError, ControlError) as error:
        raise CloudError(f"settings refused: {error}") from error
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0
