# Search-phase evaluation (issue 9, `nasgep evaluate`): every seed's searched cells
# against search_phase.random_cells random cells, each trained with
# search_phase.train_seeds training seeds, and the fidelity of the search fitness over a
# sample of each search's history. Its section and scatter plot go to the report.
# Trainings are cached in its folder, so an interrupted evaluation resumes; those made
# with other settings or for a changed best.json are moved aside and trained again. The
# report files are `update()` outputs, so Snakemake never deletes them before a rerun: the
# verb moves a report that the rerun changes aside, with its trainings.csv. Snakemake puts
# the last report back, as new, when a job fails, so the mark `.workflow-done` (touch(),
# made when the job succeeded) says the job is done.


rule search_phase:
    input:
        searches=lambda wildcards: plan.searchphase_searches(STUDY, wildcards.dataset),
        data=lambda wildcards: prepared(wildcards.dataset),
    output:
        done=touch(result("searchphase", plan.DONE)),
        json=update(result("searchphase", "searchphase.json")),
        md=update(result("searchphase", "searchphase.md")),
        html=report(
            update(result("searchphase", "searchphase.html")),
            caption="../report/searchphase.rst",
            category="Search vs random",
            labels={"dataset": "{dataset}", "what": "summary"},
        ),
        plot=report(
            update(result("searchphase", "fidelity.png")),
            caption="../report/searchphase.rst",
            category="Search vs random",
            labels={"dataset": "{dataset}", "what": "fitness vs trained accuracy"},
        ),
    log:
        log_path("searchphase/{dataset}"),
    params:
        config=config_args,
        searches=lambda wildcards, input: [os.path.dirname(p) for p in input.searches],
        out=lambda wildcards, output: os.path.dirname(output.json),
        settings=lambda wildcards: plan.searchphase_inputs(NASGEP_CONFIG, wildcards.dataset),
        attempts=attempts_log,
    threads: RESOURCES["train_threads"]
    resources:
        gpu=RESOURCES["train_gpus"],
    conda:
        ENV
    message:
        "search-phase evaluation on {wildcards.dataset}: searched vs random cells, fitness fidelity"
    shell:
        ATTEMPTS.format(
            command="nasgep evaluate {params.config} --dataset {wildcards.dataset:q} "
            "--search {params.searches:q} --out {params.out:q} --restart-if-changed"
        )
