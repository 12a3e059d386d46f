rule overlap_neurons:
    input:
        "results/causal/{trainset}/{arch}/{strategy}",
    output:
        "results/causal/{trainset}/{arch}/{strategy}_overlap.csv",
    log:
        "results/logs/overlap_neurons/{trainset}/{arch}/{strategy}.log",
    benchmark:
        "results/benchmarks/overlap_neurons/{trainset}/{arch}/{strategy}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        effects=lambda wildcards, input: " ".join(f"{input[0]}/{d}.parquet" for d in rq3_datasets(wildcards.trainset)),
        study=STUDY_JSON,
    shell:
        "python -m dfstudy.causal summarize --effects {params.effects} --out {output} --study {params.study}"
        " > {log} 2>&1"


rule summarize_neurons:
    input:
        causal_overlaps(),
    output:
        table=report(
            "results/tables/rq4_overlap.csv",
            caption="../reports/rq4_overlap.rst",
            category="RQ4",
            subcategory="Tables",
            labels={"table": "top-k overlap histograms"},
        ),
        findings=report(
            "results/tables/findings_rq4.json",
            caption="../reports/findings_rq4.rst",
            category="RQ4",
            subcategory="Findings",
            labels={"finding": "4"},
        ),
    log:
        "results/logs/summarize_neurons.log",
    benchmark:
        "results/benchmarks/summarize_neurons.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        permutations=config["causal"]["permutations"],
        seed=config["seed"],
        study=STUDY_JSON,
        words=STUDY_WORDS,
    shell:
        "python -m dfstudy.causal summarize --overlaps {input} --table {output.table}"
        " --findings {output.findings} --permutations {params.permutations} --seed {params.seed}"
        " --study {params.study} > {log} 2>&1"
