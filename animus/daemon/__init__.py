"""The Animus daemon as an application: what its generic parts are assembled into.

``supervision`` knows how to supervise a tree of processes; ``workflow`` knows
how to run workflows; this package says which tree Animus is (the role
supervisors and their plugins, the workflows service), reads the operator's
configuration (``config``), answers the control socket (``control``), and is
the daemon's process entry (``main``). It sits at the top with ``cli`` and
``plugins``: it may import every layer, and none imports it.
"""
