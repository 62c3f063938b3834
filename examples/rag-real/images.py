"""The container images of the real-parts RAG example, built without a registry or network.

Two images, each the faultmesh emulator image (Debian bookworm with python3, numpy in
/opt/faultmesh and redis-server: chaos/images) plus one program of this folder in /app:

* ``faultmesh-example/rag-retriever:1``: retriever.py, exact numpy search (``INDEX=exact``:
  faiss is not in the image), listening on 0.0.0.0:8080.
* ``faultmesh-example/rag-cache:1``: cache.py with its own redis-server, listening on
  0.0.0.0:8080.

Each is made with ``docker create`` from the emulator image, ``docker cp`` of the program
and ``docker commit`` setting its command, working directory and environment. Each carries
``faultmesh.kind=image`` and ``faultmesh.source=<hash>``, the hash of what decides its
content (the program's bytes, its command and environment, the base image's recipe and the
numpy pinned in it): an image whose label matches is reused and nothing is built, so an
unchanged example costs two ``docker image inspect`` calls. ``--force`` rebuilds both.

Usage: ``python examples/rag-real/images.py [--force]`` (with faultmesh's venv: it imports
``chaos``); one line per step on standard output; exit 3 when Docker or the base image
cannot be had (the line says why).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chaos.dockercli import KIND_LABEL, docker, unavailable
from chaos.images import build, recipe
from topologies.errors import FaultmeshError, RunError

__all__ = ["EXAMPLE_DIR", "RETRIEVER_IMAGE", "CACHE_IMAGE", "APP_DIR", "ExampleImage",
           "IMAGES", "source_hash", "image_label", "build_image", "build_all", "main"]

EXAMPLE_DIR = Path(__file__).resolve().parent
RETRIEVER_IMAGE = "faultmesh-example/rag-retriever:1"
CACHE_IMAGE = "faultmesh-example/rag-cache:1"
#: Where the program is copied in the image (its working directory).
APP_DIR = "/app"
SOURCE_LABEL = "faultmesh.source"
_KIND = f"{KIND_LABEL}=image"

# retriever.py binds 127.0.0.1, right for the process runtime where each replica is a local
# process; in a container its callers arrive on the container's network interface, so the
# image starts it with its HTTP server's address replaced by $HOST (0.0.0.0), the program
# itself unchanged. As a container's PID 1 it would also ignore SIGTERM (no default action
# there) and `docker stop` would wait 10 s for its SIGKILL: SIGTERM becomes the Ctrl-C the
# program already ends on.
_RETRIEVER_LAUNCH = (
    "import http.server, os, runpy, signal, sys; "
    "signal.signal(signal.SIGTERM, signal.default_int_handler); "
    "server = http.server.ThreadingHTTPServer; "
    "http.server.ThreadingHTTPServer = "
    "lambda address, handler: server((os.environ.get('HOST', '0.0.0.0'), address[1]), handler); "
    "sys.argv = ['retriever.py']; "
    "runpy.run_path('retriever.py', run_name='__main__')")


@dataclass(frozen=True)
class ExampleImage:
    """One image of the example: the files of this folder it holds, its command and its
    environment (``PORT`` is where it listens; faultmesh's docker runtime sets it too)."""

    tag: str
    files: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        """Short name for progress lines: ``rag-cache``."""
        return self.tag.split("/", 1)[-1].split(":", 1)[0]


IMAGES = (
    ExampleImage(RETRIEVER_IMAGE, ("retriever.py",), ("python", "-c", _RETRIEVER_LAUNCH),
                 (("INDEX", "exact"), ("PORT", "8080"), ("HOST", "0.0.0.0"))),
    ExampleImage(CACHE_IMAGE, ("cache.py",), ("python", "cache.py"),
                 (("PORT", "8080"), ("HOST", "0.0.0.0"), ("REDIS_PORT", "6379"))),
)

Progress = Callable[[str], None]


def source_hash(image: ExampleImage) -> str:
    """12 hex digits of what decides the image's content: its files' names and bytes, its
    command and environment, the base image's recipe hash (Debian packages and apt sources:
    redis-server and python3 come from there) and the pinned runtime requirements (numpy).
    The emulator image's own tag is left out on purpose: it changes with every faultmesh
    source edit, and the example programs use none of faultmesh's code."""
    digest = hashlib.sha256()
    for name in image.files:
        digest.update(name.encode() + b"\0" + (EXAMPLE_DIR / name).read_bytes() + b"\0")
    digest.update(json.dumps([image.cmd, image.env]).encode() + b"\0")
    digest.update(recipe.base_recipe_hash(recipe.apt_sources()).encode() + b"\0")
    digest.update("\n".join(recipe.runtime_pins()).encode())
    return digest.hexdigest()[:12]


def image_label(tag: str) -> str | None:
    """The ``faultmesh.source`` label of the image ``tag``; None when there is no such
    image (or it has no such label)."""
    done = docker("image", "inspect", "--format",
                  f'{{{{index .Config.Labels "{SOURCE_LABEL}"}}}}', tag, check=False)
    if done.returncode != 0:
        return None
    value = done.stdout.strip()
    return value if value and value != "<no value>" else None


def _image_id(tag: str) -> str | None:
    done = docker("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def build_image(image: ExampleImage, base: Callable[[], str], force: bool = False,
                progress: Progress = print) -> bool:
    """Make ``image`` unless an image of its tag with the same source label exists (or
    ``force``). ``base`` gives the emulator image's tag, building it if needed (called only
    when something is built). True when built. The build container is removed whatever ends
    the build; the image the tag leaves behind is removed when no container uses it."""
    digest = source_hash(image)
    if not force and image_label(image.tag) == digest:
        progress(f"{image.name}: {image.tag} is up to date (source {digest}), reused")
        return False
    emulator = base()
    old_id = _image_id(image.tag)
    # the name faultmesh's own image builds use, so `faultmesh clean` removes a container
    # left by a build that was SIGKILLed before its finally could
    name = f"faultmesh-image-build-{os.getpid()}-{secrets.token_hex(3)}"
    progress(f"{image.name}: creating a build container from {emulator}")
    try:
        docker("create", "--name", name, "--label", _KIND, "--network", "none", emulator)
        with tempfile.TemporaryDirectory(prefix="faultmesh-example-") as tmp:
            app = Path(tmp) / "app"
            app.mkdir()
            for file in image.files:
                shutil.copy2(EXAMPLE_DIR / file, app / file)
                (app / file).chmod(0o644)
            progress(f"{image.name}: copying {', '.join(image.files)} to {APP_DIR}")
            docker("cp", str(app), f"{name}:{APP_DIR}")
        changes = ["--change", f"WORKDIR {APP_DIR}",
                   "--change", f"CMD {json.dumps(list(image.cmd))}",
                   "--change", "EXPOSE 8080",
                   "--change", f"LABEL {_KIND}",
                   "--change", f"LABEL {SOURCE_LABEL}={digest}",
                   "--change", f"LABEL faultmesh.base={emulator}"]
        for key, value in image.env:
            changes += ["--change", f"ENV {key}={value}"]
        progress(f"{image.name}: committing {image.tag} (source {digest})")
        docker("commit", *changes, "--message", f"faultmesh example: {image.name}",
               name, image.tag, timeout=900)
    finally:
        docker("rm", "-f", name, check=False, timeout=120)
    new_id = _image_id(image.tag)
    if old_id and old_id != new_id:
        docker("rmi", old_id, check=False)  # untagged now; refused while a container uses it
    return True


def build_all(force: bool = False, progress: Progress = print) -> list[str]:
    """Both images of the example, built when missing or changed; their tags. RunError
    (exit 3) when Docker does not answer or the emulator image cannot be built."""
    why = unavailable()
    if why:
        raise RunError(why)
    emulator: list[str] = []

    def base() -> str:
        if not emulator:  # one look-up (or build) for both images
            emulator.append(build.emulator_image(build=True, progress=progress))
        return emulator[0]

    for image in IMAGES:
        build_image(image, base, force=force, progress=progress)
    return [image.tag for image in IMAGES]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: build (or find) both images, one line per step; 0, 2 or 3."""
    parser = argparse.ArgumentParser(
        prog="images.py", description="Build the container images of the real-parts RAG "
        "example (faultmesh-example/rag-retriever:1, faultmesh-example/rag-cache:1).")
    parser.add_argument("--force", action="store_true",
                        help="rebuild both even when their source label matches")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own exit on a bad option or --help
        return int(exc.code or 0)
    started = time.monotonic()
    try:
        tags = build_all(force=args.force,
                         progress=lambda line: print(line, flush=True))
    except FaultmeshError as exc:
        print(f"images.py: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"images: {' '.join(tags)} ready in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
