"""The plugin contract stays documented and in step with the typed calls the core makes.

Modelled on datasette's tests/test_docs.py: a hook added without a docstring, without the project
prefix, or without its typed wrapper in `Hooks` (or a wrapper left behind by a removed hook) fails
here instead of surprising a plugin author.
"""

from __future__ import annotations

import inspect

import pluggy
import pytest

from dockyard.core import hookspecs
from dockyard.core.plugins import Hooks

# Called once, by load_plugins, with call_historic: it has no wrapper in `Hooks`.
NOT_WRAPPED = {"dockyard_register_drivers"}


def _collect_specs() -> dict[str, pluggy.HookspecOpts]:
    """Every hook spec in the module, found by its marker, not its name: a misnamed one counts."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    found = {}
    for name in dir(hookspecs):
        opts = manager.parse_hookspec_opts(hookspecs, name)
        if opts is not None:
            found[name] = opts
    return found


SPECS = _collect_specs()
WRAPPERS = {
    name: member
    for name, member in vars(Hooks).items()
    if inspect.isfunction(member) and not name.startswith("_")
}


def test_specs_are_found() -> None:
    assert "dockyard_register_drivers" in SPECS
    assert len(SPECS) > 1


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_is_prefixed(name: str) -> None:
    assert name.startswith("dockyard_"), f"hook {name} lacks the dockyard_ prefix"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_is_documented(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and doc.strip(), f"hook {name} has no docstring: it is the hook's reference"


def test_every_function_in_hookspecs_is_a_spec() -> None:
    functions = {
        name
        for name, member in vars(hookspecs).items()
        if inspect.isfunction(member) and member.__module__ == hookspecs.__name__
    }
    assert functions - set(SPECS) == set(), "a function in hookspecs lacks the @hookspec marker"


def test_wrappers_match_specs() -> None:
    wrapped = {f"dockyard_{name}" for name in WRAPPERS}
    assert wrapped - set(SPECS) == set(), "Hooks has a wrapper for a hook that does not exist"
    assert set(SPECS) - NOT_WRAPPED - wrapped == set(), "a hook has no typed wrapper in Hooks"


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_wrapper_takes_the_spec_arguments_by_keyword(name: str) -> None:
    wrapper = inspect.signature(WRAPPERS[name]).parameters.values()
    keyword_only = [p.name for p in wrapper if p.kind is inspect.Parameter.KEYWORD_ONLY]
    positional = [p.name for p in wrapper if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    spec = list(inspect.signature(getattr(hookspecs, f"dockyard_{name}")).parameters)
    assert positional == ["self"]
    assert keyword_only == spec


def test_register_drivers_is_historic() -> None:
    assert SPECS["dockyard_register_drivers"]["historic"] is True


def test_only_registration_hooks_are_historic() -> None:
    historic = {name for name, opts in SPECS.items() if opts["historic"]}
    assert all(name.startswith("dockyard_register_") for name in historic)
