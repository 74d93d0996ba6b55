"""The MLflow tracking store of a study (sqlite backend).

  nasgep track init --config config/paper.yaml
      creates the store (<results_dir>/mlflow.db unless tracking.uri says otherwise)
      and the study's experiments <name>/search, <name>/random, <name>/ablation,
      <name>/transfer and <name>/train, once, before parallel jobs start: concurrent
      first-time creation of an sqlite schema or of one experiment races. Artifacts of
      the default store go to <results_dir>/mlartifacts/<part>. Idempotent.

  nasgep track ui --config config/paper.yaml [--port 5000] [--print]
      prints the 'mlflow ui --backend-store-uri ...' command and the address of each
      experiment's runs view, then runs the UI (--print: only print them). MLflow 3's UI
      otherwise opens on its GenAI pages ("Overview", "No data"): the runs of these
      experiments are under the "Model training" side of its switch. A tracking.uri of
      an MLflow server (http(s)://) is its own UI: its address is printed instead.

The search, sample and train verbs log their own runs into these experiments.
"""
from __future__ import annotations

import argparse
import errno
import os
import shlex
import shutil
import sys
from pathlib import Path

from ..cli import add_config_arguments, load_args_config, whole_number

NAME = "track"
HELP = "create a study's MLflow store (init) or start the MLflow UI on it (ui)"

def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="create the tracking store and the study's experiments")
    ui = sub.add_parser("ui", help="print and run the 'mlflow ui' command for the store")
    for q in (init, ui):
        add_config_arguments(q, required=False)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=lambda text: whole_number(text, 1, 65535, "a TCP port"), default=5000)
    ui.add_argument("--print", dest="print_only", action="store_true", help="only print the command")


def _check_bindable(host: str, port: int) -> None:
    """The UI's address can be listened on: MLflow's server logs a failed bind among its
    own lines and exits 0, so a port in use or an unknown host looked like a started UI."""
    import socket

    from ..errors import UserError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # as the server sets it
        try:
            probe.bind(address)
        except OSError as e:
            taken = "already in use: stop what listens there, or pass another --port" \
                if e.errno == errno.EADDRINUSE else e.strerror
            raise UserError(f"--host {host} --port {port}: {taken}") from None


def ui_command(uri: str, host: str, port: int) -> list[str]:
    exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    return [exe, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]


def print_runs_views(config, host: str, port: int) -> None:
    """The runs view of each experiment of the study, and where the UI hides them."""
    from ..tracking import experiment_ids, runs_view_url

    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    ids = experiment_ids(config)
    if ids:
        width = max(len(f"{config['name']}/{part}") for part in ids)
        print("runs of each experiment (open once the UI is up):")
        for part, experiment_id in ids.items():
            print(f"  {config['name'] + '/' + part:<{width}}  {runs_view_url(base, experiment_id)}")
    print("MLflow 3 opens on its GenAI pages (\"Overview\", \"No data\"): these runs are under "
          "\"Model training\" (the GenAI / Model training switch at the top of the page), or open "
          "an address above; add &compareRunsMode=CHART for the charts that compare the runs.")


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..tracking import EXPERIMENTS, check_store, init_store, sqlite_path, tracking_uri

    config = load_args_config(args)
    if args.action == "init":
        uri = init_store(config)
        if uri is None:
            print("tracking is disabled (tracking.enabled: false); nothing to create")
            return 0
        print(f"tracking store ready: {uri}")
        print("experiments: " + ", ".join(f"{config['name']}/{p}" for p in EXPERIMENTS))
        return 0

    uri = tracking_uri(config)
    if uri is None:
        raise UserError("tracking is disabled (tracking.enabled: false)")
    check_store(config)
    if uri.lower().startswith(("http://", "https://")):
        # the store is an MLflow server, which serves its own UI: nothing to start here, and
        # the experiment ids are not looked up (an unreachable server makes MLflow retry for minutes)
        print(f"the study's store is the MLflow server {uri}: its UI is that address; the runs are "
              f"in the experiments {config['name']}/<part> (parts: {', '.join(EXPERIMENTS)}), under "
              "\"Model training\" in MLflow 3 (--host and --port are for a local UI and not used)")
        return 0
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise UserError(f"{db} does not exist: run 'nasgep track init' (or the workflow) first")
    command = ui_command(uri, args.host, args.port)
    print(shlex.join(["mlflow"] + command[1:]))
    print_runs_views(config, args.host, args.port)
    if args.print_only:
        return 0
    sys.stdout.flush()
    if not Path(command[0]).exists():
        raise UserError("the mlflow executable was not found; run the command above where mlflow is installed")
    _check_bindable(args.host, args.port)
    os.execv(command[0], command)
    return 0  # pragma: no cover (execv does not return)
