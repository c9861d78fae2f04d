# Shared by scripts/demo and scripts/test: a project virtualenv with Kiban installed.
# Usage: EXTRAS=test . scripts/_venv.sh   (EXTRAS optional)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "Kiban には Python 3.11 以上が必要です（${PYTHON} は $("$PYTHON" --version 2>&1 || echo 見つかりません)）。" >&2
  exit 1
fi
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "仮想環境を作成します: $ROOT/.venv"
  "$PYTHON" -m venv "$ROOT/.venv"
fi
VENV="$ROOT/.venv"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e "$ROOT${EXTRAS:+[$EXTRAS]}"
