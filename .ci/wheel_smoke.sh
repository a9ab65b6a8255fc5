#!/usr/bin/env bash
# Wheel smoke test: build a wheel from the checkout's files (tracked and new, never ignored ones), install it
# into a fresh venv, and use it from outside the checkout.
#
# Nothing is downloaded: the wheel is built with the project venv's setuptools (--no-build-isolation) and
# installed with --no-deps --no-index; the fresh venv sees the project venv's packages (torch, numpy, ...)
# through a path entry *appended* after its own site-packages, so `bilevel` and `zoo` can only come from
# the wheel (that path entry does not process .pth files, hence not the venv's editable install either).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. the sources a clone would hold (plus files not yet committed), without build outputs
mkdir "$tmp/src"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$tmp/src"

# 2. the wheel
"$PY" -m pip wheel --quiet --no-build-isolation --no-deps --wheel-dir "$tmp/dist" "$tmp/src"
wheel=$(ls "$tmp"/dist/bilevel-*.whl)
echo "built $(basename "$wheel")"

# 3. a fresh venv that sees the project venv's third-party packages
"$PY" -m venv --without-pip "$tmp/venv"
site_new=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site_old=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site_old" > "$site_new/zz_project_venv.pth"
"$PY" -m pip --python "$tmp/venv/bin/python" install --quiet --no-deps --no-index "$wheel"

# 4. use it from outside the checkout
cd "$tmp"
"$tmp/venv/bin/python" - "$site_new" <<'EOF'
import importlib.metadata as md
import sys
from pathlib import Path

site = Path(sys.argv[1]).resolve()
import bilevel
import torch
import zoo
import zoo.data
import zoo.metrics

for mod in (bilevel, zoo):
    where = Path(mod.__file__).resolve()
    assert site in where.parents, f"{mod.__name__} imported from {where}, not from the wheel"
    assert (where.parent / "py.typed").is_file(), f"{mod.__name__} ships no py.typed"
assert bilevel.__version__ == zoo.__version__ == md.version("bilevel"), "versions are not single-sourced"
meta = md.metadata("bilevel")
assert meta["License-Expression"] == "MIT", meta["License-Expression"]
files = [str(f) for f in md.files("bilevel") or []]
assert any(f.endswith("licenses/LICENSE") for f in files), "LICENSE is not in the wheel"
assert not any(f.startswith("benchmarks/") for f in files), "benchmarks/ must not be installed"
assert set(md.metadata("bilevel").get_all("Provides-Extra")) >= {"zoo", "bench", "peers", "dev"}

# one PenaltyBGD step on a tiny problem: the loss goes down
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
sup = lambda: torch.nn.functional.mse_loss(model(x), y)  # noqa: E731
unsup = lambda: model(x).pow(2).mean()  # noqa: E731
opt = bilevel.PenaltyBGD([], model.parameters(), lr=0.05, gamma=bilevel.LinearRamp(0.0, 1.0, 10))
with torch.no_grad():
    before = float(sup() + unsup())
for _ in range(5):
    opt.step(upper_loss=sup, lower_loss=unsup)
with torch.no_grad():
    after = float(sup() + unsup())
assert after < before, (before, after)
assert zoo.metrics.wer("a b c d", "a x c") == 0.5
print(f"wheel smoke test passed: bilevel {bilevel.__version__} from {site}")
EOF
