# Beyond the study: seed paper 002's leave-one-out over the FF++ methods (config block `loo`, dfstudy.loo).
# Per held-out method: parts and their audit, one original detector per loo.architectures, its predictions on
# the held-out and the seen methods, and one table over all of them.


rule make_loo_splits:
    input:
        manifest=f"results/faces/{LOO['source']}/manifest.parquet",
    output:
        parts=[f"results/loo/splits/{h}/{p}.csv" for h in LOO["methods"] for p in ("train", "val", "test", "seen")],
        summary="results/loo/splits/summary.csv",
    log:
        "results/logs/make_loo_splits.log",
    benchmark:
        "results/benchmarks/make_loo_splits.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        cfg=loo_config(),
    shell:
        "python -m dfstudy.loo make --manifest {input.manifest} --config-json {params.cfg}"
        " --out-dir results/loo/splits > {log} 2>&1"


rule audit_loo_splits:
    input:
        rules.make_loo_splits.output.parts,
    output:
        "results/loo/splits/audit.csv",
    log:
        "results/logs/audit_loo_splits.log",
    benchmark:
        "results/benchmarks/audit_loo_splits.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=loo_config(),
    shell:
        "python -m dfstudy.loo audit --splits-dir results/loo/splits --config-json {params.cfg}"
        " --out {output} > {log} 2>&1"


rule pack_loo_split:
    input:
        "results/loo/splits/{heldout}/{part}.csv",
    output:
        "results/loo/splits/{heldout}/{part}.npz",
    log:
        "results/logs/pack_loo_split/{heldout}/{part}.log",
    benchmark:
        "results/benchmarks/pack_loo_split/{heldout}/{part}.tsv"
    wildcard_constraints:
        heldout="|".join(LOO["methods"]),
        part="train|val|test|seen",
    conda:
        "../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "python -m dfstudy.splits pack --part {input} --out {output} > {log} 2>&1"


rule train_loo_detector:
    input:
        train="results/loo/splits/{heldout}/train.npz",
        val="results/loo/splits/{heldout}/val.npz",
        audit=rules.audit_loo_splits.output,
    output:
        model="results/loo/models/{heldout}/{arch}.keras",
        card="results/loo/models/{heldout}/{arch}.json",
        history="results/loo/models/{heldout}/{arch}_history.csv",
    log:
        "results/logs/train_loo_detector/{heldout}/{arch}.log",
    benchmark:
        "results/benchmarks/train_loo_detector/{heldout}/{arch}.tsv"
    wildcard_constraints:
        heldout="|".join(LOO["methods"]),
        arch="|".join(LOO_ARCHS),
    priority: TRAINING_PRIORITY
    conda:
        GPU_ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=12000,
        runtime=720,
        gpu=1,
    params:
        opts=loo_training_options,
        workdir="results/checkpoints/loo/{heldout}/{arch}",
        backend=KERAS_BACKEND,
        gpu=GPU_CHECK,
        plugins=PLUGINS,
    shell:
        "KERAS_BACKEND={params.backend} python -m dfstudy.train --arch {wildcards.arch}"
        " --trainset LOO-{wildcards.heldout} --strategy original --train {input.train} --val {input.val}"
        " --out {output.model} --card {output.card} --history {output.history}"
        " --workdir {params.workdir} --threads {threads} {params.opts} {params.plugins} {params.gpu} > {log} 2>&1"


rule predict_loo_detector:
    input:
        model=rules.train_loo_detector.output.model,
        test="results/loo/splits/{heldout}/test.npz",
        seen="results/loo/splits/{heldout}/seen.npz",
    output:
        directory("results/loo/predictions/{heldout}/{arch}"),
    log:
        "results/logs/predict_loo_detector/{heldout}/{arch}.log",
    benchmark:
        "results/benchmarks/predict_loo_detector/{heldout}/{arch}.tsv"
    wildcard_constraints:
        heldout="|".join(LOO["methods"]),
        arch="|".join(LOO_ARCHS),
    conda:
        GPU_ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        batch=config["evaluation"]["batch_size"],
        backend=KERAS_BACKEND,
        gpu=GPU_CHECK,
        plugins=PLUGINS,
    shell:
        "KERAS_BACKEND={params.backend} python -m dfstudy.evaluate --model {input.model}"
        " --split {input.test} --out {output}/test.parquet --split {input.seen} --out {output}/seen.parquet"
        " --batch-size {params.batch} --threads {threads} {params.plugins} {params.gpu} > {log} 2>&1"


rule make_loo_table:
    input:
        predictions=list(loo_predictions().values()),
    output:
        table=report(
            "results/tables/loo.csv",
            caption="../reports/loo.rst",
            category="Beyond the study",
            labels={"table": "leave-one-out over the FF++ methods"},
        ),
        markdown="results/tables/loo.md",
        finding="results/tables/loo.json",
    log:
        "results/logs/make_loo_table.log",
    benchmark:
        "results/benchmarks/make_loo_table.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        pairs=" ".join(f"{k}={v}" for k, v in loo_predictions().items()),
        n_boot=config["evaluation"]["bootstrap"],
        seed=config["seed"],
    shell:
        "python -m dfstudy.loo table --predictions {params.pairs} --n-boot {params.n_boot} --seed {params.seed}"
        " --out {output.table} > {log} 2>&1"
