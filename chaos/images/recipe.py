"""What an image is made of, as data: the base recipe (Debian suite, packages, the machine's
apt sources) and the faultmesh source tree, each reduced to a hash that names the image.

An image's tag is the hash of everything that decides its content, so an unchanged recipe or
source tree finds its image already built (``docker image inspect``) and builds nothing.
Nothing here calls Docker.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

from topologies.errors import RunError

__all__ = ["SUITE", "VARIANT", "PACKAGES", "RUNTIME_REQUIREMENTS", "SOURCE_PACKAGES",
           "BASE_REPO", "EMULATOR_REPO", "repo_root", "apt_sources", "base_recipe_hash",
           "source_files", "source_hash", "runtime_pins", "copy_sources"]

#: Debian release the base image is bootstrapped from (its python3 is 3.11, as pyproject asks).
SUITE = "bookworm"
#: mmdebstrap variant: Essential:yes packages only (no apt inside), plus :data:`PACKAGES`.
VARIANT = "essential"
#: Debian packages of the base: Python with venv, the C++ runtime numpy's wheels link against
#: (without it numpy fails to import), iproute2 and iptables for in-namespace network faults,
#: CA certificates for the user's own HTTPS calls, and redis-server: the real cache of the
#: real-parts example (examples/rag-real/cache.py runs it inside its container), so its image
#: is made from this one with no package manager or network at build time.
PACKAGES = ("python3", "python3-venv", "libstdc++6", "iproute2", "iptables", "ca-certificates",
            "redis-server")
#: What the emulator and the fault proxy import beyond faultmesh itself (measured: the
#: third-party modules loaded by ``chaos.emulator`` and ``faultmesh proxy``). The image holds
#: these, not the whole dependency set (pandas, matplotlib, locust, dask run on the host):
#: docs/docker.md has both sizes. prometheus_client: the replicas' and the proxy's ``GET
#: /metrics`` (imported at the first scrape, so not in the measured set above).
RUNTIME_REQUIREMENTS = ("numpy", "pyyaml", "networkx", "prometheus_client")
#: Top-level packages of the source tree; the hash covers every file the wheel takes from them.
SOURCE_PACKAGES = ("topologies", "simulator", "chaos", "loadtests", "reports", "faultmesh")
#: Suffixes of the files the wheel ships (modules, bundled topologies, report templates).
_SHIPPED = (".py", ".yaml", ".j2", ".css")
#: Repositories (image names) of the two images.
BASE_REPO = "faultmesh/base"
EMULATOR_REPO = "faultmesh/emulator"
_SOURCES_DIR = Path("/etc/apt/sources.list.d")
_SOURCES_LIST = Path("/etc/apt/sources.list")


def repo_root() -> Path:
    """The source checkout this faultmesh runs from (the directory with pyproject.toml);
    RunError when faultmesh was installed from a wheel, which has no tree to build from."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise RunError("images are built from a source checkout (no pyproject.toml beside "
                       f"{root / 'chaos'}); run faultmesh from a clone of the repository")
    return root


def apt_sources() -> str:
    """The machine's apt sources, as mmdebstrap reads them on standard input: the deb822
    ``*.sources`` files of /etc/apt/sources.list.d, else the one-line ``*.list`` files and
    /etc/apt/sources.list (mmdebstrap takes one format at a time). Disabled files (any other
    suffix) are not read. RunError when there are none."""
    def read(paths: list[Path]) -> list[str]:
        return [p.read_text(encoding="utf-8") for p in paths if p.is_file()]

    listed = sorted(_SOURCES_DIR.glob("*.sources")) if _SOURCES_DIR.is_dir() else []
    parts = [text.strip() for text in read(listed) if text.strip()]
    if parts:
        return "\n\n".join(parts) + "\n"  # deb822 stanzas are separated by blank lines
    lists = [_SOURCES_LIST] + (sorted(_SOURCES_DIR.glob("*.list"))
                               if _SOURCES_DIR.is_dir() else [])
    lines = [line for text in read(lists) for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise RunError(f"no apt sources on this machine ({_SOURCES_DIR}/*.sources or "
                       f"{_SOURCES_LIST}): the base image is bootstrapped from them")
    return "\n".join(lines) + "\n"


def base_recipe_hash(sources: str) -> str:
    """12 hex digits naming the base image: suite, variant, packages and the apt sources
    (a machine with other sources or a snapshot of another date gets another base)."""
    digest = hashlib.sha256()
    for part in (SUITE, VARIANT, ",".join(PACKAGES), sources):
        digest.update(part.encode("utf-8") + b"\0")
    return digest.hexdigest()[:12]


def source_files(root: Path) -> Iterator[Path]:
    """The files of the source tree the image holds, relative to ``root``, sorted: every
    shipped file of :data:`SOURCE_PACKAGES` and pyproject.toml (caches and editor files are
    not sources)."""
    found = [Path("pyproject.toml")]
    for package in SOURCE_PACKAGES:
        for path in (root / package).rglob("*"):
            rel = path.relative_to(root)
            if (path.is_file() and path.suffix in _SHIPPED and "__pycache__" not in rel.parts
                    and not any(p.startswith(".") for p in rel.parts)):
                found.append(rel)
    yield from sorted(found)


def source_hash(root: Path, extra: str = "") -> str:
    """12 hex digits naming the emulator image: every source file's path and bytes, plus
    ``extra`` (the base tag and pinned requirements: they decide the image too)."""
    digest = hashlib.sha256(extra.encode("utf-8") + b"\0")
    for rel in source_files(root):
        digest.update(rel.as_posix().encode("utf-8") + b"\0")
        digest.update((root / rel).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def runtime_pins() -> list[str]:
    """:data:`RUNTIME_REQUIREMENTS` pinned to the versions installed here, so the image runs
    what the host's tests ran (``numpy==2.4.6``, ...)."""
    pins = []
    for name in RUNTIME_REQUIREMENTS:
        try:
            pins.append(f"{name}=={installed_version(name)}")
        except PackageNotFoundError:
            pins.append(name)  # not installed here: the newest that pip finds
    return pins


def copy_sources(root: Path, dest: Path) -> None:
    """Copy the hashed source files (plus README and licence, which the package metadata
    names) into ``dest``: the wheel is built from exactly what the tag names, and the build
    leaves nothing (build/, *.egg-info) in the checkout."""
    names = list(source_files(root)) + [p.relative_to(root) for p in root.glob("README*")]
    names += [p.relative_to(root) for p in root.glob("LICEN[CS]E*")]
    for rel in names:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)
