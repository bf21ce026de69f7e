"""``cron``: fires the workflow config's ``schedules:`` and ``type: cron`` triggers on time."""
