# SPDX-License-Identifier: GPL-3.0-or-later
"""The local cloud server process: runtime, moto with our EC2 behaviours, faults and request log."""
from __future__ import annotations

import io
import json
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from localcloud.control import CONTROL_PREFIX, handle_control
from localcloud.requestlog import LOG_NAME, RequestLog
from localcloud.settings import Settings

DEFAULT_REGION = "us-east-1"
FAKE_KEY_ID = "AKIALOCALCLOUD000000"
FAKE_SECRET = "localcloud-secret-not-a-real-credential"
ENDPOINT_FILE = "endpoint.json"
ENV_FILE = "env"
PID_FILE = "server.pid"
STATUS_FILE = "server.status"

StartResponse = Callable[..., Any]


def client_env(endpoint_url: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    """What a boto3 / Ansible client needs to reach the local cloud."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


class LocalCloudApp:
    """WSGI middleware in front of moto: control endpoint, faults, local actions, request log."""

    def __init__(self, moto_app: Any, ctx: Any, settings: Settings, log: RequestLog, seed: int | None) -> None:
        from localcloud.faults import FaultInjector

        self._moto = moto_app
        self._ctx = ctx
        self._settings = settings
        self._log = log
        self._faults = FaultInjector(settings, seed)
        self.health: dict[str, Any] = {"ok": True}
        self._views = {"health": lambda: self.health, "layers": ctx.layers_view}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        from localcloud import extensions
        from localcloud.faults import Reply, error_code_of, parse_call

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        path = str(environ.get("PATH_INFO", "/"))
        if path.startswith(CONTROL_PREFIX):
            status, headers, payload = handle_control(
                str(environ.get("REQUEST_METHOD", "GET")), path, body, self._settings, self._views
            )
            return self._send(start_response, Reply(status, headers, payload))
        call_latency = self._settings.latency("api_call")
        if call_latency:
            time.sleep(call_latency)
        began = time.monotonic()
        call = parse_call(environ, body)
        reply = self._faults.fault_for(call)
        injected = reply is not None
        if reply is None:
            reply = extensions.handle(self._ctx, call, body)
        if reply is None:
            reply = self._run_moto(environ)
        self._log.record(
            region=call.region,
            service=call.service,
            action=call.action,
            status=reply.status,
            error_code=error_code_of(reply.status, reply.body),
            injected=injected,
            duration=time.monotonic() - began,
        )
        return self._send(start_response, reply)

    def _run_moto(self, environ: dict[str, Any]) -> Any:
        from localcloud.faults import Reply

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers
            return lambda _data: None

        chunks = self._moto(environ, capture)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        return Reply(captured["status"], headers, payload)

    @staticmethod
    def _send(start_response: StartResponse, reply: Any) -> list[bytes]:
        from http import HTTPStatus

        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        start_response(f"{reply.status} {phrase}", [*reply.headers, ("Content-Length", str(len(reply.body)))])
        return [reply.body]


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def env_lines(env: dict[str, str]) -> str:
    import shlex

    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))


def _base_image_name(base_layer: str) -> str:
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "amd64"
    return f"bakery-local-base-debian-12-{arch}-{base_layer[:12]}"


def _runtime_classes() -> tuple[Any, Any]:
    """The instance runtime; LOCALCLOUD_RUNTIME=module:Class swaps it (for work on the API alone)."""
    override = os.environ.get("LOCALCLOUD_RUNTIME")
    if override:
        import importlib

        module_name, _, class_name = override.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, class_name), module.RuntimeFailure
    from localcloud.runtime import Runtime, RuntimeFailure

    return Runtime, RuntimeFailure


def _bind_problem(host: str, port: int) -> str | None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def _discard_all_instances(runtime: Any) -> None:
    for instance_id in runtime.instance_ids():
        try:
            runtime.terminate(instance_id)
        except Exception as error:  # noqa: BLE001 - keep tearing the rest down
            print(f"localcloud: could not remove instance {instance_id}: {error}", file=sys.stderr)


def serve(state_dir: Path, host: str, port: int, settings: Settings, seed: int | None = None) -> int:
    """Runs the local cloud in this process until SIGTERM/SIGINT; returns the exit status."""
    # moto's own sample AMIs cannot be launched here (no filesystem behind them), so they stay out.
    # Set here, in the server process, not on import: importing the package changes no environment.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(state_dir / PID_FILE, f"{os.getpid()}\n")
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    signal.signal(signal.SIGINT, lambda *_: stop_requested.set())
    try:
        Runtime, RuntimeFailure = _runtime_classes()
        runtime = Runtime(state_dir / "runtime")
        try:
            runtime.check_host()
            _write_atomic(state_dir / STATUS_FILE, "preparing the base image\n")
            base_layer = runtime.ensure_base_layer()
            # The API state is not kept across runs, so instances and layers of an earlier run are orphans.
            _discard_all_instances(runtime)
            runtime.release_unreferenced({base_layer})
        except RuntimeFailure as error:
            print(f"localcloud: cannot start: {error}", file=sys.stderr)
            runtime.shutdown()
            return 2
        try:
            return _serve_with(runtime, base_layer, state_dir, host, port, settings, seed, stop_requested)
        finally:
            _discard_all_instances(runtime)
            runtime.shutdown()
    finally:
        for name in (ENDPOINT_FILE, ENV_FILE, PID_FILE, STATUS_FILE):
            (state_dir / name).unlink(missing_ok=True)


def _serve_with(
    runtime: Any,
    base_layer: str,
    state_dir: Path,
    host: str,
    port: int,
    settings: Settings,
    seed: int | None,
    stop_requested: threading.Event,
) -> int:
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from localcloud import ec2_patches
    from localcloud.context import BASE_IMAGE_PARAMETER, CloudContext

    # One line per request is in the request log already; werkzeug's own would double it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx = CloudContext(runtime=runtime, settings=settings, base_layer=base_layer,
                       base_image_name=_base_image_name(base_layer))
    ec2_patches.install(ctx)
    log_path = state_dir / LOG_NAME
    log_path.write_text("", encoding="utf-8")
    app = LocalCloudApp(DomainDispatcherApplication(create_backend_app), ctx, settings, RequestLog(log_path), seed)
    # werkzeug exits on a busy port with its own advice; say it in one sentence instead.
    problem = _bind_problem(host, port)
    if problem:
        print(f"localcloud: cannot start: {host}:{port} cannot be served ({problem}).", file=sys.stderr)
        return 2
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    endpoint_url = f"http://{host}:{server.server_port}"
    env = client_env(endpoint_url)
    app.health = {
        "ok": True,
        "pid": os.getpid(),
        "base_layer": base_layer,
        "base_image_name": ctx.base_image_name,
        "base_image_parameter": BASE_IMAGE_PARAMETER,
    }
    thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
    thread.start()
    # The default region's backend is made now, so the base image is there before the first call.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    ec2_backends[DEFAULT_ACCOUNT_ID][DEFAULT_REGION]
    info = {
        "endpoint_url": endpoint_url,
        "control_url": endpoint_url + CONTROL_PREFIX,
        "pid": os.getpid(),
        "state_dir": str(state_dir),
        "request_log": str(log_path),
        "base_image_name": ctx.base_image_name,
        "base_image_parameter": BASE_IMAGE_PARAMETER,
        "env": env,
    }
    _write_atomic(state_dir / ENV_FILE, env_lines(env))
    _write_atomic(state_dir / ENDPOINT_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")
    (state_dir / STATUS_FILE).unlink(missing_ok=True)
    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        ctx.stopping.set()
        server.shutdown()
        thread.join(timeout=10)
    return 0
