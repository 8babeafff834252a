from __future__ import annotations

import torch
from helpers import ROOT, clean_env, run

from pipeline.model import checkpoint
from pipeline.model.network import Architecture, build_model


def model_file(tmp_path, **names):
    torch.manual_seed(0)
    arch = Architecture(2, (4,), 3, **names)
    model = build_model(arch)
    path = tmp_path / "model.pth"
    checkpoint.save(model, arch, path)
    return model, path


def predict(tmp_path, path, *extra, check=True):
    # PYTHONPATH: this checkout's code, whichever copy the environment has installed.
    return run(
        ["python", "-m", "pipeline.predict", "--model", str(path), "--input", "points.csv", *extra],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(ROOT)),
        check=check,
    )


def test_predict_prints_softmax_then_class_with_or_without_header(tmp_path):
    model, path = model_file(tmp_path)
    rows = [[0.5, -1.0], [2.0, 3.0]]
    for text in ("x0,x1\n0.5,-1.0\n2.0,3.0\n", "0.5,-1.0\n2.0,3.0\n"):
        (tmp_path / "points.csv").write_text(text)
        lines = predict(tmp_path, path).stdout.strip().splitlines()
        assert lines[0] == "prob_0,prob_1,prob_2,class"
        expected = torch.softmax(model(torch.tensor(rows)), dim=1)
        for line, probs in zip(lines[1:], expected, strict=True):
            *cells, label = line.split(",")
            assert [float(c) for c in cells] == [round(p, 4) for p in probs.tolist()]
            assert int(label) == int(probs.argmax())


def test_columns_are_matched_by_name_and_classes_named(tmp_path):
    names = {"features": ("alcohol", "ash"), "classes": ("barbera", "barolo", "grignolino")}
    model, path = model_file(tmp_path, **names)
    # Another order, and a column the model does not know.
    (tmp_path / "points.csv").write_text("ash,colour,alcohol\n-1.0,red,0.5\n3.0,white,2.0\n")
    done = predict(tmp_path, path)
    assert (
        done.stderr == "warning: points.csv: columns ignored (not features of the model): colour\n"
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "prob_barbera,prob_barolo,prob_grignolino,class"
    expected = torch.softmax(model(torch.tensor([[0.5, -1.0], [2.0, 3.0]])), dim=1)
    for line, probs in zip(lines[1:], expected, strict=True):
        *cells, label = line.split(",")
        assert [float(c) for c in cells] == [round(p, 4) for p in probs.tolist()]
        assert label == names["classes"][int(probs.argmax())]


def test_a_missing_feature_column_is_named(tmp_path):
    _, path = model_file(tmp_path, features=("alcohol", "ash"))
    (tmp_path / "points.csv").write_text("alcohol,hue\n1,2\n")
    done = predict(tmp_path, path, check=False)
    assert done.returncode == 2
    assert done.stderr == (
        "error: points.csv: no column 'ash'; expected a column for each of the model's "
        "features: alcohol, ash\n"
    )


def test_predict_writes_an_output_file(tmp_path):
    _, path = model_file(tmp_path)
    rows = [[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0], [4.0, -2.0]]
    (tmp_path / "points.csv").write_text("".join(f"{a},{b}\n" for a, b in rows))
    done = predict(tmp_path, path, "--output", "out.csv")
    written = (tmp_path / "out.csv").read_text().splitlines()
    assert written[0] == "prob_0,prob_1,prob_2,class"
    # One line: the rows, the file and how many rows each class got, counted from the file.
    labels = [line.rsplit(",", 1)[1] for line in written[1:]]
    counts = ", ".join(f"{c} {labels.count(str(c))}" for c in range(3))
    assert done.stdout == f"wrote 4 rows to out.csv (predicted per class: {counts})\n"


def test_a_bad_row_is_one_line_and_exit_2(tmp_path):
    _, path = model_file(tmp_path)
    (tmp_path / "points.csv").write_text("1,2\n1,2,3\n")
    done = predict(tmp_path, path, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: points.csv: data row 2 is '1,2,3'; expected 2 numbers"
