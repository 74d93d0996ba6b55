"""Configuration: YAML files validated against the one schema (``config.schema.yaml``),
defaults filled from it. Loaded here and nowhere else."""
from __future__ import annotations

import copy
import math
import re
import sys
from collections.abc import Container, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from .errors import UserError, clip, quote, read_user_text

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


class ConfigError(UserError):
    """A configuration that cannot be used; the message names the file and the key."""


#: Most levels of nesting in a config (its settings need four; PyYAML and the checks recurse).
MAX_DEPTH = 32
#: The smallest ``search.max_epochs`` (E_max) a stepwise search lives with: at 1 or 2 it
#: dies out after generation 0 or 1 (see :func:`_check_references`).
MIN_STEPWISE_EPOCHS = 3
#: Most processes a setting may start (``train.num_workers``, ``search.devices`` times
#: ``search.concurrency``, ``prepare --workers``): more is a fork bomb, not a speed-up.
MAX_PROCESSES = 1024


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python objects, ever) that reads numbers the way people
    write them: YAML 1.1 wants a dot in a float (``1.0e-3``), so ``1e-3`` and ``1e6``
    would be strings; here they are floats, as in YAML 1.2 and JSON. A key written twice
    in one mapping is an error (PyYAML keeps the last, silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":      # '<<: *base' may be overridden
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:                                   # unhashable: PyYAML says so
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {quote(key)}, first at line {first.line + 1}",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node, deep=False):
        """A scalar PyYAML's constructors cannot make is a YAML error at its place (it was a
        ValueError traceback): a date that does not exist (``2001-02-30``), a whole number
        beyond Python's conversion limit."""
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as e:
            if isinstance(e, UserError):
                raise
            problem = (f"a whole number of more than {sys.get_int_max_str_digits()} digits" if "digits" in str(e)
                       else f"{clip(str(node.value))!r} is no date ({e})")
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml(text: str):
    """Parse YAML text safely (see :class:`_Loader`); raises ``yaml.YAMLError``, or
    ``RecursionError`` for nesting deeper than :data:`MAX_DEPTH`."""
    data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    level, todo = 0, [data]
    while todo:                             # level by level, each node once (aliases share nodes)
        level += 1
        if level > MAX_DEPTH:               # an alias inside itself (&a [*a]) gets here too
            raise RecursionError(f"more than {MAX_DEPTH} levels")
        nodes = {id(node): node for node in todo if isinstance(node, (dict, list))}.values()
        todo = [v for node in nodes for v in (node.values() if isinstance(node, dict) else node)]
    if _expanded_size(data, {}) > MAX_EXPANDED:
        # aliases of aliases ("billion laughs"): validating and merging walk every copy
        raise yaml.YAMLError(f"its aliases (*name) expand to more than {MAX_EXPANDED:,} values")
    return data


#: the most values a YAML document may hold once its aliases are expanded (the paper's
#: config holds a few hundred; nine levels of ten aliases took 66 s and 6 GB to refuse)
MAX_EXPANDED = 100_000


def _expanded_size(node, sizes: dict[int, int]) -> int:
    """How many values ``node`` holds with every alias expanded (each shared node counted
    once per reference, computed once: linear in the document's distinct nodes)."""
    if not isinstance(node, (dict, list)):
        return 1
    if id(node) not in sizes:
        children = node.values() if isinstance(node, dict) else node
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


@lru_cache(maxsize=1)
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(cls):
    """A validator that fills each missing property with its schema default, then
    validates the filled value (so nested objects defaulting to {} fill in turn).
    This is the jsonschema FAQ recipe, the same one ``snakemake.utils.validate`` uses."""
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "$ref" in sub:
                    sub = _resolve(sub)
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return validators.extend(cls, {"properties": set_defaults})


def _resolve(sub: Mapping) -> Mapping:
    ref = sub["$ref"]
    node: Any = schema()
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _strict_integer(checker, instance) -> bool:
    """JSON Schema counts 3.0 as an integer; a population of 3.0 would break range()."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = validators.extend(
    _with_defaults(Draft202012Validator),
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer))


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _path_order(error) -> list:
    """Sort key of an error's path: a YAML key may be a number beside text keys."""
    return [(0, p) if isinstance(p, int) else (1, str(p)) for p in error.absolute_path]


def _message(error) -> str:
    """``key.path: what is wrong``; a bad name (of a dataset, an ablation) is named itself."""
    if "propertyNames" not in error.schema_path:
        return f"{_key_path(error)}: {_clip_message(error.message)}"
    name = error.instance
    where = ".".join(str(p) for p in [*error.absolute_path, clip(name)])
    if isinstance(name, str):
        return f"{where}: {_clip_message(error.message)}"
    text = re.sub(r"\W", "_", str(name))
    text = text if re.match(r"[A-Za-z_]", text) else f"d{text}"
    if name is None:
        what = "null (an empty key, or ~)"
    elif isinstance(name, bool):
        what = f"{name} (YAML reads yes, no, on, off as true/false; quote it)"
    else:
        kind = "number" if isinstance(name, (int, float)) else type(name).__name__
        what = f"the {kind} {clip(name)} (quote it: \"{clip(text)}\")"
    return f"{where}: a name must be text starting with a letter or '_', not {what}"


def validate(config: dict, source: str = "config") -> dict:
    """Fill defaults in place and validate; raise :class:`ConfigError` naming the key."""
    errors = sorted(_Validator(schema()).iter_errors(config), key=_path_order)
    if errors:
        raise ConfigError(f"{source}: {_message(errors[0])}")
    _check_finite(config, source)
    _expand_home(config)
    followed = _follow_search_dataset(config)
    _check_references(config, source, followed)
    return config


def _expand_home(config: dict) -> None:
    """``~`` and ``~user`` in the paths a user writes (results_dir, data_dir, a dataset's
    path and labels file) mean their home, as in a shell; taken literally, ``results_dir:
    ~/runs`` made a folder named ``~`` in the working directory (``rm -rf ~`` then removes
    the home)."""
    import os

    for key in ("results_dir", "data_dir"):
        if isinstance(config.get(key), str):
            config[key] = os.path.expanduser(config[key])
    for entry in config.get("datasets", {}).values():
        for key in ("path", "val_labels"):
            if isinstance(entry.get(key), str):
                entry[key] = os.path.expanduser(entry[key])


def _follow_search_dataset(config: dict) -> set[str]:
    """The study's dataset keys left unset (null): the searched datasets are every dataset
    the config defines but the transfer target (the paper's defaults: CIFAR-10 and
    CIFAR-100), the ablations and the transfer's source are ``search.dataset``. So a
    config that defines only its own dataset is complete. Returns the keys filled."""
    dataset = config["search"]["dataset"]
    followed = set()
    if config["workflow"]["search_datasets"] is None:
        config["workflow"]["search_datasets"] = [d for d in config["datasets"] if d != config["transfer"]["dataset"]]
        followed.add("workflow.search_datasets")
    if config["workflow"]["ablation_dataset"] is None:
        config["workflow"]["ablation_dataset"] = dataset
        followed.add("workflow.ablation_dataset")
    if config["transfer"]["source"] is None:
        config["transfer"]["source"] = dataset
        followed.add("transfer.source")
    return followed


def _clip_message(message: str) -> str:
    """jsonschema quotes the whole offending value, then says what is wrong with it; keep
    messages to one short line, with their start and that end (the reason)."""
    return message if len(message) <= 200 else message[:120] + " ... " + message[-80:]


def _check_finite(node: Any, source: str, path: str = "") -> None:
    """No setting may be NaN or infinite (JSON Schema cannot say so: ``nan > 0`` is
    false, so ``exclusiveMinimum`` lets it through)."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{source}: {path or '<top level>'}: {node} is not a finite number")
    if isinstance(node, Mapping):
        for key, value in node.items():
            _check_finite(value, source, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_finite(value, source, f"{path}[{i}]")


def _check_references(config: dict, source: str, followed: Container[str] = ()) -> None:
    """Each dataset a key names is defined; a key in ``followed`` (left unset, so it took
    ``search.dataset``) is not named: the user set the other."""
    names = set(config["datasets"])
    refs = [("search.dataset", config["search"]["dataset"])]
    refs += [(key, config[key.split(".")[0]][key.split(".")[1]])
             for key in ("workflow.ablation_dataset", "transfer.source") if key not in followed]
    if "workflow.search_datasets" not in followed:
        refs += [(f"workflow.search_datasets[{i}]", d) for i, d in enumerate(config["workflow"]["search_datasets"])]
    if config["transfer"]["dataset"] is not None:
        refs.append(("transfer.dataset", config["transfer"]["dataset"]))
    unknown = [f"{key}: unknown dataset {name!r}" for key, name in refs if name not in names]
    if unknown:
        raise ConfigError(f"{source}: {'; '.join(unknown)} (datasets: {sorted(names, key=str)})")
    for name, entry in config["datasets"].items():
        if entry["kind"] == "npz" and not entry.get("path"):
            raise ConfigError(f"{source}: datasets.{name}.path: unset; an npz dataset needs it: set its 'path' to "
                              f"the .npz file")
        if entry.get("val_labels") is not None and entry["kind"] != "folder":
            raise ConfigError(f"{source}: datasets.{name}.val_labels: only a folder dataset has a labels file; "
                              f"this one is of kind {entry['kind']}: remove the key")
        if entry["kind"] == "folder" and not entry.get("path"):
            raise ConfigError(f"{source}: datasets.{name}.path: unset; a folder dataset needs it: set its 'path' to "
                              f"a folder with train/<class>/* and val/<class>/*")
    if config["search"]["genes_min"] > config["search"]["genes_max"]:
        raise ConfigError(f"{source}: search.genes_min: must not exceed search.genes_max")
    if config["search"]["gene_pool"] > config["search"]["gene_pool_max"]:
        raise ConfigError(f"{source}: search.gene_pool: must not exceed search.gene_pool_max")
    search = config["search"]
    workers = len(search["devices"]) * search["concurrency"]
    if workers > MAX_PROCESSES:
        raise ConfigError(f"{source}: search.devices: {len(search['devices'])} entries x search.concurrency "
                          f"{search['concurrency']} = {workers:,} worker processes; at most {MAX_PROCESSES}")
    per_candidate = search["max_epochs"] if search["evaluation"] == "full" else 1
    first_round = search["population"] * per_candidate
    if search["budget_epochs"] is not None and search["budget_epochs"] < first_round:
        raise ConfigError(f"{source}: search.budget_epochs: {search['budget_epochs']} cannot pay for the first "
                          f"round of generation 0 ({search['population']} candidates x {per_candidate} "
                          f"epoch(s) = {first_round}); set at least {first_round}")
    if search["evaluation"] == "stepwise" and search["max_epochs"] < MIN_STEPWISE_EPOCHS:
        # an individual dies at E_max, and a child at or above T_c trains its second epoch
        # in the generation it is born (the T_c bonus): at E_max = 1 every child dies in
        # generation 0, at E_max = 2 the best ones die at birth (docs/decisions.md)
        fate = ("so every one dies in generation 0 and the search ends extinct there" if search["max_epochs"] == 1
                else "and a child at or above T_c trains 2 in its first generation, so the best die at birth and the "
                     "search soon ends extinct")
        raise ConfigError(f"{source}: search.max_epochs: {search['max_epochs']} is too few for search.evaluation "
                          f"stepwise: an individual dies at search.max_epochs epochs, {fate}; set at least "
                          f"{MIN_STEPWISE_EPOCHS}, or search.evaluation: full")
    if config["search"]["evaluation"] == "full" and config["search"]["fitness"] != "accuracy":
        raise ConfigError(f"{source}: search.fitness: must be accuracy with search.evaluation full (every "
                          f"individual is ranked after E_max epochs, so accuracies are already compared "
                          f"at equal training)")


def dataset_name(config: Mapping, name: str | None = None) -> str:
    """The dataset a verb works on: ``name`` (``--dataset``) or ``search.dataset``; a name
    the config does not define is a :class:`ConfigError` (one line for the user)."""
    dataset = config["search"]["dataset"] if name is None else name      # --dataset "" is no default
    if dataset not in config["datasets"]:
        raise ConfigError(f"unknown dataset {dataset!r} (the config's datasets: {sorted(config['datasets'], key=str)})")
    return dataset


def deep_merge(base: dict, update: Mapping) -> dict:
    """Merge ``update`` into a copy of ``base``, recursing into nested mappings."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict:
    """``'search.max_generations=3'`` -> ``{'search': {'max_generations': 3}}`` (YAML value)."""
    if "=" not in text:
        raise ConfigError(f"--set {quote(text)}: expected KEY.PATH=VALUE, e.g. search.max_generations=5")
    key, value = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {quote(text)}: {quote(key)} is not a dotted key such as search.lr")
    try:
        parsed = load_yaml(value)
    except RecursionError:
        raise ConfigError(f"--set {quote(text)}: the value is too deeply nested (more than {MAX_DEPTH} "
                          f"levels)") from None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or "not valid YAML"
        hint = ("write each key once" if problem.startswith("duplicate key")
                else f"quote a string, e.g. {key}='\"text\"'")
        raise ConfigError(f"--set {quote(text)}: the value {quote(value)} is not valid YAML ({problem}); "
                          f"{hint}") from None
    node: dict = {}
    root = node
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = parsed
    return root


def load_config(paths: str | Path | Iterable[str | Path] | None = None,
                overrides: Iterable[str] = ()) -> dict:
    """Read one or more YAML files (later ones win), apply ``KEY=VALUE`` overrides, fill
    defaults and validate. ``None`` gives the defaults, i.e. the paper's settings."""
    if paths is None:
        paths = []
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    config: dict = {}
    sources = []
    for path in paths:
        path = Path(path)
        sources.append(str(path))
        config = deep_merge(config, read_config_file(path))
    overrides = list(overrides)
    for text in overrides:
        config = deep_merge(config, parse_override(text))
    source = " + ".join(sources) or "defaults"
    if overrides:
        source += " (with --set overrides)"
    return validate(config, source)


def read_config_file(path: Path) -> dict:
    """The mapping in one YAML config file; :class:`ConfigError` says what is wrong with it."""
    text = read_user_text(path, "config file (UTF-8 YAML)", ConfigError)
    try:
        data = load_yaml(text)
    except RecursionError:
        raise ConfigError(f"{path}: too deeply nested (more than {MAX_DEPTH} levels; a config's settings "
                          f"need four)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where} ({getattr(e, 'problem', None) or e})") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a config file is a YAML mapping of keys "
                          f"(see config/paper.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    return data

