rule predict_detector:
    input:
        unpack(evaluation_splits),
        model="results/models/{trainset}/{arch}/{strategy}.keras",
    output:
        "results/predictions/{trainset}/{arch}/{strategy}.parquet",
    log:
        "results/logs/predict_detector/{trainset}/{arch}/{strategy}.log",
    benchmark:
        "results/benchmarks/predict_detector/{trainset}/{arch}/{strategy}.tsv"
    params:
        splits=lambda wildcards, input: " ".join(f"{d}={input[d]}" for d in evaluation_sets(DATASETS, wildcards.trainset)),
        batch=config["evaluation"]["batch_size"],
    threads: max(1, min(workflow.cores, 8))
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    shell:
        "python -m dfstudy.evaluate --model {input.model} --splits {params.splits}"
        " --out {output} --batch-size {params.batch} --threads {threads} > {log} 2>&1"
