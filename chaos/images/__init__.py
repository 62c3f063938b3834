"""chaos.images: the faultmesh container images, built on this machine without any registry.

Its core abstraction is the **content-tagged image**: an image named by a hash of everything
it is made of, so asking for it either finds it built (seconds) or builds it (minutes, once
per change). Two exist:

* ``faultmesh/base:<recipe hash>`` — Debian bookworm's Essential set plus Python 3, venv,
  libstdc++, iproute2, iptables and CA certificates, bootstrapped by ``mmdebstrap`` from the
  machine's own apt sources and loaded with ``docker import`` (:func:`base_image`);
* ``faultmesh/emulator:<source hash>`` — the base with faultmesh installed in /opt/faultmesh
  from a wheelhouse built on the host, inside a ``--network none`` container, then
  ``docker commit``-ed (:func:`emulator_image`). It runs an emulator replica
  (``python -m chaos.emulator ...``) or the fault proxy (its default command,
  ``python -m faultmesh proxy --host 0.0.0.0 --port 8474``).

Both carry the label ``faultmesh.kind=image`` (:func:`list_images`). ``faultmesh images
build`` and ``faultmesh images list`` are the command line; docs/docker.md has the measured
build times and sizes. Importing this package calls nothing.
"""

from chaos.images.build import (
    PROXY_COMMAND,
    VENV,
    base_image,
    emulator_image,
    emulator_tag,
    image_exists,
    list_images,
)
from chaos.images.recipe import source_hash

__all__ = ["base_image", "emulator_image", "emulator_tag", "list_images", "image_exists",
           "source_hash", "PROXY_COMMAND", "VENV"]
