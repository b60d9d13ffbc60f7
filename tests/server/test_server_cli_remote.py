"""`polymodal search|similar|status --server URL`: the same output as the local commands, from a live server."""

from __future__ import annotations

import json

import pytest

from polymodal.cli import main


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _same_hits(remote: list[dict], local: list[dict]) -> None:
    assert [h["id"] for h in remote] == [h["id"] for h in local] and local
    for r, h in zip(remote, local):
        assert r.pop("score") == pytest.approx(h.pop("score"), abs=1e-4)
        assert r == h


@pytest.mark.parametrize("query", [
    ["a cup of coffee"],
    ["2:a cat", "a horse", "--not", "a flower", "--after", "2020-10-01"],
    ["a photo", "--path", "*o*", "--sort", "date", "-k", "3", "--all"],
])
def test_search_through_the_server_prints_what_a_local_search_prints(live, served_library, capsys, query):
    lib, _ = served_library
    code, local, _ = _run(capsys, ["search", *query, "--json", "--library", str(lib.root)])
    assert code == 0
    code, remote, _ = _run(capsys, ["search", *query, "--json", "--server", live.url])
    assert code == 0
    _same_hits(json.loads(remote), json.loads(local))


def test_image_terms_are_uploaded_and_similar_and_status_agree(live, served_library, photos, capsys,
                                                               monkeypatch):
    lib, folder = served_library
    rocket = str(next(folder.glob("rocket.*")))
    local_args, remote_args = ["--library", str(lib.root)], ["--server", live.url]
    # an image path as a query term, --image, and a region of an image (--box)
    for query in ([rocket], ["--image", str(photos["horse"]), "an animal"],
                  ["--image", rocket, "--box", "0,0,200,200"]):
        outs = [json.loads(_run(capsys, ["search", *query, "--json", *where])[1]) for where in (local_args,
                                                                                               remote_args)]
        _same_hits(outs[1], outs[0])
    # similar by id, and by a file the library holds (left out of its own results, as locally)
    item = lib.search(text="a cat", k=1, floor=False)[0].id
    for target in (item, rocket, str(photos["horse"])):
        outs = [json.loads(_run(capsys, ["similar", target, "-k", "3", "--json", *where])[1])
                for where in (local_args, remote_args)]
        _same_hits(outs[1], outs[0])
    # status, JSON and text, and the server named by the environment instead of --server
    local = json.loads(_run(capsys, ["status", "--json", *local_args])[1])
    monkeypatch.setenv("POLYMODAL_SERVER", live.url)
    remote = json.loads(_run(capsys, ["status", "--json"])[1])
    assert remote == local and remote["items"] == 6
    code, text, _ = _run(capsys, ["status"])
    assert code == 0 and f"items     {local['items']}" in text and str(lib.root) in text


def test_token_and_refusals(served_library, capsys, monkeypatch):
    from server_helpers import TOKEN, LiveServer

    from polymodal.server import ServerConfig, create_app

    lib, _ = served_library
    with LiveServer(create_app(ServerConfig(library=lib.root, token=TOKEN), library=lib)) as server:
        code, _, err = _run(capsys, ["search", "a cat", "--server", server.url])
        assert code != 0 and "token" in err.lower() and TOKEN not in err
        code, out, _ = _run(capsys, ["search", "a cat", "--server", server.url, "--token", TOKEN, "--json"])
        assert code == 0 and json.loads(out)[0]["path"].endswith("cat.png")
        monkeypatch.setenv("POLYMODAL_TOKEN", TOKEN)
        assert _run(capsys, ["status", "--server", server.url, "--json"])[0] == 0
    code, _, err = _run(capsys, ["search", "a cat", "--server", server.url])
    assert code == 1 and "cannot reach the polymodal server" in err
    code, _, err = _run(capsys, ["search", "a cat", "--server", "127.0.0.1:8000"])
    assert code == 4 and "give the server's URL" in err
    code, _, err = _run(capsys, ["search", "a cat", "--server", server.url, "--model", "lite"])
    assert code == 4 and "--model cannot be used with --server" in err


def test_classify_through_the_server(live, photos, capsys, tmp_path, lite):
    from polymodal.zeroshot import classify

    images = [str(photos["cat"]), str(photos["rocket"])]
    labels = ["a cat", "a dog", "a rocket"]
    for templates, top in (("openai", None), ("simple", 2)):
        extra = ["--templates", templates] + (["--top", str(top)] if top else [])
        code, remote, _ = _run(capsys, ["classify", *images, "--labels", ",".join(labels), *extra, "--json",
                                        "--server", live.url])
        assert code == 0
        remote = json.loads(remote)
        # what the local command prints: its run_classify over the same (served) model
        local = [{"path": r.source, "labels": [{"label": x.label, "score": x.score} for x in r.labels]}
                 for r in classify(images, labels, lite, templates=templates, top=top)]
        assert [r["path"] for r in remote] == images == [r["path"] for r in local]
        for r, here in zip(remote, local):
            assert [x["label"] for x in r["labels"]] == [x["label"] for x in here["labels"]]
            assert [x["score"] for x in r["labels"]] == pytest.approx([x["score"] for x in here["labels"]], abs=1e-4)
    assert remote[0]["labels"][0]["label"] == "a cat" and len(remote[0]["labels"]) == 2
    templates_file = tmp_path / "t.txt"
    templates_file.write_text("a photo of {}.\n")
    code, _, err = _run(capsys, ["classify", images[0], "--labels", "a,b", "--templates", str(templates_file),
                                 "--server", live.url])
    assert code == 4 and "needs a local classify" in err
