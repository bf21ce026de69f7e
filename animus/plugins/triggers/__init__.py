"""Shared parts of the first-party trigger plugins (cron, file-watcher, webhook).

A trigger plugin runs under the triggers supervisor. It reads the triggers
it serves from the compiled workflow config (``state/workflow-config.v1.json``,
re-read when it changes) and, when one fires, sends the notification
``trigger/event {trigger_id, payload, event_id}`` to its host; the host
forwards it to ``workflow/fire``, which starts the trigger's workflow or
reports the event unmatched, and answers with ``trigger/ack {event_id,
status, workflow_id?}``. The pure parts live beside the plugin base:
``cron_plan`` (what is due when), ``debounce`` and ``globs`` (which file
changes make one event), ``signature`` (GitHub-style HMAC).
"""
