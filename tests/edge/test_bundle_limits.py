"""Bundles that are damaged or oversized are refused with one line naming the bundle, before anything is extracted:
a truncated member, entries the signed manifest does not list (one stray folder, or thousands of them), and members
or bundles over the size caps (a header may claim any size: it is checked before a byte of it is read)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from contract.bundle import MAX_BUNDLE_BYTES, MAX_BUNDLE_ENTRIES, MAX_MEMBER_BYTES
from edge.bundles import BundleError, install_bundle, load_public_key, verify_bundle
from edgescreen.cli import main
from export.bundle import generate_keypair
from tests.edge.test_bundles import _bundle


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    """A good signed bundle and the site public key."""
    private = tmp_path / "keys" / "site.pem"
    generate_keypair(private)
    return _bundle(tmp_path, private, 2.0, "a"), private.with_suffix(".pub")


def _install_fails_with_one_line(bundle: Path, public: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["models", "install", str(bundle), "--public-key", str(public), "--dir", str(store)]) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and str(bundle) in err, err
    assert not (store / "posture" / "current").exists(), "a refused bundle was installed"
    return err


def _model_member(bundle: Path) -> tarfile.TarInfo:
    with tarfile.open(bundle, "r:") as tar:
        return next(m for m in tar.getmembers() if m.name.startswith("models/"))


def test_a_bundle_cut_inside_a_member_is_refused_in_one_line(
    tmp_path: Path, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, public = signed
    model = _model_member(bundle)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(bundle.read_bytes()[: model.offset_data + model.size // 2])
    with pytest.raises(BundleError, match=r"truncated"):
        verify_bundle(cut, load_public_key(public))
    err = _install_fails_with_one_line(cut, public, tmp_path / "store", capsys)
    assert "truncated" in err and model.name in err


def test_entries_outside_the_manifest_are_refused_even_folders(
    tmp_path: Path, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, public = signed
    with tarfile.open(bundle, "a:") as tar:
        stray = tarfile.TarInfo("cache/")
        stray.type = tarfile.DIRTYPE
        tar.addfile(stray)
    with pytest.raises(BundleError, match=r"not in the signed manifest: \['cache'\]"):
        verify_bundle(bundle, load_public_key(public))
    _install_fails_with_one_line(bundle, public, tmp_path / "store", capsys)


def test_a_bundle_of_thousands_of_entries_is_refused_at_the_cap(
    tmp_path: Path, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, public = signed
    with tarfile.open(bundle, "a:") as tar:
        for i in range(4 * MAX_BUNDLE_ENTRIES):
            entry = tarfile.TarInfo(f"models/d{i}/")
            entry.type = tarfile.DIRTYPE
            tar.addfile(entry)
    with pytest.raises(BundleError, match=f"more than {MAX_BUNDLE_ENTRIES} entries"):
        verify_bundle(bundle, load_public_key(public))
    _install_fails_with_one_line(bundle, public, tmp_path / "store", capsys)


def test_a_member_claiming_more_than_the_cap_is_refused_from_its_header(
    tmp_path: Path, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, public = signed
    with tarfile.open(bundle, "r:") as tar:
        tar.getmembers()
        end = tar.offset  # after the last member, where the end-of-archive blocks begin
    huge = tarfile.TarInfo("models/huge.onnx")
    huge.size = MAX_MEMBER_BYTES + 1  # claimed by the header; none of it follows
    bundle.write_bytes(bundle.read_bytes()[:end] + huge.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * 1024)
    with pytest.raises(BundleError, match=f"models/huge.onnx claims {MAX_MEMBER_BYTES + 1} bytes, over the"):
        verify_bundle(bundle, load_public_key(public))
    assert "cap" in _install_fails_with_one_line(bundle, public, tmp_path / "store", capsys)


def test_a_bundle_over_the_size_cap_is_refused_before_it_is_read(
    tmp_path: Path, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, public = signed
    os.truncate(bundle, MAX_BUNDLE_BYTES + 1)  # sparse: a valid bundle followed by zeros, no disk used
    with pytest.raises(BundleError, match=f"over the {MAX_BUNDLE_BYTES}-byte cap"):
        verify_bundle(bundle, load_public_key(public))
    assert "cap" in _install_fails_with_one_line(bundle, public, tmp_path / "store", capsys)


def test_the_good_bundle_still_installs(tmp_path: Path, signed: tuple[Path, Path]) -> None:
    bundle, public = signed
    done = install_bundle(bundle, load_public_key(public), tmp_path / "store")
    assert (done.release / done.manifest.models[0].file).stat().st_size == done.manifest.models[0].size
