"""Which subject backend serves a kind (reference §D.1, "Routing").

Each subject backend declares the kinds it serves (``capabilities.subject_kinds``
in its handshake): exact kinds (``task``) or globs with a trailing ``*``
(``linear.*``, the catch-all ``*``). A request ``<kind>/<verb>`` goes to the
plugin serving ``<kind>``:

- an exact kind beats any glob;
- among globs, the longest prefix wins (``linear.issue.*`` before ``linear.*``);
- two plugins declaring the same exact kind, or globs with the same prefix,
  is a configuration error: the router refuses to build and names both, as an
  OTP supervisor refuses duplicate child ids, instead of picking one silently.

The router is built once from the initialized backends and is then a pure,
immutable lookup; the daemon and the CLI's one-shot router share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from animus.errors import InvalidInput, NotFound

__all__ = ["SubjectRouter", "Route", "INSTALL_FIX", "parse_kind"]

INSTALL_FIX = "animus plugin install-defaults --include-subjects"


def parse_kind(value: object, allow_glob: bool = False) -> str:
    """Validate a kind name.

    ``/`` would break method routing (``<kind>/<verb>``) and ``:`` would make
    ``<kind>:<native_id>`` ambiguous, so neither may appear. A glob is only a
    trailing ``*`` (``linear.*`` or the catch-all ``*``).
    """
    text = str(value).strip()
    if not text:
        raise InvalidInput("subject kind must not be empty")
    for bad in ("/", ":") + (() if allow_glob else ("*",)):
        if bad in text:
            raise InvalidInput(f"invalid subject kind {text!r}: it must not contain {bad!r}")
    if "*" in text[:-1] or any(c.isspace() for c in text):
        raise InvalidInput(
            f"invalid subject kind {text!r}: no spaces, and '*' only at the end (e.g. 'linear.*')"
        )
    return text


class _Record:
    """An immutable record compared by its fields. Not a dataclass nor a NamedTuple: `daemon
    health` routes kinds on the CLI's fast path, where importing dataclasses costs ~6 ms and
    typing (for NamedTuple) ~7 ms."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


class Route(_Record):
    """Where a ``<kind>/<verb>`` method goes; the method is forwarded unchanged."""

    __slots__ = ("plugin", "kind", "verb", "method")
    plugin: str
    kind: str
    verb: str
    method: str

    def __init__(self, plugin: str, kind: str, verb: str, method: str) -> None:
        for name, value in zip(self.__slots__, (plugin, kind, verb, method)):
            object.__setattr__(self, name, value)


class SubjectRouter(_Record):
    __slots__ = ("exact", "globs")
    exact: Mapping[str, str]
    globs: tuple[tuple[str, str], ...]  # (prefix, plugin), longest prefix first

    def __init__(self, exact: Mapping[str, str], globs: tuple[tuple[str, str], ...]) -> None:
        object.__setattr__(self, "exact", exact)
        object.__setattr__(self, "globs", globs)

    @classmethod
    def build(cls, backends: Mapping[str, Iterable[str]]) -> SubjectRouter:
        """Build from ``{plugin name: kinds it declares}``; conflicts fail here."""
        exact: dict[str, str] = {}
        globs: dict[str, str] = {}
        for plugin, kinds in backends.items():
            for raw in kinds:
                kind = parse_kind(raw, allow_glob=True)
                table, key, shown = (
                    (globs, kind[:-1], kind) if kind.endswith("*") else (exact, kind, kind)
                )
                owner = table.get(key)
                if owner is not None and owner != plugin:
                    what = "glob" if kind.endswith("*") else "kind"
                    raise InvalidInput(
                        f"subject {what} {shown!r} is declared by both plugin {owner!r}"
                        f" and plugin {plugin!r}",
                        fix="uninstall or disable one of them",
                    )
                table[key] = plugin
        ordered = tuple(sorted(globs.items(), key=lambda item: (-len(item[0]), item[0])))
        return cls(MappingProxyType(dict(sorted(exact.items()))), ordered)

    def route(self, kind: str) -> str:
        """The plugin serving ``kind``, or NotFound with the install command."""
        kind = parse_kind(kind)
        plugin = self.exact.get(kind)
        if plugin is not None:
            return plugin
        for prefix, owner in self.globs:
            if kind.startswith(prefix):
                return owner
        raise NotFound(f"no subject backend serves kind {kind!r}", fix=INSTALL_FIX)

    def route_method(self, method: str) -> Route:
        """``linear.issue/get`` → the plugin for ``linear.issue``, verb ``get``."""
        kind, sep, verb = method.partition("/")
        if not sep or not verb:
            raise InvalidInput(f"invalid subject method {method!r}: expected '<kind>/<verb>'")
        return Route(self.route(kind), kind, verb, method)

    def kinds(self) -> dict[str, str]:
        """Every declared kind or glob with its plugin, for ``daemon health`` and docs."""
        table = dict(self.exact)
        table.update({prefix + "*": plugin for prefix, plugin in self.globs})
        return table
