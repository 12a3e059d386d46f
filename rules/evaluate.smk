rule predict_detector:
    input:
        unpack(evaluation_splits),
        model="results/models/{trainset}/{arch}/{strategy}.keras",
    output:
        directory("results/predictions/{trainset}/{arch}/{strategy}"),
    log:
        "results/logs/predict_detector/{trainset}/{arch}/{strategy}.log",
    benchmark:
        "results/benchmarks/predict_detector/{trainset}/{arch}/{strategy}.tsv"
    params:
        pairs=prediction_pairs,
        batch=config["evaluation"]["batch_size"],
    threads: max(1, min(workflow.cores, 8))
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    shell:
        "python -m dfstudy.evaluate --model {input.model} {params.pairs}"
        " --batch-size {params.batch} --threads {threads} > {log} 2>&1"


rule make_tables:
    input:
        predictions=all_predictions(),
        reference="reports/reference",
    output:
        tables=[f"results/tables/table{n}.{ext}" for n in (4, 5, 6, 7) for ext in ("csv", "md", "tex")],
        versus=[f"results/tables/table{n}_vs_published.{ext}" for n in (4, 5, 6, 7) for ext in ("csv", "md")],
        metrics="results/tables/metrics.parquet",
        cv_ap="results/tables/cv_ap.csv",
        findings="results/tables/findings.json",
    log:
        "results/logs/make_tables.log",
    benchmark:
        "results/benchmarks/make_tables.tsv"
    params:
        threshold=config["evaluation"]["degradation_threshold"],
        n_boot=config["evaluation"]["bootstrap"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m dfstudy.tables --predictions results/predictions --reference {input.reference}"
        " --out-dir results/tables --threshold {params.threshold} --n-boot {params.n_boot}"
        " --seed {params.seed} > {log} 2>&1"
