"""Animus: a supervisor daemon for multi-phase AI coding-agent workflows.

The daemon is a tree of real OS processes modeled on Erlang/OTP: a root
supervisor owns child supervisors (providers, subjects, triggers, transports,
workflows), each restarting its workers under per-child restart budgets.
Processes talk over ZeroMQ with msgpack frames.
"""

__version__ = "0.5.0"
__all__ = ["__version__"]
