"""Hostile input on a web-exposed dashboard: the server-folder import stays inside its import
folder (NN_IMPORT_ROOT), follows no link out of it and says nothing about paths outside it;
it is off for signed-in people who are not teachers; upload messages never show the server's
temporary paths."""

from __future__ import annotations

import pytest
from datasets_synthetic import GREY_SHAPE, make_images, write_csv

from nn.data.arrays import DataError
from ui.data_sets import add_from_folder, add_from_uploads, folder_import_allowed


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "sets"))
    monkeypatch.setenv("NN_IMPORT_ROOT", str(tmp_path / "imports"))
    folder = tmp_path / "imports" / "shapes"
    folder.mkdir(parents=True)
    x, y = make_images(60, GREY_SHAPE, 3)
    write_csv(folder / "shapes.csv", x, y)
    return tmp_path / "imports"


def test_a_folder_inside_the_import_folder_is_added_by_relative_or_absolute_path(root):
    assert add_from_folder("shapes", "one").n_classes == 3
    assert add_from_folder(str(root / "shapes" / "shapes.csv"), "two").n_classes == 3


@pytest.mark.parametrize("text", ["/etc", "/root", "/proc/self", "/no/such/place", "../..", "~"])
def test_paths_outside_the_import_folder_get_one_message_whatever_is_there(root, text):
    with pytest.raises(DataError) as caught:
        add_from_folder(text, "x")
    message = str(caught.value)
    assert "is not in the import folder" in message or "no such file or folder in" in message
    assert "passwd" not in message and "Permission" not in message
    if text.startswith("/"):
        assert "is not in the import folder" in message  # exists or not: the same words


def test_links_out_of_the_import_folder_are_not_followed(root, tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    x, y = make_images(60, GREY_SHAPE, 3)
    write_csv(outside / "s.csv", x, y)
    (root / "escape").symlink_to(outside)
    (root / "file.csv").symlink_to(outside / "s.csv")
    inner = root / "mixed"
    inner.mkdir()
    (inner / "x_train.npy").symlink_to(outside / "s.csv")
    for text in ("escape", "file.csv", str(root / "escape")):
        with pytest.raises(DataError, match="is not in the import folder"):
            add_from_folder(text, "x")
    with pytest.raises(DataError, match="x_train.npy links outside the import folder"):
        add_from_folder("mixed", "x")


def test_server_folders_are_for_local_use_and_teachers():
    assert folder_import_allowed(signed_in=False, admin=False)
    assert folder_import_allowed(signed_in=True, admin=True)
    assert not folder_import_allowed(signed_in=True, admin=False)


def test_upload_messages_name_the_uploaded_file_not_the_servers_temp_folder(root):
    bad = b"not an npz at all"
    with pytest.raises(DataError) as caught:
        add_from_uploads([("mine.npz", bad)], "x")
    assert "mine.npz" in str(caught.value) and "nn-upload-" not in str(caught.value)
    assert "/tmp" not in str(caught.value)
    sets = root.parent / "sets"
    assert not sets.exists() or not any(sets.iterdir())


def test_a_shape_message_names_no_command_line_flag(root):
    import io

    import numpy as np

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x=rng.integers(0, 255, (40, 50), dtype=np.uint8), y=np.arange(40) % 2)
    with pytest.raises(DataError, match="give the image shape of the rows") as caught:
        add_from_uploads([("rows.npz", buf.getvalue())], "rows")
    assert "--" not in str(caught.value)
