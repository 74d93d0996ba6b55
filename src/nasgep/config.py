"""Configuration: YAML files validated against the one schema (``config.schema.yaml``),
defaults filled from it. Loaded here and nowhere else."""
from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from jsonschema import Draft202012Validator, validators

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the key."""


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


_Validator = _with_defaults(Draft202012Validator)


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate(config: dict, source: str = "config") -> dict:
    """Fill defaults in place and validate; raise :class:`ConfigError` naming the key."""
    errors = sorted(_Validator(schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise ConfigError(f"{source}: {_key_path(e)}: {e.message}")
    _check_references(config, source)
    return config


def _check_references(config: dict, source: str) -> None:
    names = set(config["datasets"])
    refs = [("search.dataset", config["search"]["dataset"]),
            ("workflow.ablation_dataset", config["workflow"]["ablation_dataset"]),
            ("transfer.source", config["transfer"]["source"])]
    refs += [(f"workflow.search_datasets[{i}]", d) for i, d in enumerate(config["workflow"]["search_datasets"])]
    if config["transfer"]["dataset"] is not None:
        refs.append(("transfer.dataset", config["transfer"]["dataset"]))
    for key, name in refs:
        if name not in names:
            raise ConfigError(f"{source}: {key}: unknown dataset {name!r} (datasets: {sorted(names)})")
    if config["search"]["genes_min"] > config["search"]["genes_max"]:
        raise ConfigError(f"{source}: search.genes_min: must not exceed search.genes_max")
    if config["search"]["gene_pool"] > config["search"]["gene_pool_max"]:
        raise ConfigError(f"{source}: search.gene_pool: must not exceed search.gene_pool_max")


def dataset_name(config: Mapping, name: str | None = None) -> str:
    """The dataset a verb works on: ``name`` (``--dataset``) or ``search.dataset``; a name
    the config does not define is a :class:`ConfigError` (one line for the user)."""
    dataset = name or config["search"]["dataset"]
    if dataset not in config["datasets"]:
        raise ConfigError(f"unknown dataset {dataset!r} (the config's datasets: {sorted(config['datasets'])})")
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
        raise ConfigError(f"override {text!r}: expected KEY.PATH=VALUE")
    key, value = text.split("=", 1)
    node: dict = {}
    root = node
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = yaml.safe_load(value)
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
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys")
        config = deep_merge(config, data)
    overrides = list(overrides)
    for text in overrides:
        config = deep_merge(config, parse_override(text))
    source = " + ".join(sources) or "defaults"
    if overrides:
        source += " (with --set overrides)"
    return validate(config, source)


def default_config() -> dict:
    return load_config(None)
