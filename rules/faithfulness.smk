rule summarize_faithfulness:
    input:
        faithfulness_inputs(),
    output:
        table=report(
            "results/tables/rq3_faithfulness.csv",
            caption="../reports/rq3_faithfulness.rst",
            category="RQ3",
            subcategory="Tables",
            labels={"table": "Grad-CAM deletion test"},
        ),
        findings="results/tables/faithfulness.json",
        png=report(
            "results/figures/fig_faithfulness.png",
            caption="../reports/rq3_faithfulness.rst",
            category="RQ3",
            subcategory="Figures",
            labels={"figure": "deletion test"},
        ),
        pdf="results/figures/fig_faithfulness.pdf",
    log:
        "results/logs/summarize_faithfulness.log",
    benchmark:
        "results/benchmarks/summarize_faithfulness.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        files=lambda wildcards, input: " ".join(f"{d}/faithfulness.csv" for d in input),
    shell:
        "python -m dfstudy.faithfulness --inputs {params.files} --table {output.table}"
        " --findings {output.findings} --png {output.png} --pdf {output.pdf} > {log} 2>&1"
