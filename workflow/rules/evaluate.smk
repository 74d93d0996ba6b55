# Search-phase evaluation (issue 9): the searched cells of every seed against
# search_phase.random_cells random cells, each trained with search_phase.train_seeds
# training seeds, and the fidelity of the search's fitness over a sample of each search's
# history (`nasgep evaluate`). Table I takes RI's interval and p-value from its output,
# the report its section and scatter plot.


def searchphase_searches(wildcards) -> list[str]:
    return expand(
        result("search", "best.json"), dataset=wildcards.dataset, method="search", seed=SEEDS
    )


rule search_phase:
    input:
        best=searchphase_searches,
        history=lambda wildcards: [
            p.replace("best.json", "history.parquet") for p in searchphase_searches(wildcards)
        ],
    output:
        json=f"{R}/searchphase/{{dataset}}/searchphase.json",
        md=f"{R}/searchphase/{{dataset}}/searchphase.md",
        plot=f"{R}/searchphase/{{dataset}}/fidelity.png",
    log:
        log_path("searchphase/{dataset}"),
    params:
        config=CONFIG_ARGS,
        searches=lambda wildcards, input: " ".join(os.path.dirname(p) for p in input.best),
        out=lambda wildcards, output: os.path.dirname(output.json),
        settings=lambda wildcards: settings(
            search_phase=NASGEP_CONFIG["search_phase"],
            train=_without(NASGEP_CONFIG["train"], "num_workers"),
            data=dataset_settings(wildcards.dataset),
        ),
    resources:
        gpu=TRAIN_GPUS,
    conda:
        ENV
    message:
        "search-phase evaluation on {wildcards.dataset}: searched vs random cells, fitness fidelity"
    shell:
        "nasgep evaluate {params.config} --dataset {wildcards.dataset} --search {params.searches} "
        "--out {params.out} > {log} 2>&1"
