# Searches (with and without weight sharing), random samplings, and the choice of the
# best seed's cells. `nasgep search --resume --restart-if-changed` decides from the
# settings recorded in the search's folder: an interrupted search resumes, a finished one
# with the same settings is not redone (its results are written again), one made with
# other settings is moved aside into .previous-<time>/, results included, and started
# afresh; --forcerun / --force add --restart. A search still running in the folder (after
# snakemake itself was killed) makes the job fail at once, naming its PID.
#
# Each job's one output is the mark `.workflow-done` in the run's folder, which Snakemake
# creates (touch()) when the job succeeded and deletes before it runs the job again:
# Snakemake deletes, backs up and restores the outputs of the jobs it runs, so it must own
# none of a run's results (best.json, history.parquet, the checkpoints). A job killed or
# failed half-way leaves no mark and runs again (the verb resumes); a run a killed
# snakemake left going cannot make one. The next rules read best.json and history.parquet
# beside the mark.


rule search:
    input:
        data=lambda wildcards: prepared(wildcards.dataset),
        tracking=tracking_input(),
    output:
        done=touch(search_mark("search")),
    log:
        run_log("search", "search"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output.done),
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
        done=touch(search_mark("search_nws")),
    log:
        run_log("search", "search_nws"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output.done),
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
        done=touch(search_mark("random")),
    log:
        run_log("search", "random"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output.done),
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
        lambda wildcards: expand(rules.search.output.done, dataset=wildcards.dataset, seed=SEEDS),
    output:
        result("selected"),
    log:
        log_path("select_best/{dataset}"),
    params:
        best=lambda wildcards, input: beside(input, "best.json"),
        runs=lambda wildcards: plan.search_inputs(NASGEP_CONFIG, wildcards.dataset),
    conda:
        ENV
    message:
        "select the best {wildcards.dataset} search over the seeds by search fitness"
    shell:
        "nasgep tables best --inputs {params.best:q} --out {output:q} > {log:q} 2>&1"
