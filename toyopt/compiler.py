"""Whether the compiled backend can run here: torch.compile's CPU code generator (inductor) calls
a C++ compiler, and without one it fails deep inside the first compiled call. ``require_cxx`` turns
that into one ValueError before any work starts."""

from __future__ import annotations

import os
import shutil


def find_cxx() -> str | None:
    """The path of the C++ compiler inductor would call ($CXX, else its configured names such as
    g++), or None when there is none on the PATH."""
    from torch._inductor import config

    names = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
    for name in names:
        name = os.environ.get("CXX") if name is None else name
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


def require_cxx(backend: str) -> None:
    """ValueError naming the backend when it is "compiled" and no C++ compiler is found."""
    if backend == "compiled" and find_cxx() is None:
        raise ValueError(
            "backend 'compiled' needs a C++ compiler (g++, or the one named by $CXX) and none was "
            "found on the PATH: install one, or use backend 'eager'"
        )
