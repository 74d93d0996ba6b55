# Search-phase evaluation (issue 9, `nasgep evaluate`): every seed's searched cells
# against search_phase.random_cells random cells, each trained with
# search_phase.train_seeds training seeds, and the fidelity of the search fitness over a
# sample of each search's history. Its section and scatter plot go to the report.
# Trainings are cached in its folder (runs/), so an interrupted evaluation resumes; those
# made with other settings or for a changed best.json are moved aside, with the
# trainings.csv the report was made of, and trained again. The report files are derived
# from the trainings and plain outputs: Snakemake deletes them before it runs the job
# again and after a failed one (as update() outputs, a failed job's old report came back
# as new and counted as current).


rule search_phase:
    input:
        searches=lambda wildcards: plan.seed_searches(STUDY, wildcards.dataset),
        data=lambda wildcards: prepared(wildcards.dataset),
    output:
        json=result("searchphase", "searchphase.json"),
        md=result("searchphase", "searchphase.md"),
        html=report(
            result("searchphase", "searchphase.html"),
            caption="../report/searchphase.rst",
            category="Search vs random",
            labels={"dataset": "{dataset}", "what": "summary"},
        ),
        plot=report(
            result("searchphase", "fidelity.png"),
            caption="../report/searchphase.rst",
            category="Search vs random",
            labels={"dataset": "{dataset}", "what": "fitness vs trained accuracy"},
        ),
    log:
        run_log("searchphase"),
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
