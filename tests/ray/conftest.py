"""A real Ray cluster on loopback for the whole session: a head node and a second worker node, each its own
raylet and worker processes, so decode tasks and embedding actors are scheduled across two nodes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # ray_helpers

from ray_helpers import make_photos

#: images in the session's photo set: 100 keeps each test under a minute on a loaded two-core machine (one
#: model load per actor dominates); benchmarks/ray_index.py runs the same comparison at 200 and more
N_PHOTOS = 100


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """Head (1 CPU) + worker node (1 CPU) on 127.0.0.1; this process is the driver. Shut down at the end."""
    from ray.cluster_utils import Cluster

    import ray

    # The nodes' workers inherit the environment the nodes start in; the driver (this test process) must not
    # keep it, or every later test in the session would see POLYMODAL_MODEL=lite.
    os.environ["POLYMODAL_MODEL"] = "lite"
    try:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
    finally:
        os.environ.pop("POLYMODAL_MODEL", None)
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="session")
def lite_encoder() -> Any:
    from polymodal.models import load_model

    return load_model("lite")


@pytest.fixture(scope="session")
def photo_set(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Path]) -> Path:
    folder = tmp_path_factory.mktemp("photo-set")
    make_photos(folder, list(photos.values()), N_PHOTOS)
    return folder


@pytest.fixture(scope="session")
def local_library(tmp_path_factory: pytest.TempPathFactory, photo_set: Path, lite_encoder: Any) -> Any:
    """The photo set indexed the ordinary way, in this process: what every Ray build is compared with."""
    from polymodal.library import Library

    lib = Library.open(tmp_path_factory.mktemp("local") / "lib", model=lite_encoder)
    lib.add([photo_set])
    return lib
