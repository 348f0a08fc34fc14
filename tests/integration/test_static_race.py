"""Static files: a directory below the web root swapped for a symlink to
outside it between the broker's check of the path and its open (issue 15).

A check by path (realpath, then open the result with O_NOFOLLOW) guards only
the last component: an intermediate directory replaced by a symlink after the
check is followed by the open. The race is made deterministic by an
LD_PRELOAD library (shim_swap_dir.c, built by CMake, its path in
WSBROKER_SWAP_SHIM) that swaps the directory right after a realpath() that
resolves into it, or right before an open of a path in it, whichever the
broker does first. Opening beneath the root's descriptor (openat2 with
RESOLVE_BENEATH) has no such window, so the outside file is never served.
Each test checks the swap really happened, so an inert shim fails it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import wsraw
from helpers import REPO_ROOT


def swap_shim() -> str:
    """The shim's path: WSBROKER_SWAP_SHIM (ctest sets it) or the default build tree's."""
    path = os.environ.get("WSBROKER_SWAP_SHIM") or str(REPO_ROOT / "build" / "tests" / "libshim_swap_dir.so")
    assert os.path.isfile(path), f"swap shim not found at {path}: build it or set WSBROKER_SWAP_SHIM"
    return path


def shim_env(swap_dir: Path, swap_to: Path) -> dict:
    preload = " ".join(p for p in (os.environ.get("LD_PRELOAD", ""), swap_shim()) if p)
    # Under ASan the sanitizer runtime wants to come first; the shim goes ahead of it.
    asan = ":".join(p for p in (os.environ.get("ASAN_OPTIONS", ""), "verify_asan_link_order=0") if p)
    return {"LD_PRELOAD": preload, "ASAN_OPTIONS": asan, "SHIM_SWAP_DIR": str(swap_dir),
            "SHIM_SWAP_TO": str(swap_to)}


@pytest.fixture
def tree(tmp_path):
    """www/ (the web root) and outside/, canonical paths: the shim compares them
    with what the broker resolves."""
    base = Path(os.path.realpath(tmp_path))
    root = base / "www"
    root.mkdir()
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE-SECRET\n")
    return root, outside


def absolute_link_inside(root: Path) -> Path:
    """www/inner/d/secret.txt and www/abs -> www/inner (absolute); returns inner/d."""
    d = root / "inner" / "d"
    d.mkdir(parents=True)
    (d / "secret.txt").write_text("inside\n")
    (root / "abs").symlink_to(root / "inner")
    return d


def get(b, target):
    with wsraw.Conn(b.host, b.port) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return wsraw.read_response(c)


def assert_refused_during_swap(broker_factory, root: Path, swap_dir: Path, outside: Path, target: str):
    """GETs `target` from a broker whose shim swaps `swap_dir` for a link to
    `outside`: the swap must have happened and the outside file not been served."""
    b = broker_factory("--web-root", str(root), env=shim_env(swap_dir, outside))
    r = get(b, target)
    assert swap_dir.is_symlink() and Path(os.readlink(swap_dir)) == outside, \
        "the shim did not swap the directory: the race was not exercised"
    assert (swap_dir.parent / (swap_dir.name + ".orig") / "secret.txt").read_text() == "inside\n"
    assert b"OUTSIDE" not in r.body, "a file outside the web root was served"
    assert r.status in (403, 404), r.status


def test_directory_swapped_for_outside_link_after_check_is_refused(broker_factory, tree):
    """GET /swap/secret.txt while swap/ becomes a link to outside/ after the
    check: a realpath check passes on the real directory and its open then
    follows the link (O_NOFOLLOW guards only secret.txt)."""
    root, outside = tree
    swap = root / "swap"
    swap.mkdir()
    (swap / "secret.txt").write_text("inside\n")
    assert_refused_during_swap(broker_factory, root, swap, outside, "/swap/secret.txt")


def test_swap_after_absolute_link_is_resolved_is_refused(broker_factory, tree):
    """An absolute symlink that points back inside the root (abs -> www/inner)
    takes the other path: RESOLVE_BENEATH refuses every absolute link, so the
    broker resolves it with realpath and opens the result. inner/d becomes a
    link to outside/ right after that realpath; the open must not follow it."""
    root, outside = tree
    d = absolute_link_inside(root)
    assert_refused_during_swap(broker_factory, root, d, outside, "/abs/d/secret.txt")


def test_absolute_link_inside_is_served_through_the_shim(broker_factory, tree):
    """Control: with the shim loaded and nothing swapped (its directory is not
    on the path), an absolute link back inside is served: the refusals above
    come from the swap, not from the shim or the link."""
    root, outside = tree
    d = absolute_link_inside(root)
    b = broker_factory("--web-root", str(root), env=shim_env(root / "elsewhere", outside))
    r = get(b, "/abs/d/secret.txt")
    assert (r.status, r.body) == (200, b"inside\n")
