# Tables I-III, figures and the best cells, all marked for `snakemake --report`. They are
# derived from the runs and plain outputs: Snakemake deletes them before it runs a job
# again and after a failed one, and the job writes them anew (as `update()` outputs, a
# failed job's old files came back as new and counted as current). Copy a table before
# editing it by hand; run by hand, the verbs refuse to replace an edited file.


rule draw_cells:
    input:
        rules.select_best.output,
    output:
        normal=report(
            result("cells", "normal.png"),
            caption="../report/cells.rst",
            category="Best cells",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "cell": "normal"},
        ),
        reduction=report(
            result("cells", "reduction.png"),
            caption="../report/cells.rst",
            category="Best cells",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "cell": "reduction"},
        ),
        normal_svg=result("cells", "normal.svg"),
        reduction_svg=result("cells", "reduction.svg"),
    log:
        log_path("draw_cells/{dataset}"),
    params:
        out=lambda wildcards, output: os.path.dirname(output.normal),
    conda:
        ENV
    message:
        "draw the best {wildcards.dataset} cells"
    shell:
        "nasgep draw {input:q} --out {params.out:q} > {log:q} 2>&1"


rule tables:
    input:
        plan.table_inputs(STUDY),
    output:
        [
            report(
                path,
                caption=f"../report/{Path(path).stem}.rst",
                category="Tables",
                labels={"table": Path(path).stem},
            )
            if path.endswith(".html")
            else path
            for path in plan.table_files(STUDY)
        ],
    log:
        log_path("tables"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output[0]),
        settings=plan.report_inputs(STUDY),
        runs=plan.upstream_inputs(STUDY, plan.table_inputs(STUDY)),
    conda:
        ENV
    message:
        "write Tables I-III"
    shell:
        "nasgep tables {params.config} --out {params.out:q} > {log:q} 2>&1"


rule figures:
    input:
        plan.figure_inputs(STUDY),
    output:
        [
            report(
                path,
                caption="../report/ablation.rst"
                if Path(path).stem == "ablation"
                else "../report/search_curves.rst",
                category="Figures",
                labels={"figure": Path(path).stem},
            )
            if path.endswith(".png")
            else path
            for path in plan.figure_files(STUDY)
        ],
    log:
        log_path("figures"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output[0]),
        settings=plan.report_inputs(STUDY),
        runs=plan.upstream_inputs(STUDY, plan.figure_inputs(STUDY)),
    conda:
        ENV
    message:
        "draw search curves and ablation bars"
    shell:
        "nasgep figures {params.config} --out {params.out:q} > {log:q} 2>&1"
