"""``python -m toyopt figure``: files, refusals (exit 2, one line), --from redraws, --data."""

import csv
import io
import json
import struct

import numpy as np
import pytest

from toyopt.cli import main
from toyopt.config import Config
from toyopt.engine import run
from toyopt.figures import read_embedded

BASE = ["figure", "--setup", "nashmtl2022", "--method", "ls", "--method", "mgda", "--steps", "300", "--quiet"]
#: The CSV columns as docs/figures.md documents them.
DOC_COLUMNS = "lane,method,params,init_x1,init_x2,step,x1,x2,loss1,loss2,d1,d2,w1,w2".split(",")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("toyopt: error: ") and "\n" not in err
    return err


def test_writes_a_png_of_the_requested_width_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert main([*BASE, "--layout", "front", "--width", "2.5", "--dpi", "80", "--out", str(out)]) == 0
    data = out.read_bytes()
    assert struct.unpack(">II", data[16:24])[0] == 200
    assert main([*BASE, "--layout", "front", "--out", str(out)]) == 2
    assert "--force" in one_line_error(capsys)
    assert out.read_bytes() == data
    assert (
        main([*BASE, "--layout", "front", "--width", "single", "--dpi", "80", "--out", str(out), "--force"])
        == 0
    )
    assert struct.unpack(">II", out.read_bytes()[16:24])[0] == 260


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--out", "fig.tiff"], "must end in one of"),
        (["--out", "missing/fig.pdf"], "folder does not exist"),
        (["--layout", "poster", "--out", "f.pdf"], "invalid choice"),
        (["--width", "huge", "--out", "f.pdf"], "width"),
        (["--dpi", "3", "--out", "f.png"], "dpi"),
        (["--point", "1", "--layout", "regions", "--out", "f.pdf"], "x1,x2"),
        (["--set", "mgda.fw_iters=0", "--out", "f.pdf"], "fw_iters"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, monkeypatch, extra, needle):
    monkeypatch.chdir(tmp_path)
    assert main([*BASE, *extra]) == 2
    assert needle in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_from_redraws_byte_identical_and_reruns_to_the_same_trajectories(tmp_path, capsys):
    first = tmp_path / "first.svg"
    assert main([*BASE, "--layout", "landscape", "--width", "single", "--out", str(first)]) == 0
    again = tmp_path / "again.svg"
    assert main(["figure", "--from", str(first), "--out", str(again), "--quiet"]) == 0
    assert again.read_bytes() == first.read_bytes()
    config, spec = read_embedded(first.read_bytes())
    assert spec.layout == "landscape" and spec.width == "single"
    assert [m.name for m in config.methods] == ["ls", "mgda"] and config.steps == 300
    # Figure flags apply on top of the embedded options; the config stays as it was.
    png = tmp_path / "again.png"
    assert (
        main(
            [
                "figure",
                "--from",
                str(first),
                "--layout",
                "regions",
                "--dpi",
                "60",
                "--out",
                str(png),
                "--quiet",
            ]
        )
        == 0
    )
    config_png, spec_png = read_embedded(png.read_bytes())
    assert config_png == config and spec_png.layout == "regions" and spec_png.dpi == 60
    assert np.array_equal(run(config_png).x, run(config).x)


def test_from_refuses_config_flags_and_non_figures(tmp_path, capsys):
    fig = tmp_path / "f.pdf"
    assert main([*BASE, "--layout", "regions", "--out", str(fig)]) == 0
    assert main(["figure", "--from", str(fig), "--steps", "5", "--out", str(tmp_path / "g.pdf")]) == 2
    assert "--steps" in one_line_error(capsys)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    assert main(["figure", "--from", str(text), "--out", str(tmp_path / "g.pdf")]) == 2
    assert "not a PDF, SVG or PNG" in one_line_error(capsys)
    assert main(["figure", "--from", str(tmp_path / "nope.pdf"), "--out", str(tmp_path / "g.pdf")]) == 2
    assert "cannot read" in one_line_error(capsys)


def test_data_files_hold_the_documented_columns_and_the_config(tmp_path):
    out = tmp_path / "run.pdf"
    assert main([*BASE, "--layout", "front", "--data", "--out", str(out)]) == 0
    config = Config.from_json((tmp_path / "run.config.json").read_text())
    assert config == read_embedded(out.read_bytes())[0]
    lines = (tmp_path / "run.csv").read_text().splitlines()
    assert lines[0].startswith("# toyopt config: ")
    assert Config.from_json(lines[0][len("# toyopt config: ") :]) == config
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    assert list(rows[0]) == DOC_COLUMNS
    result = run(config)
    T, B = result.x.shape[:2]
    assert len(rows) == T * B
    last = rows[T - 1]  # lane 0, final recorded step
    assert float(last["x1"]) == result.x[-1, 0, 0] and float(last["loss2"]) == result.losses[-1, 0, 1]
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["config"] == config.to_dict()
    record = data["records"][1]
    assert len(record["losses"]) == len(record["trajectory"]) == T
    assert record["losses"][-1] == [float(v) for v in result.losses[-1, 1]]
    # The data files are refused as well when they exist.
    (tmp_path / "other.csv").write_text("keep")
    assert main([*BASE, "--layout", "front", "--data", "--out", str(tmp_path / "other.pdf")]) == 2
    assert (tmp_path / "other.csv").read_text() == "keep" and not (tmp_path / "other.pdf").exists()


def test_surface_flag_draws_a_task_landscape(tmp_path):
    out = tmp_path / "f2.png"
    args = ["--layout", "landscape", "--no-trajectories", "--surface", "f2", "--dpi", "50", "--out", str(out)]
    assert main([*BASE, *args]) == 0
    assert read_embedded(out.read_bytes())[1].surface == "f2"
