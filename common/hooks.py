"""The registry behind every app's hooks: what a higher app registers at start-up for a lower one to call.

A lower app may not import a higher one, so the higher app hands over its functions when it
starts (``AppConfig.ready``). Each entry has a key: by default the function itself, so that
registering the same function twice keeps one; or a name (a request kind, a hook's role)
under which a later registration replaces the earlier one. Entries keep the order in which
they were first registered.
"""

from collections.abc import Callable, Hashable, Iterator


class Registry:
    """Registered functions by key, in the order they first came."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, Callable] = {}

    def register(self, fn: Callable, *, key: Hashable = None) -> None:
        self._entries[fn if key is None else key] = fn

    def unregister(self, key: Hashable) -> None:
        """Forget the entry under ``key`` (the function itself, unless it was registered by name)."""
        self._entries.pop(key, None)

    def get(self, key: Hashable) -> Callable | None:
        return self._entries.get(key)

    def __iter__(self) -> Iterator[Callable]:
        # A copy: a hook may register or unregister while the others are being called.
        return iter(list(self._entries.values()))

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries
