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
    conda:
        GPU_ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        pairs=prediction_pairs,
        batch=config["evaluation"]["batch_size"],
        backend=KERAS_BACKEND,
        gpu=GPU_CHECK,
        plugins=PLUGINS,
    shell:
        "KERAS_BACKEND={params.backend} python -m dfstudy.evaluate --model {input.model} {params.pairs}"
        " --batch-size {params.batch} --threads {threads} {params.plugins} {params.gpu} > {log} 2>&1"
