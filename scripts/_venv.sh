# Sourced by the scripts: make .venv with the project and its test dependencies if it is missing
# or out of date with pyproject.toml.
# The interpreter: $PYTHON, else the system's /usr/bin/python3 when it is 3.10+ with venv, else
# python3 on PATH. A distribution's CPython (Debian's, like the Docker image's python:3.11-slim) is
# built with optimizations; pyenv's default build is not: the suite's crash tests took 5-10 % more
# CPU on pyenv's 3.11.7 than on Debian's 3.11.2 here (tests/reliability/test_crash.py, -n 3: 395
# against 358 CPU-s; test_two_way_crash.py: 362 against 342).
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=python3
  if /usr/bin/python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 10))' \
    2>/dev/null; then
    PYTHON=/usr/bin/python3
  fi
fi
if [[ ! -x .venv/bin/python ]]; then
  if ! "$PYTHON" -m venv .venv; then
    rm -rf .venv
    python3 -m venv .venv
  fi
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -f "$stamp" ]]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
# Every Meltano run starts a Python process per plugin. Where the environment forbids bytecode
# caches (PYTHONDONTWRITEBYTECODE, as many container images set it) and the plugin venvs hold
# none (Meltano's uv backend does not compile them), each start compiled singer-sdk, SQLAlchemy
# and the rest again: ~1.4 s of CPU more per plugin start here. The scripts let Python keep its
# caches in .venv, .meltano and the source tree's __pycache__ (all git-ignored).
unset PYTHONDONTWRITEBYTECODE
