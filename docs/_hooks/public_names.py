"""mkdocs hook: display names for foreign types that only exist at private paths.

hippogriffe prints every type in a documented signature under a public path listed in
`extra_public_objects` (mkdocs.yml), and fails the build on any other. One type cannot
be listed there: `jax.typing.DTypeLike` (used for `dtype` arguments) is a `Union` whose
member `SupportsDType` lives only in `jax._src.typing`. hippogriffe leaves objects with
a `__pdoc__` attribute to wadler-lindig, which prints `module.qualname`; so the hook
marks `SupportsDType` that way and names its module `jax.typing`, where `DTypeLike`
lives.

This module is imported by mkdocs only (for the documentation build), never by hopkur.
"""

import jax._src.typing


_SupportsDType = jax._src.typing.SupportsDType
_SupportsDType.__module__ = "jax.typing"
_SupportsDType.__pdoc__ = None  # pyright: ignore
