"""Bad input gets one clear line and exit status 2, never a traceback; nonsense is refused
(issue 10, point 5). Each case is a reproduction: the command a careless or hostile user
would type. Commands run in-process through ``nasgep.cli.main``, so an escaping
exception fails the test with its traceback."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

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
    assert lines[0].startswith(f"nasgep {argv[0]}: error: "), lines[0]
    assert len(lines[0]) < 400, lines[0]
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
    ("search.lr=.inf", r"search.lr: inf is not a finite number"),
    ("train.lr=-.inf", r"train.lr"),
    ("search.population=3.0", r"search.population: 3.0 is not of type 'integer'"),
    ("search.lr=" + "x" * 5000, r"search.lr"),
    ("gep.cell_head=3000", r"gep.cell_head: 3000 is greater than the maximum of 100"),
])
def test_bad_overrides_are_refused_in_one_line(capsys, override, match):
    one_line_error(capsys, ["prepare", "--config", DEMO, "--set", override, "--dataset", "cifar10"], match)


@pytest.mark.parametrize("text, value", [("1e6", 1e6), ("1e-3", 1e-3), ("2.5E+2", 250.0), ("0.1", 0.1),
                                         ("1.0e+30", 1e30)])
def test_numbers_are_read_the_way_people_write_them(text, value):
    config = load_config(DEMO, [f"search.lr={text}"])
    assert config["search"]["lr"] == value and isinstance(config["search"]["lr"], float)


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
    "deep nesting": ("[" * 100_000 + "]" * 100_000, r"nested too deeply|not valid JSON"),
    "deep cell": ({**GENOME, "normal": {**GENOME["normal"], "cell": [[[[[[[[[[["x"]]]]]]]]]]]}},
                  r"normal.cell: expected a chromosome text"),
    "unknown gene": ({**GENOME, "normal": {"cell": "add | g1 g9", "genes": GENOME["normal"]["genes"]}},
                     r"normal.cell uses gene 'g9'"),
    "tail function": ({**GENOME, "normal": {**GENOME["normal"], "genes": {"g1": "pw | add h2", "g2": "pw | h1 h2"}}},
                      r"normal.genes.g1: .*position 1 \(tail\)"),
    "long garbage symbol": ({**GENOME, "normal": {**GENOME["normal"], "cell": "add | g1 " + "z" * 10_000}},
                            r"more characters"),
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


@pytest.mark.parametrize("case", ["genes a list", "cell a number", "gene null", "deep nesting", "deep gene chain"])
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


def test_draw_of_a_huge_cell_answers_at_once(capsys, tmp_path):
    """A cell head of 3,000 ``add``: refused by its size before any drawing work (it hung)."""
    genome = {**GENOME, "normal": {"cell": " ".join(["add"] * 3000) + " | " + " ".join(["g1"] * 3001),
                                   "genes": {"g1": "pw | h1 h2"}}}
    path = write_genome(tmp_path, genome)
    one_line_error(capsys, ["draw", path, "--out", str(tmp_path / "out")],
                   r"the normal cell has \d+ nodes to draw; drawings are limited to 150")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- decode

def test_decode_of_a_chain_of_900_operations(capsys):
    chain = " ".join(["pw"] * 900) + " | " + " ".join(["h1"] * 901)
    assert main(["decode", "--orf", chain]) == 0
    out = capsys.readouterr().out.strip()
    assert out == "pw(" * 900 + "h1" + ")" * 900 + "\t901"


@pytest.mark.parametrize("argv, stdin", [(["decode", ""], ""), (["decode", "   "], ""), (["decode", "-"], ""),
                                         (["decode", "-"], "\n  \n")])
def test_decode_of_nothing_says_what_is_expected(capsys, monkeypatch, argv, stdin):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    one_line_error(capsys, argv, r"no chromosome .*expected 'head \| tail' text")


def test_decode_names_the_stdin_line_and_clips_long_input(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("add | h1 h2\n" + "add " * 5000 + "|\n"))
    one_line_error(capsys, ["decode", "-"], r"stdin line 2: .*more characters")
