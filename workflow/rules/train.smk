# Full trainings: every ablation of Table I on workflow.ablation_dataset and the best
# ablation (workflow.best_ablation) on each search dataset. Both are the one rule `train`
# over train/{dataset}/{variant}/seed{seed}, so the best ablation on the ablation dataset
# is a single job. The ImageNet transfer trains the best transfer.source cells once.
# A training resumes from its checkpoint.pt after an interruption; one that had finished
# (.workflow-complete in its folder) and is run again starts over (--no-resume).


rule train:
    input:
        genome=genome_for,
        data=lambda wildcards: prepared(wildcards.dataset),
        tracking=tracking_input(),
    output:
        metrics=result("train", "metrics.json"),
        model=result("train", "model.pt"),
    log:
        log_path("train/{dataset}/{variant}/seed{seed}"),
    wildcard_constraints:
        variant="|".join(re.escape(v) for v in STUDY.ablations),
    params:
        config=CONFIG_ARGS,
        out=lambda wildcards, output: os.path.dirname(output.metrics),
        settings=lambda wildcards: plan.train_inputs(NASGEP_CONFIG, wildcards.dataset, wildcards.variant),
    threads: RESOURCES["train_threads"]
    resources:
        gpu=RESOURCES["train_gpus"],
    conda:
        ENV
    message:
        "train {wildcards.variant} on {wildcards.dataset}, seed {wildcards.seed}"
    shell:
        """
        (
        fresh=""
        if [ -e {params.out}/.workflow-complete ]; then
            echo "redoing the finished training in {params.out}: starting afresh"
            fresh="--no-resume"
            rm {params.out}/.workflow-complete
        fi
        nasgep train --genome {input.genome} {params.config} --dataset {wildcards.dataset} \
            --variant {wildcards.variant} --seed {wildcards.seed} --out {params.out} --no-progress $fresh
        touch {params.out}/.workflow-complete
        ) > {log} 2>&1
        """


rule transfer:
    input:
        genome=transfer_genome,
        data=lambda wildcards: prepared(wildcards.dataset),
        tracking=tracking_input(),
    output:
        metrics=result("transfer", "metrics.json"),
        model=result("transfer", "model.pt"),
    log:
        log_path("transfer/{dataset}"),
    wildcard_constraints:
        dataset=re.escape(TRANSFER) if TRANSFER else r"[^/]+",
    params:
        config=CONFIG_ARGS,
        out=lambda wildcards, output: os.path.dirname(output.metrics),
        variant=STUDY.best_ablation,
        seed=SEEDS[0],
        settings=lambda wildcards: plan.transfer_inputs(
            NASGEP_CONFIG, wildcards.dataset, STUDY.best_ablation
        ),
    threads: RESOURCES["train_threads"]
    resources:
        gpu=RESOURCES["train_gpus"],
    conda:
        ENV
    message:
        "transfer the best {params.variant} cells to {wildcards.dataset} (ImageNet mobile setting)"
    shell:
        """
        (
        fresh=""
        if [ -e {params.out}/.workflow-complete ]; then
            echo "redoing the finished transfer in {params.out}: starting afresh"
            fresh="--no-resume"
            rm {params.out}/.workflow-complete
        fi
        nasgep train --genome {input.genome} {params.config} --dataset {wildcards.dataset} \
            --variant {params.variant} --seed {params.seed} --out {params.out} --stem imagenet \
            --no-progress $fresh
        touch {params.out}/.workflow-complete
        ) > {log} 2>&1
        """
