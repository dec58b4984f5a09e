import pytest

from scratchlm.io import atomic_path, read_json, write_json


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, is_dir=True) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("killed")
    assert (target / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp left behind

    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_atomic_file_and_json(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_json(path, {"x": 1})
    assert read_json(path) == {"x": 1}
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(ValueError):
        with atomic_path(path) as tmp:
            tmp.write_text("{broken")
            raise ValueError
    assert read_json(path) == {"x": 1}


def test_record_lists_are_one_per_line(tmp_path):
    rows = [{"actual": "a", "predicted": "b"}, {"actual": "b", "predicted": "b"}]
    write_json(tmp_path / "rows.json", rows)
    assert read_json(tmp_path / "rows.json") == rows
    assert len((tmp_path / "rows.json").read_text().splitlines()) == 4
    write_json(tmp_path / "empty.json", [])
    assert read_json(tmp_path / "empty.json") == []
