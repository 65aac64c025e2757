# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Registers a plugin's option definitions from its DOCUMENTATION with libyaml.

Every task runs in a freshly forked worker, and a plugin the parent process never loaded has
its DOCUMENTATION parsed again in each of them with ansible-core's instrumented YAML loader
(about 20 ms for a connection plugin with many options). The C loader reads the same text in
a quarter of that. What it produces is only used when the plugin's documentation needs no
doc fragments and holds no templated defaults, which ansible-core would have to mark trusted.
"""
from __future__ import annotations

import typing as t

try:
    import yaml

    _LOADER: t.Any = yaml.CSafeLoader
except (ImportError, AttributeError):  # no libyaml: ansible-core parses the text itself
    _LOADER = None

try:
    from ansible import constants as C
except ImportError:  # imported outside a controller (documentation tooling)
    C = None


def register_options(plugin_type: str, name: str, documentation: str) -> bool:
    """Hands the options to ansible-core's config manager, unless it has them already."""
    config = getattr(C, "config", None)
    if _LOADER is None or config is None:
        return False
    if not (hasattr(config, "has_configuration_definition") and hasattr(config, "initialize_plugin_configuration_definitions")):
        return False
    if config.has_configuration_definition(plugin_type, name):
        return True
    doc = yaml.load(documentation, Loader=_LOADER)  # noqa: S506 - the C *safe* loader
    options = doc.get("options") if isinstance(doc, dict) else None
    if not isinstance(options, dict) or doc.get("extends_documentation_fragment") or _has_template(options):
        return False
    config.initialize_plugin_configuration_definitions(plugin_type, name, options)
    return True


def _has_template(options: dict[str, t.Any]) -> bool:
    return any("{{" in str(spec.get("default", "")) or "{%" in str(spec.get("default", ""))
               for spec in options.values() if isinstance(spec, dict))
