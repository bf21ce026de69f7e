"""``webhook``: verifies GitHub-style signed deliveries and turns them into trigger events."""
