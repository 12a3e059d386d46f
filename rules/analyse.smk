# One job per detector for its analyses (dfstudy.analyse): predictions on its test sets (RQ1, RQ2), Grad-CAM
# and the deletion test (RQ3) and, for causal.architectures, the neurons' causal effects (RQ4). One job,
# not three: each loaded TensorFlow and the model anew (5-6 s of a 2-core CPU before any work).
rule analyse_detector:
    input:
        unpack(analysis_splits),
        model="results/models/{trainset}/{arch}/{strategy}.keras",
    output:
        predictions=directory("results/predictions/{trainset}/{arch}/{strategy}"),
        gradcam=directory("results/gradcam/{trainset}/{arch}/{strategy}"),
    log:
        "results/logs/analyse_detector/{trainset}/{arch}/{strategy}.log",
    benchmark:
        "results/benchmarks/analyse_detector/{trainset}/{arch}/{strategy}.tsv"
    wildcard_constraints:
        arch=any_of(a for a in ARCHS if a not in CAUSAL_ARCHS),
    conda:
        GPU_ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=180,
        gpu=1,
    params:
        stages=analysis_stages,
        backend=KERAS_BACKEND,
        gpu=GPU_CHECK,
        plugins=PLUGINS,
    shell:
        # Grad-CAM runs on TensorFlow whatever detectors.backend says (dfstudy.analyse sees to it)
        "KERAS_BACKEND={params.backend} python -m dfstudy.analyse --model {input.model} --threads {threads}"
        " {params.plugins} {params.gpu} {params.stages} > {log} 2>&1"


use rule analyse_detector as analyse_detector_rq4 with:
    output:
        predictions=directory("results/predictions/{trainset}/{arch}/{strategy}"),
        gradcam=directory("results/gradcam/{trainset}/{arch}/{strategy}"),
        causal=directory("results/causal/{trainset}/{arch}/{strategy}"),
    log:
        "results/logs/analyse_detector_rq4/{trainset}/{arch}/{strategy}.log",
    benchmark:
        "results/benchmarks/analyse_detector_rq4/{trainset}/{arch}/{strategy}.tsv"
    wildcard_constraints:
        arch=any_of(CAUSAL_ARCHS),
