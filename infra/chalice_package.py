"""``chalice package`` for the stack's Lambda runtime (``build_template.RUNTIME``), whatever Python
runs the build (``make package``).

Chalice takes the runtime from the interpreter running it (``Config.lambda_python_version``: a
Python 3.11 build packages ``python3.11`` functions with cp311 wheels). Here the property returns
RUNTIME instead, so the template's ``Runtime`` is RUNTIME and Chalice's dependency builder asks for
the manylinux wheels of RUNTIME's ABI (cp314) for requirements.txt; pure-Python and abi3 wheels
serve any version. Its ``pip download --platform ... --abi cp314`` also needs ``--python-version``
(pip otherwise matches tags against the Python running it, and finds no cp314 wheel): added here.
Chalice's "you are running python3.11" warning is expected and harmless.

Usage, in chalice_app/: ``python ../infra/chalice_package.py [chalice package options] OUT_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_template import RUNTIME


def patch_chalice() -> None:
    """Make Chalice (in this process) package for RUNTIME."""
    from chalice import config
    from chalice.deploy import packager

    config.Config.lambda_python_version = property(lambda self: RUNTIME)
    execute = packager.PipRunner._execute
    version = RUNTIME.removeprefix("python")

    def _execute(self, command, args, env_vars=None, shim=None):
        if command == "download" and "--only-binary=:all:" in args and "--python-version" not in args:
            args = ["--python-version", version, *args]
        return execute(self, command, args, env_vars=env_vars, shim=shim)

    packager.PipRunner._execute = _execute


def main(argv: list[str]) -> int:
    from chalice.cli import main as chalice_main

    patch_chalice()
    sys.argv = ["chalice", "package", *argv]
    return chalice_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
