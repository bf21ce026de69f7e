"""``file-watcher``: file changes under configured paths, debounced, become trigger events."""
