import json
import re
from datetime import UTC, datetime

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dmtnn import pipeline
from dmtnn.bookcheck import toc_files


def write_nb(path, *sources):
    params = new_code_cell('profile = "paper"')
    params.metadata["tags"] = ["parameters"]
    cells = [new_markdown_cell("# Title"), params] + [new_code_cell(s) for s in sources]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_stamp_names_profile_device_commit_and_time():
    text = pipeline.stamp_text("quick", "CPU (2 cores)", "abc123", 125.4, datetime(2026, 1, 2, 3, 4))
    assert "profile `quick`" in text and "CPU (2 cores)" in text and "`abc123`" in text
    assert "2026-01-02 03:04 UTC" in text and "2 min 05 s" in text


def test_device_name_says_when_torch_uses_fewer_threads_than_cores(monkeypatch):
    monkeypatch.setattr(pipeline.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(pipeline.torch, "get_num_threads", lambda: 1)
    assert pipeline.device_name().startswith("CPU (1 thread of 2 cores, ")
    monkeypatch.setattr(pipeline.torch, "get_num_threads", lambda: 2)
    assert pipeline.device_name().startswith("CPU (2 cores, ")


def test_runs_in_order_injects_the_profile_stamps_and_stops_at_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("DMTNN_ARTIFACTS", str(tmp_path / "artifacts"))
    src, out = tmp_path / "nbs", tmp_path / "out"
    src.mkdir()
    write_nb(src / "01_ok.ipynb", "print(profile)")
    write_nb(src / "02_fail.ipynb", "x = 1", "raise ValueError('bad rock')")
    write_nb(src / "03_never.ipynb", "print('unreachable')")
    with pytest.raises(RuntimeError, match=r"02_fail.ipynb failed in cell 4 .*raise ValueError.*ValueError: bad rock"
                                           r"(.|\n)*--from 02"):
        pipeline.run("ci", notebook_dir=src, output_dir=out)
    done = nbformat.read(out / "01_ok.ipynb", as_version=4)
    assert done.cells[1].metadata["tags"] == ["run-stamp"] and done.cells[1].id == "run-stamp"
    assert "profile `ci`" in done.cells[1].source
    printed = [o for c in done.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("ci" in o.get("text", "") for o in printed)  # the injected parameter won
    assert not (out / "02_fail.ipynb").exists() and (out / ".02_fail.partial.ipynb").exists()
    assert not (out / "03_never.ipynb").exists()
    # resume runs only what is asked
    (src / "02_fail.ipynb").unlink()
    assert [p.name for p in pipeline.run("ci", notebook_dir=src, output_dir=out, start="03")] == [
        "03_never.ipynb"]


def test_bad_arguments(tmp_path):
    write_nb(tmp_path / "01_a.ipynb", "1")
    with pytest.raises(ValueError, match="unknown profile"):
        pipeline.run("huge", notebook_dir=tmp_path)
    with pytest.raises(ValueError, match="--only 5: no notebook with that number"):
        pipeline.run("ci", notebook_dir=tmp_path, only="5")
    with pytest.raises(FileNotFoundError, match="no numbered notebooks"):
        pipeline.notebooks(tmp_path / "empty")


def test_source_notebooks_are_clean_with_a_parameters_cell():
    for path in pipeline.notebooks():
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", path.name
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name


def test_toc_lists_every_notebook():
    import yaml

    toc = yaml.safe_load(open(pipeline._root() / "_toc.yml"))
    files = toc_files(toc)
    assert files[0] == "book/intro"
    assert [f"book/notebooks/{p.stem}" for p in pipeline.notebooks()] == [
        f for f in files if f.startswith("book/notebooks/")]


def test_references_keep_only_the_checked_outputs(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    checked = new_code_cell(f"{pipeline.CHECK_MARKER}\nprint(1)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="1\n")], execution_count=3)
    other = new_code_cell("plot()", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": "AAAA"})], execution_count=4)
    nb = new_notebook(cells=[new_markdown_cell("# T"), checked, other])
    nb.metadata["papermill"] = {"parameters": {"profile": "ci"}}
    nbformat.write(nb, executed / "01_x.ipynb")
    (written,) = pipeline.write_references(executed, tmp_path / "refs")
    ref = nbformat.read(written, as_version=4)
    assert ref.cells[1].outputs[0]["text"] == "1\n" and ref.cells[1].execution_count == 3
    assert ref.cells[2].outputs == [] and ref.cells[2].execution_count is None
    assert "papermill" not in ref.metadata


def test_checked_cells_print_no_training_results():
    """nbval references hold only bit-reproducible outputs: no checked cell trains."""
    for path in pipeline.notebooks():
        for cell in nbformat.read(path, as_version=4).cells:
            if pipeline.CHECK_MARKER in cell.source:
                assert "train_" not in cell.source and "predict" not in cell.source, path.name


_COLLAPSE_WARNING = re.compile(r"\S+ epoch \d+: training R2 of \w+ is -?\d+\.\d+: the network "
                               r"predicts about a constant \(collapsed\)")


def test_published_record_is_complete_stamped_and_clean():
    """published/ (what `make html` shows): every notebook, stamped, no errors or stderr."""
    folder = pipeline._root() / "published"
    if not folder.is_dir():
        pytest.skip("no published record in this checkout")
    sources = [p.name for p in pipeline.notebooks()]
    assert sorted(p.name for p in folder.glob("*.ipynb")) == sources
    for name in sources:
        nb = nbformat.read(folder / name, as_version=4)
        stamps = [c for c in nb.cells if "run-stamp" in c.metadata.get("tags", [])]
        assert len(stamps) == 1 and "profile `" in stamps[0].source, name
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                assert out.output_type != "error", f"{name}: a traceback"
                if out.output_type == "stream" and out.name == "stderr":
                    # the one expected kind: the training loop's per-epoch collapse warning
                    # (early epochs; the notebooks report the runs still collapsed at the end)
                    other = [line for line in out.text.splitlines()
                             if not _COLLAPSE_WARNING.fullmatch(line)]
                    assert not other, f"{name}: stderr output {other[0][:80]!r}"


def test_run_summary_reads_the_stamps_and_the_profile(tmp_path):
    import nbformat

    from dmtnn.config import load_profile
    from dmtnn.pipeline import run_summary, stamp_text

    def write(name, profile, seconds, hour):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("# title"),
                    nbformat.v4.new_markdown_cell(stamp_text(
                        profile, "CPU (2 cores, x86_64)", "abc1234", seconds,
                        datetime(2026, 11, 29, hour, 5, tzinfo=UTC)))]
        nbformat.write(nb, tmp_path / name)

    write("01_data.ipynb", "ci", 90, 8)
    write("02_rev.ipynb", "ci", 150, 9)
    text = run_summary(tmp_path)
    cfg = load_profile("ci")
    assert "one run of the `ci` profile on CPU (2 cores, x86_64), commit `abc1234`" in text
    assert "from 2026-11-29 08:05 to 2026-11-29 09:05 UTC" in text
    assert "the 2 notebooks ran for 4 min" in text
    assert f"over {cfg.loss.headline_seeds} seeds each" in text
    write("03_labels.ipynb", "quick", 10, 9)
    with pytest.raises(ValueError, match="several profiles: ci, quick"):
        run_summary(tmp_path)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "04_segmenter.ipynb")
    with pytest.raises(ValueError, match="04_segmenter.ipynb has no run stamp"):
        run_summary(tmp_path)
