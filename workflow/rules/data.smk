# Inputs of the study: each dataset downloaded and checked once, and the tracking store
# created once, before any parallel job starts.


rule prepare:
    output:
        result("prepare"),
    log:
        log_path("prepare/{dataset}"),
    params:
        config=config_args,
        settings=lambda wildcards: plan.prepare_inputs(NASGEP_CONFIG, wildcards.dataset),
    threads: 4  # decoding a folder dataset's images once (an unreadable file is named here)
    conda:
        ENV
    message:
        "prepare dataset {wildcards.dataset}"
    shell:
        "nasgep prepare {params.config} --dataset {wildcards.dataset:q} --workers {threads} "
        "--no-progress --out {output:q} > {log:q} 2>&1"


rule tracking_store:
    output:
        update(tracking_db() or result("tracking")),  # `track init` adds to it; only --delete-all-output deletes it
    log:
        log_path("tracking_store"),
    params:
        config=config_args,
        settings=NASGEP_CONFIG.get("tracking"),
    conda:
        ENV
    message:
        "create the MLflow tracking store {output}"
    shell:
        "nasgep track init {params.config} > {log:q} 2>&1"
