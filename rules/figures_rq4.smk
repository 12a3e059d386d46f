rule plot_neurons:
    input:
        rules.summarize_neurons.output.table,
    output:
        png=report(
            "results/figures/fig5_{arch}.png",
            caption="../reports/fig5.rst",
            category="RQ4",
            subcategory="Figures",
            labels={"figure": "5", "architecture": "{arch}"},
        ),
        pdf="results/figures/fig5_{arch}.pdf",
    log:
        "results/logs/plot_neurons/{arch}.log",
    benchmark:
        "results/benchmarks/plot_neurons/{arch}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        study=STUDY_JSON,
    shell:
        "python -m dfstudy.figures_rq4 --table {input} --arch {wildcards.arch} --out {output.png}"
        " --study {params.study} > {log} 2>&1"
