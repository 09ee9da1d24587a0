"""`flightbase datasets` and `flightbase images` against the real platform (parsers built as cli.py wires them)."""

from __future__ import annotations

import hashlib
import os
import tarfile

import pytest

from flightbase import cli, cli_datasets, uploads

pytestmark = pytest.mark.slow


def run(argv: list[str]) -> int:
    parser = cli._Parser(prog="flightbase")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=cli._Parser)
    cli_datasets.add_parsers(sub)
    args = parser.parse_args(argv)
    return args.func(args) or 0


@pytest.fixture
def as_member(platform, world, monkeypatch):
    monkeypatch.setenv("FLIGHTBASE_URL", platform.url)
    monkeypatch.setenv("FLIGHTBASE_TOKEN", world.tokens["member"])
    monkeypatch.setenv("FLIGHTBASE_WORKSPACE", world.workspace)
    return world


def test_upload_a_folder_list_versions_and_download(platform, as_member, tmp_path, capsys):
    folder = tmp_path / "cifar"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "a.bin").write_bytes(os.urandom(300_000))
    (folder / "labels.csv").write_text("a,1\n")
    assert run(["datasets", "upload", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "cifar version 1: 2 files" in out and "upload cifar [" in err
    assert run(["datasets", "versions", "cifar"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[0] == "1"
    assert run(["datasets", "list"]) == 0
    listing = capsys.readouterr().out
    assert "cifar" in listing and "storage:" in listing
    os.chdir(tmp_path)
    assert run(["datasets", "download", "cifar"]) == 0
    with tarfile.open(tmp_path / "cifar-v1.tar") as tf:
        assert tf.extractfile("cifar-v1/train/a.bin").read() == (folder / "train" / "a.bin").read_bytes()
    assert run(["datasets", "download", "cifar", "--file", "labels.csv", "-o", str(tmp_path / "l.csv")]) == 0
    assert (tmp_path / "l.csv").read_text() == "a,1\n"


def test_an_interrupted_upload_is_resumed(platform, as_member, tmp_path, capsys):
    data = os.urandom(1_500_000)
    (tmp_path / "big.bin").write_bytes(data)
    ws = as_member.workspace
    decl = [{"path": "big.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "extract": False}]
    up = platform.api("registry", "POST", f"workspaces/{ws}/datasets/d/uploads", as_member.tokens["member"], json={"files": decl}).json()
    platform.api("registry", "PATCH", f"workspaces/{ws}/datasets/d/uploads/{up['id']}/files/0", as_member.tokens["member"],
                 params={"offset": 0}, content=data[:1_000_000])
    assert run(["datasets", "upload", str(tmp_path / "big.bin"), "-d", "d"]) == 0
    out, err = capsys.readouterr()
    assert f"resuming upload {up['id']}" in err and "d version 1: 1 files" in out


def test_errors_are_one_line_for_cli_main(platform, as_member, tmp_path):
    from flightbase.client import ApiError

    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ApiError) as exc:
        run(["datasets", "upload", str(tmp_path / "x.txt"), "-d", "Bad Name"])
    assert exc.value.status == 422
    with pytest.raises(ValueError, match="does not exist"):
        run(["datasets", "upload", str(tmp_path / "missing")])
    with pytest.raises(ApiError) as exc:
        run(["datasets", "delete", "d", "--version", "1"])
    assert exc.value.status in (403, 404)



def test_chunks_go_with_sendfile_and_refusals_come_back_as_api_errors(platform, as_member, tmp_path):
    """``send_chunk`` over plain HTTP (sendfile): a chunk at the wrong offset gets the service's 409 even
    though the service answers before reading the body; a local file shorter than the chunk says so; the
    right chunks, at odd offsets, complete the file."""
    from flightbase.client import ApiError, Client

    data = os.urandom(9_000_001)
    (tmp_path / "f.bin").write_bytes(data)
    (tmp_path / "short.bin").write_bytes(data[:1000])
    ws = as_member.workspace
    decl = [{"path": "f.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "extract": False}]
    with Client() as c:
        c.request("registry", "POST", f"workspaces/{ws}/datasets", json={"name": "s"})
        up = c.request("registry", "POST", f"workspaces/{ws}/datasets/s/uploads", json={"files": decl})
        path = f"workspaces/{ws}/datasets/s/uploads/{up['id']}/files/0"
        with open(tmp_path / "f.bin", "rb") as fh:
            with pytest.raises(ApiError) as exc:
                uploads.send_chunk(c, path, fh, 4096, 8_000_000)
            assert exc.value.status == 409 and exc.value.field == "offset" and "offset=0" in exc.value.message
            assert uploads.send_chunk(c, path, fh, 0, 4_000_003)["offset"] == 4_000_003
            assert uploads.send_chunk(c, path, fh, 4_000_003, len(data) - 4_000_003)["complete"]
        short = c.request("registry", "POST", f"workspaces/{ws}/datasets/s/uploads",
                          json={"files": [{"path": "g.bin", "size": 2000}]})
        with open(tmp_path / "short.bin", "rb") as fh, pytest.raises(ValueError, match="got shorter"):
            uploads.send_chunk(c, path.replace(up["id"], short["id"]), fh, 0, 2000)
        c.request("registry", "DELETE", f"workspaces/{ws}/datasets/s/uploads/{short['id']}")
        version = c.request("registry", "POST", f"workspaces/{ws}/datasets/s/uploads/{up['id']}/commit")
    assert version["size_bytes"] == len(data)
    got = platform.api("registry", "GET", f"workspaces/{ws}/datasets/s/versions/{version['version']}/files/f.bin",
                       as_member.tokens["member"])
    assert got.content == data
