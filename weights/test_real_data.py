#!/usr/bin/env python3
"""Tests of the real-data fetch step (weights/real_data.py), without network and without the real scans:

    /usr/bin/python3 weights/test_real_data.py      # prints 'N passed, 0 failed'

A throw-away git repository stands for a bare mirror: ``from-mirrors`` must write ``<repo-name>@<short commit>/<path>``
at the source's commit (not the branch's tip; a commit the mirror lacks replaced by one with the same object at the
path), only the files the source's name selection keeps, and refuse a path whose object is not the recorded one; the
DICOM attribute filter must keep the files of one series; the clone commands must name every repository and commit
once; every source of ``SOURCES`` must be well formed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import real_data as rd  # noqa: E402
from testing import run_tests  # noqa: E402


def _git(cwd: str, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _dicom(path: str, series: str, z: float) -> None:
    import numpy as np
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality, ds.ImagePositionPatient = series, "CT", [0, 0, z]
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.zeros((4, 4), np.int16).tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(path, write_like_original=False)


def _mirror(tmp: str):
    """A repository with two series in 'scans' (a.* and b.*, one SeriesInstanceUID each) and a README, its commit,
    and a later commit that changes a file of the folder."""
    work = os.path.join(tmp, "work")
    os.makedirs(os.path.join(work, "scans"))
    _git(work, "init", "-q", "-b", "main")
    for i in range(3):
        _dicom(os.path.join(work, "scans", f"a-{i}.dcm"), "1.2.3.1", float(i))
        _dicom(os.path.join(work, "scans", f"b-{i}.dcm"), "1.2.3.2", float(i))
    with open(os.path.join(work, "scans", "notes.txt"), "w") as f:
        f.write("not DICOM\n")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "one")
    commit = _git(work, "rev-parse", "HEAD")
    tree = _git(work, "rev-parse", "HEAD:scans")
    with open(os.path.join(work, "scans", "notes.txt"), "a") as f:
        f.write("changed\n")
    _git(work, "commit", "-q", "-am", "two")
    os.makedirs(os.path.join(tmp, "mirrors"))
    _git(tmp, "clone", "-q", "--bare", work, os.path.join(tmp, "mirrors", "own+thing"))
    return os.path.join(tmp, "mirrors"), commit, tree


def _source(commit: str, tree: str, **kw) -> rd.Source:
    base = dict(study="s", kind="chest", label="no infection", repo="own/thing", commit=commit, path="scans",
                tree=tree[:12], n_files=3, desc="d", licence="l")
    base.update(kw)
    return rd.Source(**base)


def test_from_mirrors_writes_the_commit_and_only_the_selection() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mirrors, commit, tree = _mirror(tmp)
        clones = os.path.join(tmp, "clones")
        old = rd.SOURCES[:]
        try:
            rd.SOURCES[:] = [_source(commit, tree, files="a-*.dcm"),
                             _source(commit, tree, study="t", files=None, n_files=7)]
            assert rd.from_mirrors(mirrors, clones) == []
            folder = os.path.join(clones, f"thing@{commit[:7]}", "scans")
            assert sorted(os.listdir(folder)) == ["a-0.dcm", "a-1.dcm", "a-2.dcm", "b-0.dcm", "b-1.dcm", "b-2.dcm",
                                                  "notes.txt"]
            with open(os.path.join(folder, "notes.txt")) as f:
                assert f.read() == "not DICOM\n"  # the source's commit, not the tip of the branch
            assert rd.source_path(clones, rd.SOURCES[0]) == folder
            assert [os.path.basename(p) for p in rd.select_files(rd.SOURCES[0], folder)] == \
                ["a-0.dcm", "a-1.dcm", "a-2.dcm"]
            # a commit the mirror lacks: the commit holding the same object at the path is taken
            rd.SOURCES[:] = [_source("f" * 40, tree, study="gone", files="b-*.dcm")]
            assert rd.from_mirrors(mirrors, os.path.join(tmp, "clones3")) == []
            assert len(os.listdir(os.path.join(tmp, "clones3", "thing@fffffff", "scans"))) == 3
            # a wrong object id is refused
            rd.SOURCES[:] = [_source(commit, "0" * 40, study="bad")]
            assert rd.from_mirrors(mirrors, os.path.join(tmp, "clones2")) == ["bad"]
        finally:
            rd.SOURCES[:] = old


def test_the_first_sources_still_read_a_plain_clone_folder() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = rd.SOURCES[0]
        os.makedirs(os.path.join(tmp, src.name, src.path))
        assert rd.source_path(tmp, src) == os.path.join(tmp, src.name, src.path)
        os.makedirs(os.path.join(tmp, src.folder, src.path))
        assert rd.source_path(tmp, src) == os.path.join(tmp, src.folder, src.path)


def test_series_filter_and_name_list() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            _dicom(os.path.join(tmp, f"a-{i}.dcm"), "1.2.3.1", float(i))
            _dicom(os.path.join(tmp, f"b-{i}.dcm"), "1.2.3.2", float(i))
        src = _source("0" * 40, "0" * 12, files="*.dcm", match=("SeriesInstanceUID", "1.2.3.2"))
        assert [os.path.basename(p) for p in rd.select_files(src, tmp)] == ["b-0.dcm", "b-1.dcm", "b-2.dcm"]
        src = _source("0" * 40, "0" * 12, files=rd._names("a-%d.dcm", 0, 1))
        assert [os.path.basename(p) for p in rd.select_files(src, tmp)] == ["a-0.dcm", "a-1.dcm"]


def test_sources_are_well_formed_and_cloned_once_per_commit() -> None:
    studies = [s.study for s in rd.SOURCES]
    assert len(studies) == len(set(studies))
    for s in rd.SOURCES:
        assert s.kind in ("chest", "other") and s.label in ("no infection", "COVID-19", "CAP"), s
        assert len(s.commit) == 40 and len(s.tree) == 12 and s.repo.count("/") == 1 and s.n_files > 0, s
    assert {s.study for s in rd.SOURCES if s.label == "COVID-19"} == {"ricord1a-000082", "ricord1a-001012"}
    cmds = rd.clone_commands("clones")
    assert len(cmds) == len({(s.repo, s.commit) for s in rd.SOURCES})
    for s in rd.SOURCES:
        assert any(f"github.com/{s.repo} " in c and c.endswith(f"checkout -q {s.commit}") for c in cmds), s


def main() -> int:
    return run_tests(globals(), sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
