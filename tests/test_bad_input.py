"""Bad input gets one clear line and exit status 2, never a traceback; nonsense is refused
(issue 10, point 5). Each case is a reproduction: the command a careless or hostile user
would type. Commands run in-process through ``nasgep.cli.main``, so an escaping
exception fails the test with its traceback."""
from __future__ import annotations

import io
import json
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from nasgep.cli import main
from nasgep.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "config" / "demo.yaml")

GENOME = {
    "format": "nasgep-genome/1",
    "normal": {"cell": "add | g1 g2", "genes": {"g1": "pw | h1 h2", "g2": "sep_3x3 | h2 h1"}},
    "reduction": {"cell": "add | g1 g2", "genes": {"g1": "pw | pw(h1) pw(h2)", "g2": "dw_3x3 | dw_3x3(h2) pw(h1)"}},
}


def one_line_error(capsys, argv: list[str], match: str = "", code: int = 2) -> str:
    """Run ``nasgep ARGV``: it must exit ``code`` with exactly one short line on stderr,
    ``nasgep <verb>: error: ...``, matching ``match``."""
    rc = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == code, err
    assert len(lines) == 1, err
    verb = " ".join(argv[:2]) if argv[0] == "track" else argv[0]      # `nasgep track ui: error: ...`
    assert lines[0].startswith(f"nasgep {verb}: error: "), lines[0]
    # short apart from the paths the user gave (named in full, however long the folder)
    shown = lines[0]
    for arg in argv:
        if "/" in arg:
            shown = shown.replace(arg, "PATH")
    assert len(shown) < 400, lines[0]
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


def write_genome(tmp_path: Path, data, name: str = "genome.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


# --------------------------------------------------------------------------- config

@pytest.fixture
def config_files(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x80\x81\xff\x00\x13 not text")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("search: {lr: [1\n")
    return {"binary": (binary, "not a text file"), "empty": (empty, "empty"),
            "folder": (folder, "is a folder"), "list": (listing, "mapping"),
            "broken": (broken, "not valid YAML at line"), "missing": (tmp_path / "nope.yaml", "no such")}


@pytest.mark.parametrize("case", ["binary", "empty", "folder", "list", "broken", "missing"])
def test_a_config_file_that_is_not_a_config_is_refused(capsys, config_files, case):
    path, match = config_files[case]
    line = one_line_error(capsys, ["prepare", "--config", str(path), "--dataset", "cifar10"], match)
    assert str(path) in line


@pytest.mark.parametrize("override, match", [
    ("search.lr=[1", r"not valid YAML"),
    ("search.lr", r"expected KEY.PATH=VALUE"),
    ("=3", r"dotted key"),
    ("search.lr=.nan", r"search.lr: nan is not a finite number"),
    ("search.lr=.inf", r"search.lr: inf is greater than the maximum of 1000"),
    ("train.lr=-.inf", r"train.lr"),
    # beyond float32: SGD's update was a RuntimeError traceback ('cannot be converted to type float')
    ("train.lr=1e308", r"train.lr: 1e\+308 is greater than the maximum of 1000"),
    ("search.weight_decay=1e39", r"search.weight_decay: 1e\+39 is greater than the maximum of 10"),
    ("train.momentum=2", r"train.momentum: 2 is greater than the maximum of 1"),
    ("search.population=3.0", r"search.population: 3.0 is not of type 'integer'"),
    # 100,000 threads crashed OpenBLAS (segfault), 500 worker processes hung the machine
    ("search.cpu_threads=100000", r"search.cpu_threads: 100000 is greater than the maximum of 128"),
    ("search.concurrency=500", r"search.concurrency: 500 is greater than the maximum of 64"),
    ("search.lr=" + "x" * 5000, r"search.lr: .x{100,} \.\.\. x{50,}. is not of type .number.$"),   # the reason kept
    ("gep.cell_head=3000", r"gep.cell_head: 3000 is greater than the maximum of 100"),
    # 300,000 cells: the search's smallest-network check took more than 8 GB and minutes before
    # any line; a training of 3,000 cells trained on for minutes an epoch
    ("search.cells_per_stage=100000", r"search.cells_per_stage: 100000 is greater than the maximum of 100"),
    ("train.cells_per_stage=1000", r"train.cells_per_stage: 1000 is greater than the maximum of 100"),
    # a pool of 10^9 genes drawn before the first candidate: a MemoryError traceback, or the
    # process killed for memory; genes_min made that many new genes in every generation
    ("search.gene_pool=1000000000", r"search.gene_pool: 1000000000 is greater than the maximum of 10000"),
    ("search.gene_pool_max=1000000000", r"search.gene_pool_max: 1000000000 is greater than the maximum of 10000"),
    ("search.genes_min=1000000000", r"search.genes_min: 1000000000 is greater than the maximum of 10000"),
    # the current folder: the study's tracking store (and the workflow's results) went there
    ("results_dir=''", r"results_dir: '' should be non-empty"),
    ("data_dir=''", r"data_dir: '' should be non-empty"),
    ("name=''", r"name: '' should be non-empty"),      # experiments named '/search', '/train'
    # the workflow handed it to `nasgep search --seed`, which refuses it: the study stopped in its jobs
    ("seeds=[0, 4294967296]", r"seeds.1: 4294967296 is greater than the maximum of 4294967295"),
    # evaluate: a list of 10^12 trainings filled the memory (killed, nothing said); 10^13 bootstrap
    # resamples were a MemoryError traceback ('Unable to allocate 218. TiB')
    ("search_phase.train_seeds=1000000000000", r"search_phase.train_seeds: 1000000000000 is greater than the "
                                               r"maximum of 100"),
    ("search_phase.random_cells=1000000000000", r"search_phase.random_cells: 1000000000000 is greater than the "
                                                r"maximum of 10000"),
    ("search_phase.resamples=10000000000000", r"search_phase.resamples: 10000000000000 is greater than the "
                                              r"maximum of 1000000"),
    # process counts: 100,000 DataLoader workers or search workers are a fork bomb
    ("train.num_workers=100000", r"train.num_workers: 100000 is greater than the maximum of 1024"),
    ("search.devices=[" + ", ".join(["cpu"] * 1025) + "]", r"search.devices: \[.*\] is too long"),
    # 10^9 candidates with budget_epochs null: a gigabyte in seconds, generation 0 bred for months
    # with nothing said; rebreed_tries of 10^12 under a tight max_params drew a child for ever
    ("search.population=1000000000", r"search.population: 1000000000 is greater than the maximum of 10000"),
    ("search.reduction_population=1000000000", r"search.reduction_population: 1000000000 is greater than the "
                                               r"maximum of 10000"),
    ("search.rebreed_tries=1000000000000", r"search.rebreed_tries: 1000000000000 is greater than the maximum of "
                                           r"10000"),
    # a labels file only a folder dataset reads: it was ignored without a word
    ("datasets.cifar10.val_labels=val.txt", r"datasets.cifar10.val_labels: only a folder dataset has a labels file; "
                                            r"this one is of kind digits: remove the key$"),
    # values PyYAML reads as a date or an integer but cannot make: ValueError tracebacks
    ("name=2001-02-30", r"'2001-02-30' is no date \(day is out of range for month\)\); quote a string"),
    ("search.population=" + "9" * 5000, r"not valid YAML \(a whole number of more than \d+ digits\)"),
    ("search.channels=1", r"search.channels: 1 is less than the minimum of 2"),   # a network needs 2
    ("train.channels=1", r"train.channels: 1 is less than the minimum of 2"),
    ("transfer.channels=1", r"transfer.channels: 1 is less than the minimum of 2"),
    ("search.budget_epochs=1", r"search.budget_epochs: 1 cannot pay for the first round of generation 0 "
                               r"\(4 candidates x 1 epoch\(s\) = 4\); set at least 4"),
])
def test_bad_overrides_are_refused_in_one_line(capsys, override, match):
    one_line_error(capsys, ["prepare", "--config", DEMO, "--set", override, "--dataset", "cifar10"], match)


@pytest.mark.parametrize("text, match", [
    ("name: 2001-13-45\n",
     r"not valid YAML at line 1, column 7 \('2001-13-45' is no date \(month must be in 1..12\)\)"),
    ("search: {lr: 0.1, population: " + "9" * 5000 + "}\n",
     r"not valid YAML at line 1, column 31 \(a whole number of more than \d+ digits\)")])
def test_a_value_yaml_cannot_make_is_named_at_its_place(capsys, tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    one_line_error(capsys, ["prepare", "--config", DEMO, "--config", str(path), "--dataset", "cifar10"],
                   re.escape(str(path)) + ": " + match)


@pytest.mark.parametrize("text, value", [("1e6", 1e6), ("1e-3", 1e-3), ("2.5E+2", 250.0), ("0.1", 0.1),
                                         ("1.0e+30", 1e30)])
def test_numbers_are_read_the_way_people_write_them(text, value):
    config = load_config(DEMO, [f"search.budget_hours={text}"])
    assert config["search"]["budget_hours"] == value and isinstance(config["search"]["budget_hours"], float)


def test_budget_epochs_must_pay_for_generation_0s_first_round():
    # demo: population 4, max_epochs 3; a full evaluation trains each candidate to E_max
    assert load_config(DEMO, ["search.budget_epochs=4"])["search"]["budget_epochs"] == 4     # the boundary
    with pytest.raises(ConfigError, match=r"4 candidates x 3 epoch\(s\) = 12\); set at least 12"):
        load_config(DEMO, ["search.evaluation=full", "search.budget_epochs=11"])
    assert load_config(DEMO, ["search.evaluation=full", "search.budget_epochs=12"])


def test_a_config_file_reads_exponent_numbers_too(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("search: {lr: 1e-2, weight_decay: 3e-4}\n")
    config = load_config([DEMO, path])
    assert config["search"]["lr"] == 0.01 and config["search"]["weight_decay"] == 3e-4


def test_non_finite_numbers_are_refused_anywhere(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("search: {budget_hours: .inf}\n")
    with pytest.raises(ConfigError, match="search.budget_hours: inf is not a finite number"):
        load_config([DEMO, path])


def test_the_readme_own_data_config_is_complete(tmp_path):
    """README's "Searching on your own data" config, as written (only the .npz path made
    real): it defines nothing but its own dataset, so the study's dataset keys (whose
    paper values name CIFAR-10) follow search.dataset instead of being refused."""
    readme = (ROOT / "README.md").read_text()
    text = readme.split("cat > my.yaml <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    npz = tmp_path / "my.npz"
    rng = np.random.default_rng(0)
    np.savez(npz, x_train=rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8), y_train=np.arange(40) % 2,
             x_test=rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), y_test=np.arange(10) % 2)
    path = tmp_path / "my.yaml"
    path.write_text(text.replace("/data/my.npz", str(npz)))
    config = load_config(path)
    assert config["search"]["dataset"] == "mydata"
    assert config["workflow"]["search_datasets"] == ["mydata"]
    assert load_config(None)["workflow"]["search_datasets"] == ["cifar10", "cifar100"]     # the paper's
    assert config["workflow"]["ablation_dataset"] == config["transfer"]["source"] == "mydata"
    # user-set names that are not defined are all named at once
    path.write_text(text.replace("/data/my.npz", str(npz)) + "\nworkflow: {ablation_dataset: svhn}\n"
                    "transfer: {source: cifar10}\n")
    with pytest.raises(ConfigError, match=r"workflow.ablation_dataset: unknown dataset 'svhn'; "
                                          r"transfer.source: unknown dataset 'cifar10' \(datasets: \['mydata'\]\)"):
        load_config(path)


# --------------------------------------------------------------------------- genome files

BAD_GENOMES = {
    "genes a list": ({**GENOME, "normal": {"cell": "add | g1 g2", "genes": ["pw | h1 h2"]}},
                     r"normal.genes: expected an object .* got a list"),
    "cell a number": ({**GENOME, "normal": {**GENOME["normal"], "cell": 5}},
                      r"normal.cell: expected a chromosome text .* got int 5"),
    "gene null": ({**GENOME, "normal": {**GENOME["normal"], "genes": {"g1": None, "g2": "pw | h1 h2"}}},
                  r"normal.genes.g1: expected a chromosome text .* NoneType"),
    "cell null": ({**GENOME, "reduction": None}, r"reduction: expected an object with keys"),
    "a list": ([1, 2, 3], r"a genome must be a JSON object .* got a list"),
    "a string": ("\"add | g1 g2\"", r"got a string"),
    "not JSON": ("{normal: ", r"not valid JSON"),
    # a search's search.json given for its best.json: it said "missing key 'normal'"
    "search.json": ({"generations": 3, "finished": True, "best_fitness": 50.0},
                    r"not a genome file \(no 'normal' and 'reduction' cells, no 'genome' key\)"),
    "empty": ("", r"empty; expected a genome JSON file"),
    "blank": ("\n  \n", r"empty; expected a genome JSON file"),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, r"nested too deeply|not valid JSON"),
    "deep cell": ({**GENOME, "normal": {**GENOME["normal"], "cell": [[[[[[[[[[["x"]]]]]]]]]]]}},
                  r"normal.cell: expected a chromosome text"),
    "unknown gene": ({**GENOME, "normal": {"cell": "add | g1 g9", "genes": GENOME["normal"]["genes"]}},
                     r"normal.cell uses gene 'g9'"),
    "tail function": ({**GENOME, "normal": {**GENOME["normal"], "genes": {"g1": "pw | add h2", "g2": "pw | h1 h2"}}},
                      r"normal.genes.g1: .*position 1 \(tail\)"),
    "long garbage symbol": ({**GENOME, "normal": {**GENOME["normal"], "cell": "add | g1 " + "z" * 10_000}},
                            r"more characters"),
    # json reads whole numbers of at most 4300 digits: a ValueError traceback
    "a number of 5000 digits": (json.dumps(GENOME)[:-1] + ', "x": ' + "9" * 5000 + "}",
                                r"not a genome file \(a number of more than \d+ digits in it\)"),
    # \d took them: 'g\u0661' (Arabic-Indic one) was a gene beside 'g1', drawn with missing glyphs
    "gene id of non-ASCII digits": ({**GENOME, "normal": {"cell": "add | g\u0661 g2",
                                                          "genes": {"g1": "pw | h1 h2", "g2": "pw | h1 h2"}}},
                                    r"normal.cell: .*position 1 \(tail\): 'g\u0661' is an unknown symbol"),
    "unused gene id of non-ASCII digits": ({**GENOME, "normal": {**GENOME["normal"], "genes": {
        **GENOME["normal"]["genes"], "g\u0661": "pw | h1 h2"}}},
        r"normal.genes: 'g\u0661' is no gene id; expected g and digits 0-9, e.g. g1$"),
    "a gene key that is no id": ({**GENOME, "reduction": {**GENOME["reduction"], "genes": {
        **GENOME["reduction"]["genes"], "gene3": "pw | h1 h2"}}},
        r"reduction.genes: 'gene3' is no gene id"),
    "deep gene chain": ({**GENOME, "normal": {"cell": "g1 | g1 g1", "genes": {
        "g1": " ".join(["pw"] * 900) + " | " + " ".join(["h1"] * 901)}}},
        r"normal.genes.g1: an expression tree 901 levels deep; at most 128"),
}


@pytest.mark.parametrize("case", sorted(BAD_GENOMES))
def test_draw_refuses_a_bad_genome_file_in_one_line(capsys, tmp_path, case):
    data, match = BAD_GENOMES[case]
    path = write_genome(tmp_path, data)
    line = one_line_error(capsys, ["draw", path, "--out", str(tmp_path / "out")], match)
    assert path in line


@pytest.mark.parametrize("case", ["genes a list", "cell a number", "gene null", "deep nesting", "deep gene chain",
                                  "a number of 5000 digits"])
def test_train_refuses_a_bad_genome_file_in_one_line(capsys, tmp_path, case):
    data, match = BAD_GENOMES[case]
    path = write_genome(tmp_path, data)
    one_line_error(capsys, ["train", "--genome", path, "--config", DEMO, "--set", "tracking.enabled=false",
                            "--out", str(tmp_path / "out")], match)


def test_a_genome_path_that_is_a_folder_or_binary_is_refused(capsys, tmp_path):
    one_line_error(capsys, ["draw", str(tmp_path), "--out", str(tmp_path / "o")], r"is a folder")
    binary = tmp_path / "g.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    one_line_error(capsys, ["draw", str(binary), "--out", str(tmp_path / "o")], r"not a text file")
    one_line_error(capsys, ["draw", str(tmp_path / "absent.json"), "--out", str(tmp_path / "o")], r"no such")


def test_a_genome_or_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows editors start UTF-8 files with a BOM; it is not part of the text."""
    genome = tmp_path / "g.json"
    genome.write_bytes(b"\xef\xbb\xbf" + json.dumps(GENOME).encode())
    assert main(["draw", str(genome), "--out", str(tmp_path / "cells")]) == 0
    config = tmp_path / "c.yaml"
    config.write_bytes(b"\xef\xbb\xbfsearch: {population: 5}\n")
    assert load_config([DEMO, config])["search"]["population"] == 5


def test_draw_of_a_huge_cell_answers_at_once(capsys, tmp_path):
    """A cell head of 3,000 ``add``: refused by its size before any drawing work (it hung)."""
    genome = {**GENOME, "normal": {"cell": " ".join(["add"] * 3000) + " | " + " ".join(["g1"] * 3001),
                                   "genes": {"g1": "pw | h1 h2"}}}
    path = write_genome(tmp_path, genome)
    one_line_error(capsys, ["draw", path, "--out", str(tmp_path / "out")],
                   rf"{re.escape(path)}: the normal cell has \d+ nodes to draw; drawings are limited to 150")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- decode

def test_decode_of_a_chain_of_900_operations(capsys):
    chain = " ".join(["pw"] * 900) + " | " + " ".join(["h1"] * 901)
    assert main(["decode", "--orf", chain]) == 0
    out = capsys.readouterr().out.strip()
    assert out == "pw(" * 900 + "h1" + ")" * 900 + "\t901"


def test_decode_of_several_quoted_chromosomes_decodes_each(capsys):
    """`nasgep decode 'add | g1 g2' 'add | g3 g4'` (the help says chromosome [chromosome ...])
    joined them into one text and said it found 2 '|'; words without one are still joined."""
    assert main(["decode", "add | g1 g2", "cat add | g3 g4 g5"]) == 0
    assert capsys.readouterr().out.splitlines() == ["add(g1, g2)", "cat(add(g4, g5), g3)"]
    assert main(["decode", "add", "g1", "|", "g2", "g3", "g4"]) == 0
    assert capsys.readouterr().out.splitlines() == ["add(g1, g2)"]


@pytest.mark.parametrize("argv, stdin", [(["decode", ""], ""), (["decode", "   "], ""), (["decode", "-"], ""),
                                         (["decode", "-"], "\n  \n")])
def test_decode_of_nothing_says_what_is_expected(capsys, monkeypatch, argv, stdin):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    one_line_error(capsys, argv, r"no chromosome .*expected 'head \| tail' text")


def test_decode_reads_stdin_as_a_filter_and_stops_on_binary_input(capsys, monkeypatch):
    # /dev/zero (no newline ever) was read until the process was killed
    zeros = io.StringIO("add | h1 h2\n" + "\0" * 200_000)
    monkeypatch.setattr("sys.stdin", zeros)
    one_line_error(capsys, ["decode", "-"], r"stdin line 2: longer than 65536 characters, not a chromosome")
    assert zeros.tell() < 140_000            # stopped after the cap, not at the end of the input
    # a line of exactly the cap is read whole, as a (here bad) chromosome, not as too long
    monkeypatch.setattr("sys.stdin", io.StringIO("x" * 65536 + "\n"))
    assert main(["decode", "-"]) != 0
    assert "longer than" not in capsys.readouterr().err


def test_decode_names_the_stdin_line_and_clips_long_input(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("add | h1 h2\n" + "add " * 5000 + "|\n"))
    one_line_error(capsys, ["decode", "-"], r"stdin line 2: .*more characters")


# --------------------------------------------------------------------------- datasets

TINY = ["search.population=3", "search.reduction_population=2", "search.gene_pool=6", "search.gene_pool_max=8",
        "search.genes_min=1", "search.genes_max=2", "search.max_epochs=3", "search.max_generations=1",
        "search.channels=4", "search.cells_per_stage=1", "search.batch_size=16", "search.devices=[cpu]",
        "search.augment.autoaugment=false", "tracking.enabled=false", "train.batch_size=16",
        "train.epochs=1", "train.channels=4"]


def npz_dataset(tmp_path: Path, n: int = 120, classes: int = 4, **arrays) -> Path:
    """An .npz dataset of ``n`` 8x8 grey images (labels cycling over ``classes``);
    ``arrays`` replace or remove (None) any of its four arrays."""
    rng = np.random.default_rng(0)
    data = {"x_train": rng.integers(0, 256, (n, 8, 8), dtype=np.uint8),
            "y_train": np.arange(n) % classes,
            "x_test": rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
            "y_test": np.arange(40) % classes}
    data.update(arrays)
    path = tmp_path / "data.npz"
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return path


def npz_config(tmp_path: Path, path: Path) -> str:
    config = tmp_path / "npz.yaml"
    config.write_text(f"datasets: {{d: {{kind: npz, path: '{path}', val_fraction: 0.2}}}}\n")
    return str(config)


def verb_argv(verb: str, config: str, tmp_path: Path, *extra: str) -> list[str]:
    settings = [a for s in TINY + list(extra) for a in ("--set", s)]
    if verb == "train":
        genome = write_genome(tmp_path, GENOME, "best.json")
        return ["train", "--genome", genome, "--config", DEMO, "--config", config, *settings, "--dataset", "d",
                "--out", str(tmp_path / "out")]
    return [verb, "--config", DEMO, "--config", config, *settings, "--dataset", "d", "--out", str(tmp_path / "out")]




BAD_DATASETS = {
    "missing file": (lambda t: t / "absent.npz", r"absent.npz: no such .npz file"),
    # a device said "no such .npz file", which it is not (np.load reads /dev/zero forever)
    "a device": (lambda t: Path("/dev/zero"),
                 r"error: /dev/zero: not a regular file \(a device, a pipe or a socket\), so no .npz file; name the "
                 r"\.npz file"),
    "a pipe": (lambda t: _pipe(t / "data.npz"), r"data.npz: not a regular file \(a device, a pipe or a socket\)"),
    "a dangling link": (lambda t: _link(t / "data.npz", t / "gone.npz"),
                        r"data.npz is a link to .*gone.npz, which does not exist \(the dataset's .npz file\)$"),
    "wrong keys": (lambda t: _saved(t, x=np.zeros((4, 8, 8), np.uint8)), r"missing key 'x_train'"),
    "float images": (lambda t: npz_dataset(t, x_train=np.zeros((120, 8, 8), np.float32)),
                     r"x_train: expected uint8 images \(0\.\.255\), got float32"),
    "float labels": (lambda t: npz_dataset(t, y_train=np.zeros(120, np.float64)),
                     r"y_train: labels of type float64; expected integer class indices"),
    "one-hot labels": (lambda t: npz_dataset(t, y_train=np.eye(4, dtype=np.int64)[np.arange(120) % 4]),
                       r"y_train: labels of shape \(120, 4\); expected .* shape \(120,\); one-hot\? .*argmax"),
    "RGBA images": (lambda t: npz_dataset(t, x_train=np.zeros((120, 8, 8, 4), np.uint8)),
                    r"x_train: images of shape \(120, 8, 8, 4\) have 4 channels in the last axis; expected "
                    r"\(N, H, W, C\) with C = 1 \(grey\) or 3 \(RGB\); RGBA\? save x\[\.\.\., :3\]$"),
    "channels first": (lambda t: npz_dataset(t, x_train=np.zeros((120, 3, 8, 8), np.uint8)),
                       r"have 8 channels .* it looks channels-first \(N, C, H, W\): save x.transpose\(0, 2, 3, 1\)"),
    "lengths differ": (lambda t: npz_dataset(t, y_train=np.arange(119) % 4), r"119 labels for 120 images"),
    "object array": (lambda t: npz_dataset(t, x_train=np.array([1, "x", None], dtype=object)),
                     r"x_train: holds Python objects"),
    "not an npz": (lambda t: _text(t, "hello"), r"not an .npz file, or a truncated one \(no zip archive"),
    "a folder": (lambda t: t, r": a folder, not an .npz file \(a folder of class folders is kind: folder\)"),
    "label of a million": (lambda t: npz_dataset(t, y_train=np.r_[np.arange(119) % 4, 1_000_000]),
                           r"labels run up to 1000000 but only 5 classes have images "
                           r"\(none of 4, 5, 6, 7, 8, \.\.\.\)"),
    "gap in labels": (lambda t: npz_dataset(t, y_train=(np.arange(120) % 4) * 2),
                      r"labels run up to 6 but only 4 classes have images \(none of 1, 3, 5\)"),
    "single class": (lambda t: npz_dataset(t, classes=1), r"hold 1 class \(0\); classification needs at least 2"),
    "negative label": (lambda t: npz_dataset(t, y_train=np.r_[np.arange(119) % 4, -1]),
                       r"negative label -1; classes are numbered 0, 1, 2"),
    "fewer images than a batch": (lambda t: npz_dataset(t, n=15), r"batch_size|fewer than one batch"),
    "empty": (lambda t: npz_dataset(t, n=0, x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, np.int64)),
              r"d: no training images"),
    "label 2**63 (uint64)": (lambda t: npz_dataset(t, y_train=np.array([*(np.arange(119) % 4), 2**63], np.uint64)),
                             r"label 9223372036854775808 is no class index"),
    "0x0 images": (lambda t: npz_dataset(t, x_train=np.zeros((120, 0, 0), np.uint8),
                                         x_test=np.zeros((40, 0, 0), np.uint8)),
                   r"x_train: images of 0x0 pixels hold nothing to learn from"),
    "a member that is no .npy": (lambda t: _member_not_npy(npz_dataset(t)),
                                 r"data\.npz:x_train: not a \.npy array"),
}


def _member_not_npy(path: Path) -> Path:
    """``path`` rewritten with x_train.npy holding bytes that are no array (numpy handed them
    over as bytes, and the loader failed with an AttributeError traceback)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members["x_train.npy"] = b"garbage"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _pipe(path: Path) -> Path:
    import os

    os.mkfifo(path)
    return path


def _link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def _saved(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def _text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.npz"
    path.write_text(text)
    return path


@pytest.mark.parametrize("verb", ["search", "sample", "train"])
@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_a_dataset_that_cannot_be_meant_is_refused(capsys, tmp_path, verb, case):
    make, match = BAD_DATASETS[case]
    config = npz_config(tmp_path, make(tmp_path))
    extra = ("search.batch_size=16", "train.batch_size=16")
    one_line_error(capsys, verb_argv(verb, config, tmp_path, *extra), match)
    assert not (tmp_path / "out" / "best.json").exists()


def test_a_link_to_a_file_that_may_not_be_read_is_not_said_to_lead_nowhere(capsys, tmp_path, monkeypatch):
    """A dataset path that is a link into a folder this user may not enter (EACCES: another
    group's share, NFS with root squashed) leads to a file: the line says permission was
    denied, as before 2026-12-07, not that the target does not exist. Faked with os.stat,
    since root (which the tests may run as) enters every folder."""
    import errno
    import os

    from nasgep.io import broken_link, broken_link_on_the_way

    target = npz_dataset(tmp_path)
    link = tmp_path / "shared.npz"
    link.symlink_to(target)
    real_stat = os.stat

    def stat(path, *args, follow_symlinks=True, **kwargs):
        if follow_symlinks and os.fspath(path) == str(link):
            raise PermissionError(errno.EACCES, "Permission denied", str(link))
        return real_stat(path, *args, follow_symlinks=follow_symlinks, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    assert broken_link(link) is None and broken_link_on_the_way(link / "x") is None
    err = one_line_error(capsys, ["prepare", "--config", DEMO, "--config", npz_config(tmp_path, link),
                                  "--dataset", "d"], rf"{link}: Permission denied$")
    assert "does not exist" not in err


def test_test_labels_never_seen_in_training_are_refused(capsys, tmp_path):
    config = npz_config(tmp_path, npz_dataset(tmp_path, y_test=np.r_[np.arange(39) % 4, 7]))
    one_line_error(capsys, verb_argv("train", config, tmp_path), r"test labels hold 1 class never seen in training \(7")
    one_line_error(capsys, ["prepare", "--config", DEMO, "--config", config, "--dataset", "d"], r"never seen")


def test_an_npz_without_test_images_is_refused_before_training(capsys, tmp_path):
    """Else the training reports a test error of 100 % on no images at all."""
    config = npz_config(tmp_path, npz_dataset(tmp_path, x_test=np.zeros((0, 8, 8), np.uint8),
                                              y_test=np.zeros(0, np.int64)))
    one_line_error(capsys, verb_argv("train", config, tmp_path), r"data\.npz:x_test: no test images")
    one_line_error(capsys, ["prepare", "--config", DEMO, "--config", config, "--dataset", "d"], r"no test images")
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_good_npz_dataset_is_accepted(capsys, tmp_path):
    """The control: the same verbs on a sound dataset of the same shape succeed."""
    config = npz_config(tmp_path, npz_dataset(tmp_path))
    assert main(["prepare", "--config", DEMO, "--config", config, "--dataset", "d"]) == 0
    assert main(verb_argv("sample", config, tmp_path)) == 0
    assert (tmp_path / "out" / "best.json").exists()


@pytest.mark.parametrize("verb", ["search", "sample"])
def test_max_params_below_the_smallest_network_is_refused_up_front(capsys, tmp_path, verb):
    config = npz_config(tmp_path, npz_dataset(tmp_path))
    line = one_line_error(capsys, verb_argv(verb, config, tmp_path, "search.max_params=100"),
                          r"search.max_params = 100 is below the smallest network this search can build")
    assert not (tmp_path / "out" / "best.json").exists()
    smallest = int(re.search(r"build \(([\d,]+) parameters", line).group(1).replace(",", ""))
    # at the smallest size itself the search space is not empty: the check is not too strict
    assert main(verb_argv("sample", config, tmp_path, f"search.max_params={smallest}")) == 0
    best = json.loads((tmp_path / "out" / "best.json").read_text())
    assert best["params"] >= smallest


@pytest.mark.parametrize("setting, message", [
    ("datasets.d.val_fraction=0.99", r"d: no training image of class \d, \d, \d is left after the validation split; "
                                     r"lower datasets.d.val_size \(or val_fraction\)"),
    ("datasets.d.max_train=2", r"d: no training image of class 2, 3 is left within max_train = 2; "
                               r"raise datasets.d.max_train")])
def test_classes_lost_to_the_split_or_max_train_are_named_with_their_cause(capsys, tmp_path, setting, message):
    """4 classes of 30 images: a split that leaves one training image, or max_train 2,
    leaves classes without a training image; the line names the setting that did it."""
    config = npz_config(tmp_path, npz_dataset(tmp_path))
    one_line_error(capsys, verb_argv("search", config, tmp_path, setting, "search.batch_size=1"), message)


def test_classes_of_a_single_image_are_named_not_the_split(capsys, tmp_path):
    """One image per class: "no training image of class 0 is left after the validation split;
    lower datasets.d.val_size (or val_fraction)", though a split of one image cannot be
    lower. The line says the class had a single image, and names every such class."""
    from test_folder_images import write_config, write_folder

    small = ["--set", "search.batch_size=1", "--set", "train.batch_size=1"]
    config = str(write_config(tmp_path, write_folder(tmp_path / "data", train=1, val=1)))
    one_line_error(capsys, ["prepare", "--config", config, "--dataset", "mine", *small],
                   r"mine: the search's validation split holds out the only training image of class 0 \(cat\); "
                   r"3 classes have a single image: 0 \(cat\), 1 \(dog\), 2 \(ship\); every class needs at least 2 "
                   r"training images \(one may go to validation\): give more images$")
    config = npz_config(tmp_path, npz_dataset(tmp_path, n=4, classes=4))
    one_line_error(capsys, ["search", "--config", DEMO, "--config", config, "--dataset", "d", *small, "--out",
                            str(tmp_path / "s")],
                   r"d: the search's validation split holds out the only training image of class 0; 4 classes")


@pytest.mark.parametrize("verb, key", [("search", "search.augment"), ("train", "train.augment")])
def test_a_cutout_hole_as_large_as_the_images_is_refused_up_front(capsys, tmp_path, verb, key):
    """8x8 images with CutOut's CIFAR length: every hole could blank a whole image (the
    candidates would all train at chance, without a word)."""
    config = npz_config(tmp_path, npz_dataset(tmp_path))
    one_line_error(capsys, verb_argv(verb, config, tmp_path, f"{key}.cutout=true", f"{key}.cutout_length=8"),
                   rf"{key}.cutout_length = 8 is not smaller than the 8x8 images of .*set it to about half the "
                   rf"side \(4; 16 for 32x32\), or {key}.cutout: false")
    assert not (tmp_path / "out" / "settings.json").exists()
    assert main(verb_argv(verb, config, tmp_path, f"{key}.cutout=true", f"{key}.cutout_length=4")) == 0


@pytest.mark.parametrize("verb, key", [("search", "search.augment"), ("train", "train.augment")])
def test_4x4_images_train_but_a_crop_that_could_hold_padding_only_is_refused(capsys, tmp_path, verb, key):
    """Images of 2x2 to 7x7 pass `prepare`, and the networks take them (the reduction cells
    halve 4x4 to 2x2 and 1x1). But the random crop pads by 4: at 4x4 four crops in ten
    held no pixel of the image, at 2x2 eight in nine (that training diverged). Refused up
    front like a CutOut hole as large as the images; without the crop they train."""
    rng = np.random.default_rng(0)
    config = npz_config(tmp_path, npz_dataset(tmp_path, x_train=rng.integers(0, 256, (120, 4, 4), dtype=np.uint8),
                                              x_test=rng.integers(0, 256, (40, 4, 4), dtype=np.uint8)))
    assert main(["prepare", "--config", DEMO, "--config", config, "--dataset", "d"]) == 0
    assert json.loads(capsys.readouterr().out)["image_size"] == 4
    one_line_error(capsys, verb_argv(verb, config, tmp_path, f"{key}.crop_flip=true"),
                   rf"{key}.crop_flip pads the 4x4 images of d by 4 pixels: a crop could hold padding only; set "
                   rf"{key}.crop_flip: false, or use images of at least 5x5$")
    # with a CutOut hole as large as the images too: both in the one line, not one per run
    one_line_error(capsys, verb_argv(verb, config, tmp_path, f"{key}.crop_flip=true", f"{key}.cutout=true",
                                     f"{key}.cutout_length=4"),
                   rf"{key}.crop_flip pads the 4x4 images .* at least 5x5; and {key}.cutout_length = 4 is not "
                   rf"smaller than the 4x4 images of d")
    assert not (tmp_path / "out" / "settings.json").exists()
    # the demo's augmentation (no crop, CutOut of 2, AutoAugment in the training): one epoch each
    assert main(verb_argv(verb, config, tmp_path)) == 0
    if verb == "train":
        metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
        assert metrics["epochs"] == 1 and 0 <= metrics["test_error"] <= 100
    else:
        assert json.loads((tmp_path / "out" / "best.json").read_text())["fitness"] >= 0


@pytest.mark.parametrize("setting, message", [
    ("train.augment.crop_flip=true", r"train.augment.crop_flip pads the 4x4 images of d by 4 pixels: a crop could "
                                     r"hold padding only"),
    ("train.batch_size=500", r"fewer than one batch \(train.batch_size = 500\)"),
])
def test_evaluate_refuses_what_train_refuses(capsys, tmp_path, setting, message):
    """`nasgep evaluate` trains genomes with the config's `train` section as `nasgep train`
    does, but never checked its augmentation or batch size: on 4x4 images with
    `train.augment.crop_flip` it trained (crops of padding only) what `train` refuses, and
    a batch larger than the training set too. Refused before any training."""
    rng = np.random.default_rng(0)
    config = npz_config(tmp_path, npz_dataset(tmp_path, x_train=rng.integers(0, 256, (120, 4, 4), dtype=np.uint8),
                                              x_test=rng.integers(0, 256, (40, 4, 4), dtype=np.uint8)))
    assert main(verb_argv("search", config, tmp_path)) == 0          # the demo's search.augment: no crop
    capsys.readouterr()
    settings = [a for s in [*TINY, setting] for a in ("--set", s)]
    evaluation = tmp_path / "ev"
    one_line_error(capsys, ["evaluate", "--config", DEMO, "--config", config, *settings, "--dataset", "d",
                            "--search", str(tmp_path / "out"), "--out", str(evaluation)], message)
    assert not list(evaluation.glob("runs/*.json"))


# --------------------------------------------------------------------------- outputs and states

@pytest.mark.parametrize("verb", ["search", "sample", "train"])
def test_a_folder_of_the_users_own_is_neither_filled_nor_moved_aside(capsys, tmp_path, verb):
    """--out naming a folder with files that are no nasgep run's (a typo, a home folder):
    refused in one line naming them, with or without --restart, and nothing in it moves;
    a file manager's hidden files do not make a folder the user's, other hidden ones (a
    ``.git``, which --restart used to move aside) do."""
    from test_resume import snapshot

    config = npz_config(tmp_path, npz_dataset(tmp_path))
    out = tmp_path / "out"
    (out / "photos").mkdir(parents=True)
    (out / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 a photo")
    (out / "thesis.tex").write_text("a user's file\n")
    before = snapshot(out)
    for extra in ([], ["--restart"]):
        one_line_error(capsys, verb_argv(verb, config, tmp_path) + extra,
                       rf"out is not empty and holds no nasgep run \(photos/, thesis.tex\); a "
                       rf"{'training' if verb == 'train' else verb} keeps its files in a folder of its own")
        assert snapshot(out) == before and not (out / ".lock").exists()   # not even a lock file
    hidden = tmp_path / "hidden" / "out"
    hidden.mkdir(parents=True)
    (hidden / ".DS_Store").write_text("")
    argv = verb_argv(verb, config, tmp_path / "hidden")
    assert main(argv) == 0 and (hidden / "settings.json").exists()
    capsys.readouterr()
    repo = tmp_path / "repo" / "out"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".env").write_text("TOKEN=x\n")
    before = snapshot(repo)
    for extra in ([], ["--restart"]):
        one_line_error(capsys, verb_argv(verb, config, tmp_path / "repo") + extra,
                       r"out is not empty and holds no nasgep run \(.env, .git/\)")
        assert snapshot(repo) == before


@pytest.mark.parametrize("results_dir", ["afile", "afile/sub"])
def test_a_results_dir_that_is_or_runs_through_a_file_names_it(capsys, tmp_path, results_dir):
    (tmp_path / "afile").write_text("a user's file\n")
    config = tmp_path / "r.yaml"
    config.write_text(f"results_dir: {tmp_path / results_dir}\n")
    one_line_error(capsys, ["track", "init", "--config", DEMO, "--config", str(config)],
                   rf"{tmp_path / 'afile'} is a file, where a folder is needed")
    assert (tmp_path / "afile").read_text() == "a user's file\n"


def test_a_refused_run_leaves_no_folder_behind(capsys, tmp_path):
    """A run refused for its inputs (an unknown ablation) creates no --out of its own."""
    config = npz_config(tmp_path, npz_dataset(tmp_path))
    argv = verb_argv("train", config, tmp_path) + ["--variant", "nope"]
    one_line_error(capsys, argv, r"nope")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb", ["prepare", "search", "sample", "train"])
def test_an_empty_dataset_name_is_no_default(capsys, tmp_path, verb):
    """``--dataset ''`` (an unset shell variable, ``--dataset "$DATA"``): train trained
    search.dataset without a word, where the other verbs refused it."""
    genome = write_genome(tmp_path, GENOME)
    argv = {"prepare": ["prepare", "--config", DEMO],
            "search": ["search", "--config", DEMO, "--out", str(tmp_path / "out")],
            "sample": ["sample", "--config", DEMO, "--out", str(tmp_path / "out")],
            "train": ["train", "--genome", genome, "--config", DEMO, "--out", str(tmp_path / "out")]}[verb]
    one_line_error(capsys, [*argv, *[a for s in TINY for a in ("--set", s)], "--dataset", ""],
                   r"unknown dataset '' \(the config's datasets: \['cifar10', 'cifar100', 'imagenet'\]\)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb", ["search", "sample", "train", "draw"])
def test_out_naming_an_existing_file_is_refused_before_any_work(capsys, tmp_path, verb):
    existing = tmp_path / "results.txt"
    existing.write_text("a user's file\n")
    genome = write_genome(tmp_path, GENOME)
    argv = {"search": ["search", "--config", DEMO, "--out", str(existing)],
            "sample": ["sample", "--config", DEMO, "--out", str(existing)],
            "train": ["train", "--genome", genome, "--config", DEMO, "--out", str(existing)],
            "draw": ["draw", genome, "--out", str(existing)]}[verb]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "is an existing file, not a folder" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert existing.read_text() == "a user's file\n"


@pytest.mark.parametrize("verb", ["search", "sample", "train", "draw", "figures"])
def test_an_out_whose_name_is_too_long_is_one_line(capsys, tmp_path, verb):
    """A folder name of 300 characters (more than the 255 a file system takes): an OSError
    traceback from --out's check, before the verb ran."""
    genome = write_genome(tmp_path, GENOME)
    out = str(tmp_path / ("x" * 300))
    argv = {"search": ["search", "--config", DEMO], "sample": ["sample", "--config", DEMO],
            "train": ["train", "--genome", genome, "--config", DEMO], "draw": ["draw", genome],
            "figures": ["figures", "--config", DEMO]}[verb]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"nasgep {verb}: error: argument --out: {out}: File name too long"), err


@pytest.mark.parametrize("verb", ["search", "sample", "train", "draw"])
def test_an_empty_out_is_refused_not_taken_as_the_current_folder(capsys, tmp_path, monkeypatch, verb):
    """``--out ''`` was the current folder: draw replaced normal.png there without a word."""
    monkeypatch.chdir(tmp_path)
    genome = write_genome(tmp_path, GENOME)
    (tmp_path / "normal.png").write_text("a user's file\n")
    argv = {"search": ["search", "--config", DEMO], "sample": ["sample", "--config", DEMO],
            "train": ["train", "--genome", genome, "--config", DEMO], "draw": ["draw", genome]}[verb]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", ""])
    assert exit_.value.code == 2
    assert "an empty path; name a folder" in capsys.readouterr().err.strip().splitlines()[-1]
    assert (tmp_path / "normal.png").read_text() == "a user's file\n"


def test_an_epoch_count_beyond_any_schedule_is_refused(capsys, tmp_path):
    """--epochs 99999999999999999999 trained on (a flat schedule, a number beyond int64)."""
    genome = write_genome(tmp_path, GENOME)
    argv = ["train", "--genome", genome, "--config", DEMO, "--out", str(tmp_path / "t")]
    one_line_error(capsys, [*argv, "--epochs", "99999999999999999999"],
                   r"--epochs must be between 1 and 100000, not 99999999999999999999")
    one_line_error(capsys, [*argv, "--set", "train.epochs=99999999999999999999"], r"train.epochs")
    assert not (tmp_path / "t").exists()


def test_a_sample_over_the_parameter_limit_says_so(capsys, tmp_path):
    """When no draw fits search.max_params, the smallest is kept (as the search does) and
    the user is told, not left to read it from a count of rejections."""
    argv = ["sample", "--config", DEMO, "--set", "tracking.enabled=false", "--set", "search.max_params=5000",
            "--set", "search.rebreed_tries=1", "--out", str(tmp_path / "s")]
    assert main(argv) == 0
    params = json.loads((tmp_path / "s" / "best.json").read_text())["params"]
    assert params > 5000
    assert f"the smallest, {params} parameters, is kept" in capsys.readouterr().err


def test_sample_never_replaces_another_result(capsys, tmp_path):
    """Seeds 1 then 2 into one folder, or a sample into a search's folder: refused in one
    line, nothing changed; the same sample again is a no-op; --restart moves the old aside."""
    from test_resume import search, snapshot

    config = npz_config(tmp_path, npz_dataset(tmp_path))
    out = tmp_path / "out"

    def sample(seed: int, *extra: str) -> list[str]:
        return [*verb_argv("sample", config, tmp_path), "--seed", str(seed), *extra]

    assert main(sample(1)) == 0
    first = snapshot(out)
    assert main(sample(1)) == 0 and snapshot(out) == first
    one_line_error(capsys, sample(2), r"out belongs to another sample \(seed differs\); .*--restart")
    assert snapshot(out) == first
    (out / "settings.json").unlink()          # lost: the genome itself is compared
    first = snapshot(out)
    one_line_error(capsys, sample(2, "--restart-if-changed"), r"out/best.json holds another random genome .*--restart")
    assert snapshot(out) == first
    best = (out / "best.json").read_bytes()
    for damaged, why in ((b"", "empty"), (b'{"genome"', "not JSON"), (b"[1]", "no genome in it")):
        (out / "best.json").write_bytes(damaged)       # emptied by a full disk, cut short
        one_line_error(capsys, sample(1), rf"out/best.json is damaged \({why}.*\); pass --restart")
    (out / "best.json").write_bytes(best)
    first = snapshot(out)
    assert main(sample(2, "--restart")) == 0
    previous = [p for p in out.iterdir() if p.name.startswith(".previous-")]
    assert len(previous) == 1 and snapshot(previous[0]) == first
    searched = tmp_path / "searched"
    search(searched)
    before = snapshot(searched)
    for flags in ((), ("--restart",)):
        one_line_error(capsys, sample(1, *flags, "--out", str(searched)),
                       r"searched holds a search \(checkpoints/, best.json, history.parquet\), not a sample; "
                       r"choose another --out")
    assert snapshot(searched) == before


def test_sample_largest_of_keeps_the_largest_draw_and_never_replaces_a_plain_sample(capsys, tmp_path):
    """The size-only baseline: --largest-of K keeps the largest of K draws; asked of a
    folder holding a plain sample, it is refused, nothing changed; a bad K is one line."""
    import json

    from test_resume import snapshot

    config = npz_config(tmp_path, npz_dataset(tmp_path))
    out = tmp_path / "out"

    def sample(seed: int, *extra: str, where: Path = out) -> list[str]:
        return [*verb_argv("sample", config, tmp_path), "--seed", str(seed), "--out", str(where), *extra]

    plain = []
    for s in (6, 7, 8):
        assert main(sample(s, where=tmp_path / f"plain{s}")) == 0
        plain.append(json.loads((tmp_path / f"plain{s}" / "best.json").read_text()))
    assert main(sample(2, "--largest-of", "3")) == 0            # draws seeds 2*3 ... 2*3+2
    best = json.loads((out / "best.json").read_text())
    top = max(plain, key=lambda b: b["params"])
    assert best["drawn_params"] == [b["params"] for b in plain] and best["largest_of"] == 3
    assert best["params"] == top["params"] and best["genome"] == top["genome"]
    first = snapshot(out)
    assert main(sample(2, "--largest-of", "3")) == 0 and snapshot(out) == first     # the same again: no-op
    one_line_error(capsys, sample(6, "--largest-of", "2", where=tmp_path / "plain6"),
                   r"plain6/best.json holds another random genome .*--restart")
    for bad in ("0", "x"):
        with pytest.raises(SystemExit) as exit_:
            main(sample(2, "--largest-of", bad))
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(err) == 1        # argparse's usage block is not printed
        assert err[0].startswith("nasgep sample: error: argument --largest-of: ")
    assert snapshot(out) == first


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"\x80\x02}q\x00.", "tensor", "dict"])
def test_a_damaged_or_foreign_checkpoint_is_refused(capsys, tmp_path, content):
    import torch

    config = npz_config(tmp_path, npz_dataset(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    if content == "tensor":
        torch.save(torch.zeros(3), out / "checkpoint.pt")
    elif content == "dict":
        torch.save({"format": "something-else", "epoch": 3}, out / "checkpoint.pt")
    else:
        (out / "checkpoint.pt").write_bytes(content)
    before = (out / "checkpoint.pt").read_bytes()
    one_line_error(capsys, verb_argv("train", config, tmp_path),
                   r"checkpoint.pt: not (a readable trainer state|a trainer state of nasgep)")
    assert (out / "checkpoint.pt").read_bytes() == before     # left as it was


def test_a_truncated_checkpoint_is_refused(capsys, tmp_path):
    """A real trainer checkpoint cut short (disk full, a copy interrupted)."""
    config = npz_config(tmp_path, npz_dataset(tmp_path))
    argv = verb_argv("train", config, tmp_path)
    assert main(argv) == 0
    checkpoint = tmp_path / "out" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    capsys.readouterr()
    one_line_error(capsys, argv, r"checkpoint.pt: not a readable trainer state")


# --------------------------------------------------------------------------- a search with no result

def test_a_search_with_no_usable_candidate_fails_with_the_reasons(tmp_path):
    from nasgep.errors import RunFailed
    from nasgep.search.evaluator import CheapEvaluator
    from nasgep.search.runner import run_search

    config = load_config(DEMO, TINY)
    with pytest.raises(RunFailed, match=r"without a single usable candidate.*best.json was not written; "
                                        r"failures: 3x 'out of memory'"):
        run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, progress=False,
                   factory=lambda device: CheapEvaluator(fail_if=lambda genome: "out of memory"))
    assert not (tmp_path / "best.json").exists() and (tmp_path / "history.parquet").exists()


def test_a_budget_spent_before_any_training_says_so(tmp_path):
    """A budget of microseconds: nothing was trained, and the line says that and which
    limit, not 'failures: none recorded (every one is in history.parquet)'."""
    from nasgep.errors import RunFailed
    from nasgep.search.evaluator import CheapEvaluator
    from nasgep.search.runner import run_search

    config = load_config(DEMO, [*TINY, "search.budget_hours=1e-12"])
    with pytest.raises(RunFailed, match=r"the search ended \(budget: search.budget_hours = 1e-12 spent\) .*before "
                                        r"any candidate was trained, so .*best.json was not written; raise the limit"):
        run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path, progress=False,
                   factory=lambda device: CheapEvaluator())


def test_nasgep_search_exits_non_zero_when_every_candidate_diverges(capsys, tmp_path):
    rc = main(["search", "--config", DEMO, *[a for s in TINY for a in ("--set", s)], "--set", "search.lr=1000",
               "--set", "datasets.cifar10.max_train=200", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]          # after the one progress line per generation
    assert rc == 1 and "Traceback" not in err
    assert last.startswith("nasgep search: error: the search ended") and "without a single usable candidate" in last
    assert re.search(r"failures: (3x|2x .*; 1x) '.*(nan|inf|diverged)", last, re.I), last
    assert "-> " not in err and not (tmp_path / "out" / "best.json").exists()


# --------------------------------------------------------------------------- other verbs

@pytest.mark.parametrize("content, match", [(b"\x80\xff", r"bin.json: damaged, not a JSON results file"),
                                            (b"[1, 2]", r"bin.json: damaged, not a JSON object"),
                                            (b'{"fitness": true}', r"bin.json: no numeric 'fitness'"),
                                            # chosen over every search's real result
                                            (b'{"fitness": 1e30, "genome": {}}',
                                             r"bin.json: fitness 1e\+30 is not a percentage from 0 to 100"),
                                            (b'{"fitness": -5, "genome": {}}',
                                             r"bin.json: fitness -5 is not a percentage from 0 to 100"),
                                            (b"[" * 100_000, r"bin.json: damaged, not a JSON results file"),
                                            # the file was not named
                                            (b'{"fitness": ' + b"9" * 5000 + b"}",
                                             r"bin.json: damaged, not a JSON results file \(a number of more "
                                             r"than \d+ digits\)")])
def test_tables_best_refuses_files_that_are_not_results(capsys, tmp_path, content, match):
    bad = tmp_path / "bin.json"
    bad.write_bytes(content)
    one_line_error(capsys, ["tables", "best", "--inputs", str(bad), "--out", str(tmp_path / "o.json")], match)


@pytest.mark.parametrize("argv, match", [
    (["track", "ui", "--print", "--port", "-5"], r"--port: a TCP port is from 1 to 65535, got -5"),
    (["track", "ui", "--print", "--port", "99999"], r"--port: a TCP port is from 1 to 65535, got 99999"),
    (["prepare", "--workers", "-3"], r"--workers: a number of processes is from 0 to 1024, got -3"),
])
def test_an_out_of_range_option_is_refused(capsys, argv, match):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and re.search(match, err[0]), err


@pytest.mark.parametrize("value", ["-1", "1e3", "4294967296", "x" * 500])
def test_a_seed_that_is_no_seed_is_refused(capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", "--config", DEMO, "--dataset", "cifar10", "--seed", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "argument --seed" in err[0] and len(err[0]) < 300


def test_the_configs_seeds_are_those_the_verbs_take():
    from nasgep.cli import MAX_SEED
    from nasgep.config import schema

    assert schema()["properties"]["seeds"]["items"]["maximum"] == MAX_SEED
    assert load_config(DEMO, [f"seeds=[{MAX_SEED}]"])["seeds"] == [MAX_SEED]


def test_the_process_counts_are_those_prepare_takes():
    from nasgep.config import MAX_PROCESSES, schema

    assert MAX_PROCESSES == 1024     # prepare --workers: test_an_out_of_range_option_is_refused
    search = schema()["properties"]["search"]["properties"]
    assert schema()["properties"]["train"]["properties"]["num_workers"]["maximum"] == MAX_PROCESSES
    assert search["devices"]["maxItems"] == MAX_PROCESSES
    assert load_config(DEMO, [f"train.num_workers={MAX_PROCESSES}"])["train"]["num_workers"] == MAX_PROCESSES


def test_search_workers_are_counted_with_their_concurrency():
    # the config's check, not a search: where it is missing, the search starts 1,037 processes
    devices = "search.devices=[" + ", ".join(["cpu"] * 17) + "]"
    assert len(load_config(DEMO, [devices, "search.concurrency=60"])["search"]["devices"]) == 17   # 1020
    with pytest.raises(ConfigError, match=r"search.devices: 17 entries x search.concurrency 61 = 1,037 worker "
                                          r"processes; at most 1024$"):
        load_config(DEMO, [devices, "search.concurrency=61"])


def test_search_devices_all_is_counted_as_every_gpu_before_any_worker_starts(tmp_path, monkeypatch):
    """[all] is one entry for the config's check (it cannot see the GPUs), each GPU here:
    [all, all] x 64 passed it and, on a machine of 16 GPUs, started 2,048 workers."""
    from nasgep.search import runner
    from nasgep.search.evaluator import CheapEvaluator

    finished = load_config(DEMO, ["search.devices=[cpu]", "tracking.enabled=false", "search.max_generations=1"])
    runner.run_search(finished, dataset="cifar10", seed=0, out_dir=tmp_path / "done",
                      factory=lambda device: CheapEvaluator(), progress=False, log=lambda msg: None)
    before = sorted(p.name for p in (tmp_path / "done").iterdir())
    import torch

    from nasgep.errors import UserError

    if not torch.cuda.is_available():      # --restart onto a GPU this machine lacks: the old run stays
        with pytest.raises(UserError, match="^device 'cuda:0' asked for, but PyTorch sees no CUDA GPU$"):
            runner.run_search(load_config(DEMO, ["search.devices=[cuda:0]", "tracking.enabled=false"]),
                              dataset="cifar10", seed=0, out_dir=tmp_path / "done", restart=True, progress=False,
                              log=lambda msg: None)
        assert sorted(p.name for p in (tmp_path / "done").iterdir()) == before

    def no_workers(*args, **kwargs):       # never fork here, with or without the check
        raise AssertionError(f"{len(args[1])} worker processes were about to start")

    monkeypatch.setattr(runner, "_cuda_count", lambda: 16)
    monkeypatch.setattr(runner, "make_executor", no_workers)
    config = load_config(DEMO, ["search.devices=[all, all]", "search.concurrency=64", "tracking.enabled=false"])
    with pytest.raises(ConfigError, match=r"^search.devices: 32 devices on this machine \('all' is each of its "
                                          r"GPUs\) x search.concurrency 64 = 2,048 worker processes; at most 1024$"):
        runner.run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "s",
                          factory=lambda device: CheapEvaluator(), progress=False, log=lambda msg: None)
    assert not (tmp_path / "s").exists()      # refused before the folder was claimed
    # nor is a finished search moved aside by --restart for a setting that cannot run here
    with pytest.raises(ConfigError, match="2,048 worker processes"):
        runner.run_search(config, dataset="cifar10", seed=0, out_dir=tmp_path / "done", restart=True,
                          factory=lambda device: CheapEvaluator(), progress=False, log=lambda msg: None)
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == before and "best.json" in before
    at_most = load_config(DEMO, ["search.devices=[all]", "search.concurrency=64"])     # 16 x 64 = 1024: allowed
    with pytest.raises(AssertionError, match="^1024 worker processes"):
        runner._workers(at_most, "cifar10", tmp_path / "t", 0, lambda device: CheapEvaluator())


def test_the_papers_sizes_are_within_the_bounds():
    config = load_config(ROOT / "config" / "paper.yaml",
                         ["search.budget_epochs=null", "search.population=10000",
                          "search.reduction_population=10000", "search.rebreed_tries=10000"])
    assert config["search"]["population"] == 10000 and config["search"]["rebreed_tries"] == 10000
    paper = load_config(ROOT / "config" / "paper.yaml")["search"]
    assert (paper["population"], paper["reduction_population"], paper["rebreed_tries"]) == (10, 10, 20)


@pytest.mark.parametrize("override, match", [("device=banana", r"device: 'banana' does not match"),
                                             ("search.devices=[]", r"search.devices: \[\] should be non-empty"),
                                             ("search.devices=[gpu0]", r"search.devices.0: 'gpu0' does not match")])
def test_a_device_that_is_no_device_is_refused(capsys, tmp_path, override, match):
    one_line_error(capsys, ["search", "--config", DEMO, "--set", override, "--out", str(tmp_path / "o")], match)


# an index past what torch reads (2^31 and up) was 'expected auto, cpu, cuda or cuda:N', which it is
@pytest.mark.parametrize("gpu", ["cuda:7", "cuda:2147483648", "cuda:99999999999999999999"])
@pytest.mark.skipif(__import__("torch").cuda.device_count() > 7, reason="this machine has a GPU cuda:7")
def test_a_gpu_that_is_not_there_is_refused_before_the_search(capsys, tmp_path, gpu):
    one_line_error(capsys, ["search", "--config", DEMO, *[a for s in TINY for a in ("--set", s)],
                            "--set", f"search.devices=[{gpu}]", "--out", str(tmp_path / "o")],
                   rf"device '{gpu}' asked for, but PyTorch sees (no CUDA GPU|\d+ GPU\(s\))$")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("target, content, match", [
    ("metrics", b"\x00\x01garbage", r"metrics.json: damaged, not a JSON results file"),
    ("metrics", b'{"params": 5}', r"metrics.json: no numeric 'test_error'"),
    ("metrics", b'{"test_error": NaN, "params": 5}', r"metrics.json: 'test_error' is nan, not a percentage"),
    ("history", b"PAR1 truncated", r"history.parquet: damaged or not a search history"),
    ("metrics", "folder", r"metrics.json: is a folder; expected a JSON results file"),
    ("metrics", b"", r"metrics.json: empty, not a JSON results file"),
    # a folder reads as a parquet dataset (pyarrow's 'No match for FieldRef' before)
    ("history", "folder", r"history.parquet: is a folder; expected a search history file"),
    ("history", "text numbers", r"history.parquet: column '(fitness|seconds)' does not hold numbers"),
    # values that were tracebacks in the tables, or numbers printed without a word
    ("metrics", b'{"test_error": 3.0, "test_accuracy": "abc"}',
     r"metrics.json: 'test_accuracy' is 'abc', not a percentage"),
    ("metrics", b'{"test_error": 250}', r"metrics.json: 'test_error' is 250, not a percentage from 0 to 100"),
    ("metrics", b'{"test_error": 3.0, "params": "30000"}', r"metrics.json: 'params' is '30000', not a count"),
    ("metrics", b'{"test_error": 3.0, "params": -5}', r"metrics.json: 'params' is -5, not a count"),
    ("metrics", b'{"test_error": 3.0, "params": true}', r"metrics.json: 'params' is True, not a count"),
    ("metrics", "dangling link", r"metrics.json: a link to a missing file; expected a JSON results file"),
    ("history", "dangling link", r"history.parquet: a link to a missing file; expected a search history file"),
    ("history", "infinite seconds",
     r"history.parquet: column '(fitness|seconds)' holds an infinite or negative number"),
    # tables and figures were made from these without a word (a table II over fewer seeds, an
    # empty curve; a fitness axis up to a million)
    ("history", "no rows", r"history.parquet: no rows, but no search.json beside it records a search that "
                           r"trained nothing \(damaged"),
    ("history", "fitness of a million", r"history.parquet: column 'fitness' holds 1e\+06, not a percentage from 0 "
                                        r"to 100 \(damaged\)"),
])
@pytest.mark.parametrize("verb", ["tables", "figures"])
def test_damaged_results_files_are_named(capsys, tmp_path, target, content, match, verb):
    from test_report import make_study

    from nasgep.report import Study

    cfg, config = make_study(tmp_path)
    study = Study(config)
    path = (study.train_dir("cifar10", "cutout_aa", 0) / "metrics.json" if target == "metrics"
            else study.search_dir("cifar10", "search", 0) / "history.parquet")
    if content == "folder":
        path.unlink()
        path.mkdir()
    elif content == "dangling link":   # was shown as "not run yet"
        path.unlink()
        path.symlink_to(tmp_path / "gone")
    elif content == "text numbers":   # figures used to drop every row and plot nothing, silently
        import pandas as pd

        frame = pd.read_parquet(path)
        frame[["fitness", "seconds"]] = frame[["fitness", "seconds"]].astype(str)
        frame.to_parquet(path)
    elif content == "infinite seconds":
        import pandas as pd

        frame = pd.read_parquet(path)
        frame[["fitness", "seconds"]] = float("inf")
        frame.to_parquet(path)
    elif content in ("no rows", "fitness of a million"):
        import pandas as pd

        frame = pd.read_parquet(path)
        if content == "no rows":
            frame = frame.iloc[:0]
        else:
            frame["fitness"] = 1e6
        frame.to_parquet(path)
    else:
        path.write_bytes(content)
    one_line_error(capsys, [verb, "--config", str(cfg), "--out", str(tmp_path / "o")], match)


@pytest.mark.parametrize("verb, column, change, match", [
    # figures plotted a generation of 0.5 between two generations
    ("figures", "generation", 0.5, r"history.parquet: individual n0-0: generation 0.5 is not a whole number"),
    # tables summed a NaN count as 0 epochs
    ("tables", "epochs_this_generation", float("nan"),
     r"history.parquet: individual n0-0: epochs_this_generation nan is not a whole number")])
def test_a_history_count_that_is_no_whole_number_is_named(capsys, tmp_path, verb, column, change, match):
    import pandas as pd
    from test_report import make_study

    from nasgep.report import Study

    cfg, config = make_study(tmp_path)
    path = Study(config).search_dir("cifar10", "search", 0) / "history.parquet"
    frame = pd.read_parquet(path)
    frame[column] = frame[column].astype("float64") + change
    frame.to_parquet(path)
    one_line_error(capsys, [verb, "--config", str(cfg), "--out", str(tmp_path / "o")], match)


@pytest.mark.parametrize("verb", ["tables", "figures"])
@pytest.mark.parametrize("damage, match", [
    # a row written twice: tables counted its epochs twice, figures averaged it in twice
    ("row twice", r"history.parquet: row \d+: individual n0-0 of generation 0 is there twice \(damaged\)$"),
    # true/false read as 1/0: a fitness of 1 %
    ("boolean fitness", r"history.parquet: column 'fitness' does not hold numbers")])
def test_a_history_with_a_row_twice_or_true_for_a_number_is_named(capsys, tmp_path, verb, damage, match):
    import pandas as pd
    from test_report import make_study

    from nasgep.report import Study

    cfg, config = make_study(tmp_path)
    path = Study(config).search_dir("cifar10", "search", 0) / "history.parquet"
    frame = pd.read_parquet(path)
    if damage == "row twice":
        frame = pd.concat([frame, frame.iloc[:1]], ignore_index=True)
    else:
        frame["fitness"] = frame["fitness"] > 50
    frame.to_parquet(path)
    one_line_error(capsys, [verb, "--config", str(cfg), "--out", str(tmp_path / "o")], match)


@pytest.mark.parametrize("uri, message", [
    ("not a uri", r"tracking.uri 'not a uri' is a folder store, which MLflow no longer opens; use a database"),
    ("file:///tmp/mlruns", r"tracking.uri 'file:///tmp/mlruns' is a folder store"),
    # nothing listens on the discard port: refused at once, not after MLflow's minutes of retries
    ("http://127.0.0.1:9", r"tracking.uri 'http://127.0.0.1:9': the MLflow server does not answer \(connection"),
    # SQLAlchemy's in-memory database: a study's runs would vanish when the process ends
    ("sqlite:///", r"tracking.uri 'sqlite:///' names no database file \(an in-memory store"),
    ("sqlite://", r"tracking.uri 'sqlite://' names no database file"),
    ("SQLITE:///", r"tracking.uri 'SQLITE:///' names no database file"),
    ("http://[::1", r"tracking.uri 'http://\[::1' is not a valid URI \(Invalid IPv6 URL\)"),
    ("sqlite:////tmp/some/dir/", r"tracking.uri 'sqlite:////tmp/some/dir/' ends in '/'; name the database file")])
@pytest.mark.parametrize("action", [["init"], ["ui", "--print"]])
def test_a_folder_store_or_a_silent_server_is_one_line_at_once(capsys, tmp_path, uri, message, action):
    one_line_error(capsys, ["track", *action, "--config", DEMO, "--set", f"tracking.uri={uri}",
                            "--set", f"results_dir={tmp_path}"], message)
    assert list(tmp_path.iterdir()) == []   # nothing created


@pytest.fixture
def web_server():
    """A local web server answering each path with the status ``codes`` gives it (404 else);
    yields a function that starts it and returns its address."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    servers = []

    def start(codes: dict[str, int]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(codes.get(self.path.split("?")[0], 404))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_web_server_that_is_not_mlflow_is_one_line_and_a_proxy_is_let_through(capsys, tmp_path, web_server):
    """Any HTTP answer passed the probe, so a tracking.uri naming another web service (404
    everywhere) failed later inside MLflow. 404 on both /health and the REST API is refused;
    an auth proxy (401) or a proxy forwarding only the API is left to MLflow."""
    argv = ["track", "ui", "--print", "--config", DEMO, "--set", f"results_dir={tmp_path}"]
    other = web_server({})
    one_line_error(capsys, [*argv, "--set", f"tracking.uri={other}"],
                   r"a web server answers there, but not MLflow's \(404 on /health and on the REST API\)")
    for codes in ({"/health": 401}, {"/api/2.0/mlflow/experiments/search": 200}, {"/health": 200}):
        uri = web_server(codes)
        assert main([*argv, "--set", f"tracking.uri={uri}"]) == 0, codes
        assert f"MLflow server {uri}" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_a_tracking_uri_mlflow_cannot_open_is_one_line(capsys, tmp_path):
    one_line_error(capsys, ["track", "init", "--config", DEMO, "--set", "tracking.uri=foo://bar",
                            "--set", f"results_dir={tmp_path}"],
                   r"tracking.uri 'foo://bar': cannot open the MLflow store")


def test_a_sqlite_uri_naming_a_folder_or_another_file_is_one_line_before_any_work(capsys, tmp_path):
    """MLflow retried such a store for about 107 s, printing 37 lines, and the sample's
    best.json was written before the error: now one line at once, nothing written."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.db").write_text("a user's notes\n")
    for name, match in (("folder", r"folder is a folder; name the database file, e.g. 'sqlite:///.*folder/mlflow.db'"),
                        ("notes.db", r"notes.db is no SQLite database \(another file of that name\)")):
        uri = f"tracking.uri=sqlite:///{tmp_path / name}"
        for argv in (["sample", "--config", DEMO, "--set", uri, "--out", str(tmp_path / "out")],
                     ["track", "init", "--config", DEMO, "--set", uri, "--set", f"results_dir={tmp_path}"]):
            one_line_error(capsys, argv, match)
    assert not (tmp_path / "out").exists() and (tmp_path / "notes.db").read_text() == "a user's notes\n"


@pytest.fixture(scope="module")
def cheap_search(tmp_path_factory):
    """One finished (cheap) search on the demo, copied by each test that damages it."""
    from nasgep.search.evaluator import CheapEvaluator
    from nasgep.search.runner import run_search

    out = tmp_path_factory.mktemp("search") / "s0"
    run_search(load_config(DEMO, TINY), dataset="cifar10", seed=0, out_dir=out, progress=False,
               factory=lambda device: CheapEvaluator())
    return out


def _best(**change):
    """best.json with ``change`` (None: the key removed)."""
    def edit(path: Path) -> bytes:
        data = json.loads(path.read_text())
        for key, value in change.items():
            if value is None:
                del data[key]
            else:
                data[key] = value
        return json.dumps(data).encode()
    return edit


@pytest.mark.parametrize("target, content, match", [
    ("best.json", b'{"genome": {"normal": ', r"best.json: damaged, not a JSON results file \(JSONDecodeError\)"),
    ("best.json", _best(seed=None), r"best.json: no search 'seed'"),
    ("best.json", _best(seed="0"), r"best.json: no search 'seed'"),
    ("best.json", _best(fitness=None), r"best.json: no numeric 'fitness'"),
    ("best.json", lambda p: p.read_bytes().replace(b'"fitness": ', b'"fitness": NaN, "x": '),
     r"best.json: no numeric 'fitness' \(a finite number"),
    ("best.json", _best(fitness=1e30), r"best.json: fitness 1e\+30 is not a percentage from 0 to 100 \(damaged\)$"),
    ("best.json", _best(genome={"normal": 1}), r"best.json: genome: missing key 'reduction'"),
    # an id names a file of OUT/runs: '../../victim/best' wrote over another search's best.json
    ("history.parquet", {"id": "/../../../victim/best"},
     r"history.parquet: individual id '/../../../victim/best' is not one a search writes"),
    ("history.parquet", {"epochs": float("nan")},
     r"history.parquet: individual i\d+: epochs nan is not a whole number"),
    ("history.parquet", b"PAR1 garbage, not parquet", r"history.parquet: damaged or not a search history"),
    ("history.parquet", "other parquet", r"history.parquet: not a search history \(no column 'id', 'fitness'"),
    ("search.json", b'{"finished": tr', r"search.json: damaged, not a JSON results file"),
    ("search.json", b'{"finish": true}', r"search.json: no true/false 'finished'"),
    ("search.json", None, r"search.json: missing \(is the search finished\?\)"),
    # another seed's history copied in: the fidelity sample came from the wrong search
    ("best.json", _best(individual="i999"),
     r"history.parquet: no individual i999 with the genome of .*best.json: the files of two searches are mixed"),
])
def test_evaluate_names_a_damaged_search_file(capsys, tmp_path, cheap_search, target, content, match):
    import shutil

    search = tmp_path / "s0"
    shutil.copytree(cheap_search, search)
    path = search / target
    if content is None:
        path.unlink()
    elif content == "other parquet":
        import pandas as pd

        pd.DataFrame({"genome": ["{}"], "x": [1]}).to_parquet(path)
    elif isinstance(content, dict):   # one column of the fittest row changed
        import pandas as pd

        frame = pd.read_parquet(path)
        row = frame["fitness"].idxmax()
        for column, value in content.items():
            frame[column] = frame[column].astype(object if isinstance(value, str) else float)
            frame.loc[row, column] = value
        frame.to_parquet(path)
    else:
        path.write_bytes(content(path) if callable(content) else content)
    one_line_error(capsys, ["evaluate", "--config", DEMO, *[a for s in TINY for a in ("--set", s)],
                            "--search", str(search), "--out", str(tmp_path / "ev")], match)
    assert not (tmp_path / "ev").exists()


def test_evaluate_refuses_a_search_given_twice(capsys, tmp_path, cheap_search):
    # it was counted once, silently: an evaluation of fewer seeds than the user listed
    one_line_error(capsys, ["evaluate", "--config", DEMO, *[a for s in TINY for a in ("--set", s)], "--search",
                            str(cheap_search), str(cheap_search / ".." / cheap_search.name), "--out",
                            str(tmp_path / "ev")], r"--search .* given twice; give each search seed's folder once")


def test_an_image_size_that_cannot_fit_in_memory_is_one_line(capsys, monkeypatch, tmp_path):
    """datasets.<name>.image_size: 100000 ended in a 32-line traceback from torch's allocator
    (or a search killed for memory, with nothing said); now one line before any work."""
    from nasgep import data

    monkeypatch.setattr(data, "memory_bytes", lambda: 8 * 2**20)       # a machine with 8 MiB
    line = one_line_error(capsys, ["prepare", "--config", DEMO, "--dataset", "cifar10", "--set",
                                   "datasets.cifar10.image_size=64"],
                          r"datasets.cifar10.image_size = 64: 1797 images of 1x64x64 take 0.0 GiB in memory, more "
                          r"than half of this machine's 0.0 GiB; choose a smaller image_size")
    assert "Traceback" not in line
    monkeypatch.setattr(data, "memory_bytes", lambda: 64 * 2**30)
    assert main(["prepare", "--config", DEMO, "--dataset", "cifar10", "--set", "datasets.cifar10.image_size=16",
                 "--out", str(tmp_path / "d.json")]) == 0


@pytest.mark.parametrize("verb, settings, match", [
    # a traceback from torch's allocator ('you tried to allocate 40000000000000000 bytes'), after
    # the training's folder was claimed; a smaller excess gets the process killed mid-build
    ("train", ["train.channels=100000000"], r"train.channels = 100,000,000 with train.cells_per_stage = 1: a "
                                             r"network of [\d,]+ parameters takes [\d,.]+ GiB to train \(weights, "
                                             r"gradients, momentum\), more than half of this machine's"),
    ("train --stem imagenet", ["transfer.channels=100000000"], r"transfer.channels = 100,000,000 with "
                                                                r"train.cells_per_stage = 1: a network of"),
    # max_params let every candidate through: the search's parameter count allocated the weights
    ("search", ["search.channels=10000000", "search.max_params=1000000000000000000000000"],
     r"search.channels = 10,000,000 with search.cells_per_stage = 1: a network of [\d,]+ parameters"),
    ("evaluate", ["train.channels=100000000"], r"train.channels = 100,000,000 with train.cells_per_stage = 1"),
])
def test_a_network_too_large_for_the_memory_is_one_line(capsys, tmp_path, cheap_search, verb, settings, match):
    genome = write_genome(tmp_path, GENOME)
    out = tmp_path / "out"
    tiny = [a for s in [*TINY, *settings] for a in ("--set", s)]
    argv = {"train": ["train", "--genome", genome, "--config", DEMO, *tiny, "--out", str(out)],
            "train --stem imagenet": ["train", "--genome", genome, "--config", DEMO, *tiny, "--stem", "imagenet",
                                      "--out", str(out)],
            "search": ["search", "--config", DEMO, *tiny, "--out", str(out)],
            "evaluate": ["evaluate", "--config", DEMO, *tiny, "--search", str(cheap_search), "--out", str(out)],
            }[verb]
    one_line_error(capsys, argv, match)
    assert not list(out.glob("**/*.json")) and not list(out.glob("**/*.pt"))


def test_the_search_counts_a_candidates_parameters_without_its_memory():
    """The parameter count of the search's limit check builds on the meta device: the same
    count as the network built, no weights allocated."""
    import torch

    from nasgep.nn import Macro, build_network, count_network_parameters, count_parameters
    from nasgep.space import Genome

    genome = Genome.from_dict(GENOME)
    macro = Macro(channels=8, cells_per_stage=1, num_classes=10, in_channels=3)
    assert count_network_parameters(genome, macro) == count_parameters(build_network(genome, macro, seed=0))
    huge = Macro(channels=10**7, cells_per_stage=1, num_classes=10, in_channels=3)
    state = torch.random.get_rng_state()
    assert count_network_parameters(genome, huge) > 10**14        # 400 TB of weights: counted, not allocated
    assert torch.equal(torch.random.get_rng_state(), state)


def test_messages_that_said_the_wrong_thing(capsys, tmp_path):
    """A dangling link as --out ("File exists"), a results_dir that is a file ("does not
    exist"), --dataset "" (silently search.dataset), and a search of other settings run
    without --resume (advised --resume, which was then refused too)."""
    import yaml
    from test_resume import small_config

    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    one_line_error(capsys, ["sample", "--config", DEMO, "--out", str(tmp_path / "dangling")],
                   r"dangling is a link to .*nowhere, which does not exist; remove the link")
    (tmp_path / "afile").write_text("")
    one_line_error(capsys, ["tables", "--config", DEMO, "--set", f"results_dir={tmp_path / 'afile'}",
                            "--out", str(tmp_path / "t")], r"results folder .*afile is a file, not a folder")
    one_line_error(capsys, ["sample", "--config", DEMO, "--dataset", "", "--out", str(tmp_path / "s")],
                   r"unknown dataset ''")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small_config("search.max_generations=1")))
    run = ["search", "--config", str(config), "--seed", "0", "--out", str(tmp_path / "run")]
    from test_search import cheap_factory

    from nasgep.search import runner

    runner.run_search(load_config(str(config)), dataset="cifar10", seed=0, out_dir=tmp_path / "run",
                      factory=cheap_factory, progress=False, log=lambda msg: None)
    one_line_error(capsys, [*run, "--set", "search.population=5"],
                   r"run belongs to another search \(search.population differs\); .*--restart")
    assert not (tmp_path / "s").exists()


def test_paths_the_terminal_cannot_show_are_printed_escaped(tmp_path, monkeypatch):
    """Under PYTHONIOENCODING=ascii (or a terminal of another encoding), `draw G --out
    résultats` drew the cells and then printed their paths as a UnicodeEncodeError
    traceback, and so did an error line naming such a path."""
    import sys

    streams = {name: io.TextIOWrapper(io.BytesIO(), encoding="ascii") for name in ("stdout", "stderr")}
    for name, stream in streams.items():
        monkeypatch.setattr(sys, name, stream)
    genome = write_genome(tmp_path, GENOME)
    assert main(["draw", genome, "--out", str(tmp_path / "résultats")]) == 0
    assert main(["draw", str(tmp_path / "génome.json"), "--out", str(tmp_path / "résultats")]) == 2
    assert main(["prepare", "--config", DEMO, "--dataset", "cifar10", "--out", str(tmp_path / "résumé.json")]) == 0
    for stream in streams.values():
        stream.flush()
    out, err = (streams[name].buffer.getvalue().decode("ascii") for name in ("stdout", "stderr"))
    assert f"{tmp_path}/r\\xe9sultats/normal.svg" in out.splitlines()
    assert out.splitlines()[-1].endswith(f"-> {tmp_path}/r\\xe9sum\\xe9.json")
    assert err.splitlines() == [f"nasgep draw: error: {tmp_path}/g\\xe9nome.json: no such genome JSON file "
                                "(e.g. a search's best.json)"]
    assert (tmp_path / "résultats" / "normal.svg").exists() and (tmp_path / "résumé.json").exists()


def test_test_class_folders_other_than_the_training_sets_are_named(capsys, tmp_path):
    """A val/ without one of train/'s two classes was "val: one class folder (cat);
    classification needs at least 2": the classes of the test images are the training
    set's, and the line names those missing or too many."""
    import shutil

    from test_folder_images import write_config, write_folder

    root = write_folder(tmp_path / "data")          # cat, dog, ship
    shutil.rmtree(root / "train" / "ship")
    shutil.rmtree(root / "val" / "ship")
    shutil.rmtree(root / "val" / "dog")
    config = str(write_config(tmp_path, root))
    said = rf"{root}/val: no class folder dog \(the training set's classes: cat, dog\); the test images need a folder"
    one_line_error(capsys, ["prepare", "--config", config, "--dataset", "mine"], said)
    one_line_error(capsys, ["train", "--genome", write_genome(tmp_path, GENOME), "--config", config, "--out",
                            str(tmp_path / "t")], said)
    shutil.copytree(root / "val" / "cat", root / "val" / "bird")
    one_line_error(capsys, ["prepare", "--config", config, "--dataset", "mine"],
                   r"val: no class folder dog; class folder\(s\) bird not in the training set")


def test_sigterm_to_the_process_group_leaves_no_dataloader_traceback(tmp_path):
    """scancel signals every process of the job: DataLoader workers die of it too, and torch
    reported them from the iterator's __del__, after the verb's one line, as an
    "Exception ignored" traceback (nasgep.data.batches now stops its workers itself)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "group.py"
    script.write_text(
        "import sys, time\n"
        "import torch\n"
        "from torch.utils.data import DataLoader, Dataset\n"
        "from nasgep import cli\n"
        "from nasgep.commands import decode\n"
        "from nasgep.data import batches\n"
        "class Slow(Dataset):\n"
        "    def __len__(self): return 10_000\n"
        "    def __getitem__(self, i):\n"
        "        time.sleep(0.01)\n"
        "        return torch.zeros(1)\n"
        "def run(args):\n"
        "    for _ in batches(DataLoader(Slow(), batch_size=4, num_workers=2)):\n"
        "        print('batch', flush=True)\n"
        "decode.run = run\n"
        "sys.exit(cli.main(['decode', 'add g1 g2']))\n")
    for _ in range(3):      # the traceback came in about half of the runs
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        assert proc.stdout.readline() == "batch\n"       # the workers are running
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143 and err.strip().splitlines() == ["nasgep decode: terminated (SIGTERM)"], err


def test_sigterm_ends_a_verb_in_one_line_running_its_clean_up(tmp_path):
    """SLURM's scancel and Snakemake stop a job with SIGTERM: the verb used to vanish without
    a line in its log (Python's default), its finally blocks not run."""
    import subprocess
    import sys

    script = tmp_path / "term.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from nasgep import cli\n"
        "from nasgep.commands import decode\n"
        "def run(args):\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(30)\n"
        "    finally:\n"
        f"        open({str(tmp_path / 'cleaned')!r}, 'w').close()\n"
        "decode.run = run\n"
        "sys.exit(cli.main(['decode', 'add g1 g2']))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines() == ["nasgep decode: terminated (SIGTERM)"]
    assert (tmp_path / "cleaned").exists()
    # the whole process group signalled: a DataLoader worker dies of it too and torch raises
    # RuntimeError while Terminated unwinds (it was an 86-line traceback, exit 1)
    script.write_text(script.read_text().replace(
        "        open(", "        raise RuntimeError('DataLoader worker (pid 1) is killed by signal: Terminated.')\n"
                        "        open("))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143 and done.stderr.strip().splitlines() == ["nasgep decode: terminated (SIGTERM)"]
    # a later verb in the same process (an in-process caller of main) is no longer terminating:
    # a failure of its own is not passed off as the signal
    script.write_text(script.read_text().replace("sys.exit(cli.main(['decode', 'add g1 g2']))\n", (
        "print(cli.main(['decode', 'add g1 g2']))\n"
        "def fails(args):\n"
        "    raise RuntimeError('a defect of its own')\n"
        "decode.run = fails\n"
        "cli.main(['decode', 'add g1 g2'])\n")))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "143" and "RuntimeError: a defect of its own" in done.stderr


def test_ctrl_c_with_its_log_reader_gone_keeps_the_exit_status(tmp_path):
    """Ctrl-C reaches a verb and the ``tee`` it logs through at once; with the tee gone first,
    the verb's "interrupted" line met a broken pipe and a BrokenPipeError traceback (exit 1)
    replaced exit 130, which says the run was interrupted and can be resumed."""
    import subprocess
    import sys

    script = tmp_path / "int.py"
    script.write_text(
        "import os, sys\n"
        "from nasgep import cli\n"
        "from nasgep.commands import decode\n"
        "def run(args):\n"
        "    os.close(2)\n"                       # stderr's reader is gone: every write fails
        "    r, w = os.pipe(); os.close(r); os.dup2(w, 2)\n"
        "    raise KeyboardInterrupt\n"
        "decode.run = run\n"
        "code = cli.main(['decode', 'add g1 g2'])\n"
        "os.write(1, f'{code}'.encode())\n"
        "os._exit(0)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stdout == "130", done.stdout + done.stderr


def test_a_second_ctrl_c_quits_at_once_without_a_traceback(tmp_path):
    """Ctrl-C twice: the second lands while the verb unwinds or while the interpreter exits
    (MLflow ends its run in an atexit handler; stopping DataLoader workers takes seconds).
    It printed a KeyboardInterrupt traceback from whichever cleanup it hit ("Exception
    ignored in atexit callback"); now it quits at once, in one line, killed by SIGINT."""
    import subprocess
    import sys

    script = tmp_path / "twice.py"
    script.write_text(
        "import atexit, os, signal, sys, time\n"
        "from nasgep import cli\n"
        "from nasgep.commands import decode\n"
        "def slow_cleanup():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"      # the second Ctrl-C, as the interpreter exits
        "    time.sleep(30)\n"
        "    print('cleanup finished')\n"
        "def run(args):\n"
        "    atexit.register(slow_cleanup)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"      # the first
        "    time.sleep(30)\n"
        "decode.run = run\n"
        "sys.argv = ['nasgep', 'decode', 'add g1 g2']\n"
        "sys.exit(cli.main())\n")                       # as the `nasgep` command calls it
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGINT, done.stderr
    assert done.stderr.splitlines() == ["nasgep decode: interrupted",
                                        "nasgep decode: interrupted again: quitting at once"]
    assert "cleanup finished" not in done.stdout


def test_an_interrupted_command_dies_of_sigint_after_its_exit_callbacks(tmp_path):
    """Python restores SIGINT's default after the exit callbacks, and tears the interpreter
    down (2-3 s once torch is imported), where a second Ctrl-C landed unannounced. The
    interrupted command now ends right after its exit callbacks, its teardown skipped,
    killed by SIGINT as Ctrl-C's convention asks (a shell loop then stops)."""
    import subprocess
    import sys

    script = tmp_path / "late.py"
    script.write_text(
        "import atexit, os, signal, sys, time\n"
        "from nasgep import cli\n"
        "assert atexit._ncallbacks() == 1\n"     # its own comes first: it runs after every other
        "from nasgep.commands import decode\n"
        "class Teardown:\n"
        "    def __del__(self):\n"         # runs as the interpreter's modules are torn down
        "        os.kill(os.getpid(), signal.SIGINT)\n"     # the second Ctrl-C, then
        "        time.sleep(30)\n"
        "        print('teardown finished')\n"
        "late = Teardown()\n"
        "def run(args):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"      # the first
        "    time.sleep(30)\n"
        "decode.run = run\n"
        "sys.argv = ['nasgep', 'decode', 'add g1 g2']\n"
        "sys.exit(cli.main())\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGINT, done.stderr
    assert done.stderr.splitlines() == ["nasgep decode: interrupted"]
    assert "teardown finished" not in done.stdout


LOOP_RUN = """
import sys, time
from nasgep import cli
from nasgep.commands import decode
def run(args):
    print('running', flush=True)
    time.sleep(30)
decode.run = run
sys.argv = ['nasgep', 'decode', 'add g1 g2']
sys.exit(cli.main())
"""


def test_ctrl_c_stops_a_shell_loop_over_runs(tmp_path):
    """``for s in 0 1 2; do nasgep search --seed $s ...; done``: Ctrl-C stopped only the
    running search, and bash went on with the next seed, since a program that exits 130
    tells bash it handled the Ctrl-C itself. Dying of SIGINT, as Python does for a
    KeyboardInterrupt nobody caught, stops the loop (through a pseudo-terminal, as typed)."""
    import os
    import pty
    import select
    import sys
    import time

    script = tmp_path / "loop_run.py"
    script.write_text(LOOP_RUN)
    loop = f"for i in 1 2 3; do {sys.executable} {script}; echo after-$i; done; echo loop-done"
    pid, fd = pty.fork()
    if pid == 0:                  # the shell, in the terminal's foreground process group
        os.execvp("bash", ["bash", "-c", loop])
    out, sent, deadline = b"", False, time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if not sent and b"running" in out:
                os.write(fd, b"\x03")          # Ctrl-C typed on the terminal
                sent = True
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:           # the shell ended: the terminal is gone
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert sent and "nasgep decode: interrupted" in text, text
    assert "after-" not in text and "loop-done" not in text, text


def test_ctrl_c_is_the_callers_again_after_main_returns(monkeypatch):
    """main() called from Python (argv given) gives Ctrl-C back: after an interrupted verb
    a Ctrl-C of the caller is a KeyboardInterrupt again, not a quit."""
    import os
    import signal

    from nasgep.commands import decode

    def run(args):
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("no KeyboardInterrupt")

    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(decode, "run", run)
    assert main(["decode", "add g1 g2"]) == 130
    assert signal.getsignal(signal.SIGINT) is before


def test_a_ui_address_that_cannot_be_listened_on_is_one_line(capsys, tmp_path, monkeypatch):
    """MLflow's server logs a failed bind among its own lines and exits 0: a port in use or
    an unknown host looked like a UI that had started. Checked before MLflow is started."""
    import socket

    from nasgep.commands import track

    monkeypatch.setattr(track.os, "execv", lambda *a: pytest.fail("MLflow started"))
    assert main(["track", "init", "--config", DEMO, "--set", f"results_dir={tmp_path}"]) == 0
    capsys.readouterr()
    argv = ["track", "ui", "--config", DEMO, "--set", f"results_dir={tmp_path}"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line_error(capsys, [*argv, "--port", str(port)], rf"--port {port}: already in use: stop what listens")
    one_line_error(capsys, [*argv, "--host", "no.such.host.invalid"], r"--host no\.such\.host\.invalid: not an address")
