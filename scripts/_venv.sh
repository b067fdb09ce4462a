# Sourced by the scripts: make .venv with the project and its test dependencies if it is missing
# or out of date with pyproject.toml.
PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
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
