"""common.hooks.Registry: what the apps' hook modules keep their registered functions in."""

from common.hooks import Registry


def first():
    return "first"


def second():
    return "second"


def test_registering_the_same_function_twice_keeps_one_in_its_first_place():
    registry = Registry()
    registry.register(first)
    registry.register(second)
    registry.register(first)

    assert list(registry) == [first, second]


def test_a_function_registered_under_a_name_replaces_the_one_before():
    registry = Registry()
    registry.register(first, key="course_desktops")
    registry.register(second, key="course_desktops")

    assert registry.get("course_desktops") is second and list(registry) == [second]


def test_what_was_never_registered_is_none_and_unregistering_it_is_harmless():
    registry = Registry()
    registry.unregister("nothing")

    assert registry.get("nothing") is None and list(registry) == [] and "nothing" not in registry


def test_a_hook_may_unregister_itself_while_the_hooks_are_called():
    registry = Registry()
    called = []

    def once():
        called.append("once")
        registry.unregister(once)

    registry.register(once)
    registry.register(first)
    for fn in registry:
        fn()

    assert called == ["once"] and list(registry) == [first]
