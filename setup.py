"""The scoring hot path (``[tool.atalaia] compiled`` in pyproject.toml) compiled to C by
mypyc when ``ATALAIA_COMPILE=1``: ``make setup`` / ``make compile`` build it in place, and
``ATALAIA_COMPILE=1 pip install --no-build-isolation .`` into a wheel (the Dockerfile), with
the project's dependencies installed so that mypyc sees their types. Without it (a plain
``pip install``) the package installs as plain Python and runs the same code slower."""

import os
import sys
import tempfile

from setuptools import setup

# Type checking is `mypy`'s job (pyproject.toml); compiling only needs the types. The
# numeric libraries are not followed: reading them (river, LightGBM, and numpy, scipy and
# pandas under them) takes mypyc minutes to hours, and the compiled code calls them as any
# other Python library.
MYPYC_CONFIG = """
[mypy]
ignore_missing_imports = True
[mypy-river.*,lightgbm.*,numpy.*,scipy.*,pandas.*,sklearn.*]
follow_imports = skip
"""

if os.environ.get("ATALAIA_COMPILE") == "1":
    # This checkout's sources, even where an installed atalaia is importable (a wheel built
    # by `ATALAIA_COMPILE=1 pip install .`, as the Dockerfile does).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from mypyc.build import mypycify

    from atalaia.compiled import CHECKOUT, built_files, compiled_sources

    sources = compiled_sources()
    with tempfile.NamedTemporaryFile("w", suffix=".ini") as config:
        config.write(MYPYC_CONFIG)
        config.flush()
        options = ["--config-file", config.name, "--cache-dir", "build/mypyc-cache"]
        listed = [str(source.relative_to(CHECKOUT)) for source in sources]
        extensions = mypycify([*options, *listed], opt_level="3", group_name="engine.native")
    setup(ext_modules=extensions)
    # Marks each module built from its source as it is now (atalaia.compiled compares the
    # times): an unchanged module is not rebuilt and keeps its older time.
    for source in sources:
        for built in built_files(source):
            os.utime(built)
else:
    setup()
