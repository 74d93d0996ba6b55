# Searches (with and without weight sharing), random samplings, and the choice of the
# best seed's cells. `nasgep search --resume --restart-if-changed` decides from the
# settings recorded in the search's folder: an interrupted search resumes, a finished one
# with the same settings is not redone (its results are written again), one made with
# other settings is moved aside into .previous-<time>/, results included, and started
# afresh; --forcerun / --force add --restart. The results are `update()` outputs, so
# Snakemake never deletes them before a rerun: the verb moves them aside (`nasgep sample`
# likewise). A search still running in the folder (after snakemake itself
# was killed) makes the job fail at once, naming its PID.


rule search:
    input:
        data=lambda wildcards: prepared(wildcards.dataset),
        tracking=tracking_input(),
    output:
        best=update(result("search", "best.json").replace("{method}", "search")),
        history=update(result("search", "history.parquet").replace("{method}", "search")),
    log:
        log_path("search/{dataset}/search/seed{seed}"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output.best),
        extra=weight_sharing_flag("search"),
        redo=restart_flag("search"),
        settings=lambda wildcards: plan.search_inputs(NASGEP_CONFIG, wildcards.dataset),
        attempts=attempts_log,
    threads: RESOURCES["search_threads"]
    resources:
        gpu=RESOURCES["search_gpus"],
        runtime=RESOURCES["search_runtime"],
    conda:
        ENV
    message:
        "search {wildcards.dataset}, seed {wildcards.seed}"
    shell:
        ATTEMPTS.format(
            command="nasgep search {params.config} --dataset {wildcards.dataset:q} "
            "--seed {wildcards.seed:q} --out {params.out:q} --resume --restart-if-changed "
            "{params.redo:q} --no-progress {params.extra}"
        )


use rule search as search_nws with:
    output:
        best=update(result("search", "best.json").replace("{method}", "search_nws")),
        history=update(result("search", "history.parquet").replace("{method}", "search_nws")),
    log:
        log_path("search/{dataset}/search_nws/seed{seed}"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output.best),
        extra=weight_sharing_flag("search_nws"),
        redo=restart_flag("search_nws"),
        settings=lambda wildcards: plan.search_inputs(NASGEP_CONFIG, wildcards.dataset),
        attempts=attempts_log,
    message:
        "search {wildcards.dataset} without weight sharing, seed {wildcards.seed}"


rule sample:
    input:
        data=lambda wildcards: prepared(wildcards.dataset),
        tracking=tracking_input(),
    output:
        best=update(result("search", "best.json").replace("{method}", "random")),
    log:
        log_path("search/{dataset}/random/seed{seed}"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output.best),
        settings=lambda wildcards: plan.search_inputs(NASGEP_CONFIG, wildcards.dataset),
        redo=restart_flag("sample"),
    conda:
        ENV
    message:
        "random sampling {wildcards.dataset}, seed {wildcards.seed}"
    shell:
        "nasgep sample {params.config} --dataset {wildcards.dataset:q} --seed {wildcards.seed:q} "
        "--out {params.out:q} --restart-if-changed {params.redo:q} > {log:q} 2>&1"


rule select_best:
    input:
        lambda wildcards: expand(rules.search.output.best, dataset=wildcards.dataset, seed=SEEDS),
    output:
        result("selected"),
    log:
        log_path("select_best/{dataset}"),
    conda:
        ENV
    message:
        "select the best {wildcards.dataset} search over the seeds by search fitness"
    shell:
        "nasgep tables best --inputs {input:q} --out {output:q} > {log:q} 2>&1"
