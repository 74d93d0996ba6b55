# Tables I-III, figures and the best cells, all marked for `snakemake --report`. Their
# files are `update()` outputs, so Snakemake never deletes them before a rerun: the verbs
# replace only files they wrote themselves, and refuse, naming it, one edited by hand.
# Snakemake puts them back, as new, when a job fails, so each rule also has the mark
# `.workflow-done` (touch(), made when the job succeeded) that says it is done.


rule draw_cells:
    input:
        rules.select_best.output,
    output:
        normal=report(
            update(result("cells", "normal.png")),
            caption="../report/cells.rst",
            category="Best cells",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "cell": "normal"},
        ),
        reduction=report(
            update(result("cells", "reduction.png")),
            caption="../report/cells.rst",
            category="Best cells",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "cell": "reduction"},
        ),
        normal_svg=update(result("cells", "normal.svg")),
        reduction_svg=update(result("cells", "reduction.svg")),
        done=touch(result("cells", plan.DONE)),
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
                update(path),
                caption=f"../report/{Path(path).stem}.rst",
                category="Tables",
                labels={"table": Path(path).stem},
            )
            if path.endswith(".html")
            else update(path)
            for path in plan.table_files(STUDY)
        ],
        done=touch(f"{R}/{LAYOUT['tables']}/{plan.DONE}"),
    log:
        log_path("tables"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output[0]),
        settings=plan.report_inputs(STUDY),
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
                update(path),
                caption="../report/ablation.rst"
                if Path(path).stem == "ablation"
                else "../report/search_curves.rst",
                category="Figures",
                labels={"figure": Path(path).stem},
            )
            if path.endswith(".png")
            else update(path)
            for path in plan.figure_files(STUDY)
        ],
        done=touch(f"{R}/{LAYOUT['figures']}/{plan.DONE}"),
    log:
        log_path("figures"),
    params:
        config=config_args,
        out=lambda wildcards, output: os.path.dirname(output[0]),
        settings=plan.report_inputs(STUDY),
    conda:
        ENV
    message:
        "draw search curves and ablation bars"
    shell:
        "nasgep figures {params.config} --out {params.out:q} > {log:q} 2>&1"
