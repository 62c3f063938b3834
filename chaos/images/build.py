"""Building the two images without a registry: the Debian base (mmdebstrap, ``docker import``)
and the faultmesh emulator image on top of it (a host-built wheelhouse installed in a
``--network none`` container, then ``docker commit``).

Each function returns its image's tag at once when an image of that tag exists (the tag is
the hash of what the image is made of: :mod:`chaos.images.recipe`), and builds it otherwise.
Every intermediate container is removed, whatever ends the build (error, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from chaos.dockercli import KIND_LABEL, docker, unavailable
from chaos.images import recipe
from topologies.errors import RunError

__all__ = ["Progress", "base_image", "emulator_image", "emulator_tag", "list_images",
           "image_exists", "wheelhouse", "VENV", "PROXY_COMMAND"]

#: Called with one line per build step ("base: bootstrapping ...").
Progress = Callable[[str], None]
#: Where faultmesh is installed in the emulator image (its bin/ is first on PATH).
VENV = "/opt/faultmesh"
#: The emulator image's default command: the fault proxy, listening on every interface.
PROXY_COMMAND = ("python", "-m", "faultmesh", "proxy", "--host", "0.0.0.0", "--port", "8474")
_PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_KIND = f"{KIND_LABEL}=image"


def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        progress(line)


def image_exists(tag: str) -> bool:
    """Whether the engine holds an image of this tag."""
    return docker("image", "inspect", "--format", "{{.Id}}", tag, check=False).returncode == 0


def _image_id(tag: str) -> str | None:
    done = docker("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


def _require_docker() -> None:
    why = unavailable()
    if why:
        raise RunError(why)


def _drop_replaced(old_id: str | None, tag: str) -> None:
    """A forced rebuild moves the tag; the image it left (now untagged) goes, if unused."""
    if old_id and old_id != _image_id(tag):
        docker("rmi", old_id, check=False)


def base_image(build: bool = True, force: bool = False,
               progress: Progress | None = None) -> str:
    """The tag of the Debian base image (``faultmesh/base:<recipe hash>``): bookworm's
    Essential set plus :data:`recipe.PACKAGES`, bootstrapped by mmdebstrap from this
    machine's apt sources and imported with ``docker import``. Built when missing (``build``)
    or when ``force``; RunError (exit 3) when it is missing and cannot or may not be built."""
    sources = recipe.apt_sources()
    digest = recipe.base_recipe_hash(sources)
    tag = f"{recipe.BASE_REPO}:{digest}"
    _require_docker()
    if image_exists(tag) and not force:
        _say(progress, f"base: {tag} exists, reused")
        return tag
    if not build:
        raise RunError(f"image {tag} is not built: run faultmesh images build")
    if shutil.which("mmdebstrap") is None:
        raise RunError("mmdebstrap is not installed (apt-get install mmdebstrap, "
                       "or bash scripts/setup.sh --test as root)")
    old_id = _image_id(tag)
    _say(progress, f"base: bootstrapping Debian {recipe.SUITE} ({', '.join(recipe.PACKAGES)}) "
         "from this machine's apt sources with mmdebstrap")
    with tempfile.TemporaryDirectory(prefix="faultmesh-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        cmd = ["mmdebstrap", "--quiet", f"--variant={recipe.VARIANT}",
               f"--include={','.join(recipe.PACKAGES)}", recipe.SUITE, str(tarball)]
        # the sources go on standard input: mmdebstrap uses them as the chroot's sources
        done = subprocess.run(cmd, input=sources, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not tarball.is_file():
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RunError(f"mmdebstrap failed (exit {done.returncode}): {last}")
        _say(progress, f"base: importing the root file system as {tag}")
        docker("import", "--change", f"LABEL {_KIND}",
               "--change", f"LABEL faultmesh.recipe={digest}",
               "--change", "ENV LANG=C.UTF-8",
               "--message", f"faultmesh base: mmdebstrap {recipe.SUITE} "
               f"{','.join(recipe.PACKAGES)}", str(tarball), tag, timeout=900)
    _drop_replaced(old_id, tag)
    return tag


def emulator_tag(base: str | None = None) -> str:
    """The emulator image's tag for the current source tree (built or not): the hash of the
    sources, the base tag and the pinned runtime requirements."""
    base = base or f"{recipe.BASE_REPO}:{recipe.base_recipe_hash(recipe.apt_sources())}"
    extra = "\n".join([base, *recipe.runtime_pins(), " ".join(PROXY_COMMAND)])
    return f"{recipe.EMULATOR_REPO}:{recipe.source_hash(recipe.repo_root(), extra)}"


def wheelhouse(dest: Path, full: bool = False, progress: Progress | None = None) -> list[str]:
    """Build on the host (which reaches the package index; containers here cannot) the wheels
    the image installs into ``dest``: faultmesh itself plus :data:`recipe.RUNTIME_REQUIREMENTS`
    pinned to the host's versions, or, with ``full``, faultmesh with every dependency.
    Returns the requirement names to install."""
    if sys.version_info[:2] != (3, 11):
        # binary wheels (numpy, pyyaml) are built for this Python; the image's is 3.11
        raise RunError(f"the wheelhouse is built with this Python "
                       f"({sys.version_info[0]}.{sys.version_info[1]}) for the image's 3.11: "
                       "run faultmesh from a Python 3.11 environment")
    root = recipe.repo_root()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--quiet",
           "-w", str(dest)]
    with tempfile.TemporaryDirectory(prefix="faultmesh-src-") as src:
        recipe.copy_sources(root, Path(src))
        pins = [] if full else recipe.runtime_pins()
        _say(progress, "wheelhouse: building the faultmesh wheel"
             + (" and all its dependencies" if full else f" and {', '.join(pins)}"))
        _pip(pip + (["--no-deps"] if not full else []) + [src])
    if pins:
        _pip(pip + ["--only-binary=:all:", *pins])
    return ["faultmesh", *pins]


def _pip(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise RunError(f"pip wheel failed: {last}")


def emulator_image(build: bool = True, force: bool = False,
                   progress: Progress | None = None) -> str:
    """The tag of the faultmesh emulator image for the current source tree
    (``faultmesh/emulator:<12-hex source hash>``): the base image with faultmesh installed in
    /opt/faultmesh, running an emulator replica (``python -m chaos.emulator ...``) or the fault
    proxy (its default command). Built when missing (``build``) or when ``force`` (the base
    too); RunError (exit 3) when it is missing and cannot or may not be built."""
    _require_docker()
    base = base_image(build=build, force=force, progress=progress)
    tag = emulator_tag(base)
    if image_exists(tag) and not force:
        _say(progress, f"emulator: {tag} exists, reused")
        return tag
    if not build:
        raise RunError(f"image {tag} is not built: run faultmesh images build")
    old_id = _image_id(tag)
    name = f"faultmesh-image-build-{os.getpid()}-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="faultmesh-wheels-") as wheels:
        os.chmod(wheels, 0o755)  # read by the container's root through the bind mount
        wanted = wheelhouse(Path(wheels), progress=progress)
        install = " ".join(wanted)
        script = (f"set -e; python3 -m venv {VENV}; "
                  f"{VENV}/bin/pip install --quiet --disable-pip-version-check --no-cache-dir "
                  f"--no-index --find-links /wheels --no-deps {install}; "
                  # the two programs the image is for must start: a missing import shows here
                  f"{VENV}/bin/python -m chaos.emulator --help >/dev/null; "
                  f"{VENV}/bin/python -m faultmesh proxy --help >/dev/null")
        _say(progress, f"emulator: installing {install} from the wheelhouse in a container "
             "without network")
        try:
            docker("run", "--name", name, "--label", _KIND, "--network", "none",
                   "-v", f"{wheels}:/wheels:ro", base, "sh", "-c", script, timeout=900)
            _say(progress, f"emulator: committing {tag}")
            cmd = json.dumps(list(PROXY_COMMAND))
            docker("commit", "--change", f"ENV PATH={_PATH}",
                   "--change", "ENV PYTHONUNBUFFERED=1", "--change", "WORKDIR /",
                   "--change", f"CMD {cmd}",
                   "--change", f"LABEL faultmesh.source={tag.rsplit(':', 1)[1]}",
                   "--change", f"LABEL faultmesh.base={base}",
                   "--message", "faultmesh emulator: wheelhouse installed offline",
                   name, tag, timeout=900)
        finally:
            # whatever ended the build (an error, Ctrl-C): the container goes
            docker("rm", "-f", name, check=False, timeout=120)
    _drop_replaced(old_id, tag)
    _drop_earlier_trees(tag)
    return tag


def _drop_earlier_trees(keep: str) -> None:
    """Each source tree's image holds about 115 MB of its own: a build removes the emulator
    images of earlier trees, except those a container still uses (``docker rmi`` without
    ``-f`` refuses them), so a machine that builds every commit keeps one, not hundreds."""
    done = docker("images", "--filter", f"label={_KIND}", "--format",
                  "{{.Repository}}:{{.Tag}}", recipe.EMULATOR_REPO, check=False)
    for tag in done.stdout.split():
        if tag != keep and tag.startswith(f"{recipe.EMULATOR_REPO}:"):
            docker("rmi", tag, check=False)


def list_images() -> list[dict]:
    """Every faultmesh image the engine holds (label ``faultmesh.kind=image``), newest first:
    ``tag``, ``id`` (short), ``created``, ``size``, and ``current`` (the emulator image of
    this source tree, or the base it builds on)."""
    _require_docker()
    done = docker("images", "--filter", f"label={_KIND}", "--format", "{{json .}}")
    try:
        current = {emulator_tag()}
        current.add(f"{recipe.BASE_REPO}:{recipe.base_recipe_hash(recipe.apt_sources())}")
    except RunError:  # no checkout or no apt sources: nothing is current
        current = set()
    rows = []
    for line in done.stdout.splitlines():
        item = json.loads(line)
        tag = f"{item['Repository']}:{item['Tag']}"
        rows.append({"tag": tag, "id": item["ID"], "created": item["CreatedSince"],
                     "size": item["Size"], "current": tag in current})
    return rows
