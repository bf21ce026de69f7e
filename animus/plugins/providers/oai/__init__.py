"""The ``oai`` provider plugin: ``engine`` runs the vendor, ``plugin`` serves it to the daemon."""
