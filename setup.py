"""The scoring hot path (``[tool.atalaia] compiled`` in pyproject.toml) compiled to C by
mypyc when ``ATALAIA_COMPILE=1``: ``make compile`` (opt-in) builds it in place, with the
project's dependencies installed so that mypyc sees their types. Without it the package
installs as plain Python (the default, see the README: the compiled build aborts on SIGTERM
in some runs) and runs the same code slower; the README's Measured section says which
figures are compiled."""

import os
import tempfile
import tomllib

from setuptools import setup

# Type checking is `mypy`'s job (pyproject.toml); compiling only needs the types. river is
# not followed: reading it (and numpy under it) takes mypyc minutes, and the compiled code
# calls it as any other Python library.
MYPYC_CONFIG = """
[mypy]
ignore_missing_imports = True
[mypy-river.*]
follow_imports = skip
"""

if os.environ.get("ATALAIA_COMPILE") == "1":
    from mypyc.build import mypycify

    with open("pyproject.toml", "rb") as project:
        compiled = tomllib.load(project)["tool"]["atalaia"]["compiled"]
    with tempfile.NamedTemporaryFile("w", suffix=".ini") as config:
        config.write(MYPYC_CONFIG)
        config.flush()
        options = ["--config-file", config.name, "--cache-dir", "build/mypyc-cache"]
        extensions = mypycify([*options, *compiled], opt_level="3", group_name="engine.native")
    setup(ext_modules=extensions)
    # Marks each module built from its source as it is now (atalaia.compiled compares the
    # times): an unchanged module is not rebuilt and keeps its older time.
    for source in compiled:
        stem, folder = os.path.splitext(os.path.basename(source))[0], os.path.dirname(source)
        for name in os.listdir(folder):
            if name.startswith(f"{stem}.cpython-") and name.endswith(".so"):
                os.utime(os.path.join(folder, name))
else:
    setup()
