"""Make torchvision 0.28.0 import on the CPU build of torch 2.13.0.

PyPI's torchvision 0.28.0 (the release that matches torch 2.13.0) ships its
custom ops linked against CUDA: on the CPU torch its ``_C.so`` does not load,
and two unguarded ``@torch.library.register_fake("torchvision::nms")`` /
``("torchvision::qnms")`` in ``torchvision/_meta_registrations.py`` then make
``import torchvision`` itself fail. Registering those two fakes only when the
ops loaded keeps models, datasets and transforms working; ``torchvision.ops``
still says "Couldn't load custom C++ ops".

Run with the venv's interpreter (its site-packages is the one patched). Exits
non-zero, naming the file, when it does not hold each decorator exactly once:
another torchvision needs this patch checked, not applied blindly.
"""

from __future__ import annotations

import importlib.util
import py_compile
import sys
import sysconfig
from pathlib import Path

OPS = ("nms", "qnms")


def patch(text: str) -> str:
    for op in OPS:
        old = f'@torch.library.register_fake("torchvision::{op}")\n'
        new = (f'@(torch.library.register_fake("torchvision::{op}") '
               f'if torchvision.extension._has_ops() else (lambda fn: fn))\n')
        if text.count(old) != 1:
            raise ValueError(f"expected the decorator {old.strip()!r} exactly once, found it {text.count(old)} times")
        text = text.replace(old, new)
    return text


def main() -> int:
    path = Path(sysconfig.get_paths()["purelib"]) / "torchvision" / "_meta_registrations.py"
    try:
        path.write_text(patch(path.read_text()))
    except (OSError, ValueError) as exc:
        print(f"patch_torchvision: {path}: {exc}", file=sys.stderr)
        return 1
    # The venv is read-only to the people who run it: their interpreters cannot refresh the cache.
    py_compile.compile(str(path), cfile=importlib.util.cache_from_source(str(path)), doraise=True)
    print(f"patch_torchvision: guarded the nms/qnms fake registrations in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
