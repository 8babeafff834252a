from __future__ import annotations

import torch
from helpers import clean_env, run

from pipeline import checkpoint
from pipeline.model import Architecture, build_model


def model_file(tmp_path):
    torch.manual_seed(0)
    arch = Architecture(2, (4,), 3)
    model = build_model(arch)
    path = tmp_path / "model.pth"
    checkpoint.save(model, arch, path)
    return model, path


def test_predict_prints_softmax_then_class_with_or_without_header(tmp_path):
    model, path = model_file(tmp_path)
    rows = [[0.5, -1.0], [2.0, 3.0]]
    for text in ("x1,x2\n0.5,-1.0\n2.0,3.0\n", "0.5,-1.0\n2.0,3.0\n"):
        (tmp_path / "points.csv").write_text(text)
        done = run(
            ["python", "-m", "pipeline.predict", "--model", str(path), "--input", "points.csv"],
            cwd=tmp_path,
        )
        lines = done.stdout.strip().splitlines()
        assert lines[0] == "prob_0,prob_1,prob_2,predicted"
        expected = torch.softmax(model(torch.tensor(rows)), dim=1)
        for line, probs in zip(lines[1:], expected, strict=True):
            *cells, label = line.split(",")
            assert [float(c) for c in cells] == [round(p, 4) for p in probs.tolist()]
            assert int(label) == int(probs.argmax())


def test_predict_writes_an_output_file(tmp_path):
    _, path = model_file(tmp_path)
    (tmp_path / "points.csv").write_text("1,2\n")
    done = run(
        [
            "python",
            "-m",
            "pipeline.predict",
            "--model",
            str(path),
            "--input",
            "points.csv",
            "--output",
            "out.csv",
        ],
        cwd=tmp_path,
    )
    assert done.stdout == ""
    assert (tmp_path / "out.csv").read_text().startswith("prob_0,prob_1,prob_2,predicted\n")


def test_a_bad_row_is_one_line_and_exit_2(tmp_path):
    _, path = model_file(tmp_path)
    (tmp_path / "points.csv").write_text("1,2\n1,2,3\n")
    done = run(
        ["python", "-m", "pipeline.predict", "--model", str(path), "--input", "points.csv"],
        cwd=tmp_path,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: points.csv: data row 2 is '1,2,3'; expected 2 numbers"
