# Full trainings: every ablation of Table I on workflow.ablation_dataset and the best
# ablation (workflow.best_ablation) on each search dataset. Both are the one rule `train`
# over train/{dataset}/{variant}/seed{seed}, so the best ablation on the ablation dataset
# is a single job. The ImageNet transfer trains the best transfer.source cells once.
# `nasgep train --restart-if-changed` resumes an interrupted training from its
# checkpoint.pt, does not redo a finished one with the same settings (it tests the final
# weights again and rewrites the results), and moves one made with other settings (or
# another genome) aside into .previous-<time>/, results included, and starts over;
# --forcerun / --force add --restart. As for searches (rules/search.smk), each job's one
# output is the mark `.workflow-done`: metrics.json and model.pt are the verb's alone.


rule train:
    input:
        search=source_run,
        data=lambda wildcards: prepared(wildcards.dataset),
        tracking=tracking_input(),
    output:
        done=touch(result("train", plan.DONE)),
    log:
        run_log("train"),
    wildcard_constraints:
        variant="|".join(re.escape(v) for v in STUDY.ablations),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output.done),
        genome=lambda wildcards, input: beside([input.search], "best.json")[0],
        settings=lambda wildcards: plan.train_inputs(NASGEP_CONFIG, wildcards.dataset, wildcards.variant),
        runs=lambda wildcards: plan.search_inputs(NASGEP_CONFIG, wildcards.dataset),
        redo=restart_flag("train"),
        attempts=attempts_log,
    threads: RESOURCES["train_threads"]
    resources:
        gpu=RESOURCES["train_gpus"],
    conda:
        ENV
    message:
        "train {wildcards.variant} on {wildcards.dataset}, seed {wildcards.seed}"
    shell:
        ATTEMPTS.format(
            command="nasgep train --genome {params.genome:q} {params.config} "
            "--dataset {wildcards.dataset:q} --variant {wildcards.variant:q} "
            "--seed {wildcards.seed:q} --out {params.out:q} --no-progress "
            "--restart-if-changed {params.redo:q}"
        )


rule transfer:
    input:
        genome=transfer_genome,
        data=lambda wildcards: prepared(wildcards.dataset),
        tracking=tracking_input(),
    output:
        done=touch(result("transfer", plan.DONE)),
    log:
        run_log("transfer"),
    wildcard_constraints:
        dataset=re.escape(TRANSFER) if TRANSFER else r"[^/]+",
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output.done),
        variant=STUDY.best_ablation,
        seed=SEEDS[0],
        settings=lambda wildcards: plan.transfer_inputs(
            NASGEP_CONFIG, wildcards.dataset, STUDY.best_ablation
        ),
        runs=plan.search_inputs(NASGEP_CONFIG, STUDY.transfer_source),
        redo=restart_flag("transfer"),
        attempts=attempts_log,
    threads: RESOURCES["train_threads"]
    resources:
        gpu=RESOURCES["train_gpus"],
    conda:
        ENV
    message:
        "transfer the best {params.variant} cells to {wildcards.dataset} (ImageNet mobile setting)"
    shell:
        ATTEMPTS.format(
            command="nasgep train --genome {input.genome:q} {params.config} "
            "--dataset {wildcards.dataset:q} --variant {params.variant:q} --seed {params.seed:q} "
            "--out {params.out:q} --stem imagenet --no-progress --restart-if-changed {params.redo:q}"
        )
