"""Regular expressions as Envoy runs them: Google RE2, with Envoy's limit on the compiled program.

Python's `re` accepts what RE2 refuses (lookarounds, backreferences) and refuses what RE2 accepts
(`\\z`, `\\p{L}`); a regex that passes here is one Envoy accepts, so a policy cannot make a sidecar
NACK its routes.
"""

from __future__ import annotations

import re2

# Envoy refuses a regex whose RE2 program is larger than this (runtime key
# re2.max_program_size.error_level, default 100).
ENVOY_MAX_PROGRAM_SIZE = 100
MAX_PATTERN_LENGTH = 1024

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is reported by the caller, not logged by RE2 itself
_OPTIONS.max_mem = 1 << 20


def regex_problem(pattern: str) -> str | None:
    """Why Envoy would refuse `pattern`, or None when it accepts it."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"is {len(pattern)} characters long; at most {MAX_PATTERN_LENGTH} are allowed"
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as e:
        detail = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        return f"is not a valid RE2 regular expression (Envoy's dialect): {detail}"
    if compiled.programsize > ENVOY_MAX_PROGRAM_SIZE:
        return (
            f"compiles to an RE2 program of size {compiled.programsize}; Envoy refuses more than "
            f"{ENVOY_MAX_PROGRAM_SIZE}"
        )
    return None
