"""Object storage on a local S3-compatible server (moto on loopback): sources in a bucket, locally and on Ray,
and a library whose tables live in a bucket.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray_helpers import assert_same_library, make_photos, vectors

from polymodal.errors import InputError
from polymodal.library import Library

BUCKET = "pm-photos"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """moto's server on 127.0.0.1 (random port), reached only through the AWS_* environment, as a user would."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def bucket_set(tmp_path_factory, photos, s3) -> tuple[Path, str]:
    """40 photos (plus a copy and a broken file) on disk and the same files uploaded under s3://pm-photos/set."""
    folder = tmp_path_factory.mktemp("bucket-set")
    make_photos(folder, list(photos.values()), 40, seed=3)
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            s3.upload_file(str(p), BUCKET, f"set/{p.relative_to(folder)}")
    s3.put_object(Bucket=BUCKET, Key="set/.hidden/skip.jpg", Body=b"hidden files are skipped, as on disk")
    return folder, f"s3://{BUCKET}/set"


@pytest.fixture(scope="module")
def bucket_library(tmp_path_factory, bucket_set, lite_encoder) -> Any:
    lib = Library.open(tmp_path_factory.mktemp("s3lib") / "lib", model=lite_encoder)
    lib.add([bucket_set[1]])
    return lib


def test_bucket_source_equals_local_disk(tmp_path, bucket_set, bucket_library, lite_encoder):
    folder, url = bucket_set
    disk = Library.open(tmp_path / "disk", model=lite_encoder)
    disk.add([folder])
    assert_same_library(disk, bucket_library, path_map=lambda p: url + p[len(str(folder)):])
    assert [f.path for f in bucket_library.failures()] == [f"{url}/a/broken.jpg"]
    assert bucket_library.get(f"{url}/b/copy_of_first.jpg") is not None


@pytest.mark.slow
def test_bucket_source_on_ray_equals_local(tmp_path, ray_cluster, bucket_set, bucket_library):
    """The workers read the bucket themselves, with the driver's AWS_* credentials and endpoint."""
    lib = Library.open(tmp_path / "lib", model="lite")
    report = lib.add([bucket_set[1]], ray="auto")
    assert (report.added, report.duplicates, report.failed) == (40, 1, 1)
    assert_same_library(bucket_library, lib)


def test_rescan_of_a_bucket_reads_only_what_changed(tmp_path, s3, bucket_set, lite_encoder):
    folder, _ = bucket_set
    prefix = "rescan"
    for p in sorted((folder / "a").glob("*.jpg"))[:6]:
        s3.upload_file(str(p), BUCKET, f"{prefix}/{p.name}")
    url = f"s3://{BUCKET}/{prefix}"
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    first = lib.add([url])
    assert (first.added, first.failed) == (5, 1)  # a/broken.jpg is among them
    again = lib.add([url])
    assert again.added == again.updated == 0

    names = sorted(k["Key"] for k in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"])
    s3.delete_object(Bucket=BUCKET, Key=names[-1])
    s3.put_object(Bucket=BUCKET, Key=names[-2], Body=(folder / "b" / "copy_of_first.jpg").read_bytes())
    third = lib.add([url])
    assert (third.removed, third.updated) == (1, 1)
    assert lib.get(f"s3://{names[-1]}") is None


def test_missing_bucket_or_prefix_is_an_error_naming_it(tmp_path, s3):
    lib = Library.open(tmp_path / "lib", model="lite")
    with pytest.raises(InputError, match="s3://no-such-bucket-pm/x"):
        lib.add(["s3://no-such-bucket-pm/x"])
    with pytest.raises(InputError, match="no such bucket, prefix or object"):
        lib.add([f"s3://{BUCKET}/nothing-here"])


def test_library_tables_in_a_bucket_with_float16_vectors(tmp_path, s3, bucket_set, bucket_library, lite_encoder):
    """``storage``: the LanceDB tables on S3 (through the same AWS_* environment); float16 embeddings."""
    s3.create_bucket(Bucket="pm-library")
    root = tmp_path / "lib"
    lib = Library.open(root, model=lite_encoder, storage="s3://pm-library/photos", vector_type="float16")
    report = lib.add([bucket_set[1]])
    assert report.added == 40

    keys = [k["Key"] for k in s3.list_objects_v2(Bucket="pm-library", Prefix="photos/")["Contents"]]
    assert any(k.startswith("photos/items.lance/") for k in keys)
    assert not (root / "db").exists()  # nothing of the tables on local disk
    items = lib.store.items()
    assert str(items.schema.field("vector").type) == "fixed_size_list<item: halffloat>[384]"

    reopened = Library.open(root)
    assert (reopened.meta.storage, reopened.meta.vector_type) == ("s3://pm-library/photos", "float16")
    a, b = vectors(bucket_library), vectors(reopened)
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[i] - b[i]).max()) for i in a) < 2e-3  # float16 rounding, no more
    hits_a = [h.id for h in bucket_library.search(text="a cat", k=5, floor=False)]
    hits_b = [h.id for h in reopened.search(text="a cat", k=5, floor=False)]
    assert hits_a[:3] == hits_b[:3]
    with pytest.raises(InputError, match="vector type is chosen when a library is created"):
        Library.open(root, vector_type="float32")
