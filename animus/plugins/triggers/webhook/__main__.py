"""``webhook`` trigger plugin: signed deliveries in, trigger events out.

The HTTP side is ``transport-http``'s ``POST /webhooks/{trigger_id}``,
which forwards the raw body and the relevant headers here as
``webhook/deliver {trigger_id, headers, body}``. This plugin owns the
secrets, so it does the checking: the id must be an enabled ``type:
webhook`` trigger with ``config.secret`` (or ``config.secret_env``, the
name of a variable passed to this plugin), and the body must carry a
valid ``X-Hub-Signature-256``. A trigger without a secret refuses every
delivery. Refusals are errors with ``data.error_code`` (``not_found``,
``unauthorized``, ``invalid_input``), which the transport turns into
404/401/400, and ``webhook_rejected`` events on the bus.

An accepted delivery becomes ``trigger/event`` with payload ``{event,
delivery, body}`` (``body`` parsed from JSON, or from a form's ``payload``
field as GitHub sends it) and answers ``{accepted, event_id, trigger_id}``
at once; the workflow it starts shows up in ``trigger_event`` on the bus.
SIGTERM: in-flight deliveries finish (they are quick), then the process exits.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs

from animus.plugins.triggers.base import TriggerPlugin
from animus.plugins.triggers.signature import verify
from animus.plugin_runtime.sdk import RequestContext, RpcError, method, run_plugin

INVALID_PARAMS = -32602


def _refuse(code: str, message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message, {"error_code": code})


def parse_body(body: bytes, content_type: str) -> Any:
    text = body.decode("utf-8", errors="replace")
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(text)
            return json.loads(form["payload"][0]) if "payload" in form else {k: v[-1] for k, v in form.items()}
        if "json" in content_type or text.lstrip().startswith(("{", "[")):
            return json.loads(text) if text.strip() else {}
    except (ValueError, KeyError, IndexError) as exc:
        raise _refuse("invalid_input", f"the body is not valid JSON: {exc}") from None
    return {"raw": text}


class WebhookTrigger(TriggerPlugin):
    name = "webhook"
    kind = "webhook"
    description = "Webhook triggers (triggers: type webhook), received by transport-http and HMAC-verified"

    def __init__(self) -> None:
        super().__init__()
        self.rejected = 0

    def _reject(self, trigger_id: str, code: str, message: str) -> RpcError:
        self.rejected += 1
        self.publish("trigger", "webhook_rejected", "warn",
                     data={"trigger": trigger_id, "reason": code, "message": message})
        return _refuse(code, message)

    @method("webhook/deliver")
    def deliver_webhook(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        trigger_id = str(params.get("trigger_id") or "")
        headers = {str(k).lower(): str(v) for k, v in (params.get("headers") or {}).items()}
        body = params.get("body") or b""
        if isinstance(body, str):
            body = body.encode()
        trigger = next((t for t in self.my_triggers() if t.id == trigger_id), None)
        if trigger is None:
            raise self._reject(trigger_id, "not_found", f"no enabled webhook trigger {trigger_id!r}")
        secret = trigger.config.get("secret") or os.environ.get(str(trigger.config.get("secret_env") or ""), "")
        if not secret:
            raise self._reject(trigger_id, "unauthorized",
                               f"webhook trigger {trigger_id} has no secret; unsigned deliveries are refused")
        if not verify(str(secret), bytes(body), headers.get("x-hub-signature-256")):
            raise self._reject(trigger_id, "unauthorized", "X-Hub-Signature-256 is missing or does not match the body")
        payload = {"event": headers.get("x-github-event"), "delivery": headers.get("x-github-delivery"),
                   "body": parse_body(bytes(body), headers.get("content-type", ""))}
        event_id = self.deliver(trigger_id, payload)
        return {"accepted": True, "event_id": event_id, "trigger_id": trigger_id}

    def health(self) -> dict[str, Any]:
        return super().health() | {"rejected": self.rejected}


if __name__ == "__main__":
    run_plugin(WebhookTrigger)
