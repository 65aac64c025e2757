# SPDX-License-Identifier: GPL-3.0-or-later
"""Which call a request is, the error bodies each protocol uses, and the injected faults."""
from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs

from localcloud.settings import Settings

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/")


@dataclass(frozen=True)
class Call:
    service: str
    region: str
    action: str
    json_protocol: bool


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def parse_call(environ: dict[str, object], body: bytes) -> Call:
    """Reads service and region from the signature scope, the action from the target or form."""
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    match = _CREDENTIAL_SCOPE.search(auth)
    region, service = (match.group(1), match.group(2)) if match else ("us-east-1", "unknown")
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        return Call(service, region, target.rsplit(".", 1)[-1], True)
    fields = parse_qs(str(environ.get("QUERY_STRING", "")))
    content_type = str(environ.get("CONTENT_TYPE", ""))
    if body and (not content_type or "x-www-form-urlencoded" in content_type):
        fields.update(parse_qs(body.decode("utf-8", "replace")))
    action = fields.get("Action", [""])[0]
    if not action:
        action = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
    return Call(service, region, action, False)


def error_reply(call: Call, status: int, code: str, message: str) -> Reply:
    """An error in the shape the call's protocol uses, so SDKs parse the code."""
    request_id = str(uuid.uuid4())
    if call.json_protocol:
        body = json.dumps({"__type": code, "message": message, "Message": message}).encode()
        return Reply(status, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)], body)
    if call.service == "ec2":
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{_escape(code)}</Code><Message>{_escape(message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    else:
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{_escape(code)}</Code>"
            f"<Message>{_escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return Reply(status, [("Content-Type", "text/xml")], xml.encode())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")


def error_code_of(status: int, body: bytes) -> str | None:
    """The error code a response carries, if it is an error."""
    if status < 400:
        return None
    match = _XML_CODE.search(body)
    if match:
        return match.group(1).decode()
    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP{status}"
    code = str(data.get("__type") or data.get("code") or f"HTTP{status}") if isinstance(data, dict) else None
    return code.rsplit("#", 1)[-1] if code else f"HTTP{status}"


class FaultInjector:
    """Decides, per call, whether the settings ask for an error instead of an answer."""

    def __init__(self, settings: Settings, seed: int | None = None) -> None:
        self._settings = settings
        self._random = random.Random(seed)

    def fault_for(self, call: Call) -> Reply | None:
        rule = self._settings.take_action_error(call.action, call.region)
        if rule is not None:
            message = rule.get("message") or f"{call.action} failed (injected fault)."
            return error_reply(call, int(rule.get("status", 400)), str(rule["code"]), str(message))
        if call.service == "ec2":
            share = self._settings.throttle_share(call.action)
            if share > 0 and self._random.random() < share:
                return error_reply(call, 503, "RequestLimitExceeded", "Request limit exceeded.")
        return None
