# Beyond the study: every detector family (architecture x strategy, pooled over the training sets) ranked by
# mean unseen accuracy, with bootstrap intervals, a figure and one generated sentence (dfstudy.comparison).


rule compare_families:
    input:
        predictions=all_predictions(),
    output:
        table=report(
            "results/tables/comparison.csv",
            caption="../reports/comparison.rst",
            category="Beyond the study",
            subcategory="Comparison of approaches",
            labels={"content": "table"},
        ),
        md="results/tables/comparison.md",
        summary="results/tables/comparison.json",
        figure=report(
            "results/figures/comparison.png",
            caption="../reports/comparison_figure.rst",
            category="Beyond the study",
            subcategory="Comparison of approaches",
            labels={"content": "figure"},
        ),
    log:
        "results/logs/compare_families.log",
    benchmark:
        "results/benchmarks/compare_families.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        n_boot=config["evaluation"]["bootstrap"],
        seed=config["seed"],
        files=prediction_files(),
        study=STUDY_JSON,
        words=STUDY_WORDS,
    shell:
        "python -m dfstudy.comparison --predictions {params.files} --csv {output.table} --json {output.summary}"
        " --figure {output.figure} --n-boot {params.n_boot} --seed {params.seed} --study {params.study} > {log} 2>&1"
