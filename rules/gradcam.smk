rule explain_detector:
    input:
        model="results/models/{trainset}/{arch}/{strategy}.keras",
        splits=lambda wildcards: [f"results/splits/{d}/test.npz" for d in rq3_datasets(wildcards.trainset)],
    output:
        directory("results/gradcam/{trainset}/{arch}/{strategy}"),
    log:
        "results/logs/explain_detector/{trainset}/{arch}/{strategy}.log",
    benchmark:
        "results/benchmarks/explain_detector/{trainset}/{arch}/{strategy}.tsv"
    conda:
        GPU_ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        pairs=heatmap_pairs,
        opts=gradcam_options,
        n=config["gradcam"]["images"],
        batch=config["gradcam"]["batch_size"],
        seed=config["seed"],
        gpu=GPU_CHECK,
        plugins=PLUGINS,
    shell:
        # tf-explain is TensorFlow code: Grad-CAM runs on TensorFlow whatever detectors.backend says
        "KERAS_BACKEND=tensorflow python -m dfstudy.gradcam --model {input.model} {params.pairs} {params.opts}"
        " --n-images {params.n} --seed {params.seed} --batch-size {params.batch} --threads {threads}"
        " {params.plugins} {params.gpu} > {log} 2>&1"
