"""``ServerClient``: Library's calls over HTTP, against a live server, with the same hits as the library."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.errors import AccessDeniedError, InputError, NotFoundError, PolymodalError
from polymodal.server.client import ServerClient


def test_search_similar_status_and_embed_match_the_library(live, served_library, photos, lite):
    lib, _ = served_library
    client = ServerClient(live.url)
    remote = client.search("a cup of coffee", k=4)
    local = lib.search("a cup of coffee", k=4)
    assert [h.id for h in remote] == [h.id for h in local]
    rd, ld = remote[0].to_dict(), local[0].to_dict()
    assert rd.pop("score") == pytest.approx(ld.pop("score"), abs=1e-5)
    assert rd == ld and remote[0].date == local[0].date  # same Hit, dates parsed back
    by_image = client.search(image=photos["rocket"], k=1)
    assert by_image[0].path.endswith("rocket.jpg")
    assert [h.id for h in client.similar(local[0].id, k=3)] == [h.id for h in lib.similar(local[0].id, k=3)]
    st = client.status()
    assert st.to_dict() == lib.status().to_dict() and st.items == 6  # the same Status, rebuilt from JSON
    emb = client.embed(["a cat", photos["cat"].read_bytes()])
    np.testing.assert_allclose(emb[0], lite.encode_texts(["a cat"])[0], atol=1e-5)
    np.testing.assert_allclose(emb[1], lite.encode_images([photos["cat"]])[0], atol=1e-5)


def test_server_errors_become_polymodal_errors(live, served_library):
    from server_helpers import TOKEN, LiveServer

    from polymodal.server import ServerConfig, create_app

    client = ServerClient(live.url)
    with pytest.raises(InputError, match="k must be"):
        client.search("x", k=0)
    with pytest.raises(NotFoundError):
        client.similar("0123456789abcdef")
    with pytest.raises(PolymodalError, match="cannot reach"):
        ServerClient("http://127.0.0.1:9", timeout=2).status()
    lib, _ = served_library
    with LiveServer(create_app(ServerConfig(library=lib.root, token=TOKEN), library=lib)) as server:
        with pytest.raises(AccessDeniedError):
            ServerClient(server.url, token="nope-nope-nope-nope").status()
        assert ServerClient(server.url, token=TOKEN).status().items == 6
