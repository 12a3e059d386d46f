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
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    conda:
        GPU_ENV
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
    params:
        effects=lambda wildcards, input: " ".join(f"{input[0]}/{d}.parquet" for d in rq3_datasets(wildcards.trainset)),
        study=STUDY_JSON,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/train.yaml"
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
    params:
        permutations=config["causal"]["permutations"],
        seed=config["seed"],
        study=STUDY_JSON,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m dfstudy.causal summarize --overlaps {input} --table {output.table}"
        " --findings {output.findings} --permutations {params.permutations} --seed {params.seed}"
        " --study {params.study} > {log} 2>&1"


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
    params:
        study=STUDY_JSON,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m dfstudy.figures_rq4 --table {input} --arch {wildcards.arch} --out {output.png}"
        " --study {params.study} > {log} 2>&1"
