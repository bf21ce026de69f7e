"""The ``markdown`` subject backend: tasks as Markdown files in the repository."""
