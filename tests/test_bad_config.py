"""Config and genome files that parse but say something else than the user meant: names
that YAML reads as numbers, keys written twice, nesting that would overflow the stack,
another encoding than UTF-8, dataset settings the loader would trip on. Each gets one
line naming the file and the key (the probe's cases, reproduced through ``nasgep``)."""
from __future__ import annotations

import json

import pytest
from test_bad_input import DEMO, GENOME, one_line_error, write_genome

from nasgep.cli import main
from nasgep.config import ConfigError, dataset_name, load_config


def write(tmp_path, text: str | bytes, name: str = "c.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def prepare(config: str, *settings: str, dataset: str = "cifar10") -> list[str]:
    return ["prepare", "--config", DEMO, "--config", config, *settings, "--dataset", dataset]


# --------------------------------------------------------------------------- names YAML reads as numbers

@pytest.mark.parametrize("text, key, match", [
    ("datasets:\n  2024: {kind: digits}\n", "2024", r"datasets\.2024: a name must be text starting with a letter "
                                                   r"or '_', not the number 2024 \(quote it: \"d2024\"\)"),
    ("ablations:\n  1: {source: search}\n", "cifar10", r"ablations\.1: a name must be text .*\"d1\""),
    ("datasets:\n  on: {kind: digits}\n", "cifar10", r"datasets\.True: a name must be text .*yes, no, on, off"),
    ("datasets:\n  ~: {kind: digits}\n", "cifar10", r"datasets\.None: a name must be text .*not null"),
    ("datasets:\n  'a-b': {kind: digits}\n", "cifar10", r"datasets\.a-b: 'a-b' does not match"),
    ("datasets:\n  ~: {kind: x}\n  1: {kind: y}\n  2024-01-01: {kind: z}\n  a: {kind: w}\n", "a",   # all wrong
     r"datasets\.None: a name must be text"),
])
def test_a_name_that_is_not_an_identifier_is_named(capsys, tmp_path, text, key, match):
    one_line_error(capsys, prepare(write(tmp_path, text), dataset=key), match)


def test_no_listing_of_names_sorts_numbers_beside_text():
    config = {"search": {"dataset": "x"}, "datasets": {2024: {}, "cifar10": {}}}
    with pytest.raises(ConfigError, match=r"unknown dataset 'x' \(the config's datasets: \[2024, 'cifar10'\]\)"):
        dataset_name(config)


# --------------------------------------------------------------------------- nesting

@pytest.mark.parametrize("text", ["a: " + "[" * 1000 + "]" * 1000 + "\n",
                                  "search: {lr: " + "[" * 40 + "]" * 40 + "}\n",
                                  "x: &a [*a]\n"])
def test_a_config_nested_too_deeply_is_refused(capsys, tmp_path, text):
    path = write(tmp_path, text)
    line = one_line_error(capsys, prepare(path), r"too deeply nested \(more than 32 levels")
    assert path in line


def test_an_override_nested_too_deeply_is_refused(capsys):
    one_line_error(capsys, ["prepare", "--config", DEMO, "--set", "search.lr=" + "[" * 1000 + "]" * 1000,
                            "--dataset", "cifar10"], r"search.lr=\[.*the value is too deeply nested")


# --------------------------------------------------------------------------- keys written twice

@pytest.mark.parametrize("text, match", [
    ("search: {dataset: mine}\nname: x\nsearch: {population: 3}\n",
     r"line 3, column 1 \(duplicate key 'search', first at line 1\)"),
    ("search:\n  population: 3\n  lr: 0.1\n  population: 4\n", r"line 4, column 3 \(duplicate key 'population', "
                                                               r"first at line 2\)"),
    ("datasets:\n  d: {kind: digits, kind: npz}\n", r"line 2, column 21 \(duplicate key 'kind', first at line 2\)"),
])
def test_a_key_written_twice_in_a_config_is_refused(capsys, tmp_path, text, match):
    path = write(tmp_path, text)
    line = one_line_error(capsys, prepare(path), match)
    assert path in line


def test_a_yaml_merge_key_may_still_be_overridden(tmp_path):
    path = write(tmp_path, "search:\n  <<: {lr: 0.2, population: 5}\n  lr: 0.3\n")
    config = load_config([DEMO, path])
    assert config["search"]["lr"] == 0.3 and config["search"]["population"] == 5


def test_a_key_written_twice_in_an_override_is_refused(capsys):
    one_line_error(capsys, ["prepare", "--config", DEMO, "--set", "search={lr: 0.1, lr: 0.2}",
                            "--dataset", "cifar10"], r"duplicate key 'lr', first at line 1\); write each key once$")


def test_a_seed_listed_twice_is_refused():
    """Two searches of one seed are one search twice: tables best and evaluate refuse them,
    so the study must not plan them."""
    from nasgep.config import ConfigError

    with pytest.raises(ConfigError, match=r"seeds: \[0, 0\] has non-unique elements"):
        load_config(DEMO, ["seeds=[0, 0]"])


@pytest.mark.parametrize("verb", ["draw", "train"])
def test_a_key_written_twice_in_a_genome_file_is_refused(capsys, tmp_path, verb):
    text = json.dumps(GENOME).replace('"g1": "pw | h1 h2"', '"g1": "pw | h1 h2", "g1": "pw | h2 h1"')
    path = write_genome(tmp_path, text)
    argv = {"draw": ["draw", path, "--out", str(tmp_path / "out")],
            "train": ["train", "--genome", path, "--config", DEMO, "--set", "tracking.enabled=false",
                      "--out", str(tmp_path / "out")]}[verb]
    line = one_line_error(capsys, argv, r"genome.json: duplicate key 'g1' in a JSON object")
    assert path in line


# --------------------------------------------------------------------------- dataset keys

def test_only_the_dataset_key_the_user_set_is_named(capsys, tmp_path):
    path = write(tmp_path, "transfer: {source: null}\n")      # demo.yaml sets it: back to following
    line = one_line_error(capsys, prepare(path, "--set", "search.dataset=nope"),
                          r"search.dataset: unknown dataset 'nope' \(datasets: \['cifar10', 'cifar100', 'imagenet'\]\)")
    assert "workflow.ablation_dataset" not in line and "transfer.source" not in line
    # set by the user, the others are named too
    one_line_error(capsys, prepare(path, "--set", "search.dataset=nope", "--set", "transfer.source=nope2"),
                   r"search.dataset: unknown dataset 'nope'; transfer.source: unknown dataset 'nope2'")


def test_an_unknown_best_ablation_is_named_where_a_study_needs_it(capsys, tmp_path):
    """`nasgep tables` failed with KeyError 'nope'; a lone command, which does not use it, runs."""
    from test_report import make_study

    from nasgep.cli import main

    cfg, _ = make_study(tmp_path)
    one_line_error(capsys, ["tables", "--config", str(cfg), "--set", "workflow.best_ablation=nope", "--out",
                            str(tmp_path / "t")], r"workflow.best_ablation: unknown ablation 'nope' \(ablations: ")
    assert main(prepare(write(tmp_path, "workflow: {best_ablation: nope}\n"))) == 0


def test_an_unset_search_dataset_is_named_not_the_keys_that_follow_it(tmp_path):
    path = write(tmp_path, "datasets: {mine: {kind: digits}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: search.dataset: unknown dataset 'cifar10' (datasets: ['mine'])"


@pytest.mark.parametrize("kind, match", [("npz", r"datasets.cifar10.path: unset; an npz dataset needs it: "
                                                 r"set its 'path' to the .npz file"),
                                         ("folder", r"datasets.cifar10.path: unset; a folder dataset needs it")])
def test_a_dataset_file_kind_without_its_path_names_the_key(capsys, kind, match):
    one_line_error(capsys, ["prepare", "--config", DEMO, "--set", f"datasets.cifar10.kind={kind}",
                            "--dataset", "cifar10"], match)


@pytest.mark.parametrize("value, match", [
    ("100000", r"datasets.cifar10.val_size: 100000 validation images cannot be held out of 1438 training "
               r"images; set 1 to 1437, or null for val_fraction"),
    ("1438", r"datasets.cifar10.val_size: 1438 validation images"),
    ("-1", r"datasets.cifar10.val_size: -1 is less than the minimum of 1"),
    ("0", r"datasets.cifar10.val_size: 0 is less than the minimum of 1"),
])
def test_a_wrong_val_size_names_the_key(capsys, value, match):
    one_line_error(capsys, ["prepare", "--config", DEMO, "--set", f"datasets.cifar10.val_size={value}",
                            "--dataset", "cifar10"], match)


# --------------------------------------------------------------------------- encodings

def test_a_config_in_latin_1_is_told_it_is_not_utf_8(capsys, tmp_path):
    path = write(tmp_path, "name: demo\nresults_dir: r\u00e9sultats\n".encode("latin-1"))
    line = one_line_error(capsys, prepare(path), r"not UTF-8 text \(byte 0xe9 at position 25, line 2\); "
                                                 r"save it as UTF-8")
    assert path in line
    binary = write(tmp_path, b"\x80\x81\xff\x00\x13 not text", "binary.yaml")
    one_line_error(capsys, prepare(binary), r"binary.yaml: not a text file")


# --------------------------------------------------------------------------- search settings that cannot work

@pytest.mark.parametrize("epochs, fate", [(1, r"so every one dies in generation 0"),
                                          (2, r"and a child at or above T_c trains 2 in its first generation, so "
                                              r"the best die at birth")])
def test_a_stepwise_search_with_too_few_max_epochs_is_refused(capsys, epochs, fate):
    """E_max 1 or 2 under the paper's stepwise evaluation: the search died out after
    generation 0 or 1 with a line that did not say why."""
    one_line_error(capsys, ["prepare", "--config", DEMO, "--set", f"search.max_epochs={epochs}",
                            "--dataset", "cifar10"],
                   rf"search\.max_epochs: {epochs} is too few for search\.evaluation stepwise: an individual dies at "
                   rf"search\.max_epochs epochs, {fate}.*; set at "
                   rf"least 3, or search\.evaluation: full$")
    # a full evaluation keeps its individuals alive as parents: any E_max works
    load_config(DEMO, [f"search.max_epochs={epochs}", "search.evaluation=full"])
    load_config(DEMO, ["search.max_epochs=3"])


def test_a_home_folder_in_a_path_is_the_users_home(tmp_path, monkeypatch):
    """`results_dir: ~/runs` made a folder literally named `~` in the working directory,
    and `path: ~/d.npz` was "no such .npz file"."""
    from nasgep.config import load_config

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = tmp_path / "c.yaml"
    config.write_text("results_dir: ~/runs\ndata_dir: ~/downloads\nsearch: {dataset: d}\n"
                      "datasets: {d: {kind: folder, path: ~/d, val_labels: ~/v.txt}}\n")
    loaded = load_config(config)
    assert loaded["results_dir"] == str(tmp_path / "home" / "runs")
    assert loaded["data_dir"] == str(tmp_path / "home" / "downloads")
    assert (loaded["datasets"]["d"]["path"], loaded["datasets"]["d"]["val_labels"]) == \
        (str(tmp_path / "home" / "d"), str(tmp_path / "home" / "v.txt"))


def test_a_device_named_as_a_config_or_genome_is_one_line(capsys):
    """`--config /dev/zero` was read until the machine's memory ran out (a global OOM kill)."""
    one_line_error(capsys, ["prepare", "--config", "/dev/zero", "--dataset", "cifar10"],
                   r"/dev/zero: more than 16 MB; expected a config file")
    one_line_error(capsys, ["draw", "/dev/zero", "--out", "/nonexistent/x"],
                   r"/dev/zero: more than 16 MB; expected a genome JSON file")


def test_aliases_that_expand_a_billion_times_are_refused_at_once(capsys, tmp_path):
    """A 600-byte config of nine levels of ten aliases ("billion laughs") took 66 s and 6 GB
    to be refused; one more level would have exhausted the machine's memory."""
    lines = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 10)}]" for k in range(1, 10)]
    config = write(tmp_path, "\n".join([*lines, "name: *l9", ""]))
    one_line_error(capsys, ["prepare", "--config", config, "--dataset", "cifar10"],
                   r"not valid YAML \(its aliases \(\*name\) expand to more than 100,000 values\)")
    # anchors used as a config would use them are fine
    plain = write(tmp_path, "base: &b {lr: 0.05}\nsearch: {lr: 0.05}\nnote: *b\n", "ok.yaml")
    from nasgep.config import read_config_file

    assert read_config_file(plain)["note"] == {"lr": 0.05}


def test_a_relative_dataset_path_that_is_not_there_says_where_it_was_looked_for(tmp_path, monkeypatch, capsys):
    """A config beside its data (`path: imgs`) run from another folder said 'imgs/train: no
    such folder': a relative path is taken from the folder nasgep runs in, which it now names."""
    (tmp_path / "project").mkdir()
    config = tmp_path / "project" / "my.yaml"
    config.write_text("search: {dataset: d}\ndatasets: {d: {kind: folder, path: imgs}, n: {kind: npz, path: my.npz}}\n")
    monkeypatch.chdir(tmp_path)
    for dataset, said in (("d", "imgs/train: no such folder"), ("n", "my.npz: no such .npz file")):
        assert main(["prepare", "--config", str(config), "--dataset", dataset]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"nasgep prepare: error: {said} (relative to the current folder, {tmp_path})"), lines
