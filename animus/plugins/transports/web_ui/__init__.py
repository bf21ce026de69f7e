"""``web-ui``: the operator's page, served by ``transport-http``.

The plugin owns the files (``assets/``: plain HTML, JS and CSS, no build
step, nothing from a CDN) and hands them out over the plugin protocol; the
HTTP transport fetches, caches and serves them at ``/`` and ``/ui/…``. See
``animus.plugins.transports.http.ui`` for the transport's side.
"""
