# Shared by scripts/demo and scripts/test: the project virtualenv (.venv), installed from the
# committed lock file (uv.lock) with exactly the versions the suite was tested with.
# Usage: EXTRAS=test . scripts/_venv.sh   (EXTRAS optional)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# the version of uv that reads uv.lock; raise it deliberately (scripts/upgrade-deps)
UV_VERSION="0.13.9"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "Kiban には Python 3.11 以上が必要です（${PYTHON} は $("$PYTHON" --version 2>&1 || echo 見つかりません)）。" >&2
  exit 1
fi
TOOLS="$ROOT/.tools"
if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "インストーラ uv ${UV_VERSION} を用意します: $TOOLS"
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
fi
VENV="$ROOT/.venv"
export UV_PROJECT_ENVIRONMENT="$VENV" UV_PYTHON_DOWNLOADS=never
# --locked: fail instead of resolving again when uv.lock no longer matches pyproject.toml
if ! "$TOOLS/bin/uv" sync --quiet --locked --python "$PYTHON" ${EXTRAS:+--extra "$EXTRAS"} --project "$ROOT"; then
  echo "依存関係のインストールに失敗しました。uv.lock が pyproject.toml と一致しない場合は scripts/upgrade-deps を実行してください。" >&2
  exit 1
fi
