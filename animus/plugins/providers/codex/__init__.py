"""The ``codex`` provider plugin: ``engine`` runs the vendor, ``plugin`` serves it to the daemon."""
