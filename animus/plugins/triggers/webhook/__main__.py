"""``webhook`` trigger plugin: signed deliveries in, trigger events out.

The HTTP side is ``transport-http``'s ``POST /webhooks/{trigger_id}``,
which reads at most ``webhook_max_bytes`` of the body while it streams and
forwards it with the relevant headers here as ``webhook/deliver
{trigger_id, headers, body}``. This plugin owns the secrets, so it does the
checking: the id must be an enabled ``type: webhook`` trigger with
``config.secret`` (or ``config.secret_env``, the name of a variable passed
to this plugin), and the delivery must carry a valid signature: GitHub's
``X-Hub-Signature-256``, or the Standard Webhooks headers, whose signed
timestamp must be within ``config.tolerance_secs`` (300) of now.

An unknown trigger id, a trigger without a secret, a missing, stale or
wrong signature: the sender gets the same answer for each (401,
``unauthorized``), so probing does not tell which ids exist; the
``webhook_rejected`` event on the bus says which it was.

Each accepted delivery's id is recorded (``deliveries``): the same delivery
again (a replay, or a sender's retry) is answered ``{accepted: false,
duplicate: true}`` and starts nothing.

An accepted delivery becomes ``trigger/event`` with payload ``{event,
delivery, body}`` (``body`` parsed from JSON, or from a form's ``payload``
field as GitHub sends it) and answers ``{accepted, event_id, trigger_id}``
at once; the workflow it starts shows up in ``trigger_event`` on the bus.
SIGTERM: in-flight deliveries finish (they are quick), then the process exits.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any
from urllib.parse import parse_qs

from animus.plugins.triggers.base import TriggerPlugin
from animus.plugins.triggers.signature import TOLERANCE_SECS, verify, verify_standard
from animus.plugins.triggers.webhook.deliveries import DeliveryLog
from animus.redact import unmask
from animus.plugin_runtime.sdk import RequestContext, RpcError, method, run_plugin

INVALID_PARAMS = -32602
UNAUTHORIZED = "signature is missing, stale or does not match the body"


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
        self.duplicates = 0
        self._deliveries: DeliveryLog | None = None

    def _reject(self, trigger_id: str, code: str, message: str, why: str) -> RpcError:
        self.rejected += 1
        self.publish("trigger", "webhook_rejected", "warn",
                     data={"trigger": trigger_id[:200], "reason": why, "message": message})
        return _refuse(code, message)

    @method("webhook/deliver")
    def deliver_webhook(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        trigger_id = str(params.get("trigger_id") or "")
        headers = {str(k).lower(): str(v) for k, v in (params.get("headers") or {}).items()}
        body = params.get("body") or b""
        if isinstance(body, str):
            body = body.encode()
        body = bytes(body)
        why = self._refusal(trigger_id, headers, body)
        if why is not None:  # one answer for all of them: a prober learns nothing
            raise self._reject(trigger_id, "unauthorized", UNAUTHORIZED, why)
        parsed = parse_body(body, headers.get("content-type", ""))
        delivery = (headers.get("x-github-delivery") or headers.get("webhook-id")
                    or "sha256:" + hashlib.sha256(body).hexdigest())
        if not self.deliveries().first_time(trigger_id, delivery):
            self.duplicates += 1
            self.publish("trigger", "webhook_duplicate", "warn",
                         data={"trigger": trigger_id, "delivery": delivery[:200]})
            return {"accepted": False, "duplicate": True, "trigger_id": trigger_id, "delivery": delivery[:200]}
        payload = {"event": headers.get("x-github-event") or headers.get("webhook-event"),
                   "delivery": headers.get("x-github-delivery") or headers.get("webhook-id"),
                   "body": parsed}
        event_id = self.deliver(trigger_id, payload)
        return {"accepted": True, "event_id": event_id, "trigger_id": trigger_id}

    def _refusal(self, trigger_id: str, headers: dict[str, str], body: bytes) -> str | None:
        """Why this delivery is refused (for the event only), or None."""
        trigger = next((t for t in self.my_triggers() if t.id == trigger_id), None)
        if trigger is None:
            return "no_such_trigger"
        secret = self._secret(trigger.config)
        if not secret:
            return "no_secret"
        if "webhook-signature" in headers:
            tolerance = float(trigger.config.get("tolerance_secs") or TOLERANCE_SECS)
            ok = verify_standard(secret, headers.get("webhook-id"), headers.get("webhook-timestamp"), body,
                                 headers["webhook-signature"], time.time(), tolerance)
            return None if ok else "bad_or_stale_signature"
        return None if verify(secret, body, headers.get("x-hub-signature-256")) else "bad_signature"

    def _secret(self, config: dict[str, Any]) -> str:
        """``config.secret`` (a secret variable's reference resolved from our environment) or ``secret_env``."""
        secret = str(config.get("secret") or "")
        try:
            secret = unmask(secret, os.environ)
        except KeyError as exc:
            self.last_error_at = time.monotonic()
            self.last_error = (f"a webhook secret refers to ${{{exc.args[0]}}}, which this plugin is not given: "
                               f"add it to plugins.webhook.env in .animus/config.yaml")
            return ""
        return secret or os.environ.get(str(config.get("secret_env") or ""), "")

    def deliveries(self) -> DeliveryLog:
        if self._deliveries is None:
            self._deliveries = DeliveryLog(self.own_dir / "webhook-deliveries.db")
        return self._deliveries

    def health(self) -> dict[str, Any]:
        return super().health() | {"rejected": self.rejected, "duplicates": self.duplicates}


if __name__ == "__main__":
    run_plugin(WebhookTrigger)
