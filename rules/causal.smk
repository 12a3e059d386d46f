rule rank_neurons:
    input:
        model="results/models/{trainset}/{arch}/{strategy}.keras",
        splits=lambda wildcards: [f"results/splits/{d}/test.npz" for d in rq3_datasets(wildcards.trainset)],
    output:
        directory("results/causal/{trainset}/{arch}/{strategy}"),
    log:
        "results/logs/rank_neurons/{trainset}/{arch}/{strategy}.log",
    benchmark:
        "results/benchmarks/rank_neurons/{trainset}/{arch}/{strategy}.tsv"
    conda:
        GPU_ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        pairs=causal_pairs,
        layer=causal_layer,
        plugins=PLUGINS,
        n=config["causal"]["samples"],
        grid=config["causal"]["grid"],
        measure=config["causal"]["measure"],
        grid_range=config["causal"]["grid_range"],
        seed=config["seed"],
        backend=KERAS_BACKEND,
        gpu=GPU_CHECK,
    shell:
        "KERAS_BACKEND={params.backend} python -m dfstudy.causal rank --model {input.model} --layer {params.layer}"
        " {params.plugins} {params.pairs} --n-samples {params.n} --grid {params.grid} --measure {params.measure}"
        " --grid-range {params.grid_range} --seed {params.seed} --threads {threads} {params.gpu} > {log} 2>&1"


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
