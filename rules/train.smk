rule train_detector:
    input:
        unpack(training_inputs),
    output:
        model="results/models/{trainset}/{arch}/{strategy}.keras",
        card="results/models/{trainset}/{arch}/{strategy}.json",
        history="results/models/{trainset}/{arch}/{strategy}_history.csv",
    log:
        "results/logs/train_detector/{trainset}/{arch}/{strategy}.log",
    benchmark:
        "results/benchmarks/train_detector/{trainset}/{arch}/{strategy}.tsv"
    priority: TRAINING_PRIORITY
    conda:
        GPU_ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=12000,
        runtime=720,
        gpu=1,
    params:
        opts=training_options,
        workdir="results/checkpoints/{trainset}/{arch}/{strategy}",
        backend=KERAS_BACKEND,
        gpu=GPU_CHECK,
        plugins=PLUGINS,
    shell:
        "KERAS_BACKEND={params.backend} python -m dfstudy.train --arch {wildcards.arch} --trainset {wildcards.trainset}"
        " --strategy {wildcards.strategy} --train {input.train} --val {input.val}"
        " --out {output.model} --card {output.card} --history {output.history}"
        " --workdir {params.workdir} --threads {threads} {params.opts} {params.plugins} {params.gpu} > {log} 2>&1"
