# Searches (with and without weight sharing), random samplings, and the choice of the
# best seed's cells. A search interrupted at any point resumes from its last checkpoint
# when snakemake runs it again (--rerun-incomplete); a search that had finished (the rule
# leaves .workflow-complete in its folder) and is run again because its settings or code
# changed, or by --forcerun, starts afresh.


rule search:
    input:
        data=lambda wildcards: prepared(wildcards.dataset),
        tracking=tracking_input(),
    output:
        best=result("search", "best.json").replace("{method}", "search"),
        history=result("search", "history.parquet").replace("{method}", "search"),
    log:
        log_path("search/{dataset}/search/seed{seed}"),
    params:
        config=CONFIG_ARGS,
        out=lambda wildcards, output: os.path.dirname(output.best),
        extra=weight_sharing_flag("search"),
        settings=lambda wildcards: plan.search_inputs(NASGEP_CONFIG, wildcards.dataset),
    threads: RESOURCES["search_threads"]
    resources:
        gpu=RESOURCES["search_gpus"],
        runtime=RESOURCES["search_runtime"],
    conda:
        ENV
    message:
        "search {wildcards.dataset}, seed {wildcards.seed}"
    shell:
        """
        (
        if [ -e {params.out}/.workflow-complete ]; then
            echo "redoing the finished search in {params.out}: starting afresh"
            rm -rf {params.out}/checkpoints {params.out}/weights {params.out}/cells \
                {params.out}/search.json {params.out}/.workflow-complete
        fi
        nasgep search {params.config} --dataset {wildcards.dataset} --seed {wildcards.seed} \
            --out {params.out} --resume --no-progress {params.extra}
        touch {params.out}/.workflow-complete
        ) > {log} 2>&1
        """


use rule search as search_nws with:
    output:
        best=result("search", "best.json").replace("{method}", "search_nws"),
        history=result("search", "history.parquet").replace("{method}", "search_nws"),
    log:
        log_path("search/{dataset}/search_nws/seed{seed}"),
    params:
        config=CONFIG_ARGS,
        out=lambda wildcards, output: os.path.dirname(output.best),
        extra=weight_sharing_flag("search_nws"),
        settings=lambda wildcards: plan.search_inputs(NASGEP_CONFIG, wildcards.dataset),
    message:
        "search {wildcards.dataset} without weight sharing, seed {wildcards.seed}"


rule sample:
    input:
        data=lambda wildcards: prepared(wildcards.dataset),
        tracking=tracking_input(),
    output:
        best=result("search", "best.json").replace("{method}", "random"),
    log:
        log_path("search/{dataset}/random/seed{seed}"),
    params:
        config=CONFIG_ARGS,
        out=lambda wildcards, output: os.path.dirname(output.best),
        settings=lambda wildcards: plan.search_inputs(NASGEP_CONFIG, wildcards.dataset),
    conda:
        ENV
    message:
        "random sampling {wildcards.dataset}, seed {wildcards.seed}"
    shell:
        "nasgep sample {params.config} --dataset {wildcards.dataset} --seed {wildcards.seed} "
        "--out {params.out} > {log} 2>&1"


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
        "nasgep tables best --inputs {input} --out {output} > {log} 2>&1"
